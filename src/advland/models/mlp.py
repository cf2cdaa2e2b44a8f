"""A multilayer perceptron on flattened inputs: Linear-ReLU blocks, then a linear classifier.

With ``hidden=()`` it is a linear classifier (the setting of liu2020's theory on linear models).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .registry import register_model


class MLP(nn.Module):
    def __init__(self, in_features: int, num_classes: int, hidden: Sequence[int] = (256, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@register_model("mlp")
def mlp(*, input_shape: tuple[int, ...], num_classes: int, hidden: Sequence[int] = (256, 256)) -> nn.Module:
    """MLP for any input shape; ``hidden`` lists the hidden layer sizes."""
    return MLP(math.prod(input_shape), num_classes, tuple(hidden))
