"""The MNIST CNN of Liu et al. 2020 (liu2020): two 5x5 conv + max-pool stages and fc 1024.

conv 32 5x5 (pad 2) ReLU maxpool 2, conv 64 5x5 (pad 2) ReLU maxpool 2, fc 1024 ReLU,
fc num_classes; no BatchNorm. The flatten size follows from the input shape
(64·7·7 for 28x28 MNIST, 64·2·2 for 8x8 digits).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import image_shape, register_model


class LeNet(nn.Module):
    def __init__(self, in_channels: int, height: int, width: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
        )  # fmt: skip
        flat = 64 * (height // 4) * (width // 4)
        self.classifier = nn.Sequential(nn.Linear(flat, 1024), nn.ReLU(), nn.Linear(1024, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("lenet")
def lenet(*, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """LeNet of liu2020 for ``(C, H, W)`` images, H, W >= 8."""
    c, h, w = image_shape(input_shape, "lenet")
    return LeNet(c, h, w, num_classes)
