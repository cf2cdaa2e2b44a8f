"""kanai2021 (findings g–h): the gradient's Lipschitz estimate under L∞ vs L2, and EntropySGD vs SGD in AT."""

from __future__ import annotations

import math

import numpy as np
import torch

from .. import landscape as L
from ..attacks import pgd
from ..plots.reproduce import plot_bars
from ..run import Run
from .. import stats
from .common import CHANCE, Finding, Regime, Suite, finding, mean_std

PAPER = "kanai2021"
ENTROPY_SGD = ("optimizer.name=entropy_sgd", "optimizer.lr=1.0", "optimizer.nesterov=true", "optimizer.L=5",
               "optimizer.gamma0=0.03")
"""recipes/digits/at_entropysgd.yaml's EntropySGD settings, but for the inner step, which (h) tunes."""
ENTROPY_INNER_LR = 0.1
ROBUST_MARGIN = 0.1
"""(g)'s regime: each model's test robust accuracy is at least chance + this."""


def matched_l2_eps(suite: Suite, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """The L2 budget matched to the L∞ one: the mean ‖δ‖₂ of the L∞-PGD perturbations at this model."""
    torch.manual_seed(0)
    delta = pgd(model, x, y, suite.threat()) - x
    return delta.flatten(1).norm(dim=1).mean().item()


def _lipschitz_pair(suite: Suite, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """Mean Lipschitz estimates of one model under L∞ ε and under L2 at the matched and at the enclosing (ε√d) budget."""
    eps2 = matched_l2_eps(suite, model, x, y)
    enclosing = suite.data.eps * math.sqrt(x[0].numel())
    lip = {name: L.gradient_lipschitz(model, x, y, threat, n_directions=2, seed=seed).mean
           for name, threat in (("linf", suite.threat()), ("l2_matched", suite.threat(eps2, "l2")),
                                ("l2_enclosing", suite.threat(enclosing, "l2")))}
    return {**lip, "l2_matched_eps": eps2, "l2_enclosing_eps": enclosing}


def _l2_run(suite: Suite, seed: int, eps2: float) -> Run:
    """PGD-AT under L2 at budget ``eps2``, otherwise the canonical AT run of ``seed``."""
    return suite.run(f"at_l2_eps{eps2:g}_s{seed}", ["threat.norm=l2", f"threat.eps={eps2}",
                                                    f"threat.step_size={2.5 * eps2 / suite.profile.steps}", f"seed={seed}"])


def _own_norm(suite: Suite, linf: dict, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict:
    """The paper's protocol: the L∞-trained model under L∞ against an L2-trained model (matched budget) under L2."""
    eps2 = float(f"{linf['l2_matched_eps']:.4g}")  # 4 significant digits: a stable run name
    model = suite.model(_l2_run(suite, seed, eps2))
    l2 = L.gradient_lipschitz(model, x, y, suite.threat(eps2, "l2"), n_directions=2, seed=seed).mean
    return {"linf_trained_linf": linf["linf"], "l2_trained_l2": l2, "l2_eps": eps2}


def lipschitz(suite: Suite) -> Finding:
    """(g) as in the paper, each norm on a model adversarially trained under it; and both norms on the same
    L∞-trained and clean models."""
    seeds = suite.profile.seeds
    suite.log("kanai2021 (g): gradient Lipschitz estimates under L∞ and L2")
    # every run of a seed carves the same training split: the analyses use that seed's own training examples
    data = {s: suite.analysis_data(suite.at_run(s).config()) for s in seeds}
    table = {kind: [_lipschitz_pair(suite, suite.model(suite.at_run(s, eps)), *data[s], s) for s in seeds]
             for kind, eps in (("L∞-AT", None), ("clean", 0.0))}
    own = [_own_norm(suite, row, *data[s], s) for row, s in zip(table["L∞-AT"], seeds)]
    measured = {"trained under each norm": {k: mean_std([r[k] for r in own]) for k in own[0]}}
    measured |= {f"{kind} model, both norms": {k: mean_std([r[k] for r in rows]) for k in rows[0]}
                 for kind, rows in table.items()}
    same_model = {kind: mean_std([math.log(r["linf"] / r["l2_matched"]) for r in rows])[0] for kind, rows in table.items()}
    parts = [stats.paired_test([math.log(r["linf_trained_linf"] / r["l2_trained_l2"]) for r in own],
                               "log(Lip of L∞-AT under L∞ / Lip of L2-AT under L2 at the matched budget), per seed")]
    note = ("not judged, on one model, mean log(Lip L∞ / Lip L2 matched): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in same_model.items()))
    runs = {f"L∞-AT s{s}": suite.at_run(s) for s in seeds} | {f"L2-AT s{s}": _l2_run(suite, s, r["l2_eps"])
                                                             for s, r in zip(seeds, own)}
    robust = {label: run.summary()["last_test_robust_acc"] for label, run in runs.items()}
    regime = Regime(f"comparable budgets on robust models: the L2 ε is matched to the L∞ perturbations' mean ‖δ‖₂, and "
                    f"every L∞-AT and L2-AT model is robust under its own norm (last test robust accuracy ≥ chance + "
                    f"{ROBUST_MARGIN:g})", {"least_robust_accuracy": min(robust.values()),
                                            "matched_l2_eps": mean_std([r["l2_eps"] for r in own])[0]},
                    min(robust.values()) >= CHANCE + ROBUST_MARGIN)
    bars = {"L∞-AT, L∞": [r["linf_trained_linf"] for r in own], "L2-AT, L2": [r["l2_trained_l2"] for r in own]}
    bars |= {f"{kind} {k}": [r[k] for r in rows] for kind, rows in table.items() for k in ("linf", "l2_matched")}
    figure = plot_bars(bars, suite.figures / "kanai2021_g_lipschitz.png", ylabel="‖∇L(θ+Δ) − ∇L(θ)‖ / ‖Δ‖",
                       title="gradient Lipschitz estimate")
    return finding("g", PAPER, "The gradient's Lipschitz estimate of the adversarial loss is larger under L∞ than "
                   "under L2 at comparable budgets.", measured,
                   {"eps_linf": suite.data.eps, "protocol": "judged as in the paper: each norm's adversarial loss on a "
                    "model adversarially trained under that norm (L2-AT at the matched budget, same recipe and seed); "
                    "also reported: both norms on the same L∞-AT and clean models, and the enclosing L2 ball (ε√d)",
                    "matching": "L2 ε = mean ‖δ‖₂ of the L∞-PGD perturbations at the L∞-AT model (equal Euclidean size)",
                    "radius": "‖Δ‖ = 0.01‖θ‖, 2 random directions, attack re-run at θ + Δ",
                    "models": "last weights", "seeds": list(seeds),
                    "examples": f"the first {suite.profile.analysis_n} of each seed's own training split"},
                   parts, regime, note=note, figures=[figure.name], runs=suite.health(runs),
                   smoke_test=suite.profile.smoke_test)


TUNING_FACTORS = (1.0, 2.0, 0.5, 4.0)
"""(h)'s tuning grid, the same for both arms: the factors applied to each arm's own learning rate (SGD's learning
rate; EntropySGD's inner SGLD step), the first ``tuning_trials`` of them."""
TUNING_SEEDS = (100, 101)
"""Seeds of the tuning runs (never the seeds the arms are compared on)."""


def _arm_run(suite: Suite, arm: str, factor: float, seed: int) -> Run:
    if arm == "SGD":
        return suite.at_run(seed, lr=factor * suite.data.lr)
    inner = factor * ENTROPY_INNER_LR
    return suite.run(f"esgd_inner{inner:g}_s{seed}", [*ENTROPY_SGD, f"optimizer.inner_lr={inner}", f"seed={seed}"])


def entropy_sgd(suite: Suite) -> Finding:
    """(h) AT with EntropySGD vs SGD, each arm tuned over the same number of settings on validation (tuning seeds),
    then its selected setting compared on the suite's seeds: AutoAttack accuracy of the best checkpoints."""
    seeds, factors = suite.profile.seeds, TUNING_FACTORS[: suite.profile.tuning_trials]
    suite.log(f"kanai2021 (h): AT with EntropySGD vs SGD, {len(factors)} settings each tuned on validation")
    tuning = {arm: {f: float(np.mean([_arm_run(suite, arm, f, s).summary()["best_score"] for s in TUNING_SEEDS]))
                    for f in factors} for arm in ("SGD", "EntropySGD")}
    chosen = {arm: max(scores, key=scores.get) for arm, scores in tuning.items()}
    runs = {arm: [_arm_run(suite, arm, chosen[arm], s) for s in seeds] for arm in chosen}
    judged = {arm: [suite.judged_accuracy(r, "best") for r in rs] for arm, rs in runs.items()}
    acc = {arm: [j["autoattack"] for j in js] for arm, js in judged.items()}
    evals = {arm: mean_std([sum(m["grad_evals"] for m in r.metrics()) for r in rs])[0] for arm, rs in runs.items()}
    regime = Regime("both arms tuned with the same budget on validation: the same number of settings, each scored by "
                    f"mean validation robust accuracy over the tuning seeds {list(TUNING_SEEDS)}",
                    {"settings_tried": {arm: len(scores) for arm, scores in tuning.items()}},
                    len({len(scores) for scores in tuning.values()}) == 1)
    measured = {arm: {"autoattack": mean_std(acc[arm]), "pgd": mean_std([j["pgd"] for j in judged[arm]]),
                      "grad_evals": evals[arm], "selected_factor": chosen[arm],
                      "validation_by_factor": {f"{f:g}": v for f, v in tuning[arm].items()}} for arm in acc}
    parts = [stats.paired_test([e - s for e, s in zip(acc["EntropySGD"], acc["SGD"])],
                               "EntropySGD − SGD AutoAttack accuracy, each at its validation-selected setting, per seed")]
    figure = plot_bars(acc, suite.figures / "kanai2021_h_entropysgd.png", ylabel="test robust accuracy (AutoAttack)",
                       title="AT: EntropySGD vs SGD (each tuned on validation)")
    all_runs = {r.path.name: r for rs in runs.values() for r in rs}
    return finding("h", PAPER, "EntropySGD improves robust accuracy over SGD in adversarial training.", measured,
                   {"epochs": suite.epochs, "entropy_sgd": list(ENTROPY_SGD), "seeds": list(seeds),
                    "tuning": f"factors {list(factors)} of SGD's learning rate {suite.data.lr:g} and of EntropySGD's "
                              f"inner step {ENTROPY_INNER_LR:g}, on seeds {list(TUNING_SEEDS)}, by validation robust accuracy",
                    "budgets": "an EntropySGD epoch uses each minibatch once (L = 5 inner steps per update), so equal "
                               "epochs = equal gradient evaluations (grad_evals measured)",
                    "accuracy": f"AutoAttack (APGD-CE + APGD-T) on the first {suite.profile.aa_n} test examples decides"},
                   parts, regime, figures=[figure.name], runs=suite.health(all_runs), smoke_test=suite.profile.smoke_test)


def run(suite: Suite) -> list[Finding]:
    """All kanai2021 findings, (g) and (h)."""
    return [lipschitz(suite), entropy_sgd(suite)]
