"""wu2020 (SPEC §9 i–j): weight-landscape sharpness of the adversarial loss against the robust generalization
gap across AT, TRADES and MART (early-stopped and last), and what adversarial weight perturbation changes."""

from __future__ import annotations

import math

import numpy as np

from .. import landscape as L
from ..plots.reproduce import plot_lines, plot_scatter
from ..run import Run
from .. import stats
from .common import Finding, Suite, judge, mean_std

PAPER = "wu2020"
DISTANCE = 0.5
"""Sharpness = mean adversarial loss at ±DISTANCE (filter-normalized direction) minus the loss at the weights."""
AWP_OBJECTIVES = {"tiny": ("at",), "quick": ("at",), "full": ("at", "trades", "mart")}
PAPER_NUMBERS = {"AT best / last PGD-20 (%)": [52.79, 43.75], "AT-AWP best / last PGD-20 (%)": [55.39, 54.30],
                 "setting": "PreActResNet-18, CIFAR-10, L∞ 8/255 (SPEC §8, official AWP logs)"}


def awp_warmup(epochs: int) -> int:
    """Epochs of plain training before AWP starts: a sixth of training (recipes/digits/at_awp.yaml: 5 of 30;
    without it the CNN stays on the initial plateau), at least one when there are two epochs or more."""
    return min(math.ceil(epochs / 6), epochs - 1)


def _label(objective: str, awp: bool, which: str) -> str:
    """E.g. "TRADES-AWP, early stopping" (best checkpoint) or "AT, no early stopping" (last)."""
    stop = "early stopping" if which == "best" else "no early stopping"
    return f"{objective.upper()}{'-AWP' if awp else ''}, {stop}"


def _run(suite: Suite, objective: str, awp: bool, seed: int) -> Run:
    """The trained run of an objective, with or without AWP (plain AT is the suites' shared run)."""
    if objective == "at" and not awp:
        return suite.at_run(seed)
    extra = [f"objective.name={objective}", f"seed={seed}"]
    if awp:
        extra += ["perturb.name=awp", f"perturb.warmup_epochs={awp_warmup(suite.epochs)}"]
    return suite.run(f"{objective}{'_awp' if awp else ''}_s{seed}", extra)


def measure(suite: Suite, run: Run, which: str, seed: int) -> dict:
    """1-D adversarial-loss landscape, its sharpness, and the robust generalization gap of one checkpoint, on the
    run's own training examples (never its validation ones) and the first test examples."""
    (x, y), (x_test, y_test) = suite.analysis_data(run.config()), suite.analysis_data(run.config(), "test")
    model = suite.model(run, which)
    curve = L.surface(model, x, y, dims=1, metrics=["adv_loss"], span=(-1.0, 1.0),
                      steps=suite.profile.landscape_points, threat=suite.threat(), seed=seed)
    coords, loss = curve.coords[0], curve.values["adv_loss"]
    near = [int(np.argmin(np.abs(coords - a))) for a in (-DISTANCE, DISTANCE)]
    centre = int(np.argmin(np.abs(coords)))
    gap = suite.robust_acc(model, x, y) - suite.robust_acc(model, x_test, y_test)
    return {"sharpness": float(loss[near].mean() - loss[centre]), "gap": gap, "curve": loss.tolist(),
            "coords": coords.tolist(), "test_robust_acc": run.summary()["test_robust_acc" if which == "best" else
                                                                       "last_test_robust_acc"]}


def run(suite: Suite) -> list[Finding]:
    """(i) sharpness vs gap across AT/TRADES/MART × {early stopping, last}; (j) the same with AWP."""
    seeds = suite.profile.seeds
    suite.log("wu2020 (i–j): AT, TRADES, MART with and without AWP; weight landscapes")
    variants = [(o, False) for o in ("at", "trades", "mart")] + [(o, True) for o in AWP_OBJECTIVES[suite.profile.name]]
    table = {(o, awp, which, s): measure(suite, _run(suite, o, awp, s), which, s)
             for o, awp in variants for s in seeds for which in ("best", "last")}
    plain = [(o, False, w) for o in ("at", "trades", "mart") for w in ("best", "last")]
    points = {_label(*k): ([table[(*k, s)]["sharpness"] for s in seeds], [table[(*k, s)]["gap"] for s in seeds])
              for k in plain}
    fig_i = plot_scatter(points, suite.figures / "wu2020_i_sharpness_gap.png", xlabel=f"sharpness (loss rise at ±{DISTANCE})",
                         ylabel="robust generalization gap", title="flatness vs robust generalization gap")
    first = table[(plain[0][0], False, "best", seeds[0])]["coords"]
    fig_curves = plot_lines(first, {_label(*k): table[(*k, seeds[0])]["curve"] for k in plain},
                            suite.figures / "wu2020_i_landscapes.png", xlabel="distance along a filter-normalized direction",
                            ylabel="adversarial loss", title=f"1-D weight landscapes (seed {seeds[0]})")
    summary = {_label(*k): {m: mean_std([table[(*k, s)][m] for s in seeds]) for m in ("sharpness", "gap", "test_robust_acc")}
               for k in [(o, awp, w) for o, awp in variants for w in ("best", "last")]}
    settings = {"seeds": list(seeds), "epochs": suite.epochs, "sharpness": f"mean adversarial loss (PGD-{suite.profile.analysis_steps}, "
                f"training examples) at ±{DISTANCE} along one filter-normalized random direction minus at 0",
                "gap": f"robust accuracy on the first {suite.profile.analysis_n} examples of the run's own training "
                       "split − on test examples, same PGD",
                "early stopping": "best checkpoint by validation robust accuracy; no early stopping: last"}
    keys = [(*k, s) for k in plain for s in seeds]
    verdict_i, reason_i, test_i = judge([stats.rank_test(
        [table[k]["sharpness"] for k in keys], [table[k]["gap"] for k in keys],
        f"Spearman ρ(sharpness, gap) over all {len(plain)} models × {len(seeds)} seeds")])
    finding_i = Finding("i", PAPER, "Across AT, TRADES and MART, with and without early stopping, a flatter weight "
                        "landscape of the adversarial loss goes with a smaller robust generalization gap.",
                        {"models": summary}, settings, verdict_i, reason_i, test_i,
                        [fig_i.name, fig_curves.name], PAPER_NUMBERS, suite.profile.smoke_test)
    return [finding_i, _awp_finding(suite, table, summary, settings)]


def _awp_finding(suite: Suite, table: dict, summary: dict, settings: dict) -> Finding:
    """(j) AWP against no AWP, per objective, at the early-stopped checkpoint, averaged over objectives per seed."""
    objectives, seeds = AWP_OBJECTIVES[suite.profile.name], suite.profile.seeds

    def diff(metric: str, sign: int) -> list[float]:
        return [float(np.mean([sign * (table[(o, False, "best", s)][metric] - table[(o, True, "best", s)][metric])
                               for o in objectives])) for s in seeds]

    what = "(mean over objectives), per seed"
    verdict, reason, test = judge([stats.paired_test(diff("sharpness", +1), f"sharpness without − with AWP {what}"),
                                   stats.paired_test(diff("gap", +1), f"gap without − with AWP {what}"),
                                   stats.paired_test(diff("test_robust_acc", -1),
                                                     f"test robust accuracy with − without AWP {what}")])
    measured = {_label(o, awp, "best"): summary[_label(o, awp, "best")] for o in objectives for awp in (False, True)}
    return Finding("j", PAPER, "AWP flattens the weight landscape, shrinks the robust generalization gap and raises "
                   "test robust accuracy.", measured, {**settings, "awp_objectives": list(objectives),
                                                      "awp": "γ = 0.01 (AT) / 0.005 (TRADES, MART), one step, "
                                                             f"warm-up {awp_warmup(suite.epochs)} epochs"},
                   verdict, reason, test, [], PAPER_NUMBERS, suite.profile.smoke_test)

