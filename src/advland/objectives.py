"""Training objectives: how a method turns (model, x, y) into adversarial inputs and a loss.

Every objective has two halves, kept apart so that weight perturbation (AWP) can re-evaluate
the loss at perturbed weights on the same adversarial inputs, and EntropySGD can craft fresh
ones at every inner step:

* ``perturb(model, x, y, threat, mode)`` crafts adversarial inputs (no parameter gradients);
* ``loss(model, x, x_adv, y)`` returns the differentiable training loss and the logits on x_adv.

Standard training is the ``clean`` objective, the eps = 0 case of the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .attacks import BNMode, kl_to_clean, pgd
from .threat import ThreatModel


@dataclass
class LossOutput:
    loss: torch.Tensor
    """Scalar training loss (differentiable w.r.t. the model's parameters)."""
    logits_adv: torch.Tensor
    """Logits on the adversarial inputs, for the training robust accuracy."""
    logits_clean: torch.Tensor | None = None
    """Logits on the clean inputs where the loss computes them anyway (TRADES, MART), for the training
    clean accuracy at no extra cost (None: the trainer takes one extra no-grad forward)."""


class Objective(Protocol):
    name: str

    def perturb(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, mode: BNMode, scale: float = 1.0
    ) -> torch.Tensor:
        """Adversarial inputs; ``scale`` multiplies the attack objective before its input gradient
        (:attr:`advland.accel.Accel.attack_scale`: fp16 training)."""
        ...

    def loss(self, model: nn.Module, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> LossOutput: ...


Start = Literal["uniform", "gaussian", "none"]
"""Where the training attack starts: uniform in the ball, x + 0.001 * N(0, I), or x itself."""


class CEAdversarial:
    """Shared crafting of the CE-PGD objectives (AT and MART), from the objective's ``start``."""

    start: Start

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        return pgd(model, x, y, threat, loss="ce", start=self.start, mode=mode, scale=scale)


@dataclass
class Clean:
    """Standard training: CE on clean inputs (x_adv is x)."""

    name: str = "clean"

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        return x

    def loss(self, model, x, x_adv, y):
        logits = model(x_adv)
        return LossOutput(F.cross_entropy(logits, y), logits)


@dataclass
class AT(CEAdversarial):
    """Madry et al. (2018): minimize CE(f(x'), y), x' from CE-PGD."""

    name: str = "at"
    start: Start = "uniform"

    def loss(self, model, x, x_adv, y):
        logits = model(x_adv)
        return LossOutput(F.cross_entropy(logits, y), logits)


@dataclass
class TRADES:
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(p(x) || p(x')), KL averaged over the batch.

    x' maximizes KL(p(x) || p(x')) starting at x + 0.001 * N(0, I).
    """

    beta: float = 6.0
    name: str = "trades"
    start: Start = "gaussian"

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        return pgd(model, x, y, threat, loss="kl", start=self.start, mode=mode, scale=scale)

    def loss(self, model, x, x_adv, y):
        logits_clean = model(x)
        logits_adv = model(x_adv)
        kl = kl_to_clean(logits_adv, F.log_softmax(logits_clean, dim=1)).mean()
        return LossOutput(F.cross_entropy(logits_clean, y) + self.beta * kl, logits_adv, logits_clean)


@dataclass
class MART(CEAdversarial):
    """Wang et al. (2020): BCE(p(x'), y) + lam * mean_i[KL(p(x_i) || p(x'_i)) * (1 - p_y(x_i))].

    BCE = -log p_y(x') - log(1 - max_{k != y} p_k(x')); x' from CE-PGD. The attack starts uniformly in
    the ball by default, as AT's does; the official MART code starts at x + 0.001 * N(0, I)
    (``start="gaussian"``, config ``objective.start=gaussian``).
    """

    lam: float = 6.0
    name: str = "mart"
    start: Start = "uniform"

    def loss(self, model, x, x_adv, y):
        logits_clean = model(x)
        logits_adv = model(x_adv)
        probs_adv = F.softmax(logits_adv, dim=1)
        top_wrong = probs_adv.scatter(1, y[:, None], 0.0).amax(dim=1)
        bce = F.cross_entropy(logits_adv, y) - torch.log((1.0 - top_wrong).clamp_min(1e-12)).mean()
        log_probs_clean = F.log_softmax(logits_clean, dim=1)
        true_prob_clean = log_probs_clean.exp().gather(1, y[:, None]).squeeze(1)
        kl = kl_to_clean(logits_adv, log_probs_clean)
        return LossOutput(bce + self.lam * (kl * (1.0 - true_prob_clean)).mean(), logits_adv, logits_clean)


OBJECTIVES: tuple[str, ...] = ("clean", "at", "trades", "mart")


def create_objective(name: str, *, beta: float = 6.0, lam: float = 6.0, start: Start | None = None) -> Objective:
    """Build an objective by name: clean, at, trades (beta) or mart (lam); ``start`` overrides where its
    training attack starts (default: the method's own, see :data:`Start`)."""
    chosen = {} if start is None else {"start": start}
    if name == "clean":
        return Clean()
    if name == "at":
        return AT(**chosen)
    if name == "trades":
        return TRADES(beta=beta, **chosen)
    if name == "mart":
        return MART(lam=lam, **chosen)
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
