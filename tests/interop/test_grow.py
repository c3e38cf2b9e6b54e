"""Model growth with `from_file` (issue 12): specs/grow/llama-grow.yaml expands the 2-layer
base that specs/grow/llama-base.yaml builds into 3 layers, LLaMA-Pro style. The grown model
loads strictly into transformers' LlamaForCausalLM, every copied tensor is its source's
bytes, the new block's output projections are zero, and so the grown model computes exactly
what the base computes. The file's metadata names the base file and its SHA-256."""

import hashlib
import json

import torch
import transformers
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import SPECS, build

GROW = SPECS / "grow"


def config(n_layers):
    return transformers.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=n_layers,
        num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=False,
    )


def test_grown_llama_loads_copies_its_base_and_computes_the_same(tmp_path):
    base, grown = tmp_path / "base", tmp_path / "grown"
    base.mkdir()
    grown.mkdir()
    build(GROW / "llama-base.yaml", base / "model.safetensors")
    config(2).save_pretrained(str(base))
    build(GROW / "llama-grow.yaml", grown / "model.safetensors", "--set", f"base={base}")
    config(3).save_pretrained(str(grown))

    b, info_b = transformers.LlamaForCausalLM.from_pretrained(str(base), output_loading_info=True)
    g, info_g = transformers.LlamaForCausalLM.from_pretrained(str(grown), output_loading_info=True)
    for info in (info_b, info_g):
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info

    src, out = load_file(str(base / "model.safetensors")), load_file(str(grown / "model.safetensors"))
    for name, t in out.items():
        if name.startswith("model.layers.2."):
            rest = name[len("model.layers.2."):]
            if rest in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
                assert torch.count_nonzero(t) == 0, name
                continue
            want = src["model.layers.1." + rest]  # the new block copies the base's last
        else:
            want = src[name]
        assert t.dtype == want.dtype and torch.equal(t.view(torch.uint8), want.view(torch.uint8)), name

    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(b(ids).logits, g(ids).logits)

    with safe_open(str(grown / "model.safetensors"), "pt") as f:
        sources = json.loads(f.metadata()["from_file"])
    sha = hashlib.sha256((base / "model.safetensors").read_bytes()).hexdigest()
    assert sources == {str(base / "model.safetensors"): sha}
