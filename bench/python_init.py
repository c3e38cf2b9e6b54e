"""specc's Python module beside PyTorch's own init, in the same process (issue 14):

  specc.tensors(spec)              numpy arrays of every tensor
  specc.init_(model, spec)         a meta-built transformers model, to_empty'd, filled in place
  torch                            the same to_empty'd model, each tensor initialized as the spec
                                   says with torch's in-place initializers (normal_, ones_,
                                   zeros_), as _init_weights and reset_parameters do

for llama-1b (LlamaForCausalLM, TinyLlama's shape) and gpt2-small (GPT2LMHeadModel), at 1 and
2 threads. Each case runs in a process of its own; it prints the init's wall time, the
process's peak RSS, and the peak RSS beyond what the process held before the init (the
model's memory and the libraries). Run: python bench/python_init.py [RUNS] (default 3;
the median is printed). The `-warm` cases touch the module's memory first, so they time
the generators alone.
"""

import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# "-warm": the module's memory touched before the timed init (fill_(0)), so the figure is the
# generators' alone; without it the first touch's page faults (~0.9 s for 4.4 GB here) count.
CASES = ["specc-tensors", "specc-init", "torch", "specc-init-warm", "torch-warm"]
MODELS = {"llama-1b": "specs/llama-1b.yaml", "gpt2-small": "specs/gpt2-small.yaml"}


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model(name):
    import torch
    import transformers

    if name == "llama-1b":
        cfg = transformers.LlamaConfig(vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                                       num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False)
        cls = transformers.LlamaForCausalLM
    else:
        cfg = transformers.GPT2Config()
        cls = transformers.GPT2LMHeadModel
    with torch.device("meta"):
        model = cls(cfg)
    model.to_empty(device="cpu")
    model.tie_weights()
    return model


def one(case, name, threads):
    spec = os.path.join(ROOT, MODELS[name])
    import specc

    if case == "specc-tensors":
        before = rss_mb()
        t0 = time.perf_counter()
        arrays = specc.tensors(spec, threads=threads)
        wall = time.perf_counter() - t0
        nbytes = sum(a.nbytes for a in {id(a): a for a in arrays.values()}.values())
    else:
        import torch

        torch.set_num_threads(threads)
        model = make_model(name)
        summary = specc.summary(spec)
        inits = {t["name"]: t for t in summary["tensors"]}
        nbytes = sum(p.numel() * p.element_size() for p in {p.data_ptr(): p for p in model.state_dict().values()}.values())
        if case.endswith("-warm"):
            with torch.no_grad():
                for p in model.state_dict().values():
                    p.fill_(0)
        before = rss_mb()
        t0 = time.perf_counter()
        if case.startswith("specc-init"):
            specc.init_(model, spec, threads=threads)
        else:
            with torch.no_grad():
                for k, p in model.state_dict().items():
                    if k not in inits:
                        continue  # a tie
                    d = inits[k]["initializer"]["params"]
                    if d["kind"] == "constant":
                        p.fill_(d["value"])
                    else:
                        torch.nn.init.normal_(p, d["mean"], d["std"])
        wall = time.perf_counter() - t0
    return {"wall": wall, "rss": rss_mb(), "extra": rss_mb() - before, "model_mb": nbytes / 2**20}


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--one":
        print(json.dumps(one(sys.argv[2], sys.argv[3], int(sys.argv[4]))))
        return
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    print(f"{'model':<11} {'threads':>7} {'case':<14} {'init s':>8} {'peak MB':>8} {'beyond MB':>9} {'model MB':>9}")
    for name in MODELS:
        for threads in (1, 2):
            for case in CASES:
                rs = [json.loads(subprocess.run([sys.executable, __file__, "--one", case, name, str(threads)],
                                                capture_output=True, text=True, check=True).stdout.splitlines()[-1])
                      for _ in range(runs)]
                med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
                print(f"{name:<11} {threads:>7} {case:<14} {med('wall'):>8.3f} {max(r['rss'] for r in rs):>8.0f} "
                      f"{max(r['extra'] for r in rs):>9.0f} {rs[0]['model_mb']:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
