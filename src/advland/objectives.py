"""Training objectives: how a method turns (model, x, y) into adversarial inputs and a loss.

Every objective has two halves, kept apart so that weight perturbation (AWP) can re-evaluate
the loss at perturbed weights on the same adversarial inputs, and EntropySGD can craft fresh
ones at every inner step:

* ``perturb(model, x, y, threat, mode)`` crafts adversarial inputs (no parameter gradients);
* ``loss(model, x, x_adv, y)`` returns the differentiable training loss and the logits on x_adv.

Standard training is the ``clean`` objective, the eps = 0 case of the same code path.

Label smoothing (``label_smoothing`` = s, Szegedy et al. 2016) replaces the one-hot target of every
cross-entropy term of the *training loss* by (1 - s)·onehot(y) + s/K (K classes), exactly as
``torch.nn.functional.cross_entropy(label_smoothing=s)``: AT's CE(f(x'), y), TRADES' CE(f(x), y) and
the CE part -log p_y(x') of MART's BCE (its margin term -log(1 - max_{k != y} p_k(x')) and the KL terms
keep their form). The training attack keeps maximizing the *unsmoothed* CE by default: the inner
maximization approximates the worst case of the model's prediction, which is what evaluation
attacks and robust accuracy measure, and a smoothed objective also rewards pushing the output
towards the uniform distribution rather than towards a wrong class. ``smooth_attack=True`` makes
the CE attacks of AT and MART maximize the smoothed loss instead; TRADES' attack maximizes a KL
that has no labels and is unaffected.
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
    """Shared crafting of the CE-PGD objectives (AT and MART), from the objective's ``start``; the attack's
    CE is smoothed only when ``smooth_attack`` is set."""

    start: Start
    label_smoothing: float
    smooth_attack: bool

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        smoothing = self.label_smoothing if self.smooth_attack else 0.0
        return pgd(model, x, y, threat, loss="ce", start=self.start, mode=mode, scale=scale, label_smoothing=smoothing)


@dataclass
class Clean:
    """Standard training: CE on clean inputs (x_adv is x)."""

    name: str = "clean"
    label_smoothing: float = 0.0

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        return x

    def loss(self, model, x, x_adv, y):
        logits = model(x_adv)
        return LossOutput(F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits)


@dataclass
class AT(CEAdversarial):
    """Madry et al. (2018): minimize CE(f(x'), y), x' from CE-PGD."""

    name: str = "at"
    start: Start = "uniform"
    label_smoothing: float = 0.0
    smooth_attack: bool = False

    def loss(self, model, x, x_adv, y):
        logits = model(x_adv)
        return LossOutput(F.cross_entropy(logits, y, label_smoothing=self.label_smoothing), logits)


@dataclass
class TRADES:
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(p(x) || p(x')), KL averaged over the batch.

    x' maximizes KL(p(x) || p(x')) starting at x + 0.001 * N(0, I).
    """

    beta: float = 6.0
    name: str = "trades"
    start: Start = "gaussian"
    label_smoothing: float = 0.0

    def perturb(self, model, x, y, threat, mode, scale=1.0):
        return pgd(model, x, y, threat, loss="kl", start=self.start, mode=mode, scale=scale)

    def loss(self, model, x, x_adv, y):
        logits_clean = model(x)
        logits_adv = model(x_adv)
        kl = kl_to_clean(logits_adv, F.log_softmax(logits_clean, dim=1)).mean()
        ce = F.cross_entropy(logits_clean, y, label_smoothing=self.label_smoothing)
        return LossOutput(ce + self.beta * kl, logits_adv, logits_clean)


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
    label_smoothing: float = 0.0
    smooth_attack: bool = False

    def loss(self, model, x, x_adv, y):
        logits_clean = model(x)
        logits_adv = model(x_adv)
        probs_adv = F.softmax(logits_adv, dim=1)
        top_wrong = probs_adv.scatter(1, y[:, None], 0.0).amax(dim=1)
        ce = F.cross_entropy(logits_adv, y, label_smoothing=self.label_smoothing)
        bce = ce - torch.log((1.0 - top_wrong).clamp_min(1e-12)).mean()
        log_probs_clean = F.log_softmax(logits_clean, dim=1)
        true_prob_clean = log_probs_clean.exp().gather(1, y[:, None]).squeeze(1)
        kl = kl_to_clean(logits_adv, log_probs_clean)
        return LossOutput(bce + self.lam * (kl * (1.0 - true_prob_clean)).mean(), logits_adv, logits_clean)


OBJECTIVES: tuple[str, ...] = ("clean", "at", "trades", "mart")


def create_objective(name: str, *, beta: float = 6.0, lam: float = 6.0, start: Start | None = None,
                     label_smoothing: float = 0.0, smooth_attack: bool = False) -> Objective:
    """Build an objective by name: clean, at, trades (beta) or mart (lam); ``start`` overrides where its
    training attack starts (default: the method's own, see :data:`Start`); ``label_smoothing`` smooths the
    targets of the loss's cross-entropy terms, and of the CE attack too with ``smooth_attack`` (AT and MART;
    see the module's docstring)."""
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
    if smooth_attack and name not in ("at", "mart"):
        raise ValueError(f"smooth_attack applies to the CE attacks of at and mart, not to {name!r}")
    chosen = {} if start is None else {"start": start}
    ce_attack = {"label_smoothing": label_smoothing, "smooth_attack": smooth_attack}
    if name == "clean":
        return Clean(label_smoothing=label_smoothing)
    if name == "at":
        return AT(**chosen, **ce_attack)
    if name == "trades":
        return TRADES(beta=beta, **chosen, label_smoothing=label_smoothing)
    if name == "mart":
        return MART(lam=lam, **chosen, **ce_attack)
    raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
