"""liu2020 (SPEC §9 a–f): the linear-model threshold, the ε sweep's plateau, gradients, curvature and
scattering, and periodic adversarial scheduling (PAS) against vanilla AT across learning rates."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import data as datasets
from .. import landscape as L
from .. import stats
from ..config import load_config
from ..plots.reproduce import plot_lines, plot_seeds
from .common import Finding, Suite, epochs_to_reach, judge, mean_std

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
    verdict, reason, test = judge(parts, "‖w‖ below 1e-300 is taken as 1e-300 (w = 0 exactly)")
    return Finding(
        "a", PAPER, "A linear classifier (no bias, logistic loss) trained adversarially becomes constant (w = 0) "
        "exactly when ε ≥ ε* = ‖mean_i y_i x_i‖_q (q = ∞ for the L∞ threat, 2 for L2).",
        measured,
        {"tasks": "synthetic (2000 train, x used as given, classes exactly balanced)"
                  + (f"; {suite.data.name}: the first two classes of the training split, {LINEAR_REAL_N} examples "
                     "balanced, flattened, divided by their root mean squared norm" if len(steps) > 1 else ""),
         "steps": steps, "optimizer": "full-batch subgradient descent, step cosine 1 → 0", "inits": seeds,
         "ratios": list(RATIOS), "criterion": f"per init, ‖w‖ drops by more than 10^{LINEAR_DROP:g} across the threshold"},
        verdict, reason, test, [figure.name], smoke_test=suite.profile.smoke_test)


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
    return {
        "epochs_to_plateau_exit": plateau, "plateau_censored": censored,
        "final_grad_norm": L.gradient_norm(model, x, y, threat, seed=seed),
        "hessian_top1": top.values[0].item(), "hessian_top2": top.values[1].item(),
        "hessian_converged": top.converged, "hessian_lanczos_steps": top.n_products,
        "hessian_relative_residual": (top.residuals / top.values.abs()).max().item(),
        "cos_grad": scatter.cos_grad, "cos_grad_per_example": scatter.cos_grad_per_example,
        "cos_delta": scatter.cos_delta, "curve": [r["train_clean_acc"] for r in history],
    }


def _trend(table: dict[float, list[dict]], key: str, sign: int, usable=lambda r: True) -> tuple[dict, list]:
    """Per-ε mean/std of ``key`` and the two tests of SPEC §9 for a trend over ε: the paired test of
    (largest − smallest ε)·sign per seed and the permutation test of Spearman's ρ(ε, key)·sign over all runs;
    runs failing ``usable`` are left out (a pair with either end left out is dropped)."""
    eps = sorted(table)
    per_eps = {f"{e:g}": dict(zip(("mean", "std"), mean_std([r[key] for r in table[e] if usable(r)]))) for e in eps}
    runs = [(e, r[key]) for e in eps for r in table[e] if usable(r)]
    diffs = [sign * (hi[key] - lo[key]) for lo, hi in zip(table[eps[0]], table[eps[-1]]) if usable(lo) and usable(hi)]
    direction = "" if sign > 0 else " (negated: lower is as claimed)"
    parts = [stats.paired_test(diffs, f"{key} at ε = {eps[-1]:g} minus at ε = {eps[0]:g}{direction}")]
    if len(runs) >= 3:
        parts.append(stats.rank_test([e for e, _ in runs], [v for _, v in runs],
                                     f"Spearman ρ(ε, {key}) over all runs{direction}", sign=sign))
    return {"by_eps": per_eps}, parts


def eps_sweep(suite: Suite) -> list[Finding]:
    """(b) plateau, (c) final gradient norm, (d) top Hessian eigenvalue, (e) gradient scattering, against ε."""
    eps_list = suite.eps_sweep
    suite.log(f"liu2020 (b–e): ε sweep {eps_list} × seeds {suite.profile.seeds}")
    table = {e: [_measure_eps(suite, e, s) for s in suite.profile.seeds] for e in eps_list}
    seeds = suite.profile.seeds
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
        verdict, reason, test = judge(parts, notes.get(key, ""))
        findings.append(Finding(key, PAPER, claim, measured, settings, verdict, reason, test, figures,
                                smoke_test=suite.profile.smoke_test))
    return findings


# ---------------------------------------------------------------- (f) PAS

ADAM_LR = 1e-3
"""The learning rate the long-cycle (MNIST-style) PAS scales by the comparison's ratios (Adam's default)."""


def pas_arms(suite: Suite) -> dict[str, tuple[list[str], float]]:
    """PAS variants: name -> (config overrides, base learning rate). "PAS, cycles": two cycles (ends E/2, E),
    cosine ε ramp to 2ε and SGD's cosine learning rate restarted per cycle (liu2020's CIFAR-10 code);
    "PAS, one long cycle": liu2020's MNIST code, one cycle over all epochs, ε_max = 1.5ε, Adam."""
    cycles = [suite.epochs // 2, suite.epochs] if suite.epochs >= 2 else [suite.epochs]
    return {"PAS, cycles": (["schedule.eps=pas", "schedule.lr=cyclic_cosine", f"schedule.cycles={cycles}"], suite.data.lr),
            "PAS, one long cycle": (["schedule.eps=pas", "schedule.lr=cyclic_cosine", "schedule.eps_max_factor=1.5",
                                     "optimizer.name=adam"], ADAM_LR)}


def _pas_run(suite: Suite, arm: str, extra: list[str], lr: float, seed: int):
    tag = "pas" if arm == "PAS, cycles" else "pas_long"
    return suite.run(f"{tag}_lr{lr:.4g}_s{seed}", [*extra, f"optimizer.lr={lr}", f"seed={seed}"])


def pas_vs_at(suite: Suite) -> Finding:
    """(f) test robust accuracy (best checkpoint) of PAS and vanilla AT across learning rates and seeds."""
    ratios, seeds = suite.profile.lrs, suite.profile.seeds
    arms = pas_arms(suite)
    suite.log(f"liu2020 (f): PAS ({', '.join(arms)}) vs AT at learning rates {ratios} × base × seeds {seeds}")
    summaries = {"AT": [[suite.at_run(s, lr=r * suite.data.lr).summary() for r in ratios] for s in seeds]}
    for arm, (extra, base) in arms.items():
        summaries[arm] = [[_pas_run(suite, arm, extra, r * base, s).summary() for r in ratios] for s in seeds]
    acc = {m: [[run["test_robust_acc"] for run in row] for row in rows] for m, rows in summaries.items()}
    diverged = {m: {f"{r:g}": sum("diverged" in row[i] for row in rows) for i, r in enumerate(ratios)}
                for m, rows in summaries.items()}
    figure = plot_seeds(list(ratios), acc, suite.figures / "liu2020_f_pas.png", xlabel="learning rate / the arm's base",
                        ylabel="test robust accuracy (PGD)", title="PAS vs AT across learning rates", logx=True)
    spread = {m: [mean_std(row)[1] for row in rows] for m, rows in acc.items()}
    measured = {m: {"by_lr_ratio": {f"{r:g}": mean_std([row[i] for row in rows]) for i, r in enumerate(ratios)},
                    "mean_over_lrs_and_seeds": mean_std([v for row in rows for v in row]),
                    "std_across_lrs_per_seed": spread[m], "diverged_runs_by_lr_ratio": diverged[m]}
                for m, rows in acc.items()}
    tests = {arm: [stats.paired_test([mean_std(p)[0] - mean_std(a)[0] for p, a in zip(acc[arm], acc["AT"])],
                                     f"{arm} − AT robust accuracy (mean over learning rates), per seed"),
                   stats.paired_test([a - p for a, p in zip(spread["AT"], spread[arm])],
                                     f"AT − {arm} std of robust accuracy across learning rates, per seed")]
             for arm in arms}
    primary = suite.data.pas
    verdict, reason, test = judge(tests[primary], f"the verdict is taken on {primary!r}, liu2020's own PAS for this "
                                  "kind of data; the other variant is reported, not judged")
    others = [t for arm, ts in tests.items() if arm != primary for t in ts]
    test["supplementary"] = [t.as_dict() for t in others]
    reason += "; " + "; ".join(f"{stats.explain(t)} [{stats.verdict(t)}]" for t in others)
    stopped = {m: {r: k for r, k in by_ratio.items() if k} for m, by_ratio in diverged.items()}
    if any(stopped.values()):
        reason += ("; runs whose training diverged (a non-finite loss) count with the best epoch they saved before "
                   "it, per arm and learning-rate ratio: " + ", ".join(f"{m} {by_ratio}" for m, by_ratio in stopped.items()
                                                                     if by_ratio))
    lrs = {"AT": [r * suite.data.lr for r in ratios]} | {arm: [r * base for r in ratios] for arm, (_, base) in arms.items()}
    return Finding("f", PAPER, "PAS beats vanilla AT in robust accuracy and varies less across learning rates.",
                   measured, {"lrs": lrs, "lr_ratios": list(ratios), "seeds": list(seeds), "epochs": suite.epochs,
                              "arms": {"AT": "SGD, piecewise learning rate, constant ε"}
                              | {arm: " ".join(extra) for arm, (extra, _) in arms.items()},
                              "pas": "cosine ε ramp to ε_max per cycle (2ε, or 1.5ε for the long cycle), clipped at ε; "
                                     "cosine learning rate restarted per cycle",
                              "checkpoint": "best by validation robust accuracy", "test_attack": f"PGD-{suite.profile.eval_steps}"},
                   verdict, reason, test, [figure.name], smoke_test=suite.profile.smoke_test)


def run(suite: Suite) -> list[Finding]:
    """All liu2020 findings, (a) to (f)."""
    suite.log("liu2020 (a): linear-model threshold on the synthetic task and the dataset's first two classes")
    return [linear_threshold(suite), *eps_sweep(suite), pas_vs_at(suite)]
