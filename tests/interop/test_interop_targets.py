"""Interop targets users already run (issue 12, item 5): specc's output read by the loaders of
torch.distributed.checkpoint (HuggingFaceStorageReader), torchtitan's Llama 3 and PEFT.

Every check that a loaded tensor is the file's compares bytes: the tensor's storage against
the data section of the safetensors file, read here with a parser of its own (header length,
JSON header, offsets), not with the loader under test.
"""

import json
import math
import pathlib
import struct
import subprocess
import warnings

import pytest
import torch
from torch import nn

from conftest import HERE_SPECS, SPECS, build, ks_2samp, specc_bin, summary, torchtitan_llama3

# dcp.load says so even with no_dist=True: one process, no process group, is what these test.
pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}


# --- reading the files back, independently of the loaders -----------------------------------


def raw_tensors(path):
    """{name: (dtype, shape, bytes)} of one safetensors file, parsed from its bytes."""
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    return {k: (v["dtype"], tuple(v["shape"]), body[v["data_offsets"][0] : v["data_offsets"][1]]) for k, v in header.items()}


def metadata(path):
    data = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return json.loads(data[8 : 8 + n]).get("__metadata__", {})


def raw_dir(directory):
    """raw_tensors of every *.safetensors in a directory (a name may appear in one file only)."""
    out = {}
    for f in sorted(pathlib.Path(directory).glob("*.safetensors")):
        part = raw_tensors(f)
        assert not set(part) & set(out), f"{f.name} repeats tensors"
        out.update(part)
    return out


def tensor_bytes(t):
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def assert_same_bytes(tensors, raw):
    """Every tensor of `tensors` ({name: tensor}) is, byte for byte, the file's; same names."""
    assert set(tensors) == set(raw), (sorted(set(tensors) ^ set(raw)))
    for name, t in tensors.items():
        dtype, shape, data = raw[name]
        assert DTYPES[dtype] == t.dtype and tuple(t.shape) == shape, (name, t.dtype, tuple(t.shape), dtype, shape)
        assert tensor_bytes(t) == data, name


def from_raw(raw):
    """{name: tensor} built from raw_tensors' bytes."""
    return {k: torch.frombuffer(bytearray(d), dtype=DTYPES[t]).reshape(s) for k, (t, s, d) in raw.items()}


def import_hf(config_dir, out):
    res = subprocess.run([specc_bin(), "import", "hf", str(config_dir / "config.json"), "-o", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return out


# --- 1. torch.distributed.checkpoint: HuggingFaceStorageReader ------------------------------


def tiny_llama_config(**kw):
    import transformers

    args = dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=128, tie_word_embeddings=False)
    args.update(kw)
    return transformers.LlamaConfig(**args)


def sharded_llama(tmp_path, config, *extra):
    """config → `specc import hf` → `specc build --max-shard-size 100KB`: the shard directory."""
    config.save_pretrained(tmp_path / "hf")
    spec = import_hf(tmp_path / "hf", tmp_path / "llama.yaml")
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    build(spec, ckpt / "model.safetensors", "--max-shard-size", "100KB", *extra)
    shards = sorted(p.name for p in ckpt.glob("*.safetensors"))
    assert len(shards) > 1 and (ckpt / "model.safetensors.index.json").exists(), shards
    weight_map = json.loads((ckpt / "model.safetensors.index.json").read_text())["weight_map"]
    assert sorted(set(weight_map.values())) == shards
    return ckpt


@pytest.mark.parametrize("dtype", ["f32", "bf16"])
def test_sharded_llama_loads_through_dcp_hf_storage_reader(tmp_path, dtype):
    """dcp.load(model.state_dict(), storage_reader=HuggingFaceStorageReader(dir)) in one process
    (no process group: the no_dist path) fills LlamaForCausalLM's every tensor with the shards'
    bytes."""
    import torch.distributed.checkpoint as dcp
    import transformers
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    config = tiny_llama_config()
    ckpt = sharded_llama(tmp_path, config, "--dtype", dtype)
    model = transformers.LlamaForCausalLM(config).to(torch.bfloat16 if dtype == "bf16" else torch.float32)
    state = model.state_dict()
    dcp.load(state, storage_reader=HuggingFaceStorageReader(str(ckpt)), no_dist=True)
    raw = raw_dir(ckpt)
    assert_same_bytes(state, raw)
    assert_same_bytes(model.state_dict(), raw)  # loaded in place, into the model's own tensors
    index = json.loads((ckpt / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(raw)


def test_dcp_default_path_without_process_group(tmp_path):
    """Without no_dist, dcp.load finds no process group and loads in this process, as documented."""
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    import transformers
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    assert not (dist.is_available() and dist.is_initialized())
    config = tiny_llama_config(num_hidden_layers=1)
    ckpt = sharded_llama(tmp_path, config)
    model = transformers.LlamaForCausalLM(config)
    dcp.load(model.state_dict(), storage_reader=HuggingFaceStorageReader(str(ckpt)))
    assert_same_bytes(model.state_dict(), raw_dir(ckpt))


def test_tied_llama_through_dcp_needs_a_partial_load(tmp_path):
    """A tied lm_head is not stored (as save_pretrained stores it), so DCP's strict plan reports it
    missing; allow_partial_load fills the embedding and the tie makes lm_head the same tensor.
    The one missing name is the tie the shard's metadata records."""
    import torch.distributed.checkpoint as dcp
    import transformers
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    config = tiny_llama_config(tie_word_embeddings=True)
    ckpt = sharded_llama(tmp_path, config)
    raw = raw_dir(ckpt)
    ties = {}
    for f in ckpt.glob("*.safetensors"):
        ties.update(json.loads(metadata(f).get("ties", "{}")))
    assert ties == {"lm_head.weight": "model.embed_tokens.weight"}
    model = transformers.LlamaForCausalLM(config)
    state = model.state_dict()
    assert set(state) - set(raw) == set(ties)
    from torch.distributed.checkpoint.api import CheckpointException  # a BaseException

    with pytest.raises(CheckpointException) as err:
        dcp.load(dict(state), storage_reader=HuggingFaceStorageReader(str(ckpt)), no_dist=True)
    assert "Missing key in checkpoint state_dict: lm_head.weight" in "".join(map(str, err.value.failures.values()))
    dcp.load(state, storage_reader=HuggingFaceStorageReader(str(ckpt)),
             planner=DefaultLoadPlanner(allow_partial_load=True), no_dist=True)
    assert_same_bytes({k: v for k, v in model.state_dict().items() if k not in ties}, raw)
    assert model.lm_head.weight is model.model.embed_tokens.weight


# --- 2. torchtitan's Llama 3 -----------------------------------------------------------------
#
# torchtitan 0.3 (PyPI, its llama3 package: Llama3Model, a models.common.Decoder) names a
# checkpoint tok_embeddings, layers.N.attention.qkv_linear.{wq,wk,wv}, layers.N.attention.wo,
# layers.N.feed_forward.{w1,w2,w3}, layers.N.{attention_norm,ffn_norm}, norm, lm_head (its fused
# wqkv parameter is saved as, and loaded from, separate wq/wk/wv by FusedQKVLinear's state-dict
# hooks). torchtitan 0.2 (v0.2.2, torchtitan/models/llama3/model/model.py: Transformer built
# from TransformerModelArgs) had attention.{wq,wk,wv,wo} and `output`.
#
# TitanLlama3 below reproduces only the module structure (parameter names, shapes, the
# non-persistent RoPE buffer) and init of that source, for both versions:
#   v0.2.2 (commit 73a0e6979dd10b6b1904098eb3c8f62c18ab87ce) model/model.py: Attention.__init__
#   (lines 191-222: wq [n_heads*head_dim, dim], wk/wv [n_kv_heads*head_dim, dim], wo
#   [dim, n_heads*head_dim], no bias), Attention.init_weights (224-227), FeedForward (307-349:
#   hidden = multiple_of-rounded int(2*4*dim/3); w1/w3 [hidden, dim], w2 [dim, hidden];
#   init w1 0.02, w2/w3 init_std), TransformerBlock (351-421: attention, feed_forward,
#   attention_norm, ffn_norm = nn.RMSNorm; init_std = 0.02/sqrt(2(layer_id+1)) with
#   depth_init), Transformer (423-490: tok_embeddings, freqs_cis persistent=False, layers a
#   ModuleDict keyed "0".., norm, output; init normal_ embedding, output trunc_normal
#   std dim**-0.5 in ±3 std); trunc_normal_ from models/utils.py (a=-2, b=2 absolute).
#   0.3.0 llama3/__init__.py (_build_llama3_layers, _LINEAR_INIT, _EMBEDDING_INIT,
#   _output_linear_init, depth_scaled_std) and models/common/attention.py (QKVLinear,
#   FusedQKVLinear): the same shapes and init, the names above.
# The real 0.3 class is used when torchtitan is installed (it is checked against this
# reproduction then, and loaded strictly); the reproduction runs always.

TITAN = dict(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256, multiple_of=32, norm_eps=1e-5)


def titan_hidden(dim, multiple_of):
    hidden = int(2 * 4 * dim / 3)
    return multiple_of * ((hidden + multiple_of - 1) // multiple_of)


class TitanLlama3(nn.Module):
    """torchtitan's Llama 3 module tree, names and shapes only (see above); `version` "0.2" or "0.3"."""

    def __init__(self, version, dim, n_layers, n_heads, n_kv_heads, vocab_size, multiple_of, norm_eps):
        super().__init__()
        head_dim = dim // n_heads
        hidden = titan_hidden(dim, multiple_of)
        self.dim = dim
        self.tok_embeddings = nn.Embedding(vocab_size, dim)
        self.register_buffer("freqs_cis", torch.zeros(128, head_dim // 2, dtype=torch.complex64), persistent=False)
        self.layers = nn.ModuleDict()
        for layer_id in range(n_layers):
            block = nn.Module()
            attention = nn.Module()
            qkv = nn.Module() if version == "0.3" else attention
            qkv.wq = nn.Linear(dim, n_heads * head_dim, bias=False)
            qkv.wk = nn.Linear(dim, n_kv_heads * head_dim, bias=False)
            qkv.wv = nn.Linear(dim, n_kv_heads * head_dim, bias=False)
            if version == "0.3":
                attention.qkv_linear = qkv
            attention.wo = nn.Linear(n_heads * head_dim, dim, bias=False)
            block.attention = attention
            ff = nn.Module()
            ff.w1 = nn.Linear(dim, hidden, bias=False)
            ff.w2 = nn.Linear(hidden, dim, bias=False)
            ff.w3 = nn.Linear(dim, hidden, bias=False)
            block.feed_forward = ff
            block.attention_norm = nn.RMSNorm(dim, eps=norm_eps)
            block.ffn_norm = nn.RMSNorm(dim, eps=norm_eps)
            block.weight_init_std = 0.02 / (2 * (layer_id + 1)) ** 0.5
            self.layers[str(layer_id)] = block
        self.norm = nn.RMSNorm(dim, eps=norm_eps)
        head = nn.Linear(dim, vocab_size, bias=False)
        setattr(self, "lm_head" if version == "0.3" else "output", head)

    def init_weights(self):
        tn = nn.init.trunc_normal_
        nn.init.normal_(self.tok_embeddings.weight)
        for block in self.layers.values():
            a = block.attention
            qkv = getattr(a, "qkv_linear", a)
            for lin in (qkv.wq, qkv.wk, qkv.wv):
                tn(lin.weight, mean=0.0, std=0.02)
            tn(a.wo.weight, mean=0.0, std=block.weight_init_std)
            tn(block.feed_forward.w1.weight, mean=0.0, std=0.02)
            for lin in (block.feed_forward.w2, block.feed_forward.w3):
                tn(lin.weight, mean=0.0, std=block.weight_init_std)
            block.attention_norm.reset_parameters()
            block.ffn_norm.reset_parameters()
        self.norm.reset_parameters()
        s = self.dim**-0.5
        head = self.lm_head if hasattr(self, "lm_head") else self.output
        tn(head.weight, mean=0.0, std=s, a=-3 * s, b=3 * s)


def real_llama3():
    """torchtitan 0.3's Llama3Model at TITAN's sizes, from its own config builders."""
    from torchtitan.models.common import compute_ffn_hidden_dim

    t = TITAN
    hidden = compute_ffn_hidden_dim(t["dim"], multiple_of=t["multiple_of"])
    assert hidden == titan_hidden(t["dim"], t["multiple_of"])
    L, cfg = torchtitan_llama3(t["dim"], t["vocab_size"], t["n_layers"], t["n_heads"], t["n_kv_heads"], hidden, fuse_qkv=True)
    return L, cfg, cfg.build()


def titan_spec(tmp_path, name):
    t = TITAN
    return build(HERE_SPECS / name, tmp_path / "titan.safetensors",
                 "--set", f"hidden_dim={titan_hidden(t['dim'], t['multiple_of'])}",
                 *[a for k in ("dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size") for a in ("--set", f"{k}={t[k]}")])


def assert_init_matches(file_tensors, model_tensors):
    """The file's values and the model's own init are one distribution, tensor by tensor
    (two-sample KS for the random ones; ones for the norms)."""
    for name, ours in file_tensors.items():
        theirs = model_tensors[name]
        if name.endswith("norm.weight"):
            assert torch.all(ours == 1) and torch.all(theirs == 1), name
            continue
        d, p = ks_2samp(ours.numpy(), theirs.float().numpy())
        assert p > 1e-4, (name, d, p)


@pytest.mark.parametrize("version,spec", [("0.3", "torchtitan_llama3.yaml"), ("0.2", "torchtitan_llama3_v02.yaml")])
def test_torchtitan_spec_matches_the_source_structure(tmp_path, version, spec):
    """The spec's names and shapes are the torchtitan module tree's (reproduced from the source,
    see above), it loads strictly, and its values follow that source's init_weights."""
    path = titan_spec(tmp_path, spec)
    raw = raw_tensors(path)
    model = TitanLlama3(version, **TITAN)
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == {k: s for k, (_, s, _) in raw.items()}
    torch.manual_seed(0)
    model.init_weights()
    own = {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(from_raw(raw), strict=True)
    assert_same_bytes(model.state_dict(), raw)
    assert_init_matches(from_raw(raw), own)


def test_torchtitan_llama3_loads_strictly_into_llama3model(tmp_path):
    """torchtitan 0.3's own Llama3Model (fused wqkv) takes the spec's file with
    load_state_dict(strict=True), gives it back byte for byte, and the file's values follow its
    own init_states (param_init)."""
    _, _, model = real_llama3()
    sd = model.state_dict()
    repro = TitanLlama3("0.3", **TITAN).state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in repro.items()}
    assert [n for n, _ in model.named_parameters()][1] == "layers.0.attention.qkv_linear.wqkv.weight"
    torch.manual_seed(0)
    model.init_states()
    own = {k: v.clone() for k, v in model.state_dict().items()}
    path = titan_spec(tmp_path, "torchtitan_llama3.yaml")
    raw = raw_tensors(path)
    result = model.load_state_dict(from_raw(raw), strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert_same_bytes(model.state_dict(), raw)
    assert_init_matches(from_raw(raw), own)


def test_hf_named_llama_loads_into_torchtitan_through_its_hf_adapter(tmp_path):
    """torchtitan's path for a Hugging Face checkpoint (initial_load_in_hf): the model's state
    dict to_hf, dcp.load with the adapter's HuggingFaceStorageReader, from_hf (un-permuting q and
    k for its RoPE), load_state_dict(strict=True). A sharded `specc import hf` Llama goes through
    it, and to_hf of the loaded model is the shards byte for byte."""
    import torch.distributed.checkpoint as dcp

    L, cfg, model = real_llama3()
    t = TITAN
    config = tiny_llama_config(vocab_size=t["vocab_size"], hidden_size=t["dim"], num_hidden_layers=t["n_layers"],
                               num_attention_heads=t["n_heads"], num_key_value_heads=t["n_kv_heads"],
                               intermediate_size=titan_hidden(t["dim"], t["multiple_of"]), rms_norm_eps=t["norm_eps"])
    ckpt = sharded_llama(tmp_path, config)
    adapter = L.Llama3StateDictAdapter(cfg, None)
    hf_state = adapter.to_hf(model.state_dict())
    raw = raw_dir(ckpt)
    assert set(hf_state) == set(raw)
    dcp.load(hf_state, storage_reader=adapter.get_hf_storage_reader(str(ckpt)), no_dist=True)
    model.load_state_dict(adapter.from_hf(hf_state), strict=True)
    assert_same_bytes(adapter.to_hf(model.state_dict()), raw)


# --- 3. PEFT: a LoRA adapter for PeftModel.from_pretrained ---------------------------------

LORA_R, LORA_WIDTH, LORA_TARGETS = 16, 4096, ["q_proj", "v_proj"]

# What PeftModel.from_pretrained needs beside adapter_model.safetensors: PEFT reads the adapter
# type, the rank and the modules to wrap from adapter_config.json (every other LoraConfig field
# has a default). lora_alpha is not a weight fact: PEFT scales the update by lora_alpha / r.
ADAPTER_CONFIG = {"peft_type": "LORA", "r": LORA_R, "lora_alpha": LORA_R, "target_modules": LORA_TARGETS,
                  "bias": "none", "init_lora_weights": True}


class Attention4096(nn.Module):
    """The base the adapter is for: a 4096-wide attention's q and v projections, at top level."""

    def __init__(self, init=True):
        super().__init__()
        make = nn.Linear if init else (lambda *a, **k: torch.nn.utils.skip_init(nn.Linear, *a, **k))
        self.q_proj = make(LORA_WIDTH, LORA_WIDTH, bias=False)
        self.v_proj = make(LORA_WIDTH, LORA_WIDTH, bias=False)

    def forward(self, x):
        return self.q_proj(x) + self.v_proj(x)


def adapter_dir(tmp_path, spec):
    d = tmp_path / "adapter"
    d.mkdir()
    build(spec, d / "adapter_model.safetensors")
    (d / "adapter_config.json").write_text(json.dumps(ADAPTER_CONFIG, indent=2))
    return d


def load_adapter_strictly(base, directory):
    """PeftModel.from_pretrained, with its missing-adapter-keys warning made an error (PEFT loads
    with strict=False and only warns when no key matched)."""
    from peft import PeftModel

    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Found missing adapter keys")
        return PeftModel.from_pretrained(base, str(directory))


def check_peft_adapter(tmp_path, spec):
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict

    d = adapter_dir(tmp_path, spec)
    raw = raw_tensors(d / "adapter_model.safetensors")
    torch.manual_seed(0)
    base = Attention4096()
    x = torch.randn(3, LORA_WIDTH)
    with torch.no_grad():
        y_base = base(x)
    model = load_adapter_strictly(base, d)
    # What PEFT would save for this model is the file, names and bytes.
    assert_same_bytes(get_peft_model_state_dict(model), raw)
    lora = {k: v for k, v in model.state_dict().items() if ".lora_" in k}
    assert len(lora) == len(raw) == 2 * len(LORA_TARGETS)
    assert_same_bytes({k.replace(".default.", "."): v for k, v in lora.items()}, raw)
    # lora_B is zero: the adapted model is the base model, exactly.
    with torch.no_grad():
        assert torch.equal(model(x), y_base)
    # The init is PEFT's own: a fresh get_peft_model draws lora_A from kaiming_uniform(a=sqrt(5))
    # = U(±1/sqrt(4096)) and sets lora_B to zeros.
    fresh = get_peft_model(Attention4096(init=False), LoraConfig(**{k: v for k, v in ADAPTER_CONFIG.items() if k != "peft_type"}))
    fresh_sd = get_peft_model_state_dict(fresh)
    assert set(fresh_sd) == set(raw)
    ours = from_raw(raw)
    bound = 1 / math.sqrt(LORA_WIDTH)
    for name, t in ours.items():
        if ".lora_B." in name:
            assert torch.all(t == 0) and torch.all(fresh_sd[name] == 0), name
        else:
            assert t.abs().max() <= bound and fresh_sd[name].abs().max() <= bound, name
            d_, p = ks_2samp(t.numpy(), fresh_sd[name].numpy())
            assert p > 1e-4, (name, d_, p)
    tensors = {t["name"]: t for t in summary(spec)["tensors"]}
    assert set(tensors) == set(raw)


def test_zoo_lora_adapter_loads_with_peft_model_from_pretrained(tmp_path):
    check_peft_adapter(tmp_path, SPECS / "lora-adapter.yaml")
