"""The zoo: every spec in specs/ loaded strictly by the real class it describes, with its
statistics compared with the model's published init. Big models are built with fewer
layers by changing their `x-layers` anchor (the full builds belong to bench/run.sh)."""

import json
import subprocess

import pytest
import torch
import torchvision
import transformers
from safetensors.torch import load_file

from conftest import SPECS, build, specc_bin, with_depth


def check_json(path, *extra):
    out = subprocess.run([specc_bin(), "check", "--format", "json", *extra, str(path)], capture_output=True, text=True)
    return out.returncode, json.loads(out.stdout)["diagnostics"]


ZOO = sorted(str(p.relative_to(SPECS)) for p in SPECS.rglob("*") if p.suffix in (".yaml", ".yml", ".toml"))


@pytest.mark.parametrize("spec", ZOO)
def test_zoo_specs_are_quiet(spec, tmp_path):
    extra = []
    if spec == "grow/llama-grow.yaml":
        # It reads the checkpoint grow/llama-base.yaml builds.
        build(SPECS / "grow/llama-base.yaml", tmp_path / "model.safetensors")
        extra = ["--set", f"base={tmp_path}"]
    code, diags = check_json(SPECS / spec, "--deny-warnings", *extra)
    assert code == 0 and diags == [], diags


def test_resnet18_loads_into_torchvision(tmp_path):
    sd = load_file(str(build(SPECS / "resnet18.yaml", tmp_path / "r.safetensors")))
    model = torchvision.models.resnet18()
    model.load_state_dict(sd, strict=True)
    # kaiming_normal(mode=fan_out, nonlinearity=relu): std sqrt(2 / (out * k * k))
    for name, out, k in [("conv1.weight", 64, 7), ("layer3.0.conv2.weight", 256, 3), ("layer4.0.downsample.0.weight", 512, 1)]:
        want = (2 / (out * k * k)) ** 0.5
        assert abs(sd[name].std().item() / want - 1) < 0.02, name
    assert torch.all(sd["layer2.1.bn2.weight"] == 1) and torch.all(sd["layer2.1.bn2.bias"] == 0)
    assert torch.all(sd["bn1.running_var"] == 1) and sd["bn1.num_batches_tracked"].dtype == torch.int64
    assert sd["fc.weight"].abs().max().item() <= 1 / 512**0.5  # nn.Linear default
    model.eval()
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_gpt2_small_loads_into_transformers(tmp_path):
    from safetensors.torch import load_model

    out = build(with_depth(SPECS / "gpt2-small.yaml", tmp_path, 2, required=True), tmp_path / "g.safetensors")
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2))
    load_model(model, str(out), strict=True)
    sd = load_file(str(out))
    assert abs(sd["transformer.wte.weight"].std().item() - 0.02) < 2e-4
    # c_proj: 0.02 / sqrt(2 * n_layer) with the full model's n_layer = 12
    assert abs(sd["transformer.h.1.attn.c_proj.weight"].std().item() - 0.02 / 24**0.5) < 1e-4
    assert abs(sd["transformer.h.0.mlp.c_fc.weight"].std().item() - 0.02) < 2e-4
    assert torch.all(sd["transformer.h.0.ln_1.weight"] == 1)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 50257)


def test_bert_base_loads_into_bert_model(tmp_path):
    sd = load_file(str(build(with_depth(SPECS / "bert-base.yaml", tmp_path, 2, required=True), tmp_path / "b.safetensors")))
    model = transformers.BertModel(transformers.BertConfig(num_hidden_layers=2))
    model.load_state_dict(sd, strict=True)
    for name in ["embeddings.word_embeddings.weight", "encoder.layer.1.attention.self.query.weight", "pooler.dense.weight"]:
        assert abs(sd[name].std().item() - 0.02) < 5e-4, name
    assert torch.all(sd["encoder.layer.0.output.LayerNorm.weight"] == 1)
    assert torch.all(sd["encoder.layer.0.attention.self.query.bias"] == 0)
    out = model(torch.tensor([[101, 2023, 102]]))
    assert out.last_hidden_state.shape == (1, 3, 768)


def test_llama_1b_loads_into_llama_for_causal_lm(tmp_path):
    sd = load_file(str(build(with_depth(SPECS / "llama-1b.yaml", tmp_path, 2, required=True), tmp_path / "l.safetensors")))
    cfg = transformers.LlamaConfig(
        vocab_size=32000, hidden_size=2048, intermediate_size=5632, num_hidden_layers=2,
        num_attention_heads=32, num_key_value_heads=4, tie_word_embeddings=False,
    )
    model = transformers.LlamaForCausalLM(cfg)
    model.load_state_dict(sd, strict=True)
    for name in ["model.embed_tokens.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight"]:
        assert abs(sd[name].std().item() - 0.02) < 2e-4, name
    assert torch.all(sd["model.norm.weight"] == 1)
    assert model(torch.tensor([[1, 2, 3]])).logits.shape == (1, 3, 32000)


def test_lstm_lm_loads_into_its_module(tmp_path):
    from torch import nn

    class RNNModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.drop = nn.Dropout(0.5)
            self.encoder = nn.Embedding(33278, 650)
            self.rnn = nn.LSTM(650, 650, 2)
            self.decoder = nn.Linear(650, 33278)

    sd = load_file(str(build(SPECS / "lstm-lm.yaml", tmp_path / "lm.safetensors")))
    m = RNNModel()
    m.load_state_dict(sd, strict=True)
    assert sd["encoder.weight"].abs().max().item() <= 0.1 + 1e-7  # 0.1 rounded to f32
    assert abs(sd["encoder.weight"].std().item() - 0.2 / 12**0.5) < 1e-3
    assert torch.all(sd["decoder.bias"] == 0)
    assert sd["rnn.weight_hh_l1"].abs().max().item() <= 1 / 650**0.5
    y, _ = m.rnn(m.encoder(torch.tensor([[1], [2]])))
    assert m.decoder(y).shape == (2, 1, 33278)


def test_zero_convs_ending_residual_branches_are_known_deliberate():
    # ControlNet's zero convs end `residual: true` branches: no allowance needed.
    text = (SPECS / "controlnet-zero-conv.yaml").read_text()
    assert "allow: [zero-kernel]" not in text and "kernel_initializer: zeros" in text
    assert check_json(SPECS / "controlnet-zero-conv.yaml", "--deny-warnings") == (0, [])


@pytest.mark.parametrize("spec", ["lora-adapter.yaml"])
def test_deliberate_zero_inits_fire_without_their_allowance(spec, tmp_path):
    text = (SPECS / spec).read_text()
    assert "allow: [zero-kernel]" in text
    p = tmp_path / spec
    p.write_text(text.replace(", allow: [zero-kernel]", ""))
    code, diags = check_json(p)
    assert code == 0
    assert diags and all(d["code"] == "zero-kernel" and d["severity"] == "warning" for d in diags)
    code, _ = check_json(p, "--deny-warnings")
    assert code == 1


def test_lora_adapter_starts_as_a_no_op(tmp_path):
    sd = load_file(str(build(SPECS / "lora-adapter.yaml", tmp_path / "lora.safetensors")))
    p = "base_model.model."
    assert set(sd) == {p + "q_proj.lora_A.weight", p + "q_proj.lora_B.weight", p + "v_proj.lora_A.weight", p + "v_proj.lora_B.weight"}
    assert sd[p + "q_proj.lora_A.weight"].shape == (16, 4096) and sd[p + "q_proj.lora_B.weight"].shape == (4096, 16)
    assert torch.all(sd[p + "v_proj.lora_B.weight"] == 0)
    assert sd[p + "q_proj.lora_A.weight"].abs().max().item() <= 1 / 4096**0.5
    x = torch.randn(3, 4096)
    assert torch.all(x @ sd[p + "q_proj.lora_A.weight"].T @ sd[p + "q_proj.lora_B.weight"].T == 0)
