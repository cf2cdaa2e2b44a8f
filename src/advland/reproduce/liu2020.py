"""liu2020 (findings a–f): the linear-model threshold, the ε sweep's plateau, gradients, curvature and
scattering, and periodic adversarial scheduling (PAS) against vanilla AT across learning rates."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .. import data as datasets
from .. import landscape as L
from .. import stats
from ..config import load_config
from ..plots.reproduce import plot_lines, plot_seeds
from .common import Finding, Regime, Suite, epochs_to_reach, finding, mean_std

PAPER = "liu2020"
RATIOS = (0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0)
"""ε / ε* at which the linear model is fitted."""
LINEAR_STEPS = {"tiny": 200, "quick": 3000, "full": 6000}
LINEAR_REAL_N = 600
"""Examples of the real two-class task of (a): the first two classes of the training split, balanced."""
LINEAR_REAL_STEPS = {"tiny": 30, "quick": 200, "full": 1000}
"""Steps on the real task (float32; on Fashion-MNIST ‖w‖ already drops by more than 1000× after 300)."""
LINEAR_DROP = 1.0
"""(a)'s criterion: ‖w‖ drops by more than 10^LINEAR_DROP across the threshold."""
PLATEAU_ACC = 0.5
"""Training (clean) accuracy that marks the escape from the initial plateau."""
LANCZOS_TOL = 1e-2
"""A top eigenvalue is used for a verdict only when its Lanczos residual bound is ≤ 1 % of it."""


# ---------------------------------------------------------------- (a) linear model

def fit_linear(x: torch.Tensor, s: torch.Tensor, eps: float, dual: float, steps: int, seeds: list[int]) -> torch.Tensor:
    """Weights W (d, len(seeds)), no bias, each column minimizing mean_i log(1 + exp(−(s_i wᵀx_i − ε‖w‖_dual)))
    by full-batch (sub)gradient descent with a cosine-decaying step (1 → 0) from a small random start of its seed;
    s_i in {±1}. The columns are independent problems fitted together."""
    w = torch.stack([0.01 * torch.randn(x.shape[1], generator=torch.Generator().manual_seed(seed), dtype=x.dtype)
                     for seed in seeds], dim=1).requires_grad_()
    for i in range(steps):
        margin = s[:, None] * (x @ w) - eps * torch.linalg.vector_norm(w, ord=dual, dim=0)
        loss = F.softplus(-margin).mean(0).sum()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.5 * (1 + math.cos(math.pi * i / steps)) * grad
    return w.detach()


def linear_tasks(suite: Suite) -> dict[str, tuple[torch.Tensor, torch.Tensor, float, int]]:
    """(a)'s tasks: name -> (x, s in ±1, scale, steps). The synthetic task as given (float64); for an image
    dataset also its first two classes (LINEAR_REAL_N examples of the training split, balanced, float32),
    flattened and divided by their root mean squared norm ``scale`` (ε/ε* and the drop of ‖w‖ do not depend
    on it; ε* is reported in input units)."""
    x, y = datasets.load("synthetic", "train", val_fraction=0.0)
    tasks = {"synthetic": (x.double(), 2.0 * y.double() - 1.0, 1.0, LINEAR_STEPS[suite.profile.name])}
    if suite.data.name != "synthetic":
        d = load_config(None, suite.overrides(["name=linear_task"])).data
        x, y = datasets.load(d.name, "train", d.root, val_fraction=d.val_fraction, seed=0)
        index = torch.cat([torch.nonzero(y == c).flatten()[: LINEAR_REAL_N // 2] for c in (0, 1)])
        xr = x[index].flatten(1).float()
        scale = xr.pow(2).sum(1).mean().sqrt().item()
        tasks[f"{suite.data.name} classes 0 vs 1"] = (xr / scale, 2.0 * (y[index] == 1).float() - 1.0, scale,
                                                      LINEAR_REAL_STEPS[suite.profile.name])
    return tasks


def linear_threshold(suite: Suite) -> Finding:
    """(a) ‖w‖ of the adversarially trained linear model below and above ε* = ‖mean_i y_i x_i‖_q, per task and norm."""
    seeds = list(suite.profile.seeds)
    measured, series, parts, steps = {}, {}, [], {}
    for task, (x, s, scale, steps[task]) in linear_tasks(suite).items():
        m = (s[:, None] * x).mean(0)
        for norm, dual, q in (("linf", 1.0, math.inf), ("l2", 2.0, 2.0)):
            eps_star = torch.linalg.vector_norm(m, ord=q).item()
            key = {"task": task, "n": len(s), "x_sum": x.sum().item(), "eps_star": eps_star, "norm": norm,
                   "steps": steps[task], "inits": seeds, "ratios": RATIOS}
            norms = suite.cached(f"liu2020_a_{norm}_{task.split()[0]}", key, lambda: [
                fit_linear(x, s, r * eps_star, dual, steps[task], seeds).norm(dim=0).tolist() for r in RATIOS])
            series[f"{task}, {norm} (ε* = {eps_star * scale:.4g})"] = [max(n) for n in norms]
            below = [min(n[i] for r, n in zip(RATIOS, norms) if r <= 0.75) for i in range(len(seeds))]
            above = [max(n[i] for r, n in zip(RATIOS, norms) if r >= 1.25) for i in range(len(seeds))]
            drops = [math.log10(max(b, 1e-300)) - math.log10(max(a, 1e-300)) - LINEAR_DROP for b, a in zip(below, above)]
            parts.append(stats.paired_test(drops, f"{task} {norm}: log10(‖w‖ at ε ≤ 0.75ε* / ‖w‖ at ε ≥ 1.25ε*) − "
                                                  f"{LINEAR_DROP:g}, per init"))
            measured[f"{task}, {norm}"] = {"eps_star": eps_star * scale, "w_norm_by_ratio": dict(zip(map(str, RATIOS), norms)),
                                           "min_w_norm_below_0.75": min(below), "max_w_norm_above_1.25": max(above)}
    figure = plot_lines(RATIOS, series, suite.figures / "liu2020_a_linear.png", xlabel="ε / ε*",
                        ylabel="‖w‖₂ (max over inits)", title="linear model: ‖w‖ against ε/ε*", logy=True, vline=1.0)
    fitted = {task: measured[f"{task}, {norm}"]["min_w_norm_below_0.75"] for task in steps for norm in ("linf", "l2")}
    regime = Regime("the theorem's setting: a linear classifier without bias, logistic loss, fitted to its optimum; "
                    "checked: below the threshold (ε ≤ 0.75ε*) every fit has moved away from w = 0 (‖w‖ > 1e-3)",
                    {"smallest_w_norm_below_threshold": min(fitted.values())}, min(fitted.values()) > 1e-3)
    return finding(
        "a", PAPER, "A linear classifier (no bias, logistic loss) trained adversarially becomes constant (w = 0) "
        "exactly when ε ≥ ε* = ‖mean_i y_i x_i‖_q (q = ∞ for the L∞ threat, 2 for L2).",
        measured,
        {"tasks": "synthetic (2000 train, x used as given, classes exactly balanced)"
                  + (f"; {suite.data.name}: the first two classes of the training split, {LINEAR_REAL_N} examples "
                     "balanced, flattened, divided by their root mean squared norm" if len(steps) > 1 else ""),
         "steps": steps, "optimizer": "full-batch subgradient descent, step cosine 1 → 0", "inits": seeds,
         "ratios": list(RATIOS), "criterion": f"per init, ‖w‖ drops by more than 10^{LINEAR_DROP:g} across the threshold"},
        parts, regime, note="‖w‖ below 1e-300 is taken as 1e-300 (w = 0 exactly)", figures=[figure.name],
        smoke_test=suite.profile.smoke_test)


# ---------------------------------------------------------------- (b)–(e) the ε sweep

def _measure_eps(suite: Suite, eps: float, seed: int) -> dict:
    """Plateau length (and whether censored), final gradient norm, top Hessian eigenvalues (with their
    Lanczos convergence) and scattering of one run, on that run's own training examples."""
    run = suite.at_run(seed, eps)
    x, y = suite.analysis_data(run.config())
    history = run.metrics()
    model = suite.model(run, "last")
    threat = suite.threat(eps)
    top = L.lanczos(L.hessian(model, x, y, threat=threat, seed=seed), k=2, tol=LANCZOS_TOL,
                    max_steps=suite.profile.lanczos_cap, seed=seed)
    scatter = L.gradient_scattering(model, x, y, threat, seed=seed)
    plateau, censored = epochs_to_reach([r["train_clean_acc"] for r in history], PLATEAU_ACC, 0.1)
    norms = [r["clean_grad_norm"] for r in history if r.get("clean_grad_norm") is not None]
    return {"clean_grad_norms": norms,
        "epochs_to_plateau_exit": plateau, "plateau_censored": censored,
        "final_grad_norm": L.gradient_norm(model, x, y, threat, seed=seed),
        "hessian_top1": top.values[0].item(), "hessian_top2": top.values[1].item(),
        "hessian_converged": top.converged, "hessian_lanczos_steps": top.n_products,
        "hessian_relative_residual": (top.residuals / top.values.abs()).max().item(),
        "cos_grad": scatter.cos_grad, "cos_grad_per_example": scatter.cos_grad_per_example,
        "cos_delta": scatter.cos_delta, "curve": [r["train_clean_acc"] for r in history],
    }


def _trend(table: dict[float, list[dict]], key: str, sign: int, usable=lambda r: True) -> tuple[dict, list]:
    """Per-ε mean/std of ``key`` and the two tests of a trend over ε: the paired test of (largest − smallest ε)·sign
    per seed, and the within-seed permutation test of Spearman's ρ(ε, key)·sign (ε permuted within each seed only,
    never across seeds); runs failing ``usable`` are left out (a pair with either end left out is dropped)."""
    eps = sorted(table)
    per_eps = {f"{e:g}": dict(zip(("mean", "std"), mean_std([r[key] for r in table[e] if usable(r)]))) for e in eps}
    diffs = [sign * (hi[key] - lo[key]) for lo, hi in zip(table[eps[0]], table[eps[-1]]) if usable(lo) and usable(hi)]
    direction = "" if sign > 0 else " (negated: lower is as claimed)"
    parts = [stats.paired_test(diffs, f"{key} at ε = {eps[-1]:g} minus at ε = {eps[0]:g}{direction}")]
    groups = []
    for seed_runs in zip(*(table[e] for e in eps)):
        kept = [(e, r[key]) for e, r in zip(eps, seed_runs) if usable(r)]
        if len(kept) >= 2:
            groups.append(([e for e, _ in kept], [v for _, v in kept]))
    if groups and len(eps) >= 3:
        parts.append(stats.within_seed_test(groups, f"mean within-seed Spearman ρ(ε, {key}){direction}", sign=sign))
    return {"by_eps": per_eps}, parts


NEAR_MINIMUM = 0.2
"""(c), (d), (e)'s regime: the clean gradient norm fell by less than this fraction over the last quarter of training."""
PLATEAU_SHARE = 0.1
"""(b)'s regime: at the largest ε, AT spends at least this share of training on the initial plateau (mean over seeds)."""


def near_minimum(table: dict[float, list[dict]], epochs: int) -> Regime:
    """(c)–(e) are measured near a minimum: for every run, the clean gradient norm (tracked each epoch on the
    analysis examples) fell by less than NEAR_MINIMUM over the last quarter of training (its median over the runs)."""
    falls = []
    for runs in table.values():
        for r in runs:
            norms = r["clean_grad_norms"]
            if len(norms) >= 2:
                start = norms[max(0, min(len(norms) - 2, (3 * epochs) // 4 - 1))]
                falls.append(1 - norms[-1] / start if start > 0 else 0.0)
    fall = float(np.median(falls)) if falls else math.nan
    return Regime(f"measured near a minimum: the clean gradient norm has stopped falling (it fell by less than "
                  f"{NEAR_MINIMUM:.0%} over the last quarter of training; median over the sweep's runs)",
                  {"median_fall_last_quarter": fall, "runs": len(falls)}, bool(falls) and fall < NEAR_MINIMUM)


def plateau_regime(table: dict[float, list[dict]], epochs: int) -> Regime:
    """(b): the largest ε holds AT on the initial plateau for a measurable share of training."""
    largest = max(table)
    share = float(np.mean([r["epochs_to_plateau_exit"] for r in table[largest]])) / epochs
    return Regime(f"large ε traps AT on the initial plateau: at the largest ε ({largest:g}) AT spends at least "
                  f"{PLATEAU_SHARE:.0%} of training below {PLATEAU_ACC:.0%} training accuracy (mean over seeds)",
                  {"plateau_share_at_largest_eps": share}, share >= PLATEAU_SHARE)


def eps_sweep(suite: Suite) -> list[Finding]:
    """(b) plateau, (c) final gradient norm, (d) top Hessian eigenvalue, (e) gradient scattering, against ε."""
    eps_list = suite.eps_sweep
    suite.log(f"liu2020 (b–e): ε sweep {eps_list} × seeds {suite.profile.seeds}")
    table = {e: [_measure_eps(suite, e, s) for s in suite.profile.seeds] for e in eps_list}
    seeds = suite.profile.seeds
    regimes = {"b": plateau_regime(table, suite.epochs)}
    regimes |= dict.fromkeys("cde", near_minimum(table, suite.epochs))
    settings = {"eps": list(eps_list), "seeds": list(seeds), "epochs": suite.epochs, "train_pgd_steps": suite.profile.steps,
                "analysis": f"last weights, the first {suite.profile.analysis_n} examples of each run's own training "
                            f"split, PGD-{suite.profile.analysis_steps} (step ε/4) at each run's own ε (none at ε = 0)"}
    curves = {f"ε = {e:g}": table[e][0]["curve"] for e in eps_list}
    fig_b = plot_lines(range(1, len(curves[f"ε = {eps_list[0]:g}"]) + 1), curves, suite.figures / "liu2020_b_plateau.png",
                       xlabel="epoch", ylabel="training clean accuracy", title=f"training curves (seed {seeds[0]})")
    censored = {f"{e:g}": sum(r["plateau_censored"] for r in table[e]) for e in eps_list}
    unconverged = {f"{e:g}": sum(not r["hessian_converged"] for r in table[e]) for e in eps_list}
    notes = {
        "b": (f"censored runs (never reached {PLATEAU_ACC:.0%} in {suite.epochs} epochs) per ε: {censored}; they are "
              f"set to the censoring bound {suite.epochs} epochs (their true value is larger), so two censored runs "
              "tie and a censored run ties with one that reaches the threshold exactly at the last epoch"),
        "d": (f"Lanczos (at most {suite.profile.lanczos_cap} steps) did not converge to a relative residual ≤ "
              f"{LANCZOS_TOL:g} in {sum(unconverged.values())} of {len(eps_list) * len(seeds)} runs (per ε: "
              f"{unconverged}); those runs are left out of both tests" if any(unconverged.values())
              else f"every top eigenvalue converged (Lanczos relative residual ≤ {LANCZOS_TOL:g})"),
    }
    specs = [("b", "epochs_to_plateau_exit", +1, "Larger ε slows the escape from the initial plateau "
              f"(epochs until the training accuracy reaches {PLATEAU_ACC:.0%}).", "epochs to plateau exit"),
             ("c", "final_grad_norm", +1, "Larger ε leaves a larger gradient norm ‖∇L_ε‖ at the end of training.",
              "final ‖∇L_ε‖₂"),
             ("d", "hessian_top1", +1, "Larger ε gives larger top Hessian eigenvalues of the adversarial loss.",
              "top Hessian eigenvalue"),
             ("e", "cos_grad", -1, "Larger ε gives more scattered gradients (lower cosine similarity of ∇L_ε at "
              "θ and a nearby θ + 0.01‖θ‖u).", "cos(∇L_ε(θ), ∇L_ε(θ'))")]
    findings = []
    for key, metric, sign, claim, label in specs:
        usable = (lambda r: r["hessian_converged"]) if metric == "hessian_top1" else (lambda r: True)
        measured, parts = _trend(table, metric, sign, usable)
        if metric == "epochs_to_plateau_exit":
            measured["censored_by_eps"] = censored
        if metric == "hessian_top1":
            measured["top2_by_eps"] = {f"{e:g}": mean_std([r["hessian_top2"] for r in table[e]])[0] for e in eps_list}
            measured["unconverged_by_eps"] = unconverged
            measured["lanczos_steps_by_eps"] = {f"{e:g}": [r["hessian_lanczos_steps"] for r in table[e]] for e in eps_list}
            measured["relative_residual_by_eps"] = {f"{e:g}": [r["hessian_relative_residual"] for r in table[e]]
                                                    for e in eps_list}
        if metric == "cos_grad":
            for extra in ("cos_delta", "cos_grad_per_example"):
                measured[f"{extra}_by_eps"] = {f"{e:g}": mean_std([r[extra] for r in table[e]])[0] for e in eps_list}
        fig = plot_seeds(eps_list, {label: [[table[e][i][metric] for e in eps_list] for i in range(len(seeds))]},
                         suite.figures / f"liu2020_{key}_{metric}.png", xlabel="training ε", ylabel=label,
                         title=f"{label} against ε")
        figures = [fig_b.name, fig.name] if key == "b" else [fig.name]
        findings.append(finding(key, PAPER, claim, measured, settings, parts, regimes[key], note=notes.get(key, ""),
                                figures=figures, smoke_test=suite.profile.smoke_test))
    return findings


# ---------------------------------------------------------------- (f) PAS

ADAM_LR = 1e-3
"""The base learning rate of liu2020's own MNIST recipe (Adam; the supplementary, confounded arm)."""
STUCK_SEEDS = 0.5
"""(f)'s regime: at some learning rate, at least this share of AT's seeds never leaves the initial plateau."""


def pas_eps(suite: Suite) -> float:
    return suite.data.pas_eps or suite.data.eps


def _cycles(suite: Suite) -> list[int]:
    return [suite.epochs // 2, suite.epochs] if suite.epochs >= 2 else [suite.epochs]


def pas_arms(suite: Suite) -> dict[str, list[str]]:
    """(f)'s arms: name -> config overrides. "AT" and "PAS" differ in the ε schedule only: both SGD with the
    periodic learning rate (cosine, restarted at every cycle end: E/2 and E), AT at constant ε, PAS with liu2020's
    cosine ε ramp to 2ε per cycle (clipped at ε). "PAS (liu2020 MNIST recipe)": one long cycle, ε_max = 1.5ε, Adam;
    supplementary, since it changes the optimizer too."""
    eps = pas_eps(suite)
    common = [f"threat.eps={eps}", f"threat.step_size={2.5 * eps / suite.profile.steps}", "optimizer.name=sgd",
              "schedule.lr=cyclic_cosine", f"schedule.cycles={_cycles(suite)}"]
    return {"AT": [*common, "schedule.eps=constant"], "PAS": [*common, "schedule.eps=pas"],
            "PAS (liu2020 MNIST recipe)": [f"threat.eps={eps}", f"threat.step_size={2.5 * eps / suite.profile.steps}",
                                           "schedule.eps=pas", "schedule.lr=cyclic_cosine", "schedule.eps_max_factor=1.5",
                                           "optimizer.name=adam"]}


def arm_lrs(suite: Suite, arm: str) -> list[float]:
    """One absolute grid for AT and PAS; Adam's arm scales its own base by the grid's ratios to its middle."""
    grid = list(suite.profile.lrs)
    if arm.startswith("PAS (liu2020"):
        middle = grid[len(grid) // 2]
        return [ADAM_LR * lr / middle for lr in grid]
    return grid


def _pas_run(suite: Suite, arm: str, lr: float, seed: int):
    tag = {"AT": "f_at", "PAS": "f_pas"}.get(arm, "f_pas_adam")
    return suite.run(f"{tag}_eps{pas_eps(suite):g}_lr{lr:.4g}_s{seed}", [*pas_arms(suite)[arm], f"optimizer.lr={lr}",
                                                                          f"seed={seed}"])


def _stuck(run) -> bool:
    """Whether a run never left the initial plateau (training accuracy below PLATEAU_ACC at every epoch)."""
    return epochs_to_reach([r["train_clean_acc"] for r in run.metrics()], PLATEAU_ACC, 0.1)[1]


def pas_vs_at(suite: Suite) -> Finding:
    """(f) test robust accuracy (AutoAttack, best checkpoint) of PAS and AT across one learning-rate grid and seeds."""
    seeds, arms = suite.profile.seeds, list(pas_arms(suite))
    suite.log(f"liu2020 (f): {', '.join(arms)} at ε = {pas_eps(suite):g}, learning rates {suite.profile.lrs} × seeds")
    runs = {arm: [[_pas_run(suite, arm, lr, s) for lr in arm_lrs(suite, arm)] for s in seeds] for arm in arms}
    judged = {arm: [[suite.judged_accuracy(r, "best") for r in row] for row in rows] for arm, rows in runs.items()}
    acc = {arm: [[j["autoattack"] for j in row] for row in rows] for arm, rows in judged.items()}
    stuck = {arm: [[_stuck(r) for r in row] for row in rows] for arm, rows in runs.items()}
    diverged = {arm: [["diverged" in r.summary() for r in row] for row in rows] for arm, rows in runs.items()}
    stuck_share = [float(np.mean([row[i] for row in stuck["AT"]])) for i in range(len(suite.profile.lrs))]
    regime = Regime(f"large ε traps AT on the initial plateau at some learning rate: at ε = {pas_eps(suite):g}, at "
                    f"least {STUCK_SEEDS:.0%} of AT's seeds never reach {PLATEAU_ACC:.0%} training accuracy at one "
                    "learning rate of the grid or more",
                    {"at_stuck_share_by_lr": dict(zip(map(str, suite.profile.lrs), stuck_share))},
                    max(stuck_share) >= STUCK_SEEDS)
    mean = {arm: [float(np.mean(row)) for row in rows] for arm, rows in acc.items()}
    spread = {arm: [max(row) - min(row) for row in rows] for arm, rows in acc.items()}
    parts = [stats.paired_test([p - a for p, a in zip(mean["PAS"], mean["AT"])],
                               "PAS − AT AutoAttack accuracy (mean over learning rates), per seed"),
             stats.paired_test([a - p for a, p in zip(spread["AT"], spread["PAS"])],
                               "AT − PAS spread of AutoAttack accuracy across learning rates (max − min), per seed")]
    counts = {arm: {"stuck": [sum(row) for row in stuck[arm]], "diverged": [sum(row) for row in diverged[arm]]}
              for arm in arms}
    adam = "PAS (liu2020 MNIST recipe)"
    supplementary = [stats.paired_test([a - p for a, p in zip(counts["AT"]["stuck"], counts["PAS"]["stuck"])],
                                       "AT − PAS runs stuck on the plateau (of the grid's learning rates), per seed"),
                     stats.paired_test([a - p for a, p in zip(counts["AT"]["diverged"], counts["PAS"]["diverged"])],
                                       "AT − PAS diverged runs (of the grid's learning rates), per seed"),
                     stats.paired_test([p - a for p, a in zip(mean[adam], mean["AT"])],
                                       f"{adam} − AT AutoAttack accuracy (mean over learning rates; confounded: another "
                                       "optimizer), per seed")]
    figure = plot_seeds(list(suite.profile.lrs), acc, suite.figures / "liu2020_f_pas.png",
                        xlabel="learning rate (Adam arm: its own, scaled alike)", ylabel="test robust accuracy (AutoAttack)",
                        title=f"PAS vs AT across learning rates, ε = {pas_eps(suite):g}", logx=True)
    measured = {arm: {"by_lr": {f"{lr:g}": mean_std([row[i] for row in acc[arm]]) for i, lr in enumerate(arm_lrs(suite, arm))},
                      "pgd_by_lr": {f"{lr:g}": mean_std([row[i]["pgd"] for row in judged[arm]])
                                    for i, lr in enumerate(arm_lrs(suite, arm))},
                      "mean_over_lrs": mean_std(mean[arm]), "spread_over_lrs": mean_std(spread[arm]),
                      "stuck_per_seed": counts[arm]["stuck"], "diverged_per_seed": counts[arm]["diverged"]}
                for arm in arms}
    named = {kind: [f"{arm} lr {arm_lrs(suite, arm)[i]:g} seed {s}" for arm in arms
                    for s, row in zip(seeds, flags[arm]) for i, flag in enumerate(row) if flag]
             for kind, flags in (("diverged", diverged), ("stuck", stuck))}
    return finding("f", PAPER, "PAS beats vanilla AT in robust accuracy and varies less across learning rates.",
                   measured, {"eps": pas_eps(suite), "lrs": {arm: arm_lrs(suite, arm) for arm in arms},
                              "seeds": list(seeds), "epochs": suite.epochs, "cycles": _cycles(suite),
                              "arms": {arm: " ".join(extra) for arm, extra in pas_arms(suite).items()},
                              "one factor": "AT and PAS share the optimizer (SGD), the learning-rate schedule and the "
                                            "absolute learning-rate grid; only the ε schedule differs",
                              "checkpoint": "best by validation robust accuracy",
                              "accuracy": f"AutoAttack (APGD-CE + APGD-T) on the first {suite.profile.aa_n} test "
                                          f"examples decides; PGD-{suite.profile.eval_steps} beside it"},
                   parts, regime, supplementary=supplementary, figures=[figure.name],
                   runs={"diverged": named["diverged"]}, smoke_test=suite.profile.smoke_test,
                   note=f"runs that never left the plateau are counted in stuck_per_seed: {named['stuck'] or 'none'}")


def run(suite: Suite) -> list[Finding]:
    """All liu2020 findings, (a) to (f)."""
    suite.log("liu2020 (a): linear-model threshold on the synthetic task and the dataset's first two classes")
    return [linear_threshold(suite), *eps_sweep(suite), pas_vs_at(suite)]
