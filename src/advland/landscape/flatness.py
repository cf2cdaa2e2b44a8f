"""Flatness of the robust loss in weight space (Stutz, Hein, Schiele, ICCV 2021).

Both measures perturb the weights inside the per-layer relative ball
B_ξ(θ) = {ν : ‖ν_l‖₂ ≤ ξ·‖θ_l‖₂ for every parameter tensor l} (scale-invariant per layer) and
report how much the robust loss RL(θ) = mean_i max_{x'} CE(f_θ(x'), y_i) (PGD) rises, in nats:

* average case: mean over random ν uniform in B_ξ of RL(θ + ν) − RL(θ), the attack re-run at
  every θ + ν;
* worst case: max over ν ∈ B_ξ of RL(θ + ν) − RL(θ), approximated by attacking weights and inputs
  jointly: each iteration takes one PGD step on x' and one normalized ascent step on every ν_l
  (length ``weight_step``·ξ·‖θ_l‖, then projection onto the ball); RL(θ + ν) is then measured
  with a fresh, full PGD attack.

Defaults ξ = 0.5 (average) and ξ = 0.003 (worst) follow our reading of Stutz et al.'s figures
**[unverified]**; both are arguments.

What is perturbed (``perturb``): by default ``"weights"``, every parameter except those of
normalization layers (BatchNorm, GroupNorm, LayerNorm, InstanceNorm), which Stutz et al. exclude,
and except biases (our choice, as AWP's and Li et al.'s codes do; see docs/landscape.md);
``"all"`` perturbs every parameter (advland's behaviour in its first versions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import bn_mode
from ..threat import ThreatModel
from .flat_model import FlatModel
from ..seeds import stream_seed
from .losses import DEFAULT_BATCH, batches, generator, point_metrics

Perturbed = Literal["weights", "all"]
NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def perturbed_parameters(model: nn.Module, perturb: Perturbed = "weights") -> list[str]:
    """Names of the parameters flatness perturbs: ``"weights"`` leaves out normalization layers and biases."""
    if perturb not in ("weights", "all"):
        raise ValueError(f"perturb must be weights or all, got {perturb!r}")
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    if perturb == "all":
        return trainable
    norm = {f"{prefix}.{name}".lstrip(".") for prefix, module in model.named_modules()
            if isinstance(module, NORM_LAYERS) for name, _ in module.named_parameters(recurse=False)}
    return [name for name in trainable if name not in norm and name.rsplit(".", 1)[-1] != "bias"]


@dataclass
class Flatness:
    """Rise of the robust loss under weight perturbations of relative size ξ, in nats (≥ 0 when flat is 0)."""

    value: float
    """RL(θ + ν) − RL(θ): averaged over samples (average case) or at the found ν (worst case)."""
    base_loss: float
    """RL(θ), the robust loss at the unperturbed weights."""
    perturbed_losses: list[float] = field(default_factory=list)
    """RL(θ + ν) for each sampled or found ν."""
    xi: float = 0.0
    perturbed: str = "weights"
    """Which parameters were perturbed: "weights" (not normalization layers, not biases) or "all"."""


def _norms(flat: FlatModel, theta: torch.Tensor) -> torch.Tensor:
    """‖θ_l‖ of each parameter tensor, repeated over its entries (shape (P,))."""
    parts = flat.split(theta)
    return torch.cat([parts[n].norm().expand(parts[n].numel()) for n in flat.names])


def random_relative_perturbation(flat: FlatModel, theta: torch.Tensor, xi: float, seed: int) -> torch.Tensor:
    """ν uniform in B_ξ(θ): per tensor, a uniform direction at radius ξ·‖θ_l‖·U^(1/n_l)."""
    cpu_rng = torch.Generator().manual_seed(seed)
    sample = torch.randn(flat.size, generator=cpu_rng, dtype=theta.dtype).to(theta.device)
    radii = torch.rand(len(flat.names), generator=cpu_rng, dtype=theta.dtype).to(theta.device)
    numels = torch.tensor(flat.numels, device=theta.device)
    radii = radii ** (1.0 / numels.to(theta.dtype))
    scale = xi * _norms(flat, theta) * radii.repeat_interleave(numels) / _norms(flat, sample).clamp_min(1e-12)
    return sample * scale


def _project(flat: FlatModel, nu: torch.Tensor, theta: torch.Tensor, xi: float) -> torch.Tensor:
    """ν projected onto B_ξ(θ), tensor by tensor."""
    limit = xi * _norms(flat, theta)
    return nu * (limit / _norms(flat, nu).clamp_min(1e-12)).clamp(max=1.0)


def _robust_loss(flat, theta, x, y, threat, batch_size, seed) -> float:
    return point_metrics(flat, theta, x, y, threat, batch_size=batch_size, seed=seed).loss


def average_flatness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    xi: float = 0.5,
    n_samples: int = 10,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
    perturb: Perturbed = "weights",
) -> Flatness:
    """Average-case flatness: mean of RL(θ + ν) − RL(θ) over ``n_samples`` random ν in B_ξ(θ)
    (sample s drawn from stream s + 1 of ``seed``: :func:`advland.seeds.stream_seed`)."""
    flat = FlatModel(model, perturbed_parameters(model, perturb))
    x, y = flat.layout(x.to(flat.device)), y.to(flat.device)
    theta = flat.vector()
    base = _robust_loss(flat, theta, x, y, threat, batch_size, seed)
    perturbations = [random_relative_perturbation(flat, theta, xi, stream_seed(seed, 1 + s)) for s in range(n_samples)]
    losses = [_robust_loss(flat, theta + nu, x, y, threat, batch_size, seed) for nu in perturbations]
    return Flatness(sum(losses) / len(losses) - base, base, losses, xi, perturb)


def worst_flatness(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    xi: float = 0.003,
    steps: int | None = None,
    weight_step: float | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    seed: int = 0,
    perturb: Perturbed = "weights",
) -> Flatness:
    """Worst-case flatness: RL(θ + ν*) − RL(θ), ν* from a joint ascent on weights and inputs.

    Args:
        steps: joint iterations (default: the threat's PGD steps).
        weight_step: length of each weight step as a fraction of the ball radius ξ·‖θ_l‖
            (default 2.5 / steps, Madry et al.'s rule for PGD).
        perturb: "weights" (default: not normalization layers, not biases) or "all".
    """
    flat = FlatModel(model, perturbed_parameters(model, perturb))
    x, y = flat.layout(x.to(flat.device)), y.to(flat.device)
    theta = flat.vector()
    steps = threat.steps if steps is None else steps
    weight_step = 2.5 / max(steps, 1) if weight_step is None else weight_step
    base = _robust_loss(flat, theta, x, y, threat, batch_size, seed)
    nu = torch.zeros_like(theta)
    radius = xi * _norms(flat, theta)
    rng = generator(seed, flat.device)
    adversarial = [threat.random_start(xb, rng) for xb, _ in batches(x, y, batch_size)]
    with bn_mode(flat.model, "eval"), torch.enable_grad():
        for _ in range(steps):
            nu_leaf = nu.clone().requires_grad_(True)
            grad_nu = torch.zeros_like(theta)
            for b, (xb, yb) in enumerate(batches(x, y, batch_size)):
                x_adv = adversarial[b].requires_grad_(True)
                loss = F.cross_entropy(flat.at(theta + nu_leaf)(x_adv), yb, reduction="sum")
                g_x, g_nu = torch.autograd.grad(loss, (x_adv, nu_leaf))
                adversarial[b] = threat.project(threat.ascent_step(x_adv.detach(), g_x), xb).detach()
                grad_nu += g_nu
            step = weight_step * radius * grad_nu / _norms(flat, grad_nu).clamp_min(1e-12)
            nu = _project(flat, nu + step, theta, xi)
    worst = _robust_loss(flat, theta + nu, x, y, threat, batch_size, seed)
    return Flatness(worst - base, base, [worst], xi, perturb)
