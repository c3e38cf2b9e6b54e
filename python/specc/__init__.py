"""specc for Python: check a model spec, summarize it, and build its initial weights into a
safetensors file, numpy arrays or a torch module's own tensors, bit-identical to what
``specc build`` writes.

``spec`` is a path (``str`` or ``os.PathLike``) or the spec's text (a string with a line
break in it). Options: ``seed`` (int), ``dtype`` (``"f32"``, ``"f16"``, ``"bf16"``,
``"f64"``: every floating-point tensor), ``set`` (a dict of ``vars`` to override, as
``--set``), ``threads`` (generator threads; the values do not depend on it).

Errors in a spec raise :class:`SpecError`, whose ``diagnostics`` list each problem with its
code, message, line and column.
"""

from __future__ import annotations

import builtins
import json
import os
from typing import Any, Dict, List, Mapping, Optional, Union

from . import _specc

__all__ = ["SpecError", "check", "summary", "build", "tensors", "init_", "__version__"]
__version__ = _specc.__version__

Spec = Union[str, "os.PathLike[str]"]


class SpecError(Exception):
    """A spec with errors. ``diagnostics`` holds every problem as a dict (``code``,
    ``severity``, ``message``, ``file``, ``line``, ``column``, ``help``, ``path``);
    ``str(error)`` is the rendered report."""

    def __init__(self, report: str, diagnostics: List[Dict[str, Any]]):
        super().__init__(report)
        self.diagnostics = diagnostics


def _open(spec: Spec, seed: Optional[int] = None, dtype: Optional[str] = None,
          set: Optional[Mapping[str, Any]] = None):
    if isinstance(spec, os.PathLike):
        path, text = os.fspath(spec), False
    elif isinstance(spec, str):
        text = "\n" in spec
        path = spec
    else:
        raise TypeError(f"spec is a path or the spec's text, not {type(spec).__name__}")
    pairs = [(str(k), _set_value(v)) for k, v in (set or {}).items()]
    model, diags, report = _specc.open(path, text, seed, dtype, pairs)
    diagnostics = json.loads(diags)
    if model is None:
        raise SpecError(report, diagnostics)
    return model, diagnostics


def _set_value(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def check(spec: Spec, *, set: Optional[Mapping[str, Any]] = None) -> List[Dict[str, Any]]:
    """Checks ``spec``; returns its warnings and notes (a list of diagnostic dicts) and
    raises :class:`SpecError` when it has errors."""
    return _open(spec, set=set)[1]


def summary(spec: Spec, *, seed: Optional[int] = None, dtype: Optional[str] = None,
            set: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """Every tensor of ``spec`` (name, shape, dtype, initializer, fans) and the totals: the
    JSON of ``specc summary --format json``, decoded."""
    model, _ = _open(spec, seed, dtype, set)
    return json.loads(model.summary_json())


def build(spec: Spec, out: Union[str, "os.PathLike[str]"], *, seed: Optional[int] = None,
          dtype: Optional[str] = None, set: Optional[Mapping[str, Any]] = None,
          threads: Optional[int] = None, max_shard_size: Optional[int] = None) -> Dict[str, int]:
    """Writes ``spec``'s weights to the safetensors file ``out`` (``max_shard_size`` in bytes:
    Hugging Face shards and their index beside ``out``), as ``specc build`` does: whole or
    not at all. Returns the counts of files, tensors, parameters and bytes written."""
    model, _ = _open(spec, seed, dtype, set)
    files, n, params, nbytes = model.build(os.fspath(out), threads, max_shard_size)
    return {"files": files, "tensors": n, "params": params, "bytes": nbytes}


def tensors(spec: Spec, *, seed: Optional[int] = None, dtype: Optional[str] = None,
            set: Optional[Mapping[str, Any]] = None, threads: Optional[int] = None):
    """Every tensor of ``spec`` as a numpy array, by name, equal bit for bit to the file
    ``specc build`` writes. Each array is allocated by numpy and filled in place in
    parallel (no copy). numpy has no bfloat16: a bf16 tensor comes as ``uint16`` holding its
    bits; ``torch.from_numpy(a).view(torch.bfloat16)`` is the torch tensor. A tied name
    (``lm_head.weight`` tied to ``wte.weight``) is the same array object as its target."""
    model, _ = _open(spec, seed, dtype, set)
    out = {name: model.array(name, threads) for name, _, _ in model.tensors()}
    for name, target in model.ties():
        out[name] = out[target]
    return out


_TORCH_DTYPES = {"f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64",
                 "int64": "int64", "int32": "int32", "bool": "bool"}


def init_(module, spec: Spec, *, seed: Optional[int] = None, dtype: Optional[str] = None,
          set: Optional[Mapping[str, Any]] = None, threads: Optional[int] = None):
    """Fills ``module``'s parameters and persistent buffers (its ``state_dict``) in place
    with ``spec``'s values, strictly: every name of the state dict must be a tensor of the
    spec with its shape and dtype, and every tensor of the spec a name of the state dict. A
    module built on the meta device must be given memory first
    (``module.to_empty(device="cpu")``). Tied parameters that share one tensor are filled
    once. Returns ``module``."""
    import torch

    model, _ = _open(spec, seed, dtype, set)
    declared = {name: (tuple(shape), dt) for name, shape, dt in model.tensors()}
    ties = dict(model.ties())
    state = module.state_dict(keep_vars=True)
    problems = []
    for name in state:
        if name not in declared and name not in ties:
            problems.append(f"`{name}` is in the module but not in the spec")
    for name in list(declared) + list(ties):
        if name not in state:
            problems.append(f"`{name}` is in the spec but not in the module")
    if problems:
        raise ValueError("the module and the spec differ:\n  " + "\n  ".join(problems))
    filled = builtins.set()
    for name, t in state.items():
        shape, dt = declared[ties.get(name, name)]
        t = t.data if hasattr(t, "data") else t
        want = getattr(torch, _TORCH_DTYPES[dt])
        if tuple(t.shape) != shape or t.dtype != want:
            problems.append(f"`{name}`: the module's is {tuple(t.shape)} {t.dtype}, the spec's {shape} {want}")
            continue
        if t.device.type == "meta":
            problems.append(f"`{name}` is on the meta device: call module.to_empty(device='cpu') first")
            continue
        if t.device.type != "cpu" or not t.is_contiguous():
            problems.append(f"`{name}` is not a contiguous CPU tensor ({t.device}); fill on the CPU, then move")
            continue
        key = (t.data_ptr(), t.numel())
        if key in filled:
            continue  # a tie: the same memory, filled once
        filled.add(key)
        with torch.no_grad():
            model.fill(ties.get(name, name), t.data_ptr(), t.numel() * t.element_size(), threads)
    if problems:
        raise ValueError("the module and the spec differ:\n  " + "\n  ".join(problems))
    return module


def main() -> None:
    """The ``specc`` command (the same as the Rust binary's)."""
    import sys

    sys.exit(_specc.cli(["specc", *sys.argv[1:]]))
