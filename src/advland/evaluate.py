"""Robust evaluation: clean accuracy, PGD-20, CW-20, AutoAttack (official code), worst case per example.

Conventions (SPEC §7): PGD and CW run ``steps`` iterations of step eps/4 from a random start;
AutoAttack is the official standard version (APGD-CE, APGD-T, FAB-T, Square 5000 queries) from
the ``pyautoattack`` package. The worst case counts an example as robust only if every attack
failed on it.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import AttackLoss, pgd_correct
from .threat import Norm, ThreatModel

ATTACKS: tuple[str, ...] = ("pgd", "cw", "autoattack")


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels, computed in batches without gradients, on the model's device."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(xb.to(device)).argmax(1).cpu() for xb in x.split(batch_size)])


def correct_under_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    loss: AttackLoss = "ce",
    batch_size: int = 500,
) -> torch.Tensor:
    """Boolean mask (N,): whether the model classifies each example correctly at every point PGD
    visited (clean input, every iterate of every restart: :func:`advland.attacks.pgd_correct`)."""
    device = next(model.parameters()).device
    masks = []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        masks.append(pgd_correct(model, xb.to(device), yb.to(device), threat, loss=loss, mode="eval").cpu())
    return torch.cat(masks) if masks else torch.zeros(0, dtype=torch.bool)


def eval_threat(norm: Norm, eps: float, steps: int = 20, restarts: int = 1) -> ThreatModel:
    """The evaluation PGD of SPEC §7: ``steps`` iterations of step eps/4 with random start."""
    return ThreatModel(norm=norm, eps=eps, step_size=eps / 4, steps=steps, restarts=restarts)


class _AsImage(nn.Module):
    """Present (N, D) or (N, C, L) inputs to AutoAttack as images (N, C, 1, L); Square needs 4-D."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.model, self.shape = model, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], *self.shape))


def _image_view(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return x
    if x.dim() == 2:
        return x.reshape(x.shape[0], 1, 1, x.shape[1])
    return x.reshape(x.shape[0], x.shape[1], 1, -1)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _runnable_autoattack(attack, n_classes: int) -> list[str]:
    """Fit the configured AutoAttack to ``n_classes``: targeted attacks get at most n_classes - 1 target
    classes, and APGD-T (targeted DLR loss: z_y - z_t over z_pi1 - (z_pi3 + z_pi4) / 2) is dropped below
    4 classes, where it is undefined; return one line per change."""
    notes = []
    attack.apgd_targeted.n_target_classes = min(attack.apgd_targeted.n_target_classes, n_classes - 1)
    attack.fab.n_target_classes = min(attack.fab.n_target_classes, n_classes - 1)
    if "apgd-t" in attack.attacks_to_run and n_classes < 4:
        attack.attacks_to_run = [a for a in attack.attacks_to_run if a != "apgd-t"]
        notes.append(f"APGD-T cannot run with {n_classes} classes (its targeted DLR loss needs at least 4); "
                     f"ran {', '.join(a.upper() for a in attack.attacks_to_run)}")
    return notes


def autoattack_correct(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm, eps: float, *, batch_size: int = 500, seed: int = 0,
    attacks: list[str] | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Run the official AutoAttack (``pyautoattack``); return the per-example robust mask and its warnings.

    Args:
        attacks: None for the standard version (APGD-CE, APGD-T, FAB-T, Square); otherwise the
            package's ``version='custom'`` with these attacks (names as the package spells them,
            e.g. ``["apgd-ce", "square"]``).
    """
    from pyautoattack import AutoAttack

    if norm not in ("linf", "l2", "l1"):
        raise ValueError(f"AutoAttack supports linf, l2 and l1, not {norm}")
    device = next(model.parameters()).device
    wrapped = _AsImage(model, tuple(x.shape[1:])).eval()
    version = "standard" if attacks is None else "custom"
    attack = AutoAttack(wrapped, eps=eps, norm={"linf": "Linf", "l2": "L2", "l1": "L1"}[norm],
                        version=version, attacks=attacks, seed=seed, device=device)
    with torch.no_grad():
        n_classes = wrapped(_image_view(x[:1]).to(device)).shape[1]
    notes = _runnable_autoattack(attack, n_classes)
    collector = _Collect()
    logger = logging.getLogger("auto-attack")
    logger.addHandler(collector)
    try:
        x_adv, _ = attack.run_standard_evaluation(_image_view(x).to(device), y.to(device), batch_size=batch_size)
    finally:
        logger.removeHandler(collector)
    with torch.no_grad():
        pred = predict(wrapped, x_adv, batch_size)
    return pred == y.cpu(), notes + collector.messages


@dataclass
class EvalReport:
    """Accuracies in [0, 1] on n examples; ``correct`` holds the per-example masks behind them."""

    norm: str
    eps: float
    n: int
    accuracy: dict[str, float] = field(default_factory=dict)
    correct: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "n": self.n, "accuracy": self.accuracy, "warnings": self.warnings}


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Norm,
    eps: float,
    attacks: Iterable[str] = ATTACKS,
    steps: int = 20,
    restarts: int = 1,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
) -> EvalReport:
    """Clean accuracy, each attack's robust accuracy, and the per-example worst case over them."""
    attacks = list(attacks)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack {unknown[0]!r}; choose from {', '.join(ATTACKS)}")
    model.eval()
    report = EvalReport(norm=norm, eps=eps, n=len(y))
    clean = predict(model, x, batch_size) == y
    report.correct["clean"] = clean
    threat = eval_threat(norm, eps, steps, restarts)
    bar = tqdm(attacks, desc="evaluate", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        torch.manual_seed(seed)
        if name == "pgd":
            report.correct[f"pgd{steps}"] = correct_under_attack(model, x, y, threat, loss="ce", batch_size=batch_size)
        elif name == "cw":
            report.correct[f"cw{steps}"] = correct_under_attack(model, x, y, threat, loss="cw", batch_size=batch_size)
        else:
            mask, messages = autoattack_correct(model, x, y, norm, eps, batch_size=batch_size, seed=seed)
            report.correct["autoattack"] = mask
            report.warnings.extend(f"autoattack: {m}" for m in messages)
    worst = clean.clone()
    for mask in report.correct.values():
        worst &= mask
    report.correct["worst_case"] = worst
    report.accuracy = {k: v.float().mean().item() if len(v) else math.nan for k, v in report.correct.items()}
    return report
