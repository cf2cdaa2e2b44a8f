"""The clean and the adversarial loss as functions of a weight point θ (a flat vector).

L(θ) = mean_i CE(f_θ(x_i), y_i) and L_ε(θ) = mean_i CE(f_θ(x'_i), y_i), x'_i from PGD (the
package's :func:`advland.attacks.pgd`) run at θ. Every function here evaluates the model in
eval mode (BatchNorm uses its running statistics) and processes the data in batches of
``batch_size`` examples, keeping it on the model's device.

Random starts come from a generator seeded by ``seed`` at every call, never from the global
RNG: the same seed gives the same start at every weight point (common random numbers), calls
may run in parallel threads, and a training run that measures these quantities keeps its own
random stream.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..attacks import bn_mode, pgd
from ..threat import ThreatModel
from .flat_model import FlatModel, Logits

DEFAULT_BATCH = 1024


@dataclass
class PointMetrics:
    """Loss (mean cross-entropy, nats) and accuracy (fraction in [0, 1]) at one weight point."""

    loss: float
    acc: float


def generator(seed: int, device: torch.device) -> torch.Generator:
    """A fresh random generator on ``device`` seeded by ``seed`` (the source of PGD's random starts)."""
    return torch.Generator(device=device).manual_seed(seed)


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(x, y) cut into consecutive batches of at most ``batch_size`` examples (one batch if None)."""
    size = batch_size or len(y)
    return list(zip(x.split(size), y.split(size)))


def craft(
    model_at: Logits, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel | None, rng: torch.Generator
) -> torch.Tensor:
    """Adversarial inputs for ``model_at`` (CE-PGD from a random start drawn from ``rng``), or ``x``
    itself without a threat. The caller puts the module in eval mode."""
    if threat is None or not threat.active:
        return x
    return pgd(model_at, x, y, threat, loss="ce", mode=None, generator=rng)


def attack(
    flat: FlatModel,
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None,
    *,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> torch.Tensor:
    """Adversarial inputs of the model at weights ``theta``, crafted in eval mode, batch by batch."""
    model_at, rng = flat.at(theta), generator(seed, flat.device)
    with bn_mode(flat.model, "eval"):
        return torch.cat([craft(model_at, xb, yb, threat, rng) for xb, yb in batches(x, y, batch_size)])


def point_metrics(
    flat: FlatModel,
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None = None,
    *,
    batch_size: int | None = DEFAULT_BATCH,
    buffers: Mapping[str, torch.Tensor] | None = None,
    seed: int = 0,
) -> PointMetrics:
    """Clean (threat None or inactive) or adversarial loss and accuracy at ``theta``; the attack is re-run here."""
    sums = torch.zeros(2, dtype=torch.float64, device=flat.device)  # loss, correct: read once (one GPU sync)
    model_at, rng = flat.at(theta, buffers), generator(seed, flat.device)
    with bn_mode(flat.model, "eval"):
        for xb, yb in batches(x, y, batch_size):
            xb = craft(model_at, xb, yb, threat, rng)
            with torch.no_grad():
                logits = model_at(xb)
                sums[0] += F.cross_entropy(logits, yb, reduction="sum").double()
                sums[1] += (logits.argmax(1) == yb).sum()
    total_loss, correct = sums.tolist()
    n = max(len(y), 1)
    return PointMetrics(total_loss / n, correct / n)


def loss_gradient(
    flat: FlatModel,
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None = None,
    *,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """∇_θ of the clean or adversarial mean loss at ``theta`` (shape (P,)), and the inputs it was taken at.

    For the adversarial loss the attack is run at ``theta`` first and its result held fixed
    (Danskin: the gradient of the max is the gradient at the maximizer).
    """
    theta = theta.detach()
    grad = torch.zeros_like(theta)
    inputs = []
    model_at, rng = flat.at(theta), generator(seed, flat.device)
    with bn_mode(flat.model, "eval"), torch.enable_grad():
        point = theta.clone().requires_grad_(True)
        for xb, yb in batches(x, y, batch_size):
            xb = craft(model_at, xb, yb, threat, rng)
            inputs.append(xb)
            loss = F.cross_entropy(flat.at(point)(xb), yb, reduction="sum")
            grad += torch.autograd.grad(loss, point)[0]
    return grad / max(len(y), 1), torch.cat(inputs)
