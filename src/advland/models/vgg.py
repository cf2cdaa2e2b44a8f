"""VGG-16 with BatchNorm (Simonyan & Zisserman 2015) in its common CIFAR form.

Thirteen conv3x3-BN-ReLU layers (64, 64, M, 128, 128, M, 256 x3, M, 512 x3, M, 512 x3, M;
channels times ``width``), global average pooling and one linear classifier. The 2x2 max-pools
use ``ceil_mode`` so that a 1x1 map stays 1x1: inputs from 8x8 up work, and on 32x32 CIFAR the
net is the usual one.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import image_shape, register_model

CONFIG: list[int | str] = [
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"
]  # fmt: skip


class VGG16(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for v in CONFIG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                out = max(1, round(int(v) * width))
                layers += [nn.Conv2d(in_channels, out, 3, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
                in_channels = out
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("vgg16")
def vgg16(*, input_shape: tuple[int, ...], num_classes: int, width: float = 1.0) -> nn.Module:
    """VGG-16-BN for ``(C, H, W)`` images, H, W >= 8; ``width`` scales every layer."""
    c, _, _ = image_shape(input_shape, "vgg16")
    return VGG16(c, num_classes, width)
