"""Shared helpers for the interop tests: run the specc binary, read its JSON."""

import json
import os
import pathlib
import subprocess

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
    )
    assert res.returncode == 0, res.stderr
    return out
