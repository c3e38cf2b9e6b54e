"""The zoo, second wave: each spec loaded strictly by the real class it describes (torchvision,
transformers, a plain PyTorch module defined here, Keras 3), a finite forward pass, and its
statistics compared with the initialization the reference implementation itself performs.

Small models are built whole. Mixtral-8x7B is shrunk through its size anchors (`x-layers`,
`x-sizes`), the YAML counterpart of `--set`, which this specc does not have yet."""

import json
import math
import os
import re
import subprocess

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.numpy import load_file as np_load  # noqa: E402
from safetensors.torch import load_file  # noqa: E402
from torch import nn  # noqa: E402

from conftest import SPECS, build, specc_bin, stored, summary  # noqa: E402

# Keras' torch backend converts variables with np.array(x), which numpy 2 reports on every call.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


# ---------------------------------------------------------------------------------------------
# Statistics


def std_tol(n):
    """Relative tolerance of a sample std from n values: four standard errors (1/sqrt(2n)), at
    least 1%."""
    return max(0.01, 4 / math.sqrt(2 * n))


def assert_std(t, want, what=""):
    t = torch.as_tensor(t).double()
    got = t.std().item()
    assert abs(got / want - 1) < std_tol(t.numel()), f"{what}: std {got:.6g}, want {want:.6g}"


def kurtosis(t):
    t = t.double().flatten()
    c = t - t.mean()
    return ((c**4).mean() / (c**2).mean() ** 2).item()


def compare_with_reference(ours, ref, min_numel=64):
    """Each tensor of `ours` against the same tensor of a freshly initialized reference: same
    shape and dtype; a constant reference tensor (zeros, ones, 1e-6, int64 counters) must be
    equal bit for bit; a random one must have the same mean and std (within sampling error of
    both) and, when large, the same kurtosis (1.8 uniform, 3 normal: the same distribution
    family). Returns {name: (our std, reference std)} of the random ones."""
    assert set(ours) == set(ref)
    stds = {}
    for k, r in ref.items():
        o = ours[k]
        assert o.shape == r.shape and o.dtype == r.dtype, k
        if r.numel() == 1 or torch.all(r == r.flatten()[0]):
            assert torch.equal(o, r), f"{k}: reference is the constant {r.flatten()[0].item()}"
            continue
        if r.numel() < min_numel:
            continue
        od, rd = o.double(), r.double()
        so, sr = od.std().item(), rd.std().item()
        tol = 4 * math.sqrt(1 / r.numel())  # two independent sample stds
        assert abs(so / sr - 1) < max(tol, 0.01), f"{k}: std {so:.6g}, reference {sr:.6g}"
        assert abs(od.mean().item() - rd.mean().item()) < 6 * sr / math.sqrt(r.numel()) + 1e-12, k
        if r.numel() >= 4096:  # six standard errors of the difference; uniform and normal differ by 1.2
            ko, kr = kurtosis(od), kurtosis(rd)
            assert abs(ko - kr) < max(0.15, 6 * math.sqrt(48 / r.numel())), f"{k}: kurtosis {ko:.3f}, reference {kr:.3f}"
        stds[k] = (so, sr)
    return stds


def with_sizes(spec, tmp_path, **anchors):
    """A copy of a zoo spec with some of its `&name N` size anchors set (`layers` is the
    `x-layers: &layers N` one): how a test shrinks a model without `--set`."""
    text = spec.read_text()
    for name, value in anchors.items():
        text, n = re.subn(rf"&{name} \d+", f"&{name} {value}", text)
        assert n == 1, f"{spec.name} has no anchor &{name}"
    p = tmp_path / spec.name
    p.write_text(text)
    return p


def tied(sd, spec):
    """`sd` with every tie of `spec` (stored once by specc) filled in under its own name, as a
    module's state_dict lists a tied weight."""
    for t in summary(spec)["ties"]:
        sd[t["name"]] = sd[t["target"]]
    return sd


def check_json(path, *extra):
    out = subprocess.run([specc_bin(), "check", "--format", "json", *extra, str(path)], capture_output=True, text=True)
    return out.returncode, json.loads(out.stdout)["diagnostics"]


# ---------------------------------------------------------------------------------------------
# torchvision


def test_vit_b_16_loads_into_torchvision(tmp_path):
    spec = SPECS / "vit-b-16.yaml"
    sd = load_file(str(build(spec, tmp_path / "vit.safetensors")))
    torch.manual_seed(0)
    model = torchvision.models.vit_b_16()
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    stds = compare_with_reference(sd, ref)

    assert torch.all(sd["class_token"] == 0)
    assert torch.all(sd["heads.head.weight"] == 0) and torch.all(sd["heads.head.bias"] == 0)
    assert_std(sd["conv_proj.weight"], (1 / (3 * 16 * 16)) ** 0.5, "conv_proj")
    assert torch.all(sd["conv_proj.bias"] == 0)
    assert_std(sd["encoder.pos_embedding"], 0.02, "pos_embedding")
    p = "encoder.layers.encoder_layer_11."
    w = sd[p + "self_attention.in_proj_weight"]
    assert w.abs().max().item() <= (6 / (768 + 2304)) ** 0.5  # xavier_uniform over the fused [3D, D]
    assert sd[p + "self_attention.out_proj.weight"].abs().max().item() <= 1 / 768**0.5
    assert sd[p + "mlp.0.weight"].abs().max().item() <= (6 / (768 + 3072)) ** 0.5
    assert_std(sd[p + "mlp.0.bias"], 1e-6, "mlp.0.bias")
    assert torch.all(sd[p + "ln_2.weight"] == 1) and model.encoder.ln.eps == 1e-6
    print("vit stds (ours, torchvision):", {k: stds[k] for k in ["conv_proj.weight", "encoder.pos_embedding", p + "mlp.3.weight"]})

    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 224, 224))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    assert torch.all(y == 0)  # the zero head: every logit starts at exactly 0


def test_vit_head_is_flagged_without_its_allowance(tmp_path):
    text = (SPECS / "vit-b-16.yaml").read_text()
    p = tmp_path / "vit.yaml"
    p.write_text(re.sub(r",\s*allow: \[zero-kernel\]", "", text))
    assert p.read_text() != text
    code, diags = check_json(p, "--deny-warnings")
    assert code == 1 and diags and all(d["code"] == "zero-kernel" for d in diags)


def test_convnext_tiny_loads_into_torchvision(tmp_path):
    sd = load_file(str(build(SPECS / "convnext-tiny.yaml", tmp_path / "cn.safetensors")))
    torch.manual_seed(0)
    model = torchvision.models.convnext_tiny()
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    stds = compare_with_reference(sd, ref)

    for k in ["features.0.0.weight", "features.1.0.block.0.weight", "features.5.8.block.3.weight",
              "features.6.1.weight", "classifier.2.weight"]:
        assert_std(sd[k], 0.02, k)
    assert torch.all(sd["features.7.2.layer_scale"] == torch.tensor(1e-6, dtype=torch.float32))
    assert sd["features.7.2.layer_scale"].shape == (768, 1, 1)
    assert torch.all(sd["features.3.1.block.5.bias"] == 0) and torch.all(sd["features.2.0.weight"] == 1)
    print("convnext stds (ours, torchvision):", {k: stds[k] for k in ["features.1.0.block.0.weight", "classifier.2.weight"]})

    model.eval()
    with torch.no_grad():
        y = model(torch.randn(1, 3, 224, 224))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()


# ---------------------------------------------------------------------------------------------
# Plain PyTorch modules


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.double_conv = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.double_conv(x)


class Down(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool2d(2), DoubleConv(cin, cout))

    def forward(self, x):
        return self.maxpool_conv(x)


class Up(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cin // 2, kernel_size=2, stride=2)
        self.conv = DoubleConv(cin, cout)

    def forward(self, x, skip):
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class OutConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=1)

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    """The U-Net specs/unet.yaml describes (milesial/Pytorch-UNet's names, bilinear=False)."""

    def __init__(self, n_channels=3, n_classes=2):
        super().__init__()
        self.inc = DoubleConv(n_channels, 16)
        self.down1 = Down(16, 32)
        self.down2 = Down(32, 64)
        self.down3 = Down(64, 128)
        self.up1 = Up(128, 64)
        self.up2 = Up(64, 32)
        self.up3 = Up(32, 16)
        self.outc = OutConv(16, n_classes)

    def forward(self, x):
        x1 = self.inc(x)
        x2 = self.down1(x1)
        x3 = self.down2(x2)
        x4 = self.down3(x3)
        x = self.up1(x4, x3)
        x = self.up2(x, x2)
        x = self.up3(x, x1)
        return self.outc(x)


def test_unet_loads_into_its_module(tmp_path):
    sd = load_file(str(build(SPECS / "unet.yaml", tmp_path / "unet.safetensors")))
    torch.manual_seed(0)
    model = UNet()
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)
    compare_with_reference(sd, ref)

    # PyTorch's default U(±1/sqrt(fan_in)), fan_in as torch reads the stored weight: for a
    # transposed conv [in, out, k, k] that is out·k² (up1: 64·4), not in·k².
    for k, fan_in in [("inc.double_conv.0.weight", 27), ("down3.maxpool_conv.1.double_conv.3.weight", 1152),
                      ("up1.up.weight", 64 * 4), ("up1.up.bias", 64 * 4), ("up1.conv.double_conv.0.weight", 128 * 9),
                      ("up3.up.weight", 16 * 4), ("outc.conv.weight", 16)]:
        bound = 1 / fan_in**0.5
        assert sd[k].abs().max().item() <= bound, k
        assert sd[k].abs().max().item() > 0.9 * bound or sd[k].numel() < 100, k
        assert_std(sd[k], bound / 3**0.5, k)
    assert sd["up2.conv.double_conv.0.weight"].shape == (32, 64, 3, 3)  # after the concat: 32 + 32
    assert sd["up1.conv.double_conv.4.num_batches_tracked"].dtype == torch.int64

    model.eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, 64, 64))
    assert y.shape == (2, 2, 64, 64) and torch.isfinite(y).all()


class Generator(nn.Module):
    """The DCGAN tutorial's Generator (nz 100, ngf 64, nc 3)."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, x):
        return self.main(x)


def weights_init(m):
    """The tutorial's custom init, applied with netG.apply(weights_init)."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)


def test_dcgan_generator_loads_into_its_module(tmp_path):
    sd = load_file(str(build(SPECS / "dcgan-generator.yaml", tmp_path / "g.safetensors")))
    torch.manual_seed(0)
    net = Generator()
    net.apply(weights_init)
    ref = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(sd, strict=True)
    compare_with_reference(sd, ref, min_numel=512)

    for i in (0, 3, 6, 9, 12):
        w = sd[f"main.{i}.weight"]
        assert_std(w, 0.02, f"main.{i}")
        assert abs(w.double().mean().item()) < 4 * 0.02 / w.numel() ** 0.5
    assert sd["main.0.weight"].shape == (100, 512, 4, 4) and sd["main.12.weight"].shape == (64, 3, 4, 4)
    gammas = torch.cat([sd[f"main.{i}.weight"] for i in (1, 4, 7, 10)]).double()  # 960 values
    assert abs(gammas.mean().item() - 1) < 4 * 0.02 / gammas.numel() ** 0.5
    assert_std(gammas - 1, 0.02, "batch norm weights")
    for i in (1, 4, 7, 10):
        assert torch.all(sd[f"main.{i}.bias"] == 0) and torch.all(sd[f"main.{i}.running_var"] == 1)

    net.eval()
    with torch.no_grad():
        img = net(torch.randn(4, 100, 1, 1))
    assert img.shape == (4, 3, 64, 64) and torch.isfinite(img).all() and img.abs().max() <= 1


# ---------------------------------------------------------------------------------------------
# transformers


MIXTRAL_SMALL = dict(layers=2, vocab=1000, hidden=128, kv=64, experts=4, intermediate=96, gate_up=192)


def mixtral_small_config():
    s = MIXTRAL_SMALL
    return transformers.MixtralConfig(
        vocab_size=s["vocab"], hidden_size=s["hidden"], intermediate_size=s["intermediate"],
        num_hidden_layers=s["layers"], num_attention_heads=8, num_key_value_heads=4,  # head_dim 16
        num_local_experts=s["experts"], num_experts_per_tok=2, tie_word_embeddings=False,
    )


def test_mixtral_spec_has_mixtral_8x7b_size():
    t = {x["name"]: x for x in summary(SPECS / "mixtral.yaml")["tensors"]}
    assert sum(x["params"] for x in t.values()) == 46_702_792_704
    assert tuple(t["model.layers.31.mlp.experts.gate_up_proj"]["shape"]) == (8, 2 * 14336, 4096)
    assert tuple(t["model.layers.31.mlp.experts.down_proj"]["shape"]) == (8, 4096, 14336)
    assert tuple(t["model.layers.31.mlp.gate.weight"]["shape"]) == (8, 4096)


def test_mixtral_loads_into_mixtral_for_causal_lm(tmp_path):
    spec = with_sizes(SPECS / "mixtral.yaml", tmp_path, **MIXTRAL_SMALL)
    out = build(spec, tmp_path / "m.safetensors")
    sd = load_file(str(out))
    cfg = mixtral_small_config()
    torch.manual_seed(0)
    model = transformers.MixtralForCausalLM(cfg)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(sd, strict=True)  # the fused in-memory names
    compare_with_reference(sd, ref)

    E, D, I = MIXTRAL_SMALL["experts"], MIXTRAL_SMALL["hidden"], MIXTRAL_SMALL["intermediate"]
    p = "model.layers.1.mlp."
    assert sd[p + "experts.gate_up_proj"].shape == (E, 2 * I, D)
    assert sd[p + "experts.down_proj"].shape == (E, D, I)
    assert sd[p + "gate.weight"].shape == (E, D)
    for k in ["model.embed_tokens.weight", "model.layers.0.self_attn.k_proj.weight", p + "gate.weight",
              p + "experts.gate_up_proj", p + "experts.down_proj", "lm_head.weight"]:
        assert_std(sd[k], 0.02, k)
    # gate rows and up rows of one expert are drawn alike (no split in the init)
    assert_std(sd[p + "experts.gate_up_proj"][:, :I], 0.02, "gate rows")
    assert_std(sd[p + "experts.gate_up_proj"][:, I:], 0.02, "up rows")
    assert torch.all(sd["model.norm.weight"] == 1)

    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    assert logits.shape == (1, 4, MIXTRAL_SMALL["vocab"]) and torch.isfinite(logits).all()

    # transformers' own loader reads the fused names as they are ...
    cfg.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "model.safetensors").write_bytes(out.read_bytes())
    loaded = transformers.MixtralForCausalLM.from_pretrained(tmp_path / "hf")
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k]), k
    # ... and save_pretrained of the model built from its config writes the legacy per-expert
    # names (what a checkpoint on the Hub has). (A model that from_pretrained read from the fused
    # names writes the fused names back: transformers reverses only the renames it applied.)
    model.save_pretrained(tmp_path / "saved")
    disk = load_file(str(tmp_path / "saved" / "model.safetensors"))
    assert "model.layers.1.mlp.experts.gate_up_proj" not in disk
    q = "model.layers.1.block_sparse_moe.experts.3."
    assert torch.equal(disk[q + "w1.weight"], sd[p + "experts.gate_up_proj"][3, :I])
    assert torch.equal(disk[q + "w3.weight"], sd[p + "experts.gate_up_proj"][3, I:])
    assert torch.equal(disk[q + "w2.weight"], sd[p + "experts.down_proj"][3])


def whisper_tiny_config():
    """openai/whisper-tiny's architecture (its config.json's sizes and pad_token_id)."""
    return transformers.WhisperConfig(
        vocab_size=51865, num_mel_bins=80, d_model=384, encoder_layers=4, decoder_layers=4,
        encoder_attention_heads=6, decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536,
        max_source_positions=1500, max_target_positions=448, pad_token_id=50257, bos_token_id=50257,
        eos_token_id=50257, decoder_start_token_id=50258, tie_word_embeddings=True,
    )


def test_whisper_tiny_loads_into_whisper_for_conditional_generation(tmp_path):
    from transformers.models.whisper.modeling_whisper import sinusoids

    spec = SPECS / "whisper-tiny.yaml"
    out = build(spec, tmp_path / "w.safetensors")
    sd = load_file(str(out))
    assert "proj_out.weight" not in sd  # tied: stored once
    torch.manual_seed(0)
    model = transformers.WhisperForConditionalGeneration(whisper_tiny_config())
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(tied(sd, spec), strict=True)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()

    table = sd["model.encoder.embed_positions.weight"]
    want = sinusoids(1500, 384)
    diff = (table - want).abs().max().item()
    print(f"whisper sinusoid table: max |specc - sinusoids(1500, 384)| = {diff:.3g}")
    assert diff < 1e-4
    # the reference fills the table with sinusoids() itself, checked above to within 1e-4 (not
    # bit for bit: the float32 arithmetic differs in the last bits); the rest is compared here
    table_key = "model.encoder.embed_positions.weight"
    assert (ref[table_key] - want).abs().max().item() == 0
    stds = compare_with_reference({k: v for k, v in sd.items() if k != table_key},
                                  {k: v for k, v in ref.items() if k != table_key})
    assert not model.model.encoder.embed_positions.weight.requires_grad  # frozen, still loaded
    with safe_open(str(out), "pt") as f:
        trainable = json.loads(f.metadata()["trainable"])
    assert trainable["model.encoder.embed_positions.weight"] is False

    emb = sd["model.decoder.embed_tokens.weight"]
    assert torch.all(emb[50257] == 0) and torch.all(ref["model.decoder.embed_tokens.weight"][50257] == 0)
    for k in ["model.encoder.conv1.weight", "model.encoder.conv2.weight", "model.encoder.layers.3.fc1.weight",
              "model.decoder.layers.0.encoder_attn.k_proj.weight", "model.decoder.embed_positions.weight"]:
        assert_std(sd[k], 0.02, k)
    assert_std(emb, 0.02 * (1 - 1 / 51865) ** 0.5, "embed_tokens")
    assert torch.all(sd["model.encoder.layers.0.self_attn.q_proj.bias"] == 0)
    assert "model.encoder.layers.0.self_attn.k_proj.bias" not in sd
    print("whisper stds (ours, transformers):", {k: stds[k] for k in ["model.encoder.conv1.weight", "model.decoder.embed_positions.weight"]})

    model.eval()
    with torch.no_grad():
        y = model(input_features=torch.randn(1, 80, 3000), decoder_input_ids=torch.tensor([[50258, 50259, 50359]]))
    assert y.logits.shape == (1, 3, 51865) and torch.isfinite(y.logits).all()
    assert y.encoder_last_hidden_state.shape == (1, 1500, 384)


# ---------------------------------------------------------------------------------------------
# Keras 3


def keras_arrays(model):
    import keras

    return {v.path: np.asarray(keras.ops.convert_to_numpy(v)) for v in model.weights}


def load_keras(model, arrays):
    """Strict: every variable gets an array of its shape, and every array a variable."""
    assert {v.path for v in model.weights} == set(arrays)
    for v in model.weights:
        assert tuple(v.shape) == arrays[v.path].shape, v.path
        v.assign(arrays[v.path])


def compare_keras(ours, ref, min_numel=64):
    return compare_with_reference({k: torch.from_numpy(v) for k, v in ours.items()},
                                  {k: torch.from_numpy(v) for k, v in ref.items()}, min_numel)


def test_mobilenetv2_keras_matches_keras_applications(tmp_path):
    import keras

    keras.backend.clear_session()
    model = keras.applications.MobileNetV2(weights=None, alpha=0.35, input_shape=(96, 96, 3))
    spec = SPECS / "mobilenetv2-keras.yaml"
    assert stored(spec) == [(v.path, tuple(v.shape)) for v in model.weights]  # names, shapes, order
    ref = keras_arrays(model)
    arrays = np_load(str(build(spec, tmp_path / "mb.safetensors")))
    load_keras(model, arrays)
    stds = compare_keras(arrays, ref)

    # glorot_uniform with Keras' fans: conv [k, k, in, out] (k²·in, k²·out); depthwise
    # [3, 3, C, 1] (9·C, 9)
    for path, fi, fo in [("Conv1/kernel", 27, 144), ("block_5_expand/kernel", 16, 96),
                         ("block_16_depthwise/kernel", 9 * 336, 9), ("Conv_1/kernel", 112, 1280),
                         ("predictions/kernel", 1280, 1000)]:
        a = arrays[path]
        limit = (6 / (fi + fo)) ** 0.5
        assert np.abs(a).max() <= limit, path
        assert_std(a, limit / 3**0.5, path)
    assert np.all(arrays["block_12_project_BN/gamma"] == 1) and np.all(arrays["Conv_1_bn/moving_variance"] == 1)
    assert np.all(arrays["predictions/bias"] == 0)
    print("mobilenetv2 stds (ours, keras):", {k: stds[k] for k in ["block_16_depthwise/kernel", "predictions/kernel"]})

    x = np.random.default_rng(0).uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)
    y = model.predict(x, verbose=0)
    assert y.shape == (2, 1000) and np.isfinite(y).all() and np.allclose(y.sum(axis=1), 1, atol=1e-4)


def bilstm_text_model():
    """keras.io's bidirectional LSTM IMDB classifier, automatic names, fresh session."""
    import keras
    from keras import layers

    keras.backend.clear_session()
    inputs = keras.Input(shape=(200,), dtype="int32")
    x = layers.Embedding(20000, 128)(inputs)
    x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
    x = layers.Bidirectional(layers.LSTM(64))(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def test_bilstm_text_keras_matches_the_keras_example(tmp_path):
    model = bilstm_text_model()
    spec = SPECS / "bilstm-text-keras.yaml"
    assert stored(spec) == [(v.path, tuple(v.shape)) for v in model.weights]
    ref = keras_arrays(model)
    arrays = np_load(str(build(spec, tmp_path / "bl.safetensors")))
    load_keras(model, arrays)
    compare_keras(arrays, ref)

    emb = arrays["embedding/embeddings"]
    assert np.abs(emb).max() <= 0.05 and abs(emb.std() / (0.1 / 12**0.5) - 1) < 0.01
    for cell in ["bidirectional/forward_lstm", "bidirectional/backward_lstm",
                 "bidirectional_1/forward_lstm_1", "bidirectional_1/backward_lstm_1"]:
        k = arrays[f"{cell}/lstm_cell/kernel"]
        assert np.abs(k).max() <= (6 / (128 + 256)) ** 0.5  # glorot_uniform [in, 4U]
        rk = arrays[f"{cell}/lstm_cell/recurrent_kernel"].astype(np.float64)  # orthogonal [U, 4U]
        assert np.allclose(rk @ rk.T, np.eye(64), atol=1e-5)
        b = arrays[f"{cell}/lstm_cell/bias"]
        assert np.array_equal(b, np.r_[np.zeros(64), np.ones(64), np.zeros(128)].astype(np.float32))
        assert np.array_equal(b, ref[f"{cell}/lstm_cell/bias"])
    assert np.abs(arrays["dense/kernel"]).max() <= (6 / 129) ** 0.5

    ids = np.random.default_rng(0).integers(0, 20000, (2, 200)).astype(np.int32)
    y = model.predict(ids, verbose=0)
    assert y.shape == (2, 1) and np.isfinite(y).all() and np.all((y > 0) & (y < 1))
