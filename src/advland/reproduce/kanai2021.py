"""kanai2021 (SPEC §9 g–h): the gradient's Lipschitz estimate under L∞ vs L2, and EntropySGD vs SGD in AT."""

from __future__ import annotations

import math

import torch

from .. import landscape as L
from ..attacks import pgd
from ..plots.reproduce import plot_bars
from .common import Finding, Suite, combine, mean_std, spread_verdict

PAPER = "kanai2021"
ENTROPY_SGD = ("optimizer.name=entropy_sgd", "optimizer.lr=1.0", "optimizer.nesterov=true", "optimizer.L=5",
               "optimizer.gamma0=0.03", "optimizer.inner_lr=0.1")
"""configs/digits/at_entropysgd.yaml's EntropySGD settings (chosen on validation, docs there)."""


def matched_l2_eps(suite: Suite, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The L2 budget matched to the L∞ one: the mean ‖δ‖₂ of the L∞-PGD perturbations at this model."""
    torch.manual_seed(0)
    delta = pgd(model, x, y, suite.threat()) - x
    return delta.flatten(1).norm(dim=1).mean().item()


def _lipschitz_pair(suite: Suite, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """Mean Lipschitz estimates under L∞ ε and under L2 at the matched and at the enclosing (ε√d) budget."""
    eps2 = matched_l2_eps(suite, model, x, y)
    enclosing = suite.data.eps * math.sqrt(x[0].numel())
    lip = {name: L.gradient_lipschitz(model, x, y, threat, n_directions=2, seed=seed).mean
           for name, threat in (("linf", suite.threat()), ("l2_matched", suite.threat(eps2, "l2")),
                                ("l2_enclosing", suite.threat(enclosing, "l2")))}
    return {**lip, "l2_matched_eps": eps2, "l2_enclosing_eps": enclosing}


def lipschitz(suite: Suite) -> Finding:
    """(g) on the AT (L∞) models and the clean models of the ε sweep, at their last weights."""
    x, y = suite.analysis_data()
    seeds = suite.profile.seeds
    suite.log("kanai2021 (g): gradient Lipschitz estimates under L∞ and L2")
    table = {kind: [_lipschitz_pair(suite, suite.model(suite.at_run(s, eps)), x, y, s) for s in seeds]
             for kind, eps in (("AT", None), ("clean", 0.0))}
    measured = {kind: {k: mean_std([r[k] for r in rows]) for k in rows[0]} for kind, rows in table.items()}
    verdicts = [spread_verdict([math.log(r["linf"] / r["l2_matched"]) for r in table[kind]],
                               f"{kind} models: log(Lip L∞ / Lip L2 at the matched budget)") for kind in table]
    verdict, reason = combine(verdicts)
    figure = plot_bars({f"{kind} {k}": [r[k] for r in rows] for kind, rows in table.items()
                        for k in ("linf", "l2_matched", "l2_enclosing")},
                       suite.figures / "kanai2021_g_lipschitz.png", ylabel="‖∇L(θ+Δ) − ∇L(θ)‖ / ‖Δ‖",
                       title="gradient Lipschitz estimate")
    return Finding("g", PAPER, "The gradient's Lipschitz estimate of the adversarial loss is larger under L∞ than "
                   "under L2 at comparable budgets.", measured,
                   {"eps_linf": suite.data.eps, "matching": "L2 ε = mean ‖δ‖₂ of the L∞-PGD perturbations at the same "
                    "model (equal Euclidean size); also reported: ε√d, the L2 ball enclosing the L∞ ball",
                    "radius": "‖Δ‖ = 0.01‖θ‖, 2 random directions, attack re-run at θ + Δ",
                    "models": "last weights of the ε-sweep runs (AT at ε and clean)", "seeds": list(seeds)},
                   verdict, reason, [figure.name])


def entropy_sgd(suite: Suite) -> Finding:
    """(h) test robust accuracy of AT with EntropySGD vs SGD, at equal gradient evaluations and equal updates."""
    seeds = suite.profile.seeds
    updates_epochs = max(1, math.ceil(suite.epochs / 5))
    suite.log("kanai2021 (h): AT with EntropySGD vs SGD")
    runs = {"SGD": [suite.at_run(s) for s in seeds],
            "EntropySGD": [suite.run(f"esgd_s{s}", [*ENTROPY_SGD, f"seed={s}"]) for s in seeds],
            "SGD, equal updates": [suite.run(f"at_updates_s{s}", [f"epochs={updates_epochs}", f"seed={s}"])
                                   for s in seeds]}
    acc = {k: [r.summary()["test_robust_acc"] for r in rs] for k, rs in runs.items()}
    evals = {k: mean_std([sum(m["grad_evals"] for m in r.metrics()) for r in rs])[0] for k, rs in runs.items()}
    measured = {k: {"test_robust_acc": mean_std(v), "grad_evals": evals[k]} for k, v in acc.items()}
    verdict, reason = combine([
        spread_verdict([e - s for e, s in zip(acc["EntropySGD"], acc["SGD"])],
                       "EntropySGD − SGD robust accuracy at equal epochs and gradient evaluations"),
        spread_verdict([e - s for e, s in zip(acc["EntropySGD"], acc["SGD, equal updates"])],
                       "EntropySGD − SGD robust accuracy at equal parameter updates")])
    figure = plot_bars(acc, suite.figures / "kanai2021_h_entropysgd.png", ylabel="test robust accuracy (PGD)",
                       title="AT: EntropySGD vs SGD")
    return Finding("h", PAPER, "EntropySGD improves robust accuracy over SGD in adversarial training.", measured,
                   {"epochs": suite.epochs, "entropy_sgd": list(ENTROPY_SGD), "seeds": list(seeds),
                    "budgets": "in this trainer an EntropySGD epoch uses each minibatch once (L = 5 inner steps per "
                    "update), so equal epochs = equal gradient evaluations (grad_evals measured); 'equal updates' "
                    f"trains SGD for {updates_epochs} epochs, as many parameter updates as EntropySGD makes"},
                   verdict, reason, [figure.name])


def run(suite: Suite) -> list[Finding]:
    """All kanai2021 findings, (g) and (h)."""
    return [lipschitz(suite), entropy_sgd(suite)]
