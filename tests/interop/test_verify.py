"""`specc verify --stats` on checkpoints the frameworks initialized themselves: the spec of
the same recipe accepts them (exit 0), and the tensors a different recipe started are
named (exit 1). Plain `verify` accepts specc's own build of the spec."""

import json
import subprocess

import pytest
import torch
from safetensors.torch import save_file, save_model

from conftest import SPECS, build, job_free_env, specc_bin


def verify(spec, path, *extra):
    """(exit code, verdict) of `specc verify SPEC PATH --format json`."""
    res = subprocess.run(
        [specc_bin(), "verify", str(spec), str(path), "--format", "json", *extra],
        capture_output=True,
        text=True,
        env=job_free_env(),
    )
    assert res.returncode in (0, 1), res.stderr
    return res.returncode, json.loads(res.stdout)


def flagged(verdict):
    return sorted(p["tensor"] for p in verdict["problems"])


def imported(config, tmp_path, *extra):
    """The spec `specc import hf` writes for a transformers config."""
    config.save_pretrained(tmp_path)
    spec = tmp_path / "spec.yaml"
    res = subprocess.run(
        [specc_bin(), "import", "hf", str(tmp_path / "config.json"), "-o", str(spec), *extra],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    return spec


def test_torchvision_resnet18_is_its_recipe_and_default_convs_are_not(tmp_path):
    torch.manual_seed(0)
    import torchvision

    model = torchvision.models.resnet18()
    path = tmp_path / "r.safetensors"
    save_file(model.state_dict(), str(path))
    code, v = verify(SPECS / "resnet18.yaml", path, "--stats")
    assert code == 0, v["problems"]
    tested = {s["test"] for s in v["stats"]}
    assert tested == {"ks", "constant"}, tested
    # The same model with nn.Conv2d's own reset_parameters (kaiming_uniform, a=sqrt(5)).
    convs = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()
            convs.append(name + ".weight")
    save_file(model.state_dict(), str(path))
    code, v = verify(SPECS / "resnet18.yaml", path, "--stats")
    assert code == 1
    assert flagged(v) == sorted(convs)
    assert {p["kind"] for p in v["problems"]} == {"distribution"}


def test_gpt2_is_its_recipe_and_unscaled_projections_are_not(tmp_path):
    import transformers

    torch.manual_seed(1)
    config = transformers.GPT2Config(n_embd=256, n_head=4, n_layer=4, vocab_size=2000, n_positions=256)
    spec = imported(config, tmp_path)
    model = transformers.GPT2LMHeadModel(config)
    path = tmp_path / "g.safetensors"
    save_model(model, str(path))
    code, v = verify(spec, path, "--stats")
    assert code == 0, v["problems"]
    # GPT-2 scales c_proj by 1/sqrt(2 n_layer); without it the std is 0.02 and they fail.
    proj = []
    for name, p in model.named_parameters():
        if name.endswith("c_proj.weight"):
            torch.nn.init.normal_(p.data, std=0.02)
            proj.append(name)
    save_model(model, str(path))
    code, v = verify(spec, path, "--stats")
    assert code == 1
    assert flagged(v) == sorted(proj)
    # specc's own build of the spec matches byte for byte; torch's does not.
    own = build(spec, tmp_path / "own.safetensors")
    assert verify(spec, own)[0] == 0
    code, v = verify(spec, path)
    assert code == 1 and {p["kind"] for p in v["problems"]} == {"bytes"}


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_llama_is_its_recipe_and_linear_defaults_are_not(tmp_path, dtype):
    import transformers

    torch.manual_seed(2)
    config = transformers.LlamaConfig(
        hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=3000, max_position_embeddings=256,
    )
    spec = imported(config, tmp_path)
    model = transformers.LlamaForCausalLM(config)
    if dtype == "bf16":
        model = model.to(torch.bfloat16)
    path = tmp_path / "l.safetensors"
    save_model(model, str(path))
    code, v = verify(spec, path, "--stats", "--dtype", dtype)
    assert code == 0, v["problems"]
    # The projections with nn.Linear's reset_parameters instead of normal(0, 0.02).
    linears = []
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and ".layers." in name:
            m.reset_parameters()
            linears.append(name + ".weight")
    save_model(model, str(path))
    code, v = verify(spec, path, "--stats", "--dtype", dtype)
    assert code == 1
    assert flagged(v) == sorted(linears)


STRUCTURED = """name: structured
seed: 3
layout: pytorch
input: [300]
layers:
  - {name: wide, type: dense, units: 200, use_bias: false, kernel_initializer: {name: orthogonal, gain: 1.4}}
  - {name: tall, type: dense, units: 700, use_bias: false, kernel_initializer: orthogonal}
  - {name: sparse, type: dense, units: 100, use_bias: false, kernel_initializer: {name: sparse, sparsity: 0.3, std: 0.01}}
"""


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_orthogonal_and_sparse_pass_and_other_inits_do_not(tmp_path, dtype):
    spec = tmp_path / "s.yaml"
    spec.write_text(STRUCTURED)
    torch.manual_seed(4)
    sd = {"wide.weight": torch.empty(200, 300), "tall.weight": torch.empty(700, 200), "sparse.weight": torch.empty(100, 700)}
    torch.nn.init.orthogonal_(sd["wide.weight"], gain=1.4)
    torch.nn.init.orthogonal_(sd["tall.weight"])
    torch.nn.init.sparse_(sd["sparse.weight"], sparsity=0.3, std=0.01)
    path = tmp_path / "s.safetensors"
    flag = ["--dtype", "bf16"] if dtype == torch.bfloat16 else []
    save_file({k: v.to(dtype) for k, v in sd.items()}, str(path))
    code, v = verify(spec, path, "--stats", *flag)
    assert code == 0, v["problems"]
    assert [s["test"] for s in v["stats"]] == ["orthogonal", "orthogonal", "sparse"]
    # Glorot where orthogonal belongs, orthogonal without its gain, and a sparsity of 0.2.
    torch.nn.init.xavier_normal_(sd["tall.weight"])
    torch.nn.init.orthogonal_(sd["wide.weight"])
    torch.nn.init.sparse_(sd["sparse.weight"], sparsity=0.2, std=0.01)
    save_file({k: v.to(dtype) for k, v in sd.items()}, str(path))
    code, v = verify(spec, path, "--stats", *flag)
    assert code == 1
    assert flagged(v) == ["sparse.weight", "tall.weight", "wide.weight"]
