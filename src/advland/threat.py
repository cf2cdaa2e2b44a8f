"""Threat models: the set an attacker may move an input in, and the geometry of moving there.

A :class:`ThreatModel` is the ball ``{x' : ||x' - x||_p <= eps, x' in [0, 1]^d}`` together with
the PGD step geometry for that norm. ``eps`` and ``step_size`` are in pixel units of inputs in
[0, 1] (normalization lives inside the model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Literal

import torch

from .errors import AdvlandError

Norm = Literal["linf", "l2", "l1"]
NORMS: tuple[str, ...] = ("linf", "l2", "l1")

_TINY = 1e-12


def _flat(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1)


def _per_example(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a (N,) tensor so it broadcasts against a (N, ...) tensor."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))


def lp_norm(delta: torch.Tensor, norm: Norm) -> torch.Tensor:
    """Per-example norm of a batch of perturbations, shape (N,)."""
    flat = _flat(delta)
    if norm == "linf":
        return flat.abs().amax(dim=1)
    if norm == "l2":
        return flat.norm(p=2, dim=1)
    return flat.abs().sum(dim=1)


def _project_l1_ball(delta: torch.Tensor, eps: float) -> torch.Tensor:
    """Euclidean projection of each example onto the L1 ball of radius eps (Duchi et al. 2008)."""
    flat = _flat(delta)
    inside = flat.abs().sum(dim=1) <= eps
    magnitudes = flat.abs()
    sorted_mag, _ = magnitudes.sort(dim=1, descending=True)
    cumulative = sorted_mag.cumsum(dim=1)
    ranks = torch.arange(1, flat.shape[1] + 1, device=flat.device, dtype=flat.dtype)
    condition = sorted_mag - (cumulative - eps) / ranks > 0
    rho = condition.to(flat.dtype).mul(ranks).argmax(dim=1)
    theta = (cumulative.gather(1, rho[:, None]) - eps) / (rho[:, None] + 1).to(flat.dtype)
    projected = flat.sign() * (magnitudes - theta).clamp_min(0)
    return torch.where(inside[:, None], flat, projected).reshape_as(delta)


class ThreatError(AdvlandError, ValueError):
    """An impossible threat model (an unknown norm, a negative radius, an attack that cannot move)."""


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s PGD step: 2.5 * eps / steps."""
    return 2.5 * eps / max(steps, 1)


@dataclass(frozen=True)
class ThreatModel:
    """An L_p ball of radius ``eps`` intersected with the [0, 1] box, and PGD's step in it.

    Attributes:
        norm: "linf", "l2" or "l1".
        eps: radius of the ball, in pixel units.
        step_size: PGD step length alpha, in pixel units (for linf the step is alpha * sign(g)).
        steps: number of PGD iterations K (0 means no attack).
        restarts: number of random restarts; the per-example worst case is kept.
    """

    norm: Norm = "linf"
    eps: float = 8 / 255
    step_size: float = 2 / 255
    steps: int = 10
    restarts: int = 1

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise ThreatError(f"threat norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.eps < 0 or self.step_size < 0 or self.steps < 0 or self.restarts < 1:
            raise ThreatError("threat eps, step_size and steps must be >= 0 and restarts >= 1")
        if self.eps > 0 and self.steps > 0 and self.step_size == 0:
            raise ThreatError(f"a PGD attack with eps={self.eps:g} and {self.steps} steps of size 0 never moves; "
                              f"give a step size > 0 (default rule 2.5*eps/steps = "
                              f"{default_step_size(self.eps, self.steps):g})")

    @property
    def active(self) -> bool:
        """Whether this threat model perturbs inputs at all (eps > 0 and at least one step)."""
        return self.eps > 0 and self.steps > 0

    def with_eps(self, eps: float) -> "ThreatModel":
        """The same threat model at another radius, step size scaled so that alpha/eps is constant
        (from eps 0, where there is no ratio to keep, the default rule 2.5 * eps / steps)."""
        if self.eps == 0:
            return replace(self, eps=eps, step_size=default_step_size(eps, self.steps))
        return replace(self, eps=eps, step_size=self.step_size * eps / self.eps)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project ``x_adv`` onto the ball around ``x`` and then onto [0, 1].

        Clipping to the box only shrinks every coordinate of the perturbation (x is in [0, 1]),
        so the result stays inside the ball.
        """
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        elif self.norm == "l2":
            norms = lp_norm(delta, "l2")
            factor = (self.eps / norms.clamp_min(_TINY)).clamp(max=1.0)
            delta = delta * _per_example(factor, delta)
        else:
            delta = _project_l1_ball(delta, self.eps)
        return (x + delta).clamp(0.0, 1.0)

    def random_start(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random point of the threat set around ``x``, drawn from ``generator`` (default: the global RNG).

        linf: uniform in the ball. l2 and l1: a random direction at radius U(0, 1) * eps
        (the AWP code's L2 start; Laplace directions for l1).
        """
        if self.norm == "linf":
            delta = torch.empty_like(x).uniform_(-self.eps, self.eps, generator=generator)
        else:
            if self.norm == "l2":
                noise = torch.empty_like(x).normal_(generator=generator)
            else:
                noise = _laplace_like(x, generator)
            radius = torch.rand(x.shape[0], device=x.device, dtype=x.dtype, generator=generator) * self.eps
            scale = radius / lp_norm(noise, self.norm).clamp_min(_TINY)
            delta = noise * _per_example(scale, noise)
        return self.project(x + delta, x)

    def ascent_step(self, x_adv: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        """One steepest-ascent step of length ``step_size`` in this norm (before projection).

        linf: alpha * sign(g). l2: alpha * g / ||g||_2 per example. l1: the sparse step of
        Tramer & Boneh (2019): sign(g) on the coordinates whose |g| is in the top 1 %, scaled
        to L1 length alpha.
        """
        if self.norm == "linf":
            return x_adv + self.step_size * grad.sign()
        if self.norm == "l2":
            norms = lp_norm(grad, "l2").clamp_min(_TINY)
            return x_adv + self.step_size * grad / _per_example(norms, grad)
        flat = _flat(grad)
        threshold = flat.abs().quantile(0.99, dim=1, keepdim=True)
        sparse = flat.sign() * (flat.abs() >= threshold).to(flat.dtype)
        sparse = sparse / sparse.abs().sum(dim=1, keepdim=True).clamp_min(_TINY)
        return x_adv + self.step_size * sparse.reshape_as(grad)


def _laplace_like(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Standard Laplace noise shaped like ``x`` (inverse CDF of a uniform draw, as torch.distributions.Laplace)."""
    u = torch.empty(x.shape, device=generator.device if generator else "cpu").uniform_(
        torch.finfo(torch.float32).eps - 1, 1, generator=generator
    )
    return (-u.sign() * torch.log1p(-u.abs())).to(device=x.device, dtype=x.dtype)


def fgsm_rs(eps: float, norm: Norm = "linf") -> ThreatModel:
    """FGSM with random start (Wong et al. 2020): one step of size 1.25 * eps."""
    return ThreatModel(norm=norm, eps=eps, step_size=1.25 * eps, steps=1)


@dataclass(frozen=True)
class ThreatOverrides:
    """Changes to a run's threat model, each None to keep the run's: what an analysis's attack flags say
    (``--norm``, ``--eps``, ``--attack-steps``, ``--step-size``)."""

    norm: str | None = None
    eps: float | None = None
    steps: int | None = None
    step_size: float | None = None

    def section(self) -> dict[str, object]:
        """As the ``threat`` config section of a weights file imported as a run."""
        return {"norm": self.norm, "eps": self.eps, "steps": self.steps, "step_size": self.step_size}

    def apply(self, threat: ThreatModel) -> ThreatModel:
        """``threat`` with the given norm, radius (step size scaled with it), steps (step size scaled to keep
        steps x step size) and step size replaced."""
        if self.norm is not None:
            threat = replace(threat, norm=self.norm)
        if self.eps is not None:
            if self.eps < 0:
                raise ThreatError(f"--eps must be >= 0, got {self.eps}")
            threat = threat.with_eps(self.eps)
        if self.steps is not None:
            if self.steps < 1:
                raise ThreatError(f"--attack-steps must be >= 1, got {self.steps}")
            threat = replace(threat, steps=self.steps, step_size=threat.step_size * threat.steps / self.steps)
        return threat if self.step_size is None else replace(threat, step_size=self.step_size)


def linf_l2_budgets(threat: ThreatModel, dim: int, eps_linf: float | None = None,
                    eps_l2: float | None = None) -> tuple[float, float]:
    """An L-inf and an L2 radius for comparing the two geometries on inputs of ``dim`` values: those given,
    else the run's own (``threat``), else converted from the other by eps_l2 = eps_linf * sqrt(dim) / 4
    (a quarter of the L2 length of the L-inf ball's corner). Raises :class:`ThreatError` when nothing
    says a radius (no radius given and the run trained at eps 0)."""
    own = {threat.norm: threat.eps} if threat.eps > 0 else {}
    if not own and eps_linf is None and eps_l2 is None:
        raise ThreatError("trained with eps 0 (no attack), so it has no budget to analyse at; "
                          "give one with --eps-linf and/or --eps-l2")
    root_d = math.sqrt(dim)
    linf = eps_linf if eps_linf is not None else own.get("linf", (eps_l2 or own.get("l2", 0.0)) * 4 / root_d)
    l2 = eps_l2 if eps_l2 is not None else own.get("l2", linf * root_d / 4)
    return linf, l2
