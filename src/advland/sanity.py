"""Automatic sanity checks of a robustness evaluation (Carlini et al. 2019, SPEC §7).

Each check returns a :class:`Check` with the numbers behind its verdict:

* robust accuracy does not rise as eps grows, and reaches chance (or below) at a very large eps;
* more PGD steps and restarts do not raise robust accuracy;
* input gradients are neither zero nor NaN (no gradient masking by saturation);
* black-box Square is not stronger than the white-box attacks (read from AutoAttack's own check).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .evaluate import correct_under_attack, eval_threat
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


def check_black_box(warnings: list[str], ran_autoattack: bool) -> Check | None:
    """AutoAttack warns when Square (black-box) beats its white-box attacks; None if AutoAttack did not run."""
    if not ran_autoattack:
        return None
    flagged = [w for w in warnings if "square" in w.lower() or "black-box" in w.lower()]
    return Check("black_box_weaker", not flagged,
                 "Square is not stronger than the white-box attacks" if not flagged else flagged[0], {})


def run_sanity_checks(model: nn.Module, x, y, *, norm: Norm, eps: float, num_classes: int,
                      autoattack_warnings: list[str] | None = None, batch_size: int = 500) -> list[Check]:
    """All checks on (x, y); pass AutoAttack's warnings when it ran."""
    model.eval()
    checks = [
        check_eps_monotone(model, x, y, norm, eps, num_classes, batch_size),
        check_more_steps(model, x, y, norm, eps, batch_size),
        check_gradients(model, x, y, batch_size),
    ]
    black_box = check_black_box(autoattack_warnings or [], autoattack_warnings is not None)
    return checks + ([black_box] if black_box else [])
