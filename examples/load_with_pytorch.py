"""Load specc output into PyTorch modules, strictly.

    specc build specs/mlp.yaml -o mlp.safetensors
    specc build specs/resnet18.yaml -o resnet18.safetensors
    python examples/load_with_pytorch.py
"""

import collections

import torch
from safetensors.torch import load_file, load_model
from torch import nn

mlp = nn.Sequential(
    collections.OrderedDict(
        fc1=nn.Linear(784, 256), act=nn.ReLU(), drop=nn.Dropout(0.1),
        fc2=nn.Linear(256, 128), act2=nn.ReLU(), out=nn.Linear(128, 10),
    )
)
load_model(mlp, "mlp.safetensors", strict=True)  # resolves ties, reports missing/unexpected keys
print("mlp:", mlp(torch.randn(2, 784)).shape)

try:
    import torchvision

    resnet = torchvision.models.resnet18()
    resnet.load_state_dict(load_file("resnet18.safetensors"), strict=True)
    print("resnet18:", resnet.eval()(torch.randn(1, 3, 224, 224)).shape)
except ImportError:
    print("torchvision is not installed; skipping resnet18")
