"""WideResNet (Zagoruyko & Komodakis 2016) in the layout of the TRADES and AWP code (WRN-34-10).

conv3x3 16; three stages of (depth - 4) / 6 pre-activation basic blocks with 16k/32k/64k
channels (k = ``widen_factor``; strides 1, 2, 2; a 1x1 conv shortcut on the pre-activation when
shapes change); final BN-ReLU; global average pooling (adaptive, so any H, W >= 8 work); linear.
Initialization as in that code: conv weights N(0, 2 / (k·k·out_channels)), BN (1, 0), zero fc
bias. The official code also builds an unused ``sub_block1``; it is left out here.
``activation`` (relu, silu/swish: :mod:`advland.models.activation`) replaces every ReLU; with silu this is
the activation of the RobustBench WRN-28-10/70-16 Swish entries. Their DeepMind implementation has the same
pre-activation layout and differs in details: a stride-2 convolution pads (0, 1, 0, 1) as TensorFlow's
``SAME`` does (here 1 on every side), PyTorch's default initialization, and other parameter names.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .activation import make_activation
from .registry import ModelError, image_shape, register_model


class WideBlock(nn.Module):
    """BN-ReLU-conv3x3-BN-ReLU-conv3x3 with identity or 1x1-conv shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int, activation: str = "relu") -> None:
        super().__init__()
        self.act = make_activation(activation)
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(self.act(self.bn2(self.conv1(out))))
        return out + shortcut


class WideResNet(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, depth: int = 34, widen_factor: int = 10,
                 activation: str = "relu") -> None:
        super().__init__()
        self.act = make_activation(activation)
        n = (depth - 4) // 6
        planes = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, padding=1, bias=False)
        blocks: list[nn.Module] = []
        in_planes = 16
        for stage, p in enumerate(planes):
            for i in range(n):
                blocks.append(WideBlock(in_planes, p, 2 if stage > 0 and i == 0 else 1, activation))
                in_planes = p
        self.layers = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register_model("wrn")
def wrn(
    *, input_shape: tuple[int, ...], num_classes: int, depth: int = 34, widen_factor: int = 10,
    activation: str = "relu",
) -> nn.Module:
    """WRN-depth-widen_factor for ``(C, H, W)`` images, H, W >= 8; depth must be 6n + 4; ``activation``
    relu (default), silu or swish."""
    c, _, _ = image_shape(input_shape, "wrn")
    if depth < 10 or (depth - 4) % 6:
        raise ModelError(f"wrn depth must be 6n + 4 with n >= 1 (e.g. 28, 34); got {depth}")
    return WideResNet(c, num_classes, depth, widen_factor, activation)


@register_model("wrn34_10")
def wrn34_10(*, input_shape: tuple[int, ...], num_classes: int, activation: str = "relu") -> nn.Module:
    """WRN-34-10, the TRADES/AWP CIFAR-10 model."""
    return wrn(input_shape=input_shape, num_classes=num_classes, depth=34, widen_factor=10, activation=activation)


@register_model("wrn28_10")
def wrn28_10(*, input_shape: tuple[int, ...], num_classes: int, activation: str = "relu") -> nn.Module:
    """WRN-28-10 (with activation=silu: the Swish network of Gowal et al. 2020 and Wang et al. 2023)."""
    return wrn(input_shape=input_shape, num_classes=num_classes, depth=28, widen_factor=10, activation=activation)
