"""Gradient statistics of the adversarial loss L_ε(θ): norm, scattering, Lipschitz estimate.

* gradient norm ‖∇L_ε(θ)‖₂ (liu2020: it does not vanish at the end of adversarial training);
* gradient scattering (liu2020): at θ and a nearby θ' = θ + s·u, u a random unit vector (or a
  given one, e.g. a Hessian eigenvector), the mean over examples of the cosine similarity of
  the adversarial perturbations δ_i(θ), δ_i(θ') and of sign δ, the cosine similarity of the
  parameter gradients ∇L_ε(θ), ∇L_ε(θ'), and the mean over examples of the cosine similarity of
  the per-example parameter gradients ∇ℓ_i(θ), ∇ℓ_i(θ') (each at its own adversarial input);
* the gradient's Lipschitz estimate (kanai2021) ‖∇L_ε(θ + Δ) − ∇L_ε(θ)‖ / ‖Δ‖ with the attack
  re-run at θ + Δ; for a smooth L this tends to ‖∇²L Δ‖/‖Δ‖ as Δ shrinks, for adversarial
  losses it measures how non-smooth the attack's maximization makes the landscape.

Step sizes are relative to the weights: s = step·‖θ‖₂ and ‖Δ‖ = radius·‖θ‖₂. Both attacks of a
comparison start from the same random start (same seed), so the differences come from θ alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import grad, vmap

from ..attacks import bn_mode
from ..seeds import stream_seed
from ..threat import ThreatModel
from .directions import random_unit
from .flat_model import FlatModel
from .losses import DEFAULT_BATCH, batches, loss_gradient

PER_EXAMPLE_CHUNK = 64
"""Examples whose parameter gradients are held at once (chunk × P floats per weight point)."""

Gradient = Callable[[torch.Tensor], torch.Tensor]


def adversarial_gradient(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None,
    *,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> tuple[FlatModel, Gradient]:
    """The model as a FlatModel and θ ↦ ∇L_ε(θ) (shape (P,)), the attack re-run at every θ from the same seed."""
    flat = FlatModel(model)
    x, y = flat.layout(x.to(flat.device)), y.to(flat.device)

    def gradient(theta: torch.Tensor) -> torch.Tensor:
        return loss_gradient(flat, theta, x, y, threat, batch_size=batch_size, seed=seed)[0]

    return flat, gradient


def gradient_norm(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None = None,
    *,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> float:
    """‖∇_θ L_ε(θ)‖₂ at the model's weights (the clean loss without a threat), L the mean CE over (x, y)."""
    flat, gradient = adversarial_gradient(model, x, y, threat, batch_size=batch_size, seed=seed)
    return gradient(flat.vector()).norm().item()


@dataclass
class Scattering:
    """Similarity between θ and θ' = θ + s·u, each in [-1, 1] (1: identical directions)."""

    cos_delta: float
    """Mean over examples of cos(δ_i(θ), δ_i(θ')), δ = x' − x the adversarial perturbation (NaN without a threat:
    there is no perturbation)."""
    cos_sign_delta: float
    """The same for sign δ (NaN without a threat)."""
    cos_grad: float
    """cos(∇L_ε(θ), ∇L_ε(θ')) of the full-batch parameter gradients."""
    cos_grad_per_example: float
    """Mean over examples of cos(∇ℓ_i(θ), ∇ℓ_i(θ')), ℓ_i the CE of example i at its adversarial input."""
    step: float
    """s, the distance between θ and θ' (absolute, in weight units)."""


def _mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a.reshape(len(a), -1), b.reshape(len(b), -1), dim=1, eps=1e-12).mean().item()


def per_example_gradients(flat: FlatModel, theta: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """∇_θ CE(f_θ(x_i), y_i) for every example, shape (len(x), P), in eval mode (torch.func.vmap over grad)."""

    def loss(point: torch.Tensor, xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(flat.at(point)(xi.unsqueeze(0)), yi.unsqueeze(0))

    with bn_mode(flat.model, "eval"):
        return vmap(grad(loss), in_dims=(None, 0, 0))(theta, x, y)


def per_example_cosine(flat: FlatModel, theta0: torch.Tensor, x0: torch.Tensor, theta1: torch.Tensor,
                       x1: torch.Tensor, y: torch.Tensor) -> float:
    """Mean over examples of cos(∇ℓ_i(θ0) at x0_i, ∇ℓ_i(θ1) at x1_i), in chunks of PER_EXAMPLE_CHUNK examples."""
    total = 0.0
    for (a, yb), (b, _) in zip(batches(x0, y, PER_EXAMPLE_CHUNK), batches(x1, y, PER_EXAMPLE_CHUNK)):
        g0, g1 = per_example_gradients(flat, theta0, a, yb), per_example_gradients(flat, theta1, b, yb)
        total += F.cosine_similarity(g0, g1, dim=1, eps=1e-12).sum().item()
    return total / max(len(y), 1)


def gradient_scattering(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None,
    *,
    step: float = 1e-2,
    direction: torch.Tensor | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> Scattering:
    """Gradient scattering between θ and θ + s·u, s = ``step``·‖θ‖ (``direction`` u, default random unit);
    without a threat (None) the gradients are those of the clean loss."""
    flat = FlatModel(model)
    x, y = flat.layout(x.to(flat.device)), y.to(flat.device)
    theta = flat.vector()
    u = random_unit(flat.size, seed=seed, like=theta) if direction is None else direction.to(theta) / direction.norm()
    s = step * theta.norm().item()
    (g0, x0), (g1, x1) = (loss_gradient(flat, point, x, y, threat, batch_size=batch_size, seed=seed)
                          for point in (theta, theta + s * u))
    d0, d1 = x0 - x, x1 - x
    return Scattering(
        cos_delta=_mean_cosine(d0, d1) if threat is not None else math.nan,
        cos_sign_delta=_mean_cosine(d0.sign(), d1.sign()) if threat is not None else math.nan,
        cos_grad=F.cosine_similarity(g0, g1, dim=0, eps=1e-12).item(),
        cos_grad_per_example=per_example_cosine(flat, theta, x0, theta + s * u, x1, y),
        step=s,
    )


@dataclass
class Lipschitz:
    """Estimates of the gradient's Lipschitz constant, in (loss per weight unit) per weight unit."""

    ratios: list[float]
    """‖∇L(θ + Δ) − ∇L(θ)‖ / ‖Δ‖ for each sampled Δ."""
    radius: float
    """‖Δ‖ (absolute)."""

    @property
    def max(self) -> float:
        return max(self.ratios)

    @property
    def mean(self) -> float:
        return sum(self.ratios) / len(self.ratios)


def lipschitz_ratios(gradient: Gradient, theta: torch.Tensor, deltas: list[torch.Tensor]) -> list[float]:
    """‖g(θ + Δ) − g(θ)‖ / ‖Δ‖ for every Δ in ``deltas``, g any gradient function (e.g. ∇L_ε)."""
    g0 = gradient(theta)
    return [((gradient(theta + d) - g0).norm() / d.norm()).item() for d in deltas]


def gradient_lipschitz(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel | None,
    *,
    radius: float = 1e-2,
    n_directions: int = 3,
    direction: torch.Tensor | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
) -> Lipschitz:
    """The gradient Lipschitz estimate of kanai2021 along ``n_directions`` random Δ (or the given one).

    ‖Δ‖ = ``radius``·‖θ‖; the attack is re-run at θ + Δ from the same random start as at θ.
    """
    flat, gradient = adversarial_gradient(model, x, y, threat, batch_size=batch_size, seed=seed)
    theta = flat.vector()
    r = radius * theta.norm().item()
    units = ([direction.to(theta) / direction.norm()] if direction is not None
             else [random_unit(flat.size, seed=stream_seed(seed, i), like=theta) for i in range(n_directions)])
    return Lipschitz(lipschitz_ratios(gradient, theta, [r * u for u in units]), r)
