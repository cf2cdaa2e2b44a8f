"""liu2020 (SPEC §9 a–f): the linear-model threshold, the ε sweep's plateau, gradients, curvature and
scattering, and periodic adversarial scheduling (PAS) against vanilla AT across learning rates."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .. import data as datasets
from .. import landscape as L
from ..plots.reproduce import plot_lines, plot_seeds
from .common import (
    Finding,
    Suite,
    combine,
    epochs_to_reach,
    mean_std,
    rank_correlation,
    spread_verdict,
)

PAPER = "liu2020"
RATIOS = (0.25, 0.5, 0.75, 0.9, 1.1, 1.25, 1.5, 2.0)
"""ε / ε* at which the linear model is fitted."""
LINEAR_STEPS = {"tiny": 200, "quick": 3000, "full": 6000}
PLATEAU_ACC = 0.5
"""Training (clean) accuracy that marks the escape from the initial plateau."""


# ---------------------------------------------------------------- (a) linear model

def fit_linear(x: torch.Tensor, s: torch.Tensor, eps: float, dual: float, steps: int, seed: int) -> torch.Tensor:
    """Weights w (no bias) minimizing mean_i log(1 + exp(−(s_i wᵀx_i − ε‖w‖_dual))) by full-batch (sub)gradient
    descent with a cosine-decaying step (1 → 0), from a small random start; s_i in {±1}."""
    w = (0.01 * torch.randn(x.shape[1], generator=torch.Generator().manual_seed(seed), dtype=x.dtype)).requires_grad_()
    for i in range(steps):
        margin = s * (x @ w) - eps * torch.linalg.vector_norm(w, ord=dual)
        loss = F.softplus(-margin).mean()
        (grad,) = torch.autograd.grad(loss, w)
        with torch.no_grad():
            w -= 0.5 * (1 + math.cos(math.pi * i / steps)) * grad
    return w.detach()


def linear_threshold(suite: Suite) -> Finding:
    """(a) ‖w‖ of the adversarially trained linear model below and above ε* = ‖mean_i y_i x_i‖_q."""
    x, y = datasets.load("synthetic", "train", val_fraction=0.0)
    x, s = x.double(), 2.0 * y.double() - 1.0
    m = (s[:, None] * x).mean(0)
    steps = LINEAR_STEPS[suite.profile.name]
    measured, series = {}, {}
    for norm, dual, q in (("linf", 1.0, math.inf), ("l2", 2.0, 2.0)):
        eps_star = torch.linalg.vector_norm(m, ord=q).item()
        norms = [[fit_linear(x, s, r * eps_star, dual, steps, seed).norm().item() for seed in suite.profile.seeds]
                 for r in RATIOS]
        series[f"{norm} (ε* = {eps_star:.4f})"] = [max(n) for n in norms]
        below = min(min(n) for r, n in zip(RATIOS, norms) if r <= 0.75)
        above = max(max(n) for r, n in zip(RATIOS, norms) if r >= 1.25)
        measured[norm] = {"eps_star": eps_star, "w_norm_by_ratio": dict(zip(map(str, RATIOS), norms)),
                          "min_w_norm_below_0.75": below, "max_w_norm_above_1.25": above}
    figure = plot_lines(RATIOS, series, suite.figures / "liu2020_a_linear.png", xlabel="ε / ε*",
                        ylabel="‖w‖₂ (max over inits)", title="linear model: ‖w‖ against ε/ε*", logy=True, vline=1.0)
    ok = all(v["min_w_norm_below_0.75"] > 10 * v["max_w_norm_above_1.25"] for v in measured.values())
    reason = "; ".join(f"{k}: ε* = {v['eps_star']:.4f}, ‖w‖ ≥ {v['min_w_norm_below_0.75']:.3g} for ε ≤ 0.75ε*, "
                       f"≤ {v['max_w_norm_above_1.25']:.3g} for ε ≥ 1.25ε*" for k, v in measured.items())
    reason += (" (a convex problem: the initializations agree, so no seed spread is needed; "
               "the criterion is a 10× drop of ‖w‖ across the threshold)")
    return Finding(
        "a", PAPER, "A linear classifier (no bias, logistic loss) trained adversarially becomes constant (w = 0) "
        "exactly when ε ≥ ε* = ‖mean_i y_i x_i‖_q (q = ∞ for the L∞ threat, 2 for L2).",
        measured,
        {"data": "synthetic (2000 train, x used as given, classes exactly balanced)", "steps": steps,
         "optimizer": "full-batch subgradient descent, step cosine 1 → 0", "inits": list(suite.profile.seeds),
         "ratios": list(RATIOS)},
        "holds" if ok else "does not hold", reason, [figure.name])


# ---------------------------------------------------------------- (b)–(e) the ε sweep

def _measure_eps(suite: Suite, eps: float, seed: int, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Plateau length, final gradient norm, top Hessian eigenvalues and scattering of one run."""
    run = suite.at_run(seed, eps)
    history = run.metrics()
    model = suite.model(run, "last")
    threat = suite.threat(eps)
    top = L.lanczos(L.hessian(model, x, y, threat=threat, seed=seed), k=2,
                    max_steps=suite.profile.lanczos_steps, seed=seed).values.tolist()
    scatter = L.gradient_scattering(model, x, y, threat, seed=seed) if threat else None
    return {
        "epochs_to_plateau_exit": epochs_to_reach([r["train_clean_acc"] for r in history], PLATEAU_ACC, 0.1),
        "final_grad_norm": L.gradient_norm(model, x, y, threat, seed=seed),
        "hessian_top1": top[0], "hessian_top2": top[1],
        "cos_grad": scatter.cos_grad if scatter else 1.0,
        "cos_grad_per_example": scatter.cos_grad_per_example if scatter else 1.0,
        "cos_delta": scatter.cos_delta if scatter else math.nan,
        "curve": [r["train_clean_acc"] for r in history],
    }


def _trend(suite: Suite, table: dict[float, list[dict]], key: str, sign: int) -> tuple[dict, tuple]:
    """Per-eps mean/std of ``key``, its rank correlation with ε, and the verdict on (largest − smallest ε)·sign."""
    eps = sorted(table)
    per_eps = {f"{e:g}": dict(zip(("mean", "std"), mean_std([r[key] for r in table[e]]))) for e in eps}
    xs = [e for e in eps for _ in table[e]]
    values = [r[key] for e in eps for r in table[e]]
    diffs = [sign * (hi[key] - lo[key]) for lo, hi in zip(table[eps[0]], table[eps[-1]])]
    verdict = spread_verdict(diffs, f"{key} at ε = {eps[-1]:g} minus at ε = {eps[0]:g}" + (" (negated)" if sign < 0 else ""))
    return {"by_eps": per_eps, "spearman_with_eps": rank_correlation(xs, values)}, verdict


def eps_sweep(suite: Suite) -> list[Finding]:
    """(b) plateau, (c) final gradient norm, (d) top Hessian eigenvalue, (e) gradient scattering, against ε."""
    x, y = suite.analysis_data()
    eps_list = suite.eps_sweep
    suite.log(f"liu2020 (b–e): ε sweep {eps_list} × seeds {suite.profile.seeds}")
    table = {e: [_measure_eps(suite, e, s, x, y) for s in suite.profile.seeds] for e in eps_list}
    seeds = suite.profile.seeds
    settings = {"eps": list(eps_list), "seeds": list(seeds), "epochs": suite.epochs, "train_pgd_steps": suite.profile.steps,
                "analysis": f"last weights, first {len(y)} training examples, PGD-{suite.profile.analysis_steps} "
                            "(step ε/4) at each run's own ε"}
    curves = {f"ε = {e:g}": table[e][0]["curve"] for e in eps_list}
    fig_b = plot_lines(range(1, len(curves[f"ε = {eps_list[0]:g}"]) + 1), curves, suite.figures / "liu2020_b_plateau.png",
                       xlabel="epoch", ylabel="training clean accuracy", title=f"training curves (seed {seeds[0]})")
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
        measured, (verdict, reason) = _trend(suite, table, metric, sign)
        if metric == "hessian_top1":
            measured["top2_by_eps"] = {f"{e:g}": mean_std([r["hessian_top2"] for r in table[e]])[0] for e in eps_list}
        if metric == "cos_grad":
            for extra in ("cos_delta", "cos_grad_per_example"):
                measured[f"{extra}_by_eps"] = {f"{e:g}": mean_std([r[extra] for r in table[e]])[0] for e in eps_list}
        fig = plot_seeds(eps_list, {label: [[table[e][i][metric] for e in eps_list] for i in range(len(seeds))]},
                         suite.figures / f"liu2020_{key}_{metric}.png", xlabel="training ε", ylabel=label,
                         title=f"{label} against ε")
        figures = [fig_b.name, fig.name] if key == "b" else [fig.name]
        findings.append(Finding(key, PAPER, claim, measured, settings, verdict, reason, figures))
    return findings


# ---------------------------------------------------------------- (f) PAS

def pas_vs_at(suite: Suite) -> Finding:
    """(f) test robust accuracy (best checkpoint) of PAS and vanilla AT across learning rates and seeds."""
    lrs = [r * suite.data.lr for r in suite.profile.lrs]
    seeds = suite.profile.seeds
    cycles = [suite.epochs // 2, suite.epochs] if suite.epochs >= 2 else [suite.epochs]
    suite.log(f"liu2020 (f): PAS vs AT at learning rates {lrs} × seeds {seeds}")
    pas_extra = ["schedule.eps=pas", "schedule.lr=cyclic_cosine", f"schedule.cycles={cycles}"]
    acc = {"AT": [[suite.at_run(s, lr=lr).summary()["test_robust_acc"] for lr in lrs] for s in seeds],
           "PAS": [[suite.run(f"pas_lr{lr:.4g}_s{s}", [*pas_extra, f"optimizer.lr={lr}", f"seed={s}"])
                    .summary()["test_robust_acc"] for lr in lrs] for s in seeds]}
    figure = plot_seeds(lrs, acc, suite.figures / "liu2020_f_pas.png", xlabel="learning rate",
                        ylabel="test robust accuracy (PGD)", title="PAS vs AT across learning rates", logx=True)
    spread = {m: [mean_std(row)[1] for row in rows] for m, rows in acc.items()}
    measured = {m: {"by_lr": {f"{lr:.4g}": mean_std([row[i] for row in rows]) for i, lr in enumerate(lrs)},
                    "mean_over_lrs_and_seeds": mean_std([v for row in rows for v in row]),
                    "std_across_lrs_per_seed": spread[m]} for m, rows in acc.items()}
    better = spread_verdict([mean_std(p)[0] - mean_std(a)[0] for p, a in zip(acc["PAS"], acc["AT"])],
                            "PAS − AT robust accuracy (mean over learning rates)")
    steadier = spread_verdict([a - p for a, p in zip(spread["AT"], spread["PAS"])],
                              "AT − PAS std of robust accuracy across learning rates")
    verdict, reason = combine([better, steadier])
    return Finding("f", PAPER, "PAS beats vanilla AT in robust accuracy and varies less across learning rates.",
                   measured, {"lrs": lrs, "seeds": list(seeds), "epochs": suite.epochs, "pas_cycles": cycles,
                              "pas": "cosine ε ramp to 2ε per cycle, cosine LR restarted per cycle",
                              "checkpoint": "best by validation robust accuracy", "test_attack": f"PGD-{suite.profile.eval_steps}"},
                   verdict, reason, [figure.name])


def run(suite: Suite) -> list[Finding]:
    """All liu2020 findings, (a) to (f)."""
    suite.log("liu2020 (a): linear-model threshold on the synthetic task")
    return [linear_threshold(suite), *eps_sweep(suite), pas_vs_at(suite)]
