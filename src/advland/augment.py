"""Training-time data augmentation on tensors (no torchvision): random crop with zero padding and flips.

This is the augmentation behind every CIFAR reference number (``RandomCrop(32, padding=4)`` and
``RandomHorizontalFlip``). It draws from the global torch RNG, which the trainer saves for resume.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_crop_flip(x: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Crop each image of a (N, C, H, W) batch at a random offset of its zero-padded copy, then flip half."""
    n, c, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    top = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    left = torch.randint(0, 2 * padding + 1, (n,), device=x.device)
    rows = (top[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (left[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(c, device=x.device)[None, :, None, None]
    cropped = padded[batch, channel, rows, cols]
    flip = (torch.rand(n, device=x.device) < 0.5)[:, None, None, None]
    return torch.where(flip, cropped.flip(3), cropped)
