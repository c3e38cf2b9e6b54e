"""The Python module (issue 14), installed by `pip install .`: every function against the
CLI's file byte for byte, dtypes (bf16 as its bits), ties, sharded builds, `init_` on
modules built on the meta device, and errors with their diagnostics."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from safetensors.torch import load_file as torch_load

import specc

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPECS = ROOT / "specs"


def cli_build(spec, out, *extra):
    """The CLI the package installs, as a user runs it."""
    res = subprocess.run(["specc", "build", str(spec), "-o", str(out), *extra], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


@pytest.mark.parametrize("spec", ["mlp.yaml", "gpt2-tiny.yaml", "mnist-cnn.toml", "bilstm-text-keras.yaml", "unet.yaml"])
def test_tensors_equal_the_cli_file_bit_for_bit(spec, tmp_path):
    f = load_file(str(cli_build(SPECS / spec, tmp_path / "m.safetensors")))
    t = specc.tensors(SPECS / spec)
    stored = {k: v for k, v in t.items() if k in f}
    assert set(stored) == set(f)
    for k, v in f.items():
        assert t[k].dtype == v.dtype and t[k].shape == v.shape and t[k].tobytes() == v.tobytes(), k
        assert t[k].flags.c_contiguous and t[k].flags.writeable, k


def test_dtypes_and_bf16_bits(tmp_path):
    text = "name: d\ninput: [8]\nlayers:\n  - {name: a, type: dense, units: 4, dtype: bf16}\n  - {name: b, type: dense, units: 4, dtype: f16}\n  - {name: c, type: dense, units: 4, dtype: f64}\n  - {name: i, type: parameter, shape: [3], dtype: int64, initializer: ones}\n  - {name: m, type: parameter, shape: [2], dtype: bool, initializer: ones}\n"
    (tmp_path / "d.yaml").write_text(text)
    t = specc.tensors(text)
    want = {"a.weight": np.uint16, "b.weight": np.float16, "c.weight": np.float64, "i": np.int64, "m": np.bool_}
    for k, dt in want.items():
        assert t[k].dtype == dt, k
    ref = torch_load(str(cli_build(tmp_path / "d.yaml", tmp_path / "d.safetensors")))
    assert torch.equal(torch.from_numpy(t["a.weight"]).view(torch.bfloat16), ref["a.weight"])
    assert ref["a.weight"].dtype == torch.bfloat16


def test_options_seed_dtype_set_and_threads():
    a = specc.tensors(SPECS / "mlp.yaml", seed=7)
    b = specc.tensors(SPECS / "mlp.yaml", seed=7, threads=1)
    c = specc.tensors(SPECS / "mlp.yaml", seed=8)
    assert all(a[k].tobytes() == b[k].tobytes() for k in a)
    assert a["fc1.weight"].tobytes() != c["fc1.weight"].tobytes()
    assert specc.tensors(SPECS / "mlp.yaml", dtype="bf16")["fc1.weight"].dtype == np.uint16
    fam = "name: f\nvars: {d: 16, n: 3}\ninput: [\"${d}\"]\nlayers:\n  - {name: h, type: sequential, repeat: \"${n}\", layers: [{type: dense, units: \"${d}\"}]}\n"
    small = specc.summary(fam, set={"n": 1, "d": 4})
    assert [t["shape"] for t in small["tensors"]] == [[4, 4], [4]]


def test_ties_are_one_array():
    t = specc.tensors(SPECS / "gpt2-tiny.yaml")
    assert t["lm_head.weight"] is t["transformer.wte.weight"]


def test_sharded_build_and_summary(tmp_path):
    out = tmp_path / "model.safetensors"
    r = specc.build(SPECS / "gpt2-tiny.yaml", out, max_shard_size=200_000)
    assert r["files"] > 1
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    whole = load_file(str(cli_build(SPECS / "gpt2-tiny.yaml", tmp_path / "whole.safetensors")))
    for name, file in index["weight_map"].items():
        assert load_file(str(tmp_path / file))[name].tobytes() == whole[name].tobytes()
    s = specc.summary(SPECS / "gpt2-tiny.yaml")
    assert s["total_params"] == sum(int(np.prod(v.shape)) for v in whole.values())


def test_errors_raise_with_their_diagnostics(tmp_path):
    bad = "name: e\ninput: [8]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: glorot_unifrom}\n"
    with pytest.raises(specc.SpecError) as e:
        specc.tensors(bad)
    d = e.value.diagnostics[0]
    assert (d["code"], d["line"], d["column"]) == ("unknown-initializer", 4, 49)
    assert "did you mean `glorot_uniform`?" in str(e.value)
    (tmp_path / "e.yaml").write_text(bad)
    with pytest.raises(specc.SpecError) as e:
        specc.check(tmp_path / "e.yaml")
    assert e.value.diagnostics[0]["file"].endswith("e.yaml")
    with pytest.raises(OSError):
        specc.check(tmp_path / "missing.yaml")
    with pytest.raises(TypeError):
        specc.check(42)
    warn = specc.check("name: w\ninput: [8]\nlayers:\n  - {type: dense, units: 4, kernel_initializer: zeros}\n")
    assert [w["code"] for w in warn] == ["zero-kernel"]


def test_init_fills_a_meta_device_transformers_model():
    import transformers

    cfg = transformers.GPT2Config(n_embd=64, n_head=4, n_layer=2, vocab_size=1000, n_positions=128, bos_token_id=0, eos_token_id=0)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(cfg)
    with pytest.raises(ValueError, match="meta device"):
        specc.init_(model, SPECS / "gpt2-tiny.yaml")
    model.to_empty(device="cpu")
    model.tie_weights()  # to_empty gives tied parameters memory of their own
    specc.init_(model, SPECS / "gpt2-tiny.yaml")
    ref = specc.tensors(SPECS / "gpt2-tiny.yaml")
    for k, v in model.state_dict().items():
        assert v.numpy().tobytes() == ref[k].tobytes(), k
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()
    assert torch.isfinite(model(torch.tensor([[1, 2, 3]])).logits).all()


def test_init_is_strict_about_names_and_shapes():
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU())
    with pytest.raises(ValueError, match="in the spec but not in the module"):
        specc.init_(net, SPECS / "mlp.yaml")
    wrong = torch.nn.ModuleDict({"fc1": torch.nn.Linear(784, 255), "fc2": torch.nn.Linear(256, 128), "out": torch.nn.Linear(128, 10)})
    with pytest.raises(ValueError, match="fc1.weight"):
        specc.init_(wrong, SPECS / "mlp.yaml")
    ok = torch.nn.ModuleDict({"fc1": torch.nn.Linear(784, 256), "fc2": torch.nn.Linear(256, 128), "out": torch.nn.Linear(128, 10)})
    specc.init_(ok, SPECS / "mlp.yaml", seed=3)
    ref = specc.tensors(SPECS / "mlp.yaml", seed=3)
    assert all(v.numpy().tobytes() == ref[k].tobytes() for k, v in ok.state_dict().items())


def test_init_fills_buffers_and_bf16_modules():
    cnn = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8)).to(torch.bfloat16)
    spec = "name: c\ndtype: bf16\ninput: [3, 8, 8]\nlayers:\n  - {type: conv2d, filters: 8, kernel_size: 3}\n  - {type: batch_norm}\n"
    cnn.get_buffer("1.running_var").fill_(7)
    specc.init_(cnn, spec)
    ref = specc.tensors(spec)
    for k, v in cnn.state_dict().items():
        want = ref[k]
        got = v.view(torch.uint16).numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert got.tobytes() == want.tobytes(), k
    assert torch.all(cnn.get_buffer("1.running_var") == 1)


def test_the_command_is_installed():
    res = subprocess.run(["specc", "--version"], capture_output=True, text=True)
    assert res.returncode == 0 and res.stdout.startswith("specc ")
    res = subprocess.run([sys.executable, "-m", "specc", "check", str(SPECS / "mlp.yaml")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    res = subprocess.run(["specc", "nonsense"], capture_output=True, text=True)
    assert res.returncode == 2
