"""specc's output loaded by real readers: safetensors + numpy for every spec, PyTorch
modules with load_state_dict(strict=True) and a forward pass, Keras 3 layers by path."""

import hashlib
import json
import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file as np_load  # noqa: E402
from safetensors.torch import load_file, load_model  # noqa: E402
from torch import nn  # noqa: E402

from conftest import HERE_SPECS, SPECS, build, gpt2_tiny_config, summary, with_depth  # noqa: E402
from test_names_torch import Tagger, TorchLayers  # noqa: E402

ALL_SPECS = sorted(p for p in SPECS.iterdir() if p.suffix in (".yaml", ".yml", ".toml"))


@pytest.mark.parametrize("spec", ALL_SPECS, ids=lambda p: p.name)
def test_every_spec_loads_with_safetensors_and_numpy(spec, tmp_path):
    spec = with_depth(spec, tmp_path, 1)
    out = build(spec, tmp_path / "m.safetensors")
    s = summary(spec)
    if any(t["dtype"] == "bf16" for t in s["tensors"]):
        # numpy has no bfloat16: read those files through torch, the rest through numpy.
        arrays = {k: v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy() for k, v in load_file(str(out)).items()}
    else:
        arrays = np_load(str(out))
    declared = {t["name"]: t for t in s["tensors"]}
    assert set(arrays) == set(declared)
    np_dtype = {"f32": np.float32, "f64": np.float64, "i64": np.int64, "f16": np.float16}
    for name, t in declared.items():
        assert arrays[name].shape == tuple(t["shape"]), name
        if t["dtype"] in np_dtype:
            assert arrays[name].dtype == np_dtype[t["dtype"]], name
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert meta["spec_sha256"] == hashlib.sha256(spec.read_bytes()).hexdigest()
    assert meta["seed"] == str(s["seed"])
    assert meta["format"] == ("pt" if s["layout"] == "pytorch" else "keras")
    assert "specc_version" in meta
    assert set(json.loads(meta["initializers"])) == set(declared)
    assert (os.stat(out).st_mode & 0o777) == 0o666 & ~current_umask()


def current_umask():
    m = os.umask(0)
    os.umask(m)
    return m


def test_torch_layers_load_strictly_and_run(tmp_path):
    out = build(HERE_SPECS / "torch_layers.yaml", tmp_path / "t.safetensors")
    m = TorchLayers()
    m.load_state_dict(load_file(str(out)), strict=True)
    x = torch.randn(2, 3, 32, 32)
    x = m.pool(torch.relu(m.bn(m.conv(x))))
    x = nn.AvgPool2d(2, stride=1)(m.dw(x)).flatten(1)
    h = m.rms(m.ln(m.fc(x)))
    assert torch.isfinite(h).all()
    seq, _ = m.lstm(m.emb(torch.tensor([[1, 2, 3]])))
    out_gru, _ = m.gru(seq)
    assert out_gru.shape == (1, 3, 5)
    att, _ = m.mha(torch.randn(4, 1, 16), torch.randn(4, 1, 16), torch.randn(4, 1, 16))
    for block in m.blocks:
        att = att + block(att)
    assert m.head(att).shape == (4, 1, 3)


def test_torch_values_follow_the_formulas(tmp_path):
    out = build(SPECS / "mlp.yaml", tmp_path / "mlp.safetensors")
    sd = load_file(str(out))
    w = sd["fc1.weight"].double()
    # he_normal (Keras): truncated at ±2s, s = sqrt(2/784)/0.8796, std sqrt(2/784)
    assert abs(w.std().item() / (2 / 784) ** 0.5 - 1) < 0.02
    assert w.abs().max().item() <= 2 * (2 / 784) ** 0.5 / 0.87962566103423978 + 1e-7
    # kaiming_uniform(nonlinearity=relu): U(±sqrt(6/256))
    w2 = sd["fc2.weight"].double()
    assert w2.abs().max().item() <= (6 / 256) ** 0.5
    assert abs(w2.std().item() / ((6 / 256) ** 0.5 / 3**0.5) - 1) < 0.03
    assert torch.all(sd["fc1.bias"] == 0)


def test_lstm_tagger_defaults_are_torch_defaults(tmp_path):
    out = build(SPECS / "lstm-tagger.yaml", tmp_path / "l.safetensors")

    m = Tagger()
    load_model(m, str(out), strict=True)
    bound = 1 / 128**0.5
    for name, p in m.rnn.named_parameters():
        assert p.abs().max().item() <= bound, name
        assert abs(p.std().item() / (bound / 3**0.5) - 1) < 0.05, name
    assert abs(m.emb.weight.std().item() - 1) < 0.01  # nn.Embedding: N(0, 1)
    assert m.head.weight.abs().max().item() <= 1 / 256**0.5
    y, _ = m.rnn(m.emb(torch.tensor([[3, 4, 5]])))
    assert m.head(y).shape == (1, 3, 17)


def test_gpt2_tiny_loads_into_transformers_strictly(tmp_path):
    out = build(SPECS / "gpt2-tiny.yaml", tmp_path / "g.safetensors")
    cfg = gpt2_tiny_config()
    model = transformers.GPT2LMHeadModel(cfg)
    load_model(model, str(out), strict=True)
    sd = load_file(str(out))
    assert torch.equal(model.lm_head.weight, sd["transformer.wte.weight"])
    assert abs(sd["transformer.h.0.attn.c_attn.weight"].std().item() - 0.02) < 0.001
    assert abs(sd["transformer.h.1.mlp.c_proj.weight"].std().item() - 0.01) < 0.0005
    logits = model(torch.tensor([[1, 2, 3]])).logits
    assert logits.shape == (1, 3, 1000) and torch.isfinite(logits).all()


def test_bf16_build_loads_into_torch(tmp_path):
    out = build(SPECS / "mlp.yaml", tmp_path / "b.safetensors", "--dtype", "bf16")
    sd = load_file(str(out))
    assert sd["fc1.weight"].dtype == torch.bfloat16
    f32 = load_file(str(build(SPECS / "mlp.yaml", tmp_path / "f.safetensors")))
    assert torch.equal(f32["fc1.weight"].to(torch.bfloat16), sd["fc1.weight"])


def test_keras_cnn_loads_by_variable_path(tmp_path):
    import keras

    from test_names_keras import mnist_cnn_model

    out = build(SPECS / "mnist-cnn.toml", tmp_path / "k.safetensors")
    arrays = np_load(str(out))
    model = mnist_cnn_model()
    # Strict: every variable gets an array, and every array a variable.
    assert {v.path for v in model.weights} == set(arrays)
    for v in model.weights:
        v.assign(arrays[v.path])
    for v in model.weights:
        assert np.array_equal(np.asarray(keras.ops.convert_to_numpy(v)), arrays[v.path])
    y = model.predict(np.ones((2, 28, 28, 1), np.float32), verbose=0)
    assert y.shape == (2, 10) and np.allclose(y.sum(axis=1), 1, atol=1e-5)
    # he_uniform on conv1: fan_in 9, limit sqrt(6/9)
    assert np.abs(arrays["conv1/kernel"]).max() <= (6 / 9) ** 0.5


def test_keras_layers_spec_loads_by_path(tmp_path):
    import keras

    from test_names_keras import keras_every_layer_models

    out = build(HERE_SPECS / "keras_layers.yaml", tmp_path / "kl.safetensors")
    arrays = np_load(str(out))
    models = keras_every_layer_models()
    assert {v.path for m in models for v in m.weights} == set(arrays)
    for model in models:
        for v in model.weights:
            v.assign(arrays[v.path])
    lstm_bias = arrays["lstm/lstm_cell/bias"]
    # Keras' unit_forget_bias: zeros with ones on the forget block
    assert np.array_equal(lstm_bias, np.r_[np.zeros(6), np.ones(6), np.zeros(12)].astype(np.float32))
    rk = arrays["lstm/lstm_cell/recurrent_kernel"].astype(np.float64)
    assert np.allclose(rk @ rk.T, np.eye(6), atol=1e-5)
    assert keras.backend.backend() == "torch"


def test_sharded_gpt2_loads_with_transformers_from_pretrained(tmp_path):

    build(SPECS / "gpt2-tiny.yaml", tmp_path / "model.safetensors", "--max-shard-size", "200KB")
    assert (tmp_path / "model.safetensors.index.json").exists()
    cfg = gpt2_tiny_config()
    cfg.save_pretrained(tmp_path)
    # transformers' own sharded loader: reads the index, routes every tensor to its shard.
    model = transformers.GPT2LMHeadModel.from_pretrained(tmp_path)
    single = load_file(str(build(SPECS / "gpt2-tiny.yaml", tmp_path / "one.safetensors")))
    sd = model.state_dict()
    for k, v in single.items():
        assert torch.equal(sd[k], v), k
    assert torch.equal(sd["lm_head.weight"], single["transformer.wte.weight"])
