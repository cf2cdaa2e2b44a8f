"""ResNet-18 (He et al. 2016) in its CIFAR form: a 3x3 stem without max-pool.

conv3x3 64·width, BN, ReLU; four stages of two basic blocks (64/128/256/512 channels times
``width``, stride 2 from the second stage; 1x1 conv + BN shortcut when shapes change);
global average pooling (adaptive, so any H, W >= 8 work); a linear classifier.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import image_shape, register_model


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus shortcut, then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        planes = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, planes[0], 3, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        blocks: list[nn.Module] = []
        in_planes = planes[0]
        for stage, p in enumerate(planes):
            for i in range(2):
                blocks.append(BasicBlock(in_planes, p, 2 if stage > 0 and i == 0 else 1))
                in_planes = p
        self.layers = nn.Sequential(*blocks)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("resnet18")
def resnet18(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> nn.Module:
    """ResNet-18 for ``(C, H, W)`` images, H, W >= 8; width=0.25 gives 16/32/64/128 channels."""
    c, _, _ = image_shape(input_shape, "resnet18")
    return ResNet18(c, num_classes, width)
