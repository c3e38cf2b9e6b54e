"""Shared helpers for the interop tests: run the specc binary, read its JSON."""

import json
import math
import os
import pathlib
import re
import subprocess

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"
HERE_SPECS = pathlib.Path(__file__).resolve().parent / "specs"


def specc_bin():
    env = os.environ.get("SPECC")
    if env:
        return env
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "specc"
        if p.exists():
            return str(p)
    pytest.fail("specc binary not found: build it (cargo build) or set SPECC")


def job_free_env():
    """The environment without a job engine's part variables: inside a Slurm array or an
    Indexed Job, `specc build` would otherwise build only its part."""
    drop = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX", "SPECC_PART_COUNT")
    return {k: v for k, v in os.environ.items() if k not in drop}


def with_depth(spec, tmp_path, layers, required=False):
    """A copy of a zoo spec with its `x-layers: &layers N` anchor set to `layers` (the full
    builds are bench/run.sh's job; llama2-7b alone is 13.5 GB); specs without one as they are,
    unless `required`."""
    text = spec.read_text()
    if "x-layers: &layers" not in text:
        assert not required, f"{spec.name} keeps its depth in an x-layers anchor"
        return spec
    p = tmp_path / spec.name
    p.write_text(re.sub(r"x-layers: &layers \d+", f"x-layers: &layers {layers}", text))
    return p


def gpt2_tiny_config():
    """The transformers config specs/gpt2-tiny.yaml describes."""
    import transformers

    return transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=1000, n_positions=128)


def summary(path):
    """`specc summary --format json` of a spec file, decoded."""
    out = subprocess.run(
        [specc_bin(), "summary", "--format", "json", str(path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def stored(path):
    """[(name, shape)] of the tensors specc declares, in order."""
    return [(t["name"], tuple(t["shape"])) for t in summary(path)["tensors"]]


def build(spec, out, *extra):
    """`specc build SPEC -o OUT` (asserting success); returns OUT."""
    res = subprocess.run(
        [specc_bin(), "build", str(spec), "-o", str(out), *extra],
        capture_output=True,
        text=True,
        env=job_free_env(),
    )
    assert res.returncode == 0, res.stderr
    return out


def kolmogorov_sf(lam):
    """The Kolmogorov distribution's survival function (the KS tests' asymptotic p-value)."""
    if lam < 0.2:
        return 1.0
    k = np.arange(1, 101)
    return float(np.clip(2 * np.sum((-1.0) ** (k - 1) * np.exp(-2 * k * k * lam * lam)), 0, 1))


def ks_2samp(a, b):
    """Two-sample Kolmogorov-Smirnov statistic and its asymptotic p-value (no scipy here)."""
    a = np.sort(np.asarray(a, np.float64).ravel())
    b = np.sort(np.asarray(b, np.float64).ravel())
    both = np.concatenate([a, b])
    d = np.abs(np.searchsorted(a, both, side="right") / a.size - np.searchsorted(b, both, side="right") / b.size).max()
    en = math.sqrt(a.size * b.size / (a.size + b.size))
    return d, kolmogorov_sf((en + 0.12 + 0.11 / en) * d)


def torchtitan_llama3(dim, vocab, n_layers, n_heads, n_kv_heads, hidden_dim, fuse_qkv):
    """torchtitan 0.3's Llama3Model config from its own builders (private in 0.3:
    _build_llama3_layers and the init constants), the way its llama3 registry builds them.
    .ci/run installs torchtitan with --no-deps; requirements.txt has what its model code
    imports. Returns (the llama3 module, the config)."""
    import torchtitan.models.llama3 as L
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
    from torchtitan.models.llama3.model import Llama3Model

    cfg = Llama3Model.Config(
        dim=dim,
        vocab_size=vocab,
        tok_embeddings=Embedding.Config(num_embeddings=vocab, embedding_dim=dim, param_init=L._EMBEDDING_INIT),
        norm=RMSNorm.Config(normalized_shape=dim, param_init=L._NORM_INIT),
        lm_head=Linear.Config(in_features=dim, out_features=vocab, param_init=L._output_linear_init(dim)),
        layers=L._build_llama3_layers(
            fuse_qkv=fuse_qkv, n_layers=n_layers, dim=dim, n_heads=n_heads, n_kv_heads=n_kv_heads,
            hidden_dim=hidden_dim, attn_backend="flex",
            rope=ComplexRoPE.Config(dim=dim // n_heads, max_seq_len=128, theta=500000, scaling="llama"),
        ),
    )
    return L, cfg
