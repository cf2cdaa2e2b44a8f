"""The loss-landscape analyses of a run as library calls: check the options, open, compute, save, describe.

Each function takes the run (or weights file, imported as a run) an analysis command works on, opens it
with :func:`analysis_inputs`, computes with :mod:`advland.landscape`, saves its numbers and figures
through :meth:`advland.run.Run.save_analysis` (so that ``advland report`` shows them, whether they were
computed from the command line or from Python), tells ``log`` what it found as it goes (the lines the
command prints) and returns an :class:`Analysis`: the numbers and the files written. Under torchrun every
process computes its share; only rank 0 saves and logs.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

import torch
from torch import nn

from . import data as datasets
from . import distributed
from .build import build_threat, load_split, resolve_device
from .conventions import check_outputs
from .errors import AdvlandError
from .landscape import (METRICS, average_flatness, gradient_lipschitz, gradient_norm, gradient_scattering,
                        hessian_directions, hessian_spectrum, interpolate, surface, worst_flatness)
from .load import ModelSource, Target, resolve_target
from .plots.landscape import plot_contour, plot_curve, plot_density, plot_surface3d
from .radius import check_radius
from .run import Run
from .threat import ThreatError, ThreatModel, ThreatOverrides, default_step_size, linf_l2_budgets


Log = Callable[[str], None]
"""Where an analysis says what it found, line by line (the CLI prints; the default says nothing)."""


def _quiet(_: str) -> None:
    """A :data:`Log` that says nothing."""


@dataclass
class Analysis:
    """What an analysis computed (``data``) and the files it wrote."""

    data: dict[str, Any]
    paths: list[Path] = field(default_factory=list)


@dataclass
class Inputs:
    """An analysis's target (run, config, checkpoint), its model on the run's device, and the examples."""

    target: Target
    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor

    def threat(self, overrides: ThreatOverrides) -> ThreatModel:
        """The run's training threat model with the analysis's overrides (a radius no model could withstand
        refused, as in eval and the config)."""
        config = self.target.config
        if overrides.eps is not None:
            check_radius(overrides.norm or config.threat.norm, overrides.eps, allow_large=config.threat.allow_large_eps,
                         what="--eps", allow_hint="threat.allow_large_eps=true in the run's config.yaml")
        return overrides.apply(build_threat(config))


def analysis_inputs(target: str | Path, which: str = "best", split: str = "test", n: Optional[int] = None,
                    source: ModelSource | None = None, threat: ThreatOverrides | dict | None = None,
                    threat_hint: str = "--norm and --eps", log: Log = _quiet) -> Inputs:
    """Open ``target`` (a run directory, a checkpoint, or a weights file, imported as a run: ``source`` and
    ``threat`` say what it is) at checkpoint ``which`` and take the first ``n`` examples of ``split``. Under
    torchrun this joins the process group."""
    if which not in ("best", "last", "init", "ema", "ema_best"):
        raise AdvlandError(f"--which must be best, last, init, ema or ema_best, got {which!r}")
    if split not in ("train", "test", "val"):
        raise AdvlandError(f"--split must be train, test or val, got {split!r}")
    if n is not None and n < 1:
        raise AdvlandError(f"--n must be >= 1, got {n}")
    section = threat.section() if isinstance(threat, ThreatOverrides) else threat
    opened = resolve_target(target, which, source, section, threat_hint=threat_hint, log=log)
    device = resolve_device(opened.config.device)
    distributed.init(device)  # under torchrun: join the group; grids and probes are split over it
    model = opened.model(distributed.device_for(device))
    x, y = opened.data(split)
    check_outputs(model, x[:2], datasets.info(opened.config.data.name).num_classes)  # logits (N, classes), or one line
    return Inputs(opened, model, x[:n], y[:n])


def parse_metrics(text: str) -> list[str]:
    """``clean_loss,adv_acc`` as a list of known metrics."""
    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise AdvlandError(f"unknown metric {(unknown or [text])[0]!r}; choose from {', '.join(METRICS)} (comma-separated)")
    return metrics


def parse_span(text: str) -> tuple[float, float]:
    """``-1:1`` as (lo, hi) with lo < hi."""
    try:
        lo, hi = (float(part) for part in text.split(":"))
    except ValueError:
        raise AdvlandError(f"--range must look like -1:1 (two numbers lo:hi), got {text!r}") from None
    if not lo < hi:
        raise AdvlandError(f"--range needs lo < hi, got {text!r}")
    return lo, hi


def _main_log(log: Log) -> Log:
    """``log`` on the process that writes (rank 0 under torchrun); quiet elsewhere."""
    return log if distributed.is_main() else _quiet


def _say_saved(paths: list[Path], log: Log) -> None:
    for path in paths:
        log(f"saved {path}")


def landscape(target: str | Path, *, which: str = "best", split: str = "test", n: Optional[int] = 512,
              source: ModelSource | None = None, threat: ThreatOverrides = ThreatOverrides(), dims: int = 2,
              metrics: Sequence[str] = ("clean_loss",), span: tuple[float, float] = (-1.0, 1.0), steps: int = 21,
              direction_norm: str = "filter", zero_bias_bn: bool = True, seed: int = 0, directions: str = "random",
              formats: Sequence[str] = ("json", "npz"), workers: Optional[int] = None, stack: Optional[int] = None,
              progress: bool = False, log: Log = _quiet) -> Analysis:
    """A 1-D curve or 2-D surface (:func:`advland.landscape.surface`) along random directions (normalized by
    ``direction_norm``) or the top Hessian eigenvectors of the first metric's loss, saved as numbers and
    figures (surface kind)."""
    if dims not in (1, 2):
        raise AdvlandError(f"--dims must be 1 or 2, got {dims}")
    if steps < 2:
        raise AdvlandError(f"--steps must be >= 2, got {steps}")
    if direction_norm not in ("filter", "layer", "none"):
        raise AdvlandError(f"--direction-norm must be filter, layer or none, got {direction_norm!r}")
    if directions not in ("random", "hessian"):
        raise AdvlandError(f"--directions must be random or hessian, got {directions!r}")
    if not formats or any(f not in ("json", "npz") for f in formats):
        raise AdvlandError(f"--format must be json, npz or json,npz, got {','.join(formats)!r}")
    inputs = analysis_inputs(target, which, split, n, source, threat, log=log)
    model, x, y, run, attack = inputs.model, inputs.x, inputs.y, inputs.target.run, inputs.threat(threat)
    given, described = None, None
    if directions == "hessian":
        loss_threat = attack if metrics[0].startswith("adv") else None
        given, described = hessian_directions(model, x, y, dims, threat=loss_threat, seed=seed)
    result = surface(model, x, y, dims=dims, metrics=metrics, span=span, steps=steps, norm=direction_norm,
                     zero_bias_bn=zero_bias_bn, seed=seed, threat=attack, directions=given, workers=workers,
                     stack=stack, progress=progress)
    result.info |= {"checkpoint": which, "data": split} | ({"directions": described} if described else {})
    if not distributed.is_main():
        return Analysis(result.as_dict())
    label = f"{dims}d_{'_'.join(metrics)}_{split}{'_hessian' if directions == 'hessian' else ''}"
    paths, stem = run.save_analysis("surface", label, result, tuple(formats)), run.analysis_stem("surface", label)
    if dims == 1:
        paths.append(plot_curve(result, f"{stem}.png"))
    for m in metrics if dims == 2 else ():
        paths += [plot_contour(result, m, f"{stem}_{m}_contour.png"), plot_surface3d(result, m, f"{stem}_{m}_surface.png")]
    center = tuple(len(c) // 2 for c in result.coords)
    for i, d in enumerate(described or []):
        log(f"  direction {i + 1}: Hessian eigenvector of the {d['loss']} loss, eigenvalue {d['eigenvalue']:.4g}")
    log(f"{dims}-D landscape, {len(y)} {split} examples, {result.info['points']} points in "
        f"{result.info['seconds']:.1f} s ({result.info['workers']} workers, {result.info['stack']} per vmap, "
        f"{result.info['layout']} layout)")
    for m, values in result.values.items():
        log(f"  {m:<10} at θ {values[center]:.4f}   min {values.min():.4f}   max {values.max():.4f}")
    _say_saved(paths, log)
    return Analysis(result.as_dict(), paths)


def interpolation(run_a: str | Path, run_b: str | Path | None = None, *, which: str = "best", split: str = "test",
                  n: Optional[int] = 512, source: ModelSource | None = None, threat: ThreatOverrides = ThreatOverrides(),
                  metrics: Sequence[str] = ("clean_loss", "clean_acc"), span: tuple[float, float] = (0.0, 1.0),
                  steps: int = 21, bn: str = "interpolate", seed: int = 0, workers: Optional[int] = None,
                  stack: Optional[int] = None, progress: bool = False, log: Log = _quiet) -> Analysis:
    """Loss and accuracy along the line from ``run_a``'s checkpoint ``which`` to ``run_b``'s (alone: ``run_a``'s
    initial to last weights), on ``run_a``'s examples, BatchNorm statistics interpolated or recomputed on the
    run's training split; saved in ``run_a`` (interpolation kind)."""
    if bn not in ("interpolate", "recompute"):
        raise AdvlandError(f"--bn must be interpolate or recompute, got {bn!r}")
    if steps < 2:
        raise AdvlandError(f"--steps must be >= 2, got {steps}")
    which_a, which_b = ("init", "last") if run_b is None else (which, which)
    if run_b is None and Path(run_a).is_dir() and not Run(run_a).weights_path("init").exists():
        raise AdvlandError(f"{run_a} has no initial checkpoint (checkpoints/init.safetensors); give two runs")
    a = analysis_inputs(run_a, which_a, split, n, source, threat, log=log)
    b = analysis_inputs(run_b or run_a, which_b, split, 1, source, threat, log=log)
    run, config = a.target.run, a.target.config
    bn_x = load_split(config, "train")[0][:n] if bn == "recompute" else None
    result = interpolate(a.model, b.model, a.x, a.y, metrics=metrics, span=span, steps=steps, bn=bn, bn_data=bn_x,
                         threat=a.threat(threat), seed=seed, workers=workers, stack=stack, progress=progress)
    label_a, label_b = f"{run.path.name}:{which_a}", f"{Path(run_b or run.path).name}:{which_b}"
    result.info |= {"a": label_a, "b": label_b, "data": split}
    if not distributed.is_main():
        return Analysis(result.as_dict())
    label = f"{'init_to_last' if run_b is None else f'to_{Path(run_b).name}_{which}'}_{split}"
    stem = run.analysis_stem("interpolation", label)
    paths = run.save_analysis("interpolation", label, result, ("json", "npz"))
    paths.append(plot_curve(result, f"{stem}.png", xlabel=f"t  ({label_a} → {label_b})"))
    log(f"interpolation {label_a} -> {label_b}, {len(a.y)} {split} examples, BN {bn}")
    for m, values in result.values.items():
        log(f"  {m:<10} t=0: {values[0]:.4f}   t=1: {values[-1]:.4f}   max: {values.max():.4f}")
    _say_saved(paths, log)
    return Analysis(result.as_dict(), paths)


def hessian(target: str | Path, *, which: str = "best", split: str = "train", n: Optional[int] = 512,
            source: ModelSource | None = None, threat: ThreatOverrides = ThreatOverrides(), loss: str = "adv",
            top_k: int = 5, tol: float = 1e-3, trace: bool = False, probes: int = 100, density: bool = False,
            density_probes: int = 5, density_steps: int = 60, per_block: bool = False, seed: int = 0,
            log: Log = _quiet) -> Analysis:
    """The Hessian spectrum (:func:`advland.landscape.hessian_spectrum`) of the clean or adversarial loss
    (adversarial examples crafted once, held fixed): top eigenvalues, and the trace, density and per-block
    top eigenvalues when asked; saved as the hessian analysis ``<loss>_<split>`` and the density figure."""
    if loss not in ("clean", "adv"):
        raise AdvlandError(f"--loss must be clean or adv, got {loss!r}")
    if top_k < 1 or probes < 2 or density_probes < 1 or density_steps < 2:
        raise AdvlandError("--top-k and --density-probes must be >= 1, --probes and --density-steps >= 2")
    inputs = analysis_inputs(target, which, split, n, source, threat, log=log)
    x, y, run, log = inputs.x, inputs.y, inputs.target.run, _main_log(log)
    start = time.perf_counter()
    spectrum = hessian_spectrum(inputs.model, x, y, threat=inputs.threat(threat) if loss == "adv" else None,
                                top_k=top_k, tol=tol, trace_probes=probes if trace else 0,
                                density_probes=density_probes if density else 0, density_steps=density_steps,
                                per_block=per_block, seed=seed)
    out, eigs, paths = {"loss": loss, "n": len(y), "data": split, "checkpoint": which} | spectrum, spectrum["top_eigenvalues"], []
    log(f"Hessian of the {loss} loss, {len(y)} {split} examples, P = {spectrum['parameters']} weights")
    log(f"  top-{len(eigs)} eigenvalues: {', '.join(f'{v:.5g}' for v in eigs)}"
        f"   ({spectrum['lanczos_products']} HVPs, converged: {spectrum['converged']})")
    if trace:
        log(f"  trace: {out['trace']['value']:.5g} ± {out['trace']['std_error']:.2g} (Hutchinson, {probes} probes)")
    if density:
        d = out["density"]
        if distributed.is_main():
            png = run.analysis_stem("hessian", f"{loss}_density").with_suffix(".png")
            paths.append(plot_density(np.asarray(d["grid"]), np.asarray(d["density"]), png, eigs))
        log(f"  density: SLQ, {len(d['nodes'])} probes x {len(d['nodes'][0])} steps; trace from it {d['trace_estimate']:.5g}")
    for name, value in out.get("blocks", {}).items():
        log(f"  block {name:<28} top eigenvalue {value:.5g}")
    out["seconds"] = time.perf_counter() - start
    if not distributed.is_main():
        return Analysis(out)
    paths = run.save_analysis("hessian", f"{loss}_{split}", out) + paths
    log(f"  {out['seconds']:.1f} s")
    _say_saved(paths, log)
    return Analysis(out, paths)


def gradients(target: str | Path, *, which: str = "best", split: str = "train", n: Optional[int] = 512,
              source: ModelSource | None = None, eps_linf: Optional[float] = None, eps_l2: Optional[float] = None,
              step: float = 0.01, radius: float = 0.01, directions: int = 3, seed: int = 0,
              log: Log = _quiet) -> Analysis:
    """Gradient norm, scattering and Lipschitz estimate of the adversarial loss under L-inf and L2, at the given
    radii or those :func:`advland.threat.linf_l2_budgets` derives from the run; saved as the gradients analysis
    ``<split>``."""
    if step <= 0 or radius <= 0 or directions < 1:
        raise AdvlandError("--step and --radius must be > 0 and --directions >= 1")
    given = {"norm": "linf", "eps": eps_linf} if eps_linf is not None else {"norm": "l2", "eps": eps_l2}
    inputs = analysis_inputs(target, which, split, n, source, given, "--eps-linf or --eps-l2", log)
    model, x, y, run = inputs.model, inputs.x, inputs.y, inputs.target.run
    own = build_threat(inputs.target.config)
    try:
        budgets = dict(zip(("linf", "l2"), linf_l2_budgets(own, x[0].numel(), eps_linf, eps_l2)))
    except ThreatError as error:
        raise AdvlandError(f"{run.path} was {error}") from None
    out: dict[str, Any] = {"n": len(y), "data": split, "checkpoint": which,
                           "clean_grad_norm": gradient_norm(model, x, y, seed=seed)}
    if not distributed.is_main():
        return Analysis(out)
    log(f"gradient statistics, {len(y)} {split} examples; clean ‖∇L‖ = {out['clean_grad_norm']:.4g}")
    for norm, eps in budgets.items():
        t = ThreatModel(norm, eps, default_step_size(eps, own.steps), own.steps)
        scattering = gradient_scattering(model, x, y, t, step=step, seed=seed)
        lipschitz = gradient_lipschitz(model, x, y, t, radius=radius, n_directions=directions, seed=seed)
        out[norm] = {"threat": asdict(t), "grad_norm": gradient_norm(model, x, y, t, seed=seed),
                     "scattering": asdict(scattering), "lipschitz": asdict(lipschitz) | {"mean": lipschitz.mean}}
        log(f"  {norm:<4} eps={eps:.4g}: ‖∇L_eps‖ {out[norm]['grad_norm']:.4g}   "
            f"cos δ {scattering.cos_delta:.4f}   cos sign δ {scattering.cos_sign_delta:.4f}   "
            f"cos ∇ {scattering.cos_grad:.4f} (per example {scattering.cos_grad_per_example:.4f})   "
            f"Lipschitz {lipschitz.mean:.4g} (max {lipschitz.max:.4g})")
    paths = run.save_analysis("gradients", split, out)
    _say_saved(paths, log)
    return Analysis(out, paths)


def flatness(target: str | Path, *, which: str = "best", split: str = "test", n: Optional[int] = 512,
             source: ModelSource | None = None, threat: ThreatOverrides = ThreatOverrides(), xi_average: float = 0.5,
             xi_worst: float = 0.003, samples: int = 10, perturb: str = "weights", seed: int = 0,
             log: Log = _quiet) -> Analysis:
    """Average- and worst-case flatness of the robust loss (Stutz et al. 2021); saved as the flatness analysis
    ``<split>``."""
    if xi_average < 0 or xi_worst < 0 or samples < 1:
        raise AdvlandError("--xi-average and --xi-worst must be >= 0 and --samples >= 1")
    if perturb not in ("weights", "all"):
        raise AdvlandError(f"--perturb must be weights or all, got {perturb!r}")
    inputs = analysis_inputs(target, which, split, n, source, threat, log=log)
    model, x, y, attack = inputs.model, inputs.x, inputs.y, inputs.threat(threat)
    average = average_flatness(model, x, y, attack, xi=xi_average, n_samples=samples, seed=seed, perturb=perturb)
    worst = worst_flatness(model, x, y, attack, xi=xi_worst, seed=seed, perturb=perturb)
    out = {"n": len(y), "data": split, "checkpoint": which, "threat": asdict(attack),
           "average": asdict(average), "worst": asdict(worst)}
    if not distributed.is_main():
        return Analysis(out)
    log(f"flatness of the robust loss, {len(y)} {split} examples; robust loss at θ {average.base_loss:.4f}")
    log(f"  average case (xi={xi_average:g}, {samples} samples): +{average.value:.4f}")
    log(f"  worst case   (xi={xi_worst:g}): +{worst.value:.4f}")
    paths = inputs.target.run.save_analysis("flatness", split, out)
    _say_saved(paths, log)
    return Analysis(out, paths)
