"""wu2020 (i–j): weight-landscape sharpness of the adversarial loss against the robust generalization gap across
AT, TRADES and MART, and what adversarial weight perturbation changes, in the regime the paper's claims live in:
AT robust-overfits (its test robust accuracy falls after the learning-rate decay while the train−test gap grows).
(k), supplementary to the paper: the exponential moving average of the weights (EMA), the modern answer to
robust overfitting, against and beside AWP in the same regime.

Every run of this suite trains under the dataset's robust-overfitting recipe (``DataSettings.overfit``) and tracks
the robust generalization gap every few epochs on fixed training and test subsets (wu2020's Figure 1).
"""

from __future__ import annotations

import math

import numpy as np

from .. import landscape as L
from .. import stats
from ..plots.reproduce import plot_lines, plot_scatter
from ..run import Run
from .common import Finding, Regime, Suite, finding, mean_std

PAPER = "wu2020"
DISTANCE = 0.5
"""Sharpness = mean adversarial loss at ±DISTANCE (filter-normalized direction) minus the loss at the weights."""
OBJECTIVES = ("at", "trades", "mart")
AWP_OBJECTIVES = {"tiny": ("at",), "quick": ("at",), "full": ("at",)}
"""Objectives (j) compares with and without AWP (the per-seed difference is averaged over them)."""
EMA_DECAY = 0.999
"""(k): the EMA's target decay, with the usual warm-up min(decay, (1 + t) / (10 + t)). The AT and AT-AWP runs keep
the average beside the trained weights (its validation has its own random generator: the trained weights are
those of the same run without EMA), so AT+EMA and AT-AWP+EMA are read from the AT and AT-AWP runs."""
OVERFIT_DROP = 0.03
"""The regime: AT's test robust accuracy at the selected (best) checkpoint exceeds the last one's by at least this."""
GAP_POINTS = 10
"""How many times the robust generalization gap is tracked during a run (evenly spaced)."""
PAPER_NUMBERS = {"AT best / last PGD-20 (%)": [52.79, 43.75], "AT-AWP best / last PGD-20 (%)": [55.39, 54.30],
                 "setting": "PreActResNet-18, CIFAR-10, L∞ 8/255 (official AWP logs)"}


def awp_warmup(epochs: int) -> int:
    """Epochs of plain training before AWP starts: a tenth of training (wu2020: 0 of 200 on CIFAR-10, 5 on SVHN,
    10 for TRADES-AWP; a few plain epochs let small models leave the initial plateau), at least one when there
    are two epochs or more."""
    return min(max(math.ceil(epochs / 10), 1), epochs - 1)


def checkpoint_of(objective: str, seed: int) -> str:
    """(i)'s point of a run, fixed before running: the early-stopped (best) checkpoint when seed + the objective's
    index is even, else the last one; every run gives one point, half of them early-stopped."""
    return "best" if (seed + OBJECTIVES.index(objective)) % 2 == 0 else "last"


def _label(objective: str, awp: bool, which: str) -> str:
    """E.g. "TRADES-AWP, early stopping" (best checkpoint) or "AT, no early stopping" (last)."""
    stop = "early stopping" if which == "best" else "no early stopping"
    return f"{objective.upper()}{'-AWP' if awp else ''}, {stop}"


def epochs(suite: Suite) -> int:
    return suite.data.overfit_epochs.get(suite.profile.name, 2 * suite.epochs)


def _run(suite: Suite, objective: str, awp: bool, seed: int) -> Run:
    """One run of the robust-overfitting recipe with an objective, with or without AWP."""
    total = epochs(suite)
    extra = [*suite.data.overfit, *suite.data.overfit_objectives.get(objective, ()), f"epochs={total}",
             f"objective.name={objective}", f"seed={seed}",
             f"track.gap_every={max(1, total // GAP_POINTS)}", f"track.gap_n={suite.profile.aa_n}"]
    if awp:
        extra += ["perturb.name=awp", f"perturb.warmup_epochs={awp_warmup(total)}"]
    if objective in AWP_OBJECTIVES[suite.profile.name]:  # (k) reads the average of these runs
        extra += [f"ema.decay={EMA_DECAY}", "ema.select=raw"]
    return suite.run(f"wu_{objective}{'_awp' if awp else ''}_s{seed}", extra)


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
    summary = run.summary()
    return {"sharpness": float(loss[near].mean() - loss[centre]), "gap": gap, "curve": loss.tolist(),
            "coords": coords.tolist(),
            "test_robust_acc": summary["test_robust_acc" if which == "best" else "last_test_robust_acc"]}


def overfitting_regime(suite: Suite, runs: list[Run]) -> Regime:
    """AT robust-overfits: best − last test robust accuracy (PGD) ≥ OVERFIT_DROP on average over seeds, and the
    tracked train−test robust gap is larger at the end than at the first learning-rate decay (half of training)."""
    drops = [r.summary()["test_robust_acc"] - r.summary()["last_test_robust_acc"] for r in runs]
    growth = []
    for r in runs:
        tracked = [m for m in r.metrics() if m.get("robust_gap") is not None]
        at_decay = [m for m in tracked if m["epoch"] <= epochs(suite) // 2]
        if tracked and at_decay:
            growth.append(tracked[-1]["robust_gap"] - at_decay[-1]["robust_gap"])
    drop, grow = float(np.mean(drops)), float(np.mean(growth)) if growth else math.nan
    return Regime(f"AT robust-overfits: its test robust accuracy at the validation-selected checkpoint exceeds the "
                  f"last one's by ≥ {OVERFIT_DROP:g} (mean over seeds), and its train−test robust gap grows after "
                  "the learning-rate decay (last tracked gap − gap at half of training > 0)",
                  {"best_minus_last": drop, "gap_growth_after_decay": grow, "best_minus_last_per_seed": drops,
                   "gap_growth_per_seed": growth},
                  bool(drop >= OVERFIT_DROP and grow > 0))


def run(suite: Suite) -> list[Finding]:
    """(i) sharpness vs gap across AT/TRADES/MART, one checkpoint per run; (j) AWP against no AWP."""
    seeds = suite.profile.seeds
    awp_objectives = AWP_OBJECTIVES[suite.profile.name]
    suite.log(f"wu2020 (i–j): AT, TRADES, MART and {', '.join(o.upper() + '-AWP' for o in awp_objectives)} in the "
              f"robust-overfitting recipe ({epochs(suite)} epochs)")
    variants = [(o, False) for o in OBJECTIVES] + [(o, True) for o in awp_objectives]
    runs = {(o, awp, s): _run(suite, o, awp, s) for o, awp in variants for s in seeds}
    table = {(o, awp, which, s): measure(suite, runs[(o, awp, s)], which, s)
             for o, awp in variants for s in seeds for which in ("best", "last")}
    overfits = overfitting_regime(suite, [runs[("at", False, s)] for s in seeds])
    health = suite.health({r.path.name: r for r in runs.values()})
    plain = [runs[(o, False, s)].path.name for o in OBJECTIVES for s in seeds]
    judged = [runs[(o, awp, s)].path.name for o in AWP_OBJECTIVES[suite.profile.name] for awp in (False, True)
              for s in seeds]
    settings = {"seeds": list(seeds), "epochs": epochs(suite), "recipe": list(suite.data.overfit),
                "recipe per objective": {o: list(v) for o, v in suite.data.overfit_objectives.items()},
                "sharpness": f"mean adversarial loss (PGD-{suite.profile.analysis_steps}, training examples) at "
                             f"±{DISTANCE} along one filter-normalized random direction minus at 0",
                "gap": f"robust accuracy on the first {suite.profile.analysis_n} examples of the run's own training "
                       "split − on test examples, same PGD",
                "early stopping": "best checkpoint by validation robust accuracy; no early stopping: last"}
    figures = _figures(suite, runs, table, seeds)
    return [_rank_finding(suite, table, trained_to_the_end(overfits, health, plain), settings, health, figures[:2]),
            _awp_finding(suite, runs, table, trained_to_the_end(overfits, health, judged), settings, health,
                         figures[2:]),
            _ema_finding(suite, runs, trained_to_the_end(overfits, health, judged), settings, health)]


def trained_to_the_end(regime: Regime, health: dict[str, list[str]], names: list[str]) -> Regime:
    """``regime``, and every run entering the finding trained to its end: none diverged or collapsed. A claim
    about trained models (their flatness, gap or accuracy at the last checkpoint) says nothing through a run whose
    last weights are those of an epoch before it blew up."""
    failed = sorted({name for kind in ("diverged", "collapsed") for name in health.get(kind, []) if name in names})
    return Regime(f"{regime.condition}; and every run entering the finding trained to its end (none diverged or "
                  "collapsed)", {**regime.measured, "runs_diverged_or_collapsed": failed},
                  regime.met and not failed)


def _figures(suite: Suite, runs: dict, table: dict, seeds) -> list[str]:
    """wu2020's Figure 1 (train and test robust accuracy during training, AT against AT-AWP, seed 0), the landscapes
    and the sharpness–gap scatter of the plain objectives."""
    plain = [(o, False, w) for o in OBJECTIVES for w in ("best", "last")]
    points = {_label(*k): ([table[(*k, s)]["sharpness"] for s in seeds], [table[(*k, s)]["gap"] for s in seeds])
              for k in plain}
    scatter = plot_scatter(points, suite.figures / "wu2020_i_sharpness_gap.png",
                           xlabel=f"sharpness (loss rise at ±{DISTANCE})", ylabel="robust generalization gap",
                           title="flatness vs robust generalization gap")
    first = table[(plain[0][0], False, "best", seeds[0])]["coords"]
    curves = plot_lines(first, {_label(*k): table[(*k, seeds[0])]["curve"] for k in plain},
                        suite.figures / "wu2020_i_landscapes.png", xlabel="distance along a filter-normalized direction",
                        ylabel="adversarial loss", title=f"1-D weight landscapes (seed {seeds[0]})")
    series, x_epochs = {}, None
    for (o, awp, s), r in runs.items():
        if o != "at" or s != seeds[0]:
            continue
        tracked = [m for m in r.metrics() if m.get("robust_gap") is not None]
        x_epochs = [m["epoch"] for m in tracked]
        for split in ("train", "test"):
            series[f"{'AT-AWP' if awp else 'AT'} {split}"] = [m[f"gap_{split}_robust_acc"] for m in tracked]
    out = [scatter.name, curves.name]
    if x_epochs:
        out.append(plot_lines(x_epochs, series, suite.figures / "wu2020_j_robust_overfitting.png", xlabel="epoch",
                              ylabel="robust accuracy (evaluation PGD)",
                              title=f"train and test robust accuracy during training (seed {seeds[0]})").name)
    return out


def _rank_finding(suite: Suite, table: dict, regime: Regime, settings: dict, health: dict,
                  figures: list[str]) -> Finding:
    """(i): Spearman ρ(sharpness, gap) over one point per independent run (the checkpoint fixed in advance)."""
    seeds = suite.profile.seeds
    keys = [(o, False, checkpoint_of(o, s), s) for o in OBJECTIVES for s in seeds]
    test = stats.rank_test([table[k]["sharpness"] for k in keys], [table[k]["gap"] for k in keys],
                           f"Spearman ρ(sharpness, gap) over {len(keys)} runs ({len(OBJECTIVES)} objectives × "
                           f"{len(seeds)} seeds), one checkpoint each")
    summary = {_label(o, awp, w): {m: mean_std([table[(o, awp, w, s)][m] for s in seeds])
                                   for m in ("sharpness", "gap", "test_robust_acc")}
               for o, awp, w, _ in {(*k[:3], 0) for k in table}}
    points = {f"{o} s{s} ({w})": {"sharpness": table[(o, a, w, s)]["sharpness"], "gap": table[(o, a, w, s)]["gap"]}
              for o, a, w, s in keys}
    return finding("i", PAPER, "Across AT, TRADES and MART, with and without early stopping, a flatter weight landscape "
                   "of the adversarial loss goes with a smaller robust generalization gap.",
                   {"models": summary, "points": points},
                   {**settings, "points": "one per run: the best checkpoint when seed + objective index (AT 0, TRADES 1, "
                                          "MART 2) is even, else the last; fixed before running"},
                   [test], regime, figures=figures, paper_numbers=PAPER_NUMBERS,
                   runs={k: [n for n in v if "_awp" not in n] for k, v in health.items()},
                   smoke_test=suite.profile.smoke_test)


def _awp_finding(suite: Suite, runs: dict, table: dict, regime: Regime, settings: dict, health: dict,
                 figures: list[str]) -> Finding:
    """(j) AWP against no AWP at the last checkpoint (primary: AutoAttack accuracy; also flatter and a smaller gap),
    per seed averaged over the objectives; the best checkpoint and the shrinking of best − last are reported."""
    objectives, seeds = AWP_OBJECTIVES[suite.profile.name], suite.profile.seeds
    judged = {(o, awp, w, s): suite.judged_accuracy(runs[(o, awp, s)], w)
              for o in objectives for awp in (False, True) for s in seeds for w in ("best", "last")}

    def per_seed(value) -> list[float]:
        return [float(np.mean([value(o, s) for o in objectives])) for s in seeds]

    what = f"(mean over {', '.join(o.upper() for o in objectives)}), per seed"
    acc_last = per_seed(lambda o, s: judged[(o, True, "last", s)]["autoattack"] - judged[(o, False, "last", s)]["autoattack"])
    parts = [stats.paired_test(acc_last, f"AutoAttack test accuracy at the last checkpoint, with − without AWP {what}"),
             stats.paired_test(per_seed(lambda o, s: table[(o, False, "last", s)]["sharpness"]
                                        - table[(o, True, "last", s)]["sharpness"]),
                               f"sharpness at the last checkpoint, without − with AWP {what}"),
             stats.paired_test(per_seed(lambda o, s: table[(o, False, "last", s)]["gap"] - table[(o, True, "last", s)]["gap"]),
                               f"robust generalization gap at the last checkpoint, without − with AWP {what}")]

    def overfit(o, awp, s):
        return judged[(o, awp, "best", s)]["autoattack"] - judged[(o, awp, "last", s)]["autoattack"]

    supplementary = [
        stats.paired_test(per_seed(lambda o, s: judged[(o, True, "best", s)]["autoattack"]
                                   - judged[(o, False, "best", s)]["autoattack"]),
                          f"AutoAttack test accuracy at the best checkpoint, with − without AWP {what}"),
        stats.paired_test(per_seed(lambda o, s: overfit(o, False, s) - overfit(o, True, s)),
                          f"robust overfitting (best − last AutoAttack accuracy), without − with AWP {what}")]
    measured = {}
    for o in objectives:
        for awp in (False, True):
            for w in ("best", "last"):
                measured[_label(o, awp, w)] = {
                    "autoattack": mean_std([judged[(o, awp, w, s)]["autoattack"] for s in seeds]),
                    "pgd": mean_std([judged[(o, awp, w, s)]["pgd"] for s in seeds]),
                    "sharpness": mean_std([table[(o, awp, w, s)]["sharpness"] for s in seeds]),
                    "gap": mean_std([table[(o, awp, w, s)]["gap"] for s in seeds])}
    return finding("j", PAPER, "AWP flattens the weight landscape, shrinks the robust generalization gap and raises "
                   "test robust accuracy (judged at the last checkpoint, where robust overfitting shows).", measured,
                   {**settings, "awp_objectives": list(objectives),
                    "awp": f"γ = 0.01 (AT) / 0.005 (TRADES, MART), one step, warm-up {awp_warmup(epochs(suite))} epochs",
                    "accuracy": f"AutoAttack (APGD-CE + APGD-T, official code) on the first {suite.profile.aa_n} test "
                                f"examples decides; PGD-{suite.profile.eval_steps} on the same examples beside it"},
                   parts, regime, figures=figures, paper_numbers=PAPER_NUMBERS, supplementary=supplementary,
                   runs={k: [n for n in v if any(n.startswith(f"wu_{o}") for o in objectives)] for k, v in health.items()},
                   smoke_test=suite.profile.smoke_test)


ARMS = {"AT": (False, ""), "AT+EMA": (False, "ema"), "AT-AWP": (True, ""), "AT-AWP+EMA": (True, "ema")}
"""(k)'s four arms: which run (with AWP or not) and which of its weights (trained, or the EMA)."""


def _checkpoint(arm: str, which: str) -> str:
    """The checkpoint file of an arm at the best or last checkpoint: the EMA arms' best is the average at its own
    validation peak (ema_best), their last the final average (ema)."""
    averaged = ARMS[arm][1]
    return which if not averaged else ("ema_best" if which == "best" else "ema")


def _ema_finding(suite: Suite, runs: dict, regime: Regime, settings: dict, health: dict) -> Finding:
    """(k) EMA against robust overfitting, beside AWP: AT, AT+EMA, AT-AWP and AT-AWP+EMA at the best and the last
    checkpoint (AutoAttack). Holds: the EMA raises the last checkpoint's accuracy, of AT and of AT-AWP (both parts).
    Reported beside, not judged: EMA against AWP, and the same at the best checkpoint."""
    seeds = suite.profile.seeds
    acc = {(arm, w, s): suite.judged_accuracy(runs[("at", ARMS[arm][0], s)], _checkpoint(arm, w))
           for arm in ARMS for w in ("best", "last") for s in seeds}

    def diff(a: str, b: str, which: str, metric: str = "autoattack") -> list[float]:
        return [acc[(a, which, s)][metric] - acc[(b, which, s)][metric] for s in seeds]

    parts = [stats.paired_test(diff("AT+EMA", "AT", "last"), "AutoAttack test accuracy at the last checkpoint, "
                               "AT+EMA − AT, per seed"),
             stats.paired_test(diff("AT-AWP+EMA", "AT-AWP", "last"), "AutoAttack test accuracy at the last checkpoint, "
                               "AT-AWP+EMA − AT-AWP, per seed")]
    supplementary = [
        stats.paired_test(diff("AT+EMA", "AT-AWP", "last"), "AutoAttack test accuracy at the last checkpoint, "
                          "AT+EMA − AT-AWP, per seed (EMA against AWP)"),
        stats.paired_test(diff("AT+EMA", "AT", "best"), "AutoAttack test accuracy at the best checkpoint, AT+EMA − AT, "
                          "per seed"),
        stats.paired_test(diff("AT-AWP+EMA", "AT-AWP", "best"), "AutoAttack test accuracy at the best checkpoint, "
                          "AT-AWP+EMA − AT-AWP, per seed"),
        stats.paired_test([(acc[("AT", "best", s)]["autoattack"] - acc[("AT", "last", s)]["autoattack"])
                           - (acc[("AT+EMA", "best", s)]["autoattack"] - acc[("AT+EMA", "last", s)]["autoattack"])
                           for s in seeds], "robust overfitting (best − last AutoAttack accuracy), AT − AT+EMA, per seed")]
    measured = {f"{arm}, {'early stopping' if w == 'best' else 'no early stopping'}":
                {m: mean_std([acc[(arm, w, s)][m] for s in seeds]) for m in ("autoattack", "pgd")}
                for arm in ARMS for w in ("best", "last")}
    measured["per_seed_autoattack"] = {f"{arm} {w}": [acc[(arm, w, s)]["autoattack"] for s in seeds]
                                       for arm in ARMS for w in ("best", "last")}
    return finding("k", f"{PAPER} (supplementary: EMA)", "An exponential moving average of the weights counters "
                   "robust overfitting: it raises the last checkpoint's test robust accuracy of AT and of AT-AWP "
                   "(not a claim of the paper; EMA is the modern answer to the overfitting AWP addresses).", measured,
                   {**settings, "ema": f"decay {EMA_DECAY} with the warm-up min(decay, (1 + t) / (10 + t)), updated after "
                                       "every optimizer step, kept beside the trained weights of the AT and AT-AWP runs",
                    "checkpoints": "best: the trained weights at their validation peak, the EMA at its own; last: the "
                                   "final trained weights, the final EMA",
                    "accuracy": f"AutoAttack (APGD-CE + APGD-T, official code) on the first {suite.profile.aa_n} test "
                                f"examples decides; PGD-{suite.profile.eval_steps} beside it"},
                   parts, regime, supplementary=supplementary,
                   runs={k: [n for n in v if n.startswith("wu_at")] for k, v in health.items()},
                   smoke_test=suite.profile.smoke_test)
