"""specc's pytorch layout against real torch.nn modules: names, shapes, order and fans."""

import collections

import torch
import transformers
from torch import nn

from conftest import HERE_SPECS, SPECS, gpt2_tiny_config, stored, summary


def torch_params(module):
    return [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


class TorchLayers(nn.Module):
    """The module that specs/torch_layers.yaml describes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.dw = nn.Conv2d(8, 16, (3, 5), stride=2, groups=8, dilation=(1, 2))
        # 16x16 -> (16-3)//2+1 = 7 rows, (16-9)//2+1 = 4 cols; avg pool 2 stride 1 -> 6 x 3
        self.fc = nn.Linear(16 * 6 * 3, 32)
        self.ln = nn.LayerNorm(32)
        self.rms = nn.RMSNorm(32)
        self.emb = nn.Embedding(11, 32)
        self.lstm = nn.LSTM(32, 6, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(12, 5, bias=False)
        self.c1 = nn.Conv1d(10, 4, 3)
        self.mha = nn.MultiheadAttention(16, 4)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Linear(16, 24), nn.Dropout(0.1), nn.Linear(24, 16)) for _ in range(2)
        )
        self.head = nn.Linear(16, 3, bias=False)


def test_every_layer_type_matches_torch_state_dict():
    assert stored(HERE_SPECS / "torch_layers.yaml") == torch_params(TorchLayers())


def test_spatial_arithmetic_matches_a_real_forward_pass():
    m = TorchLayers()
    x = torch.zeros(1, 3, 32, 32)
    x = m.pool(torch.relu(m.bn(m.conv(x))))
    x = nn.AvgPool2d(2, stride=1)(m.dw(x))
    assert x.flatten(1).shape[1] == m.fc.in_features


def test_mlp_spec_matches_nn_sequential():
    model = nn.Sequential(
        collections.OrderedDict(
            fc1=nn.Linear(784, 256),
            act=nn.ReLU(),
            drop=nn.Dropout(0.1),
            fc2=nn.Linear(256, 128),
            act2=nn.ReLU(),
            out=nn.Linear(128, 10),
        )
    )
    assert stored(SPECS / "mlp.yaml") == torch_params(model)


class Tagger(nn.Module):
    """The module that specs/lstm-tagger.yaml describes."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(5000, 64)
        self.rnn = nn.LSTM(64, 128, num_layers=2, bidirectional=True)
        self.head = nn.Linear(256, 17)


def test_lstm_tagger_spec_matches_modules():
    assert stored(SPECS / "lstm-tagger.yaml") == torch_params(Tagger())


def test_fans_match_torch_for_linear_and_conv_weights():
    """For nn.Linear / nn.Conv weights the storage is [out, in, *k], so torch's own fan rule applies."""
    m = TorchLayers()
    params = dict(m.named_parameters())
    checked = 0
    for t in summary(HERE_SPECS / "torch_layers.yaml")["tensors"]:
        name = t["name"]
        if name.endswith(".weight") and len(t["shape"]) >= 2 and t["role"] == "kernel" and "mha" not in name:
            fi, fo = nn.init._calculate_fan_in_and_fan_out(params[name])
            assert (t["fan_in"], t["fan_out"]) == (fi, fo), name
            checked += 1
    assert checked >= 6


def test_totals_match_torch():
    s = summary(HERE_SPECS / "torch_layers.yaml")
    sd = TorchLayers().state_dict()
    assert s["total_params"] == sum(v.numel() for v in sd.values())
    assert s["total_bytes"] == sum(v.numel() * v.element_size() for v in sd.values())


def test_gpt2_tiny_matches_transformers():
    cfg = gpt2_tiny_config()
    model = transformers.GPT2LMHeadModel(cfg)
    s = summary(SPECS / "gpt2-tiny.yaml")
    ours = [(t["name"], tuple(t["shape"])) for t in s["tensors"]]
    ties = {t["name"]: t["target"] for t in s["ties"]}
    theirs = torch_params(model)
    # transformers lists the tied lm_head.weight in its state_dict; specc stores it once.
    assert ties == {"lm_head.weight": "transformer.wte.weight"}
    assert sorted(ours) == sorted((k, v) for k, v in theirs if k not in ties)
