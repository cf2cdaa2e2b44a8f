"""The ``advland`` command line: a thin layer over the Python API.

User errors (bad config, missing data, unknown model, a missing run) print one line on stderr
and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
import time
from contextlib import suppress
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer

from . import catalog, distributed, recipes
from . import data as datasets
from .build import build_threat, load_split, resolve_device, schedule_values
from .compare import compare_evals, format_rows, read_eval
from .config import load_config
from .conventions import check_outputs
from .data import DatasetError
from .errors import AdvlandError
from .evaluation_run import EvalRequest, run_evaluation
from .export import export
from .jsonio import dumps
from .landscape import (METRICS, HessianOperator, average_flatness, blocks, gradient_lipschitz, gradient_norm,
                        gradient_scattering, hessian_directions, hutchinson, lanczos, slq, surface, worst_flatness)
from .landscape import hessian as hessian_operator
from .landscape import interpolate as interpolate_models
from .load import ModelSource, parse_model_kwargs, resolve_target
from .models import ModelError
from .plots.landscape import plot_contour, plot_curve, plot_density, plot_surface3d
from .plots.schedules import plot_schedules
from .radius import check_radius, parse_radius
from .report import write_run_report
from .reproduce import reproduce
from .reproduce.report import verdict_label
from .run import Run, atomic_write_text
from .sweep import load_sweep, sweep
from .threat import ThreatModel, default_step_size
from .train import train as run_training

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Adversarial training and the analysis of its loss landscape.")


_TARGET_HELP = ("A run directory, a checkpoint inside one, or a weights file advland did not write (.pt/.pth/"
                ".safetensors; give --model and --data, and the attack norm and eps).")
_MODEL_SOURCE_OPTIONS: dict[str, Any] = {
    "model": typer.Option(None, "--model", help="A registered model or package.module:factory (required for a "
                          "weights file; replaces a run's model)."),
    "model_kwargs": typer.Option(None, "--model-kwargs", help="JSON object of the model factory's keyword arguments."),
    "data": typer.Option(None, "--data", help="Dataset the model was trained on (required for a weights file)."),
    "data_root": typer.Option(None, "--data-root", help="Folder holding the dataset's files."),
    "normalize": typer.Option(None, "--normalize", help="Input normalization put in front of the model, so that eps "
                              "stays in pixel units: none (default for a weights file), data, MEAN,STD or m1..mC,s1..sC."),
    "output_index": typer.Option(None, "--output-index", help="For a model returning a tuple, list or dict: the "
                                 "element (index or key) holding the logits."),
}


def _takes_model_source(command: Callable[..., None]) -> Callable[..., None]:
    """Give a command the flags saying how to rebuild its model (--model, --model-kwargs, --data, --data-root,
    --normalize); the command receives them as one ``source`` argument (a :class:`advland.load.ModelSource`)."""
    own = [p.replace(annotation=eval(p.annotation, command.__globals__) if isinstance(p.annotation, str) else p.annotation)
           for p in inspect.signature(command).parameters.values() if p.name != "source"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[str])
             for name, option in _MODEL_SOURCE_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:

        flags = {name: kwargs.pop(name) for name in _MODEL_SOURCE_OPTIONS}
        flags["model_kwargs"] = parse_model_kwargs(flags["model_kwargs"])
        return command(*args, source=ModelSource(**flags), **kwargs)

    wrapper.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
    del wrapper.__wrapped__  # typer reads the signature above, not the command's
    return wrapper


def _user_errors() -> tuple[type[Exception], ...]:

    return AdvlandError, DatasetError, ModelError


@app.command()
def train(
    args: Optional[list[str]] = typer.Argument(None, help="A recipe (digits/at), CONFIG.yaml or a run directory, then key=value overrides."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this config."),
    extend: bool = typer.Option(False, "--extend", help="With --resume: let epochs grow beyond the run's "
                                "(recorded in the run; schedules relative to epochs change from then on)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a model; with no config, PGD-AT of a small CNN on the embedded digits data."""
    args = list(args or [])
    path = args.pop(0) if args and "=" not in args[0] else None
    if resume:
        args.append("resume=true")
    if extend and not resume:
        raise AdvlandError("--extend continues a run for more epochs; use it with --resume")
    config = load_config(path, args)
    summary = run_training(config, progress=progress, extend=extend)
    if distributed.is_main():  # under torchrun only rank 0 prints
        typer.echo(dumps(summary, indent=2))


@app.command("recipes")
def recipes_cmd(
    name: Optional[str] = typer.Argument(None, help="A recipe name (e.g. digits/at): print its YAML to copy and edit."),
) -> None:
    """List the recipes shipped with advland (data, model, method, expected time), or print one."""
    if name is not None:
        typer.echo(recipes.text(name), nl=False)
        return
    for line in catalog.table(catalog.listing()):
        typer.echo(line)
    typer.echo("train one with: advland train GROUP/NAME [key=value ...]; print it with: advland recipes GROUP/NAME")


@app.command()
def schedule(
    args: Optional[list[str]] = typer.Argument(None, help="A recipe (digits/at), CONFIG.yaml or a run directory, then key=value overrides."),
    out: Optional[Path] = typer.Option(None, help="PNG to write (default: schedule_<config name>.png here)."),
) -> None:
    """Plot the eps and learning-rate schedules of a config over training; print them at cycle boundaries."""
    args = list(args or [])
    path = args.pop(0) if args and "=" not in args[0] else None
    config = load_config(path, args)
    boundaries = config.cycle_boundaries()
    grid = [config.epochs * i / 2000 for i in range(2001)]
    eps, lr = schedule_values(config, grid)
    png = plot_schedules(grid, eps, lr, boundaries, out or Path(f"schedule_{config.name or 'default'}.png"),
                         title=f"eps: {config.schedule.eps}, lr: {config.schedule.lr}")
    typer.echo(f"{'cycle':>5} {'epoch':>9} {'eps':>10} {'lr':>10}")
    start = 0
    for index, end in enumerate(boundaries, 1):
        points = [(f"{start:g}", start), (f"{(start + end) / 2:g}", (start + end) / 2), (f"{end:g}-", end - 1e-9)]
        values = schedule_values(config, [t for _, t in points])
        for (label, _), e, r in zip(points, *values):
            typer.echo(f"{index:>5} {label:>9} {e:>10.6g} {r:>10.6g}")
        start = end
    typer.echo(f"(E- is the last iteration before the cycle ending at epoch E)\nsaved {png}")


@app.command("eval")
@_takes_model_source
def evaluate_cmd(
    target: Path = typer.Argument(..., help=_TARGET_HELP),
    norm: Optional[str] = typer.Option(None, help="linf, l2 or l1 (default: the run's threat model)."),
    eps: Optional[float] = typer.Option(None, parser=parse_radius, help="Radius in pixel units, e.g. 0.03 or 8/255 (default: the run's)."),
    allow_large_eps: bool = typer.Option(False, "--allow-large-eps", help="Accept a radius that makes every model "
                                         "chance-level (L-inf eps >= 0.5; by default refused as a likely unit mistake)."),
    attacks: str = typer.Option("pgd,cw,autoattack", help="Comma-separated subset of pgd, cw, autoattack."),
    aa_version: str = typer.Option("auto", help="AutoAttack version: standard, plus, rand (randomized models), "
                                   "custom (with --aa-attacks), or auto: rand for a randomized model, else standard."),
    aa_attacks: Optional[str] = typer.Option(None, help="With --aa-version custom: comma-separated subset of "
                                             "apgd-ce, apgd-dlr, apgd-t, fab, fab-t, square."),
    steps: int = typer.Option(20, help="Iterations of PGD and CW (step eps/4, random start)."),
    n: Optional[int] = typer.Option(None, "--n", "--examples", help="Evaluate on the first n test examples only "
                                    "(--examples: the same, for torchrun, which takes --n as its own)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Examples per attack batch (the unit "
                                             "shared out under torchrun; default: the run's data.eval_batch_size)."),
    which: str = typer.Option("best", help="best (selected on validation: summary.json's selected_on) or last."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Evaluate the run's snapshot ensemble (mean softmax)."),
    split: str = typer.Option("test", help="test or val."),
    seed: int = typer.Option(0),
    sanity: bool = typer.Option(True, "--sanity/--no-sanity", help="Run the automatic sanity checks (AutoAttack's "
                                "own checks run either way)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    source: Optional[ModelSource] = None,
) -> None:
    """Evaluate robustness: clean, PGD, CW, AutoAttack, the per-example worst case (each with its exact 95 %
    interval), and sanity checks. Under torchrun the test examples are shared out over the processes."""
    if norm is not None and norm not in ("linf", "l2", "l1"):
        raise AdvlandError(f"--norm must be linf, l2 or l1, got {norm!r}")
    if which not in ("best", "last") or split not in ("test", "val"):
        raise AdvlandError("--which must be best or last, and --split test or val")
    if steps < 1 or (n is not None and n < 1) or (batch_size is not None and batch_size < 1):
        raise AdvlandError("--steps, --n and --batch-size must be >= 1")
    if eps is not None and norm is not None:
        check_radius(norm, eps, allow_large=allow_large_eps, what="--eps", allow_hint="--allow-large-eps")
    threat = {"norm": norm, "eps": eps, "allow_large_eps": allow_large_eps or None}
    opened = _open(target, which, source, threat, "--norm and --eps")
    request = EvalRequest(attacks=[a.strip() for a in attacks.split(",") if a.strip()], norm=norm, eps=eps,
                          allow_large_eps=allow_large_eps, aa_version=aa_version,
                          aa_attacks=[a.strip() for a in aa_attacks.split(",")] if aa_attacks else None,
                          steps=steps, n=n, batch_size=batch_size, split=split, seed=seed, sanity=sanity, ensemble=ensemble)
    result = run_evaluation(opened, request, progress=progress)
    if distributed.is_main():  # under torchrun only rank 0 prints
        for line in result.lines():
            typer.echo(line)


@app.command("compare")
def compare_cmd(
    run_a: Path = typer.Argument(..., help="An eval_*.json, or a run directory (its newest eval_*.json)."),
    run_b: Path = typer.Argument(..., help="The other evaluation (same examples, same attack)."),
    name: Optional[str] = typer.Option(None, "--eval", help="In run directories, the eval file to pair "
                                       "(e.g. eval_linf_0.0314_best.json; default: each run's newest)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the comparison as JSON here."),
) -> None:
    """Paired comparison of two evaluations on the same examples: each accuracy with its exact interval, the
    difference with its 95 % interval and the exact McNemar p-value."""
    path_a, a = read_eval(run_a, name)
    path_b, b = read_eval(run_b, name)
    rows = compare_evals(a, b)
    typer.echo(f"A = {path_a}\nB = {path_b}\n{a['n']} paired examples, {a['norm']} eps={a['eps']:g}")
    for line in format_rows(rows):
        typer.echo(line)
    if out is not None:
        atomic_write_text(out, dumps({"a": str(path_a), "b": str(path_b), "rows": rows}, indent=2) + "\n")
        typer.echo(f"saved {out}")


@app.command("export")
def export_cmd(
    target: Path = typer.Argument(..., help="A run directory evaluated with AutoAttack (advland eval)."),
    fmt: str = typer.Option("robustbench", "--format", help="robustbench: state dict of the [0, 1]-input model "
                            "(normalization inside) and a model-info JSON with RobustBench's fields."),
    out: Path = typer.Option(..., "--out", help="Folder to write NAME.pt and NAME.json into."),
    name: Optional[str] = typer.Option(None, "--name", help="Model name (default: the run directory's name)."),
    eval_file: Optional[str] = typer.Option(None, "--eval", help="The eval_*.json whose accuracies to export "
                                            "(default: the newest with AutoAttack of the best weights)."),
) -> None:
    """Export a run's best weights and accuracies in a standard format (RobustBench's model zoo)."""
    for path in export(target, out, fmt=fmt, name=name, eval_file=eval_file):
        typer.echo(f"saved {path}")


@app.command("sweep")
def sweep_cmd(
    spec: str = typer.Argument(..., help="SWEEP.yaml or a shipped sweep (sweeps/digits_lr): base, grid, metric."),
    executor: str = typer.Option("local", help="local (this machine) or ray (a Ray cluster)."),
    workers: int = typer.Option(2, help="Runs at a time with the local executor."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local Ray)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Expand a grid of config overrides into runs and execute them; finished runs are skipped."""
    if workers < 1:
        raise AdvlandError(f"--workers must be >= 1, got {workers}")
    rows = sweep(spec, executor=executor, workers=workers, address=address, progress=progress)
    failed = [r for r in rows if r["status"].startswith("failed")]
    out_dir = Path(load_sweep(spec).out_dir)
    typer.echo(f"{len(rows) - len(failed)} of {len(rows)} runs finished; results in {out_dir / 'results.csv'}")
    for row in failed:
        typer.echo(f"  {row['run']}: {row['status']}")



# ---------------------------------------------------------------- loss-landscape analyses

_SPLIT_HELP = "Split the analysis runs on: train, test or val."
_N_HELP = "Use the first n examples of the split (--examples: the same, for torchrun, which takes --n as its own)."


def _threat_options(config, norm: Optional[str], eps: Optional[float], steps: Optional[int], step_size: Optional[float]):
    """The run's training threat model, with any of norm, eps, steps, step size replaced."""


    threat = build_threat(config)
    if norm is not None:
        if norm not in ("linf", "l2", "l1"):
            raise AdvlandError(f"--threat-norm must be linf, l2 or l1, got {norm!r}")
        threat = replace(threat, norm=norm)
    if eps is not None:
        check_radius(threat.norm, eps, allow_large=config.threat.allow_large_eps, what="--eps",
                     allow_hint="threat.allow_large_eps=true in the run's config.yaml")
        threat = threat.with_eps(eps)
    if steps is not None:
        if steps < 1:
            raise AdvlandError(f"--attack-steps must be >= 1, got {steps}")
        threat = replace(threat, steps=steps, step_size=threat.step_size * threat.steps / steps)
    if step_size is not None:
        threat = replace(threat, step_size=step_size)
    return threat


def _open(target: Path, which: str, source: ModelSource, threat: dict, flags: str):
    """The run (or imported weights file) a command works on; says so when a weights file was imported."""
    opened = resolve_target(target, which, source, threat, threat_hint=flags)
    if opened.imported:
        _say(f"imported {target} as the run {opened.run.path} (config.yaml, checkpoints/best.safetensors)")
    return opened


def _analysis_inputs(target: Path, which: str, split: str, n: Optional[int], source: ModelSource,
                     threat: dict, flags: str = "--threat-norm and --eps"):
    """(target, model on the run's device, x, y) for an analysis command."""
    if which not in ("best", "last", "init"):
        raise AdvlandError(f"--which must be best, last or init, got {which!r}")
    if split not in ("train", "test", "val"):
        raise AdvlandError(f"--split must be train, test or val, got {split!r}")
    if n is not None and n < 1:
        raise AdvlandError(f"--n must be >= 1, got {n}")
    opened = _open(target, which, source, threat, flags)
    device = resolve_device(opened.config.device)
    distributed.init(device)  # under torchrun: join the group; grids and probes are split over it
    model = opened.model(distributed.device_for(device))
    x, y = opened.data(split)
    check_outputs(model, x[:2], datasets.info(opened.config.data.name).num_classes)  # logits (N, classes), or one line
    return opened, model, x[:n], y[:n]


def _threat_flags(norm: Optional[str], eps: Optional[float], steps: Optional[int], step_size: Optional[float]) -> dict:
    """The attack flags as the threat section a weights file is imported with."""
    return {"norm": norm, "eps": eps, "steps": steps, "step_size": step_size}


def _span(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(part) for part in text.split(":"))
    except ValueError:
        raise AdvlandError(f"--range must look like -1:1 (two numbers lo:hi), got {text!r}") from None
    if not lo < hi:
        raise AdvlandError(f"--range needs lo < hi, got {text!r}")
    return lo, hi


def _metrics(text: str) -> list[str]:

    metrics = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise AdvlandError(f"unknown metric {(unknown or [text])[0]!r}; choose from {', '.join(METRICS)} (comma-separated)")
    return metrics


def _rank0() -> bool:
    """Whether this process writes and prints (always, except on ranks > 0 of a torchrun launch)."""
    return distributed.is_main()


def _say(message: str) -> None:
    if _rank0():
        typer.echo(message)


def _echo_saved(paths) -> None:
    for path in paths:
        _say(f"saved {path}")


@app.command()
@_takes_model_source
def landscape(
    target: Path = typer.Argument(..., help=_TARGET_HELP),
    dims: int = typer.Option(2, help="1 for a curve, 2 for a surface."),
    metric: str = typer.Option("clean_loss", help="Comma-separated: clean_loss, clean_acc, adv_loss, adv_acc."),
    split: str = typer.Option("test", "--split", help=_SPLIT_HELP),
    n: int = typer.Option(512, "--n", "--examples", help=_N_HELP),
    span: str = typer.Option("-1:1", "--range", help="Grid range lo:hi along each direction."),
    steps: int = typer.Option(21, help="Grid points per direction."),
    norm: str = typer.Option("filter", help="Direction normalization: filter, layer or none."),
    zero_bias_bn: bool = typer.Option(True, "--zero-bias-bn/--keep-bias-bn", help="Zero the direction on biases and BatchNorm."),
    seed: int = typer.Option(0, help="Seed of the directions (streams 0 and 1 of it: advland.seeds) and of the attack's start."),
    directions: str = typer.Option("random", help="random (Gaussian, normalized by --norm) or hessian (the top "
                                   "unit Hessian eigenvectors of the first metric's loss; --range in weight units)."),
    which: str = typer.Option("best", help="Checkpoint: best, last or init."),
    threat_norm: Optional[str] = typer.Option(None, help="Attack norm (default: the run's)."),
    eps: Optional[float] = typer.Option(None, parser=parse_radius, help="Attack radius, e.g. 0.03 or 8/255 (default: the run's)."),
    attack_steps: Optional[int] = typer.Option(None, help="PGD steps (default: the run's)."),
    step_size: Optional[float] = typer.Option(None, parser=parse_radius, help="PGD step size (default: the run's, scaled with eps)."),
    fmt: str = typer.Option("json,npz", "--format", help="Number files to write: json, npz or json,npz."),
    workers: Optional[int] = typer.Option(None, help="Threads evaluating grid points (default: torch's thread count)."),
    stack: Optional[int] = typer.Option(None, help="Points evaluated at once by vmap (default: as many as fit on a "
                                        "GPU, 1 on CPU, where it measured slower)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    source: Optional[ModelSource] = None,
) -> None:
    """Loss landscape along random directions (Li et al.) or Hessian eigenvectors: a 1-D curve or a 2-D contour and surface."""
    if dims not in (1, 2):
        raise AdvlandError(f"--dims must be 1 or 2, got {dims}")
    if steps < 2:
        raise AdvlandError(f"--steps must be >= 2, got {steps}")
    if norm not in ("filter", "layer", "none"):
        raise AdvlandError(f"--norm must be filter, layer or none, got {norm!r}")
    if directions not in ("random", "hessian"):
        raise AdvlandError(f"--directions must be random or hessian, got {directions!r}")
    formats = [f.strip() for f in fmt.split(",") if f.strip()]
    if not formats or any(f not in ("json", "npz") for f in formats):
        raise AdvlandError(f"--format must be json, npz or json,npz, got {fmt!r}")
    metrics, lo_hi = _metrics(metric), _span(span)
    opened, model, x, y = _analysis_inputs(target, which, split, n, source, _threat_flags(threat_norm, eps, attack_steps, step_size))
    run, threat = opened.run, _threat_options(opened.config, threat_norm, eps, attack_steps, step_size)
    given, described = None, None
    if directions == "hessian":
        loss_threat = threat if metrics[0].startswith("adv") else None
        given, described = hessian_directions(model, x, y, dims, threat=loss_threat, seed=seed)
    result = surface(model, x, y, dims=dims, metrics=metrics, span=lo_hi, steps=steps, norm=norm,
                     zero_bias_bn=zero_bias_bn, seed=seed, threat=threat, directions=given, workers=workers,
                     stack=stack, progress=progress)
    result.info |= {"checkpoint": which, "data": split} | ({"directions": described} if described else {})
    if not _rank0():
        return
    suffix = "_hessian" if directions == "hessian" else ""
    stem = run.path / "landscape" / f"surface_{dims}d_{'_'.join(metrics)}_{split}{suffix}"
    paths = result.save(stem, formats)
    if dims == 1:
        paths.append(plot_curve(result, f"{stem}.png"))
    else:
        for m in metrics:
            paths.append(plot_contour(result, m, f"{stem}_{m}_contour.png"))
            paths.append(plot_surface3d(result, m, f"{stem}_{m}_surface.png"))
    center = tuple(len(c) // 2 for c in result.coords)
    for i, d in enumerate(described or []):
        _say(f"  direction {i + 1}: Hessian eigenvector of the {d['loss']} loss, eigenvalue {d['eigenvalue']:.4g}")
    _say(f"{dims}-D landscape, {len(y)} {split} examples, {result.info['points']} points in "
         f"{result.info['seconds']:.1f} s ({result.info['workers']} workers, {result.info['stack']} per vmap, "
         f"{result.info['layout']} layout)")
    for m, values in result.values.items():
        _say(f"  {m:<10} at θ {values[center]:.4f}   min {values.min():.4f}   max {values.max():.4f}")
    _echo_saved(paths)


@app.command()
@_takes_model_source
def interpolate(
    run_a: Path = typer.Argument(..., help="A run directory (alone: its initial and final weights)."),
    run_b: Optional[Path] = typer.Argument(None, help="A second run directory or weights file: interpolate A -> B."),
    bn: str = typer.Option("interpolate", help="BatchNorm statistics: interpolate or recompute (on the train split)."),
    metric: str = typer.Option("clean_loss,clean_acc", help="Comma-separated metrics."),
    split: str = typer.Option("test", "--split", help=_SPLIT_HELP),
    n: int = typer.Option(512, "--n", "--examples", help=_N_HELP),
    span: str = typer.Option("0:1", "--range", help="Range of t, lo:hi (0 is A, 1 is B)."),
    steps: int = typer.Option(21, help="Points along the line."),
    which: str = typer.Option("best", help="Checkpoint of each run when two are given: best or last."),
    seed: int = typer.Option(0),
    threat_norm: Optional[str] = typer.Option(None), eps: Optional[float] = typer.Option(None, parser=parse_radius),
    attack_steps: Optional[int] = typer.Option(None), step_size: Optional[float] = typer.Option(None, parser=parse_radius),
    workers: Optional[int] = typer.Option(None, help="Threads evaluating points (default: torch's thread count)."),
    stack: Optional[int] = typer.Option(None, help="Points evaluated at once by vmap (default: as many as fit on a "
                                        "GPU, 1 on CPU, where it measured slower)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    source: Optional[ModelSource] = None,
) -> None:
    """Loss and accuracy along the line between two checkpoints (default: a run's init -> last)."""
    if bn not in ("interpolate", "recompute"):
        raise AdvlandError(f"--bn must be interpolate or recompute, got {bn!r}")
    if steps < 2:
        raise AdvlandError(f"--steps must be >= 2, got {steps}")
    metrics, lo_hi = _metrics(metric), _span(span)
    which_a, which_b = ("init", "last") if run_b is None else (which, which)
    if run_b is None and run_a.is_dir() and not Run(run_a).weights_path("init").exists():
        raise AdvlandError(f"{run_a} has no initial checkpoint (checkpoints/init.safetensors); give two runs")
    flags = _threat_flags(threat_norm, eps, attack_steps, step_size)
    opened, model_a, x, y = _analysis_inputs(run_a, which_a, split, n, source, flags)
    model_b = _analysis_inputs(run_b or run_a, which_b, split, 1, source, flags)[1]
    run, config = opened.run, opened.config
    threat = _threat_options(config, threat_norm, eps, attack_steps, step_size)
    bn_x = None
    if bn == "recompute":
        bn_x = load_split(config, "train")[0][:n]
    result = interpolate_models(model_a, model_b, x, y, metrics=metrics, span=lo_hi, steps=steps, bn=bn,
                                bn_data=bn_x, threat=threat, seed=seed, workers=workers, stack=stack,
                                progress=progress)
    label_a, label_b = (f"{run.path.name}:{which_a}", f"{(run_b or run.path).name}:{which_b}")
    result.info |= {"a": label_a, "b": label_b, "data": split}
    if not _rank0():
        return
    name = "init_to_last" if run_b is None else f"to_{run_b.name}_{which}"
    stem = run.path / "landscape" / f"interpolation_{name}_{split}"
    paths = result.save(stem) + [plot_curve(result, f"{stem}.png", xlabel=f"t  ({label_a} → {label_b})")]
    _say(f"interpolation {label_a} -> {label_b}, {len(y)} {split} examples, BN {bn}")
    for m, values in result.values.items():
        _say(f"  {m:<10} t=0: {values[0]:.4f}   t=1: {values[-1]:.4f}   max: {values.max():.4f}")
    _echo_saved(paths)


@app.command()
@_takes_model_source
def hessian(
    target: Path = typer.Argument(..., help=_TARGET_HELP),
    loss: str = typer.Option("adv", help="clean or adv (adversarial examples crafted once, held fixed)."),
    top_k: int = typer.Option(5, help="Number of top eigenvalues (Lanczos)."),
    tol: float = typer.Option(1e-3, help="Relative residual tolerance of the eigenpairs."),
    trace: bool = typer.Option(False, "--trace", help="Also estimate the trace (Hutchinson)."),
    probes: int = typer.Option(100, help="Hutchinson probes for --trace."),
    density: bool = typer.Option(False, "--density", help="Also estimate the spectral density (SLQ) and plot it."),
    density_probes: int = typer.Option(5, help="SLQ: Lanczos runs (random start vectors)."),
    density_steps: int = typer.Option(60, help="SLQ: Lanczos steps per run (HVPs)."),
    per_block: bool = typer.Option(False, "--blocks", help="Also the top eigenvalue of each layer's block."),
    split: str = typer.Option("train", "--split", help=_SPLIT_HELP),
    n: int = typer.Option(512, "--n", "--examples", help=_N_HELP),
    which: str = typer.Option("best", help="Checkpoint: best, last or init."),
    seed: int = typer.Option(0),
    threat_norm: Optional[str] = typer.Option(None), eps: Optional[float] = typer.Option(None, parser=parse_radius),
    attack_steps: Optional[int] = typer.Option(None), step_size: Optional[float] = typer.Option(None, parser=parse_radius),
    source: Optional[ModelSource] = None,
) -> None:
    """Hessian spectrum of the clean or adversarial loss: top eigenvalues, trace, density."""



    if loss not in ("clean", "adv"):
        raise AdvlandError(f"--loss must be clean or adv, got {loss!r}")
    if top_k < 1 or probes < 2 or density_probes < 1 or density_steps < 2:
        raise AdvlandError("--top-k and --density-probes must be >= 1, --probes and --density-steps >= 2")
    opened, model, x, y = _analysis_inputs(target, which, split, n, source, _threat_flags(threat_norm, eps, attack_steps, step_size))
    run, threat = opened.run, _threat_options(opened.config, threat_norm, eps, attack_steps, step_size) if loss == "adv" else None
    start = time.perf_counter()
    op = hessian_operator(model, x, y, threat=threat, seed=seed)
    eig = lanczos(op, k=min(top_k, op.shape[0]), tol=tol, seed=seed)
    out = {"loss": loss, "n": len(y), "data": split, "checkpoint": which, "threat": None if threat is None else asdict(threat),
           "parameters": op.shape[0], "top_eigenvalues": eig.values.tolist(), "residuals": eig.residuals.tolist(),
           "converged": eig.converged, "lanczos_products": eig.n_products}
    _say(f"Hessian of the {loss} loss, {len(y)} {split} examples, P = {op.shape[0]} weights")
    _say(f"  top-{len(eig.values)} eigenvalues: {', '.join(f'{v:.5g}' for v in eig.values.tolist())}"
               f"   ({eig.n_products} HVPs, converged: {eig.converged})")
    paths = []
    if trace:
        t = hutchinson(op, probes, seed=seed)
        out["trace"] = {"value": t.value, "std_error": t.std_error, "probes": probes}
        _say(f"  trace: {t.value:.5g} ± {t.std_error:.2g} (Hutchinson, {probes} probes)")
    if density:
        d = slq(op, density_probes, density_steps, seed=seed)
        grid = np.linspace(d.nodes.min() - 0.05 * np.ptp(d.nodes), d.nodes.max() + 0.05 * np.ptp(d.nodes), 1000)
        values = d.density(grid)
        out["density"] = {"nodes": d.nodes.tolist(), "weights": d.weights.tolist(), "grid": grid.tolist(),
                          "density": values.tolist(), "trace_estimate": d.trace().value}
        paths.extend([plot_density(grid, values, run.path / "landscape" / f"hessian_{loss}_density.png",
                                  eig.values.tolist())] if _rank0() else [])
        _say(f"  density: SLQ, {len(d.nodes)} probes x {d.nodes.shape[1]} steps; trace from it {d.trace().value:.5g}")
    if per_block:
        out["blocks"] = {}
        for name, params in blocks(model).items():
            block = HessianOperator(model, op.inputs, y, params=params)
            value = lanczos(block, k=1, tol=tol, seed=seed).values[0].item()
            out["blocks"][name] = value
            _say(f"  block {name:<28} top eigenvalue {value:.5g}")
    out["seconds"] = time.perf_counter() - start
    if not _rank0():
        return
    paths.insert(0, run.write_json(f"landscape/hessian_{loss}_{split}.json", out))
    _say(f"  {out['seconds']:.1f} s")
    _echo_saved(paths)


@app.command()
@_takes_model_source
def gradients(
    target: Path = typer.Argument(..., help=_TARGET_HELP),
    split: str = typer.Option("train", "--split", help=_SPLIT_HELP),
    n: int = typer.Option(512, "--n", "--examples", help=_N_HELP),
    step: float = typer.Option(0.01, help="Scattering: θ' = θ + s·u with s = step·‖θ‖."),
    radius: float = typer.Option(0.01, help="Lipschitz: ‖Δ‖ = radius·‖θ‖."),
    directions: int = typer.Option(3, help="Lipschitz: random directions Δ."),
    eps_linf: Optional[float] = typer.Option(None, parser=parse_radius, help="L-inf budget (default: the run's, or eps_l2·4/√d)."),
    eps_l2: Optional[float] = typer.Option(None, parser=parse_radius, help="L2 budget (default: the run's, or eps_linf·√d/4)."),
    which: str = typer.Option("best", help="Checkpoint: best, last or init."),
    seed: int = typer.Option(0),
    source: Optional[ModelSource] = None,
) -> None:
    """Gradient norm, scattering and Lipschitz estimate of the adversarial loss, under L-inf and L2."""


    if step <= 0 or radius <= 0 or directions < 1:
        raise AdvlandError("--step and --radius must be > 0 and --directions >= 1")
    given = {"norm": "linf", "eps": eps_linf} if eps_linf is not None else {"norm": "l2", "eps": eps_l2}
    opened, model, x, y = _analysis_inputs(target, which, split, n, source, given, "--eps-linf or --eps-l2")
    run, threat = opened.run, _threat_options(opened.config, None, None, None, None)
    root_d = math.sqrt(x[0].numel())
    run_eps = {threat.norm: threat.eps} if threat.eps > 0 else {}
    if not run_eps and eps_linf is None and eps_l2 is None:
        raise AdvlandError(f"{run.path} was trained with eps 0 (no attack), so it has no budget to analyse at; "
                           f"give one with --eps-linf and/or --eps-l2")
    linf = eps_linf if eps_linf is not None else run_eps.get("linf", (eps_l2 or run_eps.get("l2", 0.0)) * 4 / root_d)
    l2 = eps_l2 if eps_l2 is not None else run_eps.get("l2", linf * root_d / 4)
    out = {"n": len(y), "data": split, "checkpoint": which, "clean_grad_norm": gradient_norm(model, x, y, seed=seed)}
    if not _rank0():
        return
    _say(f"gradient statistics, {len(y)} {split} examples; clean ‖∇L‖ = {out['clean_grad_norm']:.4g}")
    for norm, eps in (("linf", linf), ("l2", l2)):
        t = ThreatModel(norm, eps, default_step_size(eps, threat.steps), threat.steps)
        scattering = gradient_scattering(model, x, y, t, step=step, seed=seed)
        lipschitz = gradient_lipschitz(model, x, y, t, radius=radius, n_directions=directions, seed=seed)
        out[norm] = {"threat": asdict(t), "grad_norm": gradient_norm(model, x, y, t, seed=seed),
                     "scattering": asdict(scattering), "lipschitz": asdict(lipschitz) | {"mean": lipschitz.mean}}
        _say(f"  {norm:<4} eps={eps:.4g}: ‖∇L_eps‖ {out[norm]['grad_norm']:.4g}   "
                   f"cos δ {scattering.cos_delta:.4f}   cos sign δ {scattering.cos_sign_delta:.4f}   "
                   f"cos ∇ {scattering.cos_grad:.4f} (per example {scattering.cos_grad_per_example:.4f})   "
                   f"Lipschitz {lipschitz.mean:.4g} (max {lipschitz.max:.4g})")
    _echo_saved([run.write_json(f"landscape/gradients_{split}.json", out)])


@app.command()
@_takes_model_source
def flatness(
    target: Path = typer.Argument(..., help=_TARGET_HELP),
    split: str = typer.Option("test", "--split", help=_SPLIT_HELP),
    n: int = typer.Option(512, "--n", "--examples", help=_N_HELP),
    xi_average: float = typer.Option(0.5, help="Relative per-layer radius of the random perturbations."),
    xi_worst: float = typer.Option(0.003, help="Relative per-layer radius of the adversarial weight perturbation."),
    samples: int = typer.Option(10, help="Random perturbations for the average case."),
    perturb: str = typer.Option("weights", help="weights (Stutz et al.: not normalization layers; not biases) "
                                "or all (every parameter)."),
    which: str = typer.Option("best", help="Checkpoint: best, last or init."),
    seed: int = typer.Option(0),
    threat_norm: Optional[str] = typer.Option(None), eps: Optional[float] = typer.Option(None, parser=parse_radius),
    attack_steps: Optional[int] = typer.Option(None), step_size: Optional[float] = typer.Option(None, parser=parse_radius),
    source: Optional[ModelSource] = None,
) -> None:
    """Average- and worst-case flatness of the robust loss (Stutz et al. 2021)."""


    if xi_average < 0 or xi_worst < 0 or samples < 1:
        raise AdvlandError("--xi-average and --xi-worst must be >= 0 and --samples >= 1")
    if perturb not in ("weights", "all"):
        raise AdvlandError(f"--perturb must be weights or all, got {perturb!r}")
    opened, model, x, y = _analysis_inputs(target, which, split, n, source, _threat_flags(threat_norm, eps, attack_steps, step_size))
    run, threat = opened.run, _threat_options(opened.config, threat_norm, eps, attack_steps, step_size)
    average = average_flatness(model, x, y, threat, xi=xi_average, n_samples=samples, seed=seed, perturb=perturb)
    worst = worst_flatness(model, x, y, threat, xi=xi_worst, seed=seed, perturb=perturb)
    out = {"n": len(y), "data": split, "checkpoint": which, "threat": asdict(threat),
           "average": asdict(average), "worst": asdict(worst)}
    if not _rank0():
        return
    _say(f"flatness of the robust loss, {len(y)} {split} examples; robust loss at θ {average.base_loss:.4f}")
    _say(f"  average case (xi={xi_average:g}, {samples} samples): +{average.value:.4f}")
    _say(f"  worst case   (xi={xi_worst:g}): +{worst.value:.4f}")
    _echo_saved([run.write_json(f"landscape/flatness_{split}.json", out)])

@app.command("report")
def report_cmd(
    target: Path = typer.Argument(..., help="A run directory (its analyses are read from what it saved)."),
) -> None:
    """Write RUN/report.html: config, training curves, evaluations with sanity checks and every saved analysis
    (interactive plotly figures and their numbers as tables), one file that works offline."""

    typer.echo(f"saved {write_run_report(target)}")


@app.command("reproduce")
def reproduce_cmd(
    paper: str = typer.Argument(..., help="liu2020, kanai2021, wu2020 or all."),
    quick: bool = typer.Option(False, "--quick", help="The quick budget: a smoke test of every suite (under 10 min "
                               "on 2 CPU cores), its verdicts labelled as such."),
    data: str = typer.Option("digits", "--data", help="digits, mnist1d, fashion_mnist, mnist or cifar10."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report directory (default reproduce/<data>_<budget>)."),
    budget: Optional[str] = typer.Option(None, "--budget", hidden=True, help="tiny, quick or full (overrides --quick)."),
) -> None:
    """Reproduce the papers' findings (SPEC §9): train, measure, and write report.md/.html and findings.json."""
    budget = budget or ("quick" if quick else "full")
    findings = reproduce(paper, out or Path("reproduce") / f"{data}_{budget}", budget=budget, data=data,
                         device=device, log=typer.echo, progress=True)
    for f in findings:
        typer.echo(f"({f.key}) {f.paper}: {verdict_label(f)}")


def _click_usage_errors() -> tuple[type[Exception], ...]:
    """click's usage-error base class: typer >= 0.26 vendors click as ``typer._click``, older typers use click."""
    classes = []
    with suppress(ImportError):
        from typer._click.exceptions import ClickException as vendored
        classes.append(vendored)
    with suppress(ImportError):
        from click import ClickException
        classes.append(ClickException)
    return tuple(classes)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``advland`` command; returns the exit status."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="advland", standalone_mode=False)
    except _user_errors() as error:
        if "advland.distributed" in sys.modules and not sys.modules["advland.distributed"].is_main():
            return 2  # under torchrun rank 0 prints the one line
        typer.echo(f"error: {error}", err=True)
        return 2
    except typer.Exit as done:
        return done.exit_code
    except typer.Abort:
        return 1
    except _click_usage_errors() as error:  # an unknown option, a missing argument: click's one line
        error.show()
        return error.exit_code
    finally:
        if "advland.distributed" in sys.modules:
            sys.modules["advland.distributed"].shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
