"""PreActResNet-18 (He et al. 2016, identity mappings) as used by Rice et al. 2020 and the AWP code.

CIFAR stem (3x3 conv, 64 channels, stride 1), four stages of two pre-activation basic blocks
(64/128/256/512 channels times ``width``; stride 2 from the second stage), a final BN-ReLU,
global average pooling (adaptive, so any H, W >= 8 work) and a linear classifier.

Parameter names follow the official code of Rice et al. (locuslab/robust_overfitting) and of the AWP
code (``conv1``, ``layer1`` .. ``layer4`` of two blocks each with ``bn1 conv1 bn2 conv2`` and a
``shortcut.0`` 1x1 conv where shapes change, ``bn``, ``linear``), so their checkpoints load as they are.
``activation`` (relu, silu/swish: :mod:`advland.models.activation`) replaces every ReLU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .activation import make_activation
from .registry import image_shape, register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3; a 1x1 conv shortcut on the pre-activation when shapes change."""

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str = "relu") -> None:
        super().__init__()
        self.act = make_activation(activation)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(self.act(self.bn2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0, activation: str = "relu") -> None:
        super().__init__()
        self.act = make_activation(activation)
        planes = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, 1, padding=1, bias=False)
        stages, in_planes = [], planes[0]
        for stage, p in enumerate(planes):
            stages.append(nn.Sequential(PreActBlock(in_planes, p, 2 if stage else 1, activation),
                                        PreActBlock(p, p, 1, activation)))
            in_planes = p
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(x)
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = stage(out)
        out = self.act(self.bn(out))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("preact_resnet18")
def preact_resnet18(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0,
                    activation: str = "relu") -> nn.Module:
    """PreActResNet-18 for ``(C, H, W)`` images, H, W >= 8; ``width`` scales every stage; ``activation``
    relu (default), silu or swish."""
    c, _, _ = image_shape(input_shape, "preact_resnet18")
    return PreActResNet18(c, num_classes, width, activation)
