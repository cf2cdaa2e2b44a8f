"""One PGD engine, parametrized by a threat model and the loss it maximizes.

FGSM with random start is PGD with one step (see :func:`advland.threat.fgsm_rs`). Attacks take
gradients with respect to the input only (``torch.autograd.grad``), with the parameters frozen while
they attack (:func:`frozen`), so parameter gradients are neither accumulated nor computed.

Two uses, two outputs: :func:`pgd` returns adversarial inputs (the last iterate, or per example
the worst restart) for training; :func:`pgd_correct` is the evaluation attack and returns whether
each example survived *every* point the attack visited: the clean input, every iterate of every
restart and the final points. An example one iterate fooled is broken even if the attack later
stepped away from the fooling point. It reads the logits the attack's forward already computed at
each iterate, so it costs no extra forward per step.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .threat import ThreatModel

AttackLoss = Literal["ce", "cw", "kl"]
BNMode = Literal["eval", "train"]
ATTACK_LOSSES: tuple[str, ...] = ("ce", "cw", "kl")


def cw_margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example CW margin max_{k != y} z_k - z_y (positive means misclassified)."""
    true_logit = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.scatter(1, y[:, None], float("-inf"))
    return others.amax(dim=1) - true_logit


def kl_to_clean(logits: torch.Tensor, clean_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-example KL(p_clean || p(x')) (TRADES' inner objective)."""
    log_probs = F.log_softmax(logits, dim=1)
    return (clean_log_probs.exp() * (clean_log_probs - log_probs)).sum(dim=1)


def per_example_loss(
    loss: AttackLoss,
    logits: torch.Tensor,
    y: torch.Tensor,
    clean_log_probs: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """The attack objective per example, shape (N,): larger is better for the attacker. ``label_smoothing``
    smooths the ce targets as :func:`torch.nn.functional.cross_entropy` does (0: the plain cross-entropy)."""
    if loss == "ce":
        return F.cross_entropy(logits, y, reduction="none", label_smoothing=label_smoothing)
    if loss == "cw":
        return cw_margin(logits, y)
    if loss == "kl":
        if clean_log_probs is None:
            raise ValueError("the kl attack loss needs the clean log-probabilities")
        return kl_to_clean(logits, clean_log_probs)
    raise ValueError(f"attack loss must be one of {', '.join(ATTACK_LOSSES)}, got {loss!r}")


@contextmanager
def bn_mode(model: nn.Module, mode: BNMode) -> Iterator[None]:
    """Run a block with the model in eval or train mode, restoring every module's flag after."""
    flags = {m: m.training for m in model.modules()}
    model.train(mode == "train")
    try:
        yield
    finally:
        for module, flag in flags.items():
            module.training = flag


@contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Run a block with the model's parameters not requiring gradients, restoring them after. An attack needs
    only input gradients: eager autograd prunes the weight gradients anyway, but a compiled model's backward
    graph computes the gradient of every input that requires one, and on the CPU measured 0.67× eager speed
    with the parameters requiring gradients, 1.25× frozen (PreActResNet-18, docs/performance.md)."""
    params = [p for p in model.parameters() if p.requires_grad]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param in params:
            param.requires_grad_(True)


def pgd(
    model: nn.Module | Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    loss: AttackLoss = "ce",
    start: Literal["uniform", "gaussian", "none"] = "uniform",
    mode: BNMode | None = "eval",
    generator: torch.Generator | None = None,
    scale: float = 1.0,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Projected gradient ascent on ``loss`` inside ``threat``; returns detached adversarial inputs.

    Args:
        model: maps inputs in [0, 1] to logits.
        start: "uniform" draws the threat model's random start, "gaussian" starts at
            x + 0.001 * N(0, I) (TRADES), "none" starts at x.
        mode: "eval" or "train" puts the model in that mode while attacking (restored after);
            None leaves the mode alone (for callables that are not modules).
        generator: source of the random starts (default: the global RNG); one generator per
            attack makes attacks reproducible when several run at once in threads.
        scale: factor on the objective before the input gradient is taken (every ascent step is
            invariant to it); > 1 keeps reduced-precision backward passes from underflowing to 0
            (see :mod:`advland.accel`).
        label_smoothing: smoothing of the ce objective's targets (training attacks that maximize the
            smoothed loss; 0, the default, maximizes the plain cross-entropy).

    The attack runs on the model's device (``x`` and ``y`` are moved there when ``model`` is a
    module with parameters) and the adversarial inputs are returned on ``x``'s device.

    With ``threat.restarts > 1`` the per-example worst case is kept: a misclassifying restart
    beats a correct one, and among equals the larger loss wins.
    """
    if not threat.active:
        return x.detach().clone()
    return _on_model_device(model, x, y, mode,
                            lambda xd, yd: _pgd_restarts(model, xd, yd, threat, loss, start, generator, scale,
                                                                label_smoothing))


def _on_model_device(model, x: torch.Tensor, y: torch.Tensor, mode: BNMode | None,
                     attack: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``attack(x, y)`` with x, y on the model's device and the model in ``mode``; the result on ``x``'s device."""
    home = x.device
    x = x.detach()
    device = model_device(model)
    if device is not None:
        x, y = x.to(device), y.to(device)
    if not isinstance(model, nn.Module):
        return attack(x, y).to(home)
    with frozen(model), (bn_mode(model, mode) if mode is not None else nullcontext()):
        return attack(x, y).to(home)


def model_device(model: nn.Module | Callable[[torch.Tensor], torch.Tensor]) -> torch.device | None:
    """The device of a module's first parameter; None for a plain callable or a module without parameters."""
    if not isinstance(model, nn.Module):
        return None
    first = next(model.parameters(), None)
    return None if first is None else first.device


def _pgd_restarts(model, x, y, threat, loss, start, generator, scale, smoothing=0.0) -> torch.Tensor:
    clean_log_probs = None
    if loss == "kl":
        with torch.no_grad():
            clean_log_probs = F.log_softmax(model(x), dim=1)
    best_x, best_score = None, None
    for _ in range(threat.restarts):
        x_adv = _pgd_once(model, x, y, threat, loss, start, clean_log_probs, generator, scale, smoothing=smoothing)
        if threat.restarts == 1:
            return x_adv
        with torch.no_grad():
            logits = model(x_adv)
            wrong = (logits.argmax(1) != y).to(x.dtype)
            score = wrong * 1e6 + per_example_loss(loss, logits, y, clean_log_probs, smoothing).clamp(-1e5, 1e5)
        if best_x is None:
            best_x, best_score = x_adv, score
        else:
            better = score > best_score
            best_x = torch.where(better.reshape(-1, *([1] * (x.dim() - 1))), x_adv, best_x)
            best_score = torch.maximum(score, best_score)
    return best_x


def pgd_correct(model: nn.Module | Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                threat: ThreatModel, *, loss: AttackLoss = "ce", start: Literal["uniform", "gaussian", "none"] = "uniform",
                mode: BNMode | None = "eval", generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
    """Evaluation PGD: boolean mask (N,) on ``x``'s device, True where the model classifies the example
    correctly at the clean input and at every iterate and final point of every restart (arguments as :func:`pgd`)."""
    return _on_model_device(model, x, y, mode,
                            lambda xd, yd: _correct_everywhere(model, xd, yd, threat, loss, start, generator, scale))


def _correct_everywhere(model, x, y, threat, loss, start, generator, scale) -> torch.Tensor:
    with torch.no_grad():
        clean_logits = model(x)
    fooled = clean_logits.argmax(1) != y
    if not threat.active:
        return ~fooled
    clean_log_probs = F.log_softmax(clean_logits, dim=1) if loss == "kl" else None
    for _ in range(threat.restarts):
        x_adv = _pgd_once(model, x, y, threat, loss, start, clean_log_probs, generator, scale, fooled)
        with torch.no_grad():
            fooled |= model(x_adv).argmax(1) != y
    return ~fooled


def _pgd_once(model, x, y, threat, loss, start, clean_log_probs, generator, scale, fooled=None,
              smoothing=0.0) -> torch.Tensor:
    """One PGD run from a fresh start; with ``fooled`` (N,) given, examples misclassified at an iterate are marked in it."""
    if start == "uniform":
        x_adv = threat.random_start(x, generator)
    elif start == "gaussian":
        x_adv = threat.project(x + 0.001 * torch.empty_like(x).normal_(generator=generator), x)
    else:
        x_adv = x.clone()
    for _ in range(threat.steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            logits = model(x_adv)
            objective = per_example_loss(loss, logits, y, clean_log_probs, smoothing).sum() * scale
            (grad,) = torch.autograd.grad(objective, x_adv)
        if fooled is not None:
            fooled |= logits.detach().argmax(1) != y
        x_adv = threat.project(threat.ascent_step(x_adv.detach(), grad), x).detach()
    return x_adv
