"""Automatic sanity checks of a robustness evaluation (Carlini et al. 2019).

Each check returns a :class:`Check` with the numbers behind its verdict:

* robust accuracy does not rise as eps grows, and reaches chance (or below) at a very large eps;
* more PGD steps and restarts do not raise robust accuracy;
* input gradients are neither zero nor NaN (no gradient masking by saturation);
* the outputs are logits, not probabilities or log-probabilities (attacks on softmax outputs are weak);
* AutoAttack's own checks (its ``checks`` module, run on the model and read from its run): randomized
  outputs, outputs that look like probabilities, dynamic models (a forward pass that computes
  gradients), too few classes for its attacks, points with zero gradient, and the black-box Square
  attack beating the white-box ones. Their names start with ``autoattack_``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from pyautoattack import checks as aa
from torch import nn

from .conventions import output_kind
from .evaluate import _AsImage, _Collect, _image_view, correct_under_attack, eval_threat
from .threat import Norm

TOLERANCE = 0.01
"""Accuracy slack (1 point) for the monotonicity checks: random starts make PGD slightly noisy."""


@dataclass
class Check:
    name: str
    passed: bool
    detail: str
    numbers: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def _robust_acc(model, x, y, norm, eps, steps, restarts=1, batch_size=500) -> float:
    threat = eval_threat(norm, eps, steps, restarts)
    return correct_under_attack(model, x, y, threat, batch_size=batch_size).float().mean().item()


def check_eps_monotone(model: nn.Module, x, y, norm: Norm, eps: float, num_classes: int, batch_size: int = 500) -> Check:
    """PGD-20 accuracy at eps x (0.5, 1, 2, 4) and at the largest meaningful radius (whole box)."""
    largest = {"linf": 1.0, "l2": float(x[0].numel()) ** 0.5, "l1": float(x[0].numel())}[norm]
    radii = [eps * f for f in (0.5, 1.0, 2.0, 4.0)] + [largest]
    accs = [_robust_acc(model, x, y, norm, r, 20, batch_size=batch_size) for r in radii]
    monotone = all(b <= a + TOLERANCE for a, b in zip(accs, accs[1:]))
    chance = accs[-1] <= 1.0 / num_classes + TOLERANCE
    detail = "robust accuracy falls as eps grows and reaches chance" if monotone and chance else (
        "robust accuracy rises with eps" if not monotone else "robust accuracy stays above chance at the whole-box radius")
    return Check("eps_sweep", monotone and chance, detail, {f"eps={r:.4g}": a for r, a in zip(radii, accs)})


def check_more_steps(model: nn.Module, x, y, norm: Norm, eps: float, batch_size: int = 500) -> Check:
    """PGD-20 vs PGD-100 vs PGD-100 with 5 restarts: accuracy must not rise."""
    accs = {
        "pgd20": _robust_acc(model, x, y, norm, eps, 20, batch_size=batch_size),
        "pgd100": _robust_acc(model, x, y, norm, eps, 100, batch_size=batch_size),
        "pgd100x5": _robust_acc(model, x, y, norm, eps, 100, restarts=5, batch_size=batch_size),
    }
    ok = accs["pgd100"] <= accs["pgd20"] + TOLERANCE and accs["pgd100x5"] <= accs["pgd100"] + TOLERANCE
    return Check("more_steps", ok, "stronger PGD is not weaker" if ok else "more steps/restarts raised accuracy", accs)


def check_gradients(model: nn.Module, x, y, batch_size: int = 500) -> Check:
    """Fraction of examples whose input gradient of the CE loss is exactly zero or not finite."""
    device = next(model.parameters()).device
    zero = bad = 0
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        xb = xb.to(device).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xb), yb.to(device), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
        flat = grad.reshape(len(xb), -1)
        bad += (~torch.isfinite(flat).all(dim=1)).sum().item()
        zero += (flat.abs().amax(dim=1) == 0).sum().item()
    numbers = {"zero_gradient_fraction": zero / len(y), "nonfinite_gradient_fraction": bad / len(y)}
    ok = bad == 0 and zero / len(y) < 0.05
    return Check("gradients", ok, "input gradients are finite and non-zero" if ok else "zero or NaN input gradients", numbers)


def check_logits(model: nn.Module, x, batch_size: int = 500) -> Check:
    """Whether the outputs are logits (attacks on probabilities or log-probabilities are weak)."""
    device = next(model.parameters()).device
    with torch.no_grad():
        kind = output_kind(model(x[:batch_size].to(device)))
    ok = kind == "logits"
    after = " after exp" if kind == "log-probabilities" else ""
    detail = ("the outputs are logits" if ok else f"the outputs look like {kind} (every row sums to 1{after}); "
              f"attacks on them are weak: return the logits before the softmax")
    return Check("logits", ok, detail, {"probability_like": float(not ok)})


AUTOATTACK_CHECKS: dict[str, tuple[str, str]] = {
    "randomized": ("randomized defense", "two identical forward passes give the same outputs"),
    "probability_output": ("probability distribution", "the outputs are not a probability distribution"),
    "dynamic": ("dynamic defense", "the forward pass computes no gradients (not a dynamic defense)"),
    "n_classes": ("classes", "enough classes for its attacks"),
    "zero_gradients": ("zero gradient", "no point with zero gradient in its attacks"),
    "black_box_weaker": ("square attack", "Square is not stronger than the white-box attacks"),
}
"""AutoAttack's checks: the name advland gives each, the words its warning contains, the detail when it passed."""


def autoattack_checks(model: nn.Module, x, y, *, num_classes: int, autoattack_warnings: list[str] | None = None,
                      aa_version: str = "standard", batch_size: int = 500) -> list[Check]:
    """AutoAttack's own checks: randomized outputs, probability outputs, dynamic model and number of classes
    run here with its ``checks`` module on the first batch; zero gradients and Square beating the white-box
    attacks read from the warnings of its run (only when it ran)."""
    device = next(model.parameters()).device
    model.eval()
    wrapped = _AsImage(model, tuple(x.shape[1:])).eval()
    xb, yb = _image_view(x[:batch_size]).to(device), y[:batch_size].to(device)
    collector = _Collect()
    logger = logging.getLogger("advland.autoattack_checks")
    logger.addHandler(collector)
    logger.propagate = False
    aa.funcs.update(dict.fromkeys(aa.funcs, 0))  # its call counter is global and never reset between models
    try:
        aa.check_randomized(wrapped, xb, yb, bs=batch_size, logger=logger)
        aa.check_range_output(wrapped, xb, logger=logger)
        aa.check_dynamic(wrapped, xb, False, logger=logger)
        targets = min(9, num_classes - 1)
        attacks = {"standard": ["apgd-ce", "apgd-t", "fab-t", "square"], "rand": ["apgd-ce", "apgd-dlr"]}.get(
            aa_version, ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"])
        aa.check_n_classes(num_classes, attacks, targets, targets, logger=logger)
    finally:
        logger.removeHandler(collector)
    messages = collector.messages
    names = ["randomized", "probability_output", "dynamic", "n_classes"]
    if autoattack_warnings is not None:
        messages = messages + list(autoattack_warnings)
        names += ["zero_gradients", "black_box_weaker"]
    checks = []
    for name in names:
        words, fine = AUTOATTACK_CHECKS[name]
        flagged = [m for m in messages if words in m.lower()]
        passed = not flagged or (name == "randomized" and aa_version == "rand")
        detail = fine if not flagged else flagged[0].removeprefix("autoattack: ")
        if flagged and passed:
            detail += " (evaluated with the rand version)"
        checks.append(Check(f"autoattack_{name}", passed, detail, {"flagged": float(bool(flagged))}))
    return checks


def run_sanity_checks(model: nn.Module, x, y, *, norm: Norm, eps: float, num_classes: int,
                      autoattack_warnings: list[str] | None = None, aa_version: str = "standard",
                      batch_size: int = 500) -> list[Check]:
    """All checks on (x, y); pass AutoAttack's warnings when it ran (and the version it ran)."""
    model.eval()
    checks = [
        check_eps_monotone(model, x, y, norm, eps, num_classes, batch_size),
        check_more_steps(model, x, y, norm, eps, batch_size),
        check_gradients(model, x, y, batch_size),
        check_logits(model, x, batch_size),
    ]
    return checks + autoattack_checks(model, x, y, num_classes=num_classes, autoattack_warnings=autoattack_warnings,
                                      aa_version=aa_version, batch_size=batch_size)
