"""The same initialization done by PyTorch or numpy, for bench/run.sh.

    python frameworks.py torch|numpy SPECC SPEC OUT [--fsync] [--f64]   # build SPEC's tensors, save_file
    python frameworks.py rates                                  # single-core normal/uniform throughput
    python frameworks.py orthogonal ROWSxCOLS...                # torch.nn.init.orthogonal_, threads from THREADS

Tensors, shapes and distributions come from `specc summary --format json`, so both sides
produce the same bytes' worth of the same distributions.
"""

import json
import os
import subprocess
import sys
import time


def tensors(specc, spec):
    s = json.loads(subprocess.run([specc, "summary", "--format", "json", spec], check=True, capture_output=True, text=True).stdout)
    return s["seed"], s["tensors"]


def params(t):
    p = t["initializer"]["params"]
    kind = p["kind"]
    if kind == "variance_scaling":
        n = {"fan_in": t["fan_in"], "fan_out": t["fan_out"], "fan_avg": (t["fan_in"] + t["fan_out"]) / 2}[p["mode"]]
        var = p["scale"] / max(1.0, n)
        if p["distribution"] == "uniform":
            lim = (3 * var) ** 0.5
            return "uniform", (-lim, lim)
        return "normal", (0.0, var**0.5)
    if kind == "constant":
        return "constant", (p["value"],)
    if kind == "normal":
        return "normal", (p["mean"], p["std"])
    if kind == "uniform":
        return "uniform", (p["low"], p["high"])
    if kind == "truncated_normal":
        return "trunc", (p["mean"], p["std"], p["low"], p["high"])
    raise SystemExit(f"benchmark does not handle {kind}")


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def build_torch(specc, spec, out, sync, f64=False):
    import torch
    from safetensors.torch import save_file

    seed, ts = tensors(specc, spec)
    torch.manual_seed(seed)
    dt = {"f32": torch.float32, "f16": torch.float16, "bf16": torch.bfloat16, "f64": torch.float64, "i64": torch.int64}
    sd = {}
    for t in ts:
        # --f64: every floating-point tensor in f64, as `specc build --dtype f64`.
        d = torch.float64 if f64 and t["dtype"] in ("f32", "f16", "bf16") else dt[t["dtype"]]
        x = torch.empty(t["shape"], dtype=d)
        kind, a = params(t)
        if kind == "constant":
            x.fill_(a[0])
        elif kind == "normal":
            x.normal_(a[0], a[1])
        elif kind == "uniform":
            x.uniform_(a[0], a[1])
        else:
            torch.nn.init.trunc_normal_(x, *a)
        sd[t["name"]] = x
    save_file(sd, out, metadata={"format": "pt"})
    if sync:
        fsync(out)


def build_numpy(specc, spec, out, sync):
    import numpy as np
    from safetensors.numpy import save_file

    seed, ts = tensors(specc, spec)
    rng = np.random.default_rng(seed)
    dt = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i64": np.int64}
    arrays = {}
    for t in ts:
        d = dt.get(t["dtype"], np.float32)
        kind, a = params(t)
        if kind == "constant":
            x = np.full(t["shape"], a[0], dtype=d)
        elif kind == "normal":
            x = rng.standard_normal(t["shape"], dtype=np.float32) * np.float32(a[1]) + np.float32(a[0])
        elif kind == "uniform":
            x = rng.uniform(a[0], a[1], t["shape"]).astype(np.float32)
        else:
            x = np.clip(rng.standard_normal(t["shape"], dtype=np.float32) * a[1] + a[0], a[2], a[3])
        arrays[t["name"]] = x.astype(d, copy=False)
    save_file(arrays, out, metadata={"format": "pt"})
    if sync:
        fsync(out)


def rates():
    """As benches/samplers.rs measures specc: best of 64 passes into one reused buffer of 1 Mi values."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    n = 1 << 20
    rng = np.random.default_rng(0)
    a = np.zeros(n, dtype=np.float32)
    a64 = np.zeros(n, dtype=np.float64)
    t = torch.zeros(n)
    t64 = torch.zeros(n, dtype=torch.float64)
    for name, f in [
        ("numpy  normal f32 (PCG64)", lambda: rng.standard_normal(dtype=np.float32, out=a)),
        ("numpy  uniform f32 (PCG64)", lambda: rng.random(dtype=np.float32, out=a)),
        ("torch  normal f32 (1 thread)", lambda: t.normal_()),
        ("torch  uniform f32 (1 thread)", lambda: t.uniform_()),
        ("numpy  normal f64 (PCG64)", lambda: rng.standard_normal(dtype=np.float64, out=a64)),
        ("torch  normal f64 (1 thread)", lambda: t64.normal_()),
        ("torch  uniform f64 (1 thread)", lambda: t64.uniform_()),
    ]:
        f()
        best = min(_time(f) for _ in range(64))
        print(f"{name:<30} {n / best / 1e6:8.0f} M values/s (single core)")


def orthogonal(shapes):
    """torch.nn.init.orthogonal_ per shape (median of 3) and max |QᵀQ − I| on 64 spread
    columns of the smaller side, as benches/orthogonal.rs reports specc's."""
    import torch

    torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
    for shape in shapes:
        rows, cols = map(int, shape.split("x"))
        w = torch.empty(rows, cols)
        times = sorted(_time(lambda: torch.nn.init.orthogonal_(w)) for _ in range(3))
        q = (w if rows >= cols else w.T).double()
        n = q.shape[1]
        picks = [i * n // min(64, n) for i in range(min(64, n))]
        g = q[:, picks].T @ q[:, picks]
        err = (g - torch.eye(len(picks), dtype=torch.float64)).abs().max().item()
        print(f"torch orthogonal_ {rows}x{cols}: median {times[1]:.3f} s (min {times[0]:.3f}), threads {torch.get_num_threads()}, max|QtQ-I| {err:.2e}")


def _time(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


if __name__ == "__main__":
    what = sys.argv[1]
    if what == "rates":
        rates()
    elif what == "torch":
        build_torch(*sys.argv[2:5], sync="--fsync" in sys.argv[5:], f64="--f64" in sys.argv[5:])
    elif what == "orthogonal":
        orthogonal(sys.argv[2:])
    elif what == "numpy":
        build_numpy(*sys.argv[2:5], sync="--fsync" in sys.argv[5:])
    else:
        raise SystemExit(__doc__)
