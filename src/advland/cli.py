"""The ``advland`` command line: parse the flags, call one library function, print what it returns.

User errors (bad config, missing data, unknown model, a missing run) print one line on stderr
and exit with status 2; they never show a traceback. Flags mean the same in every command: ``--norm`` and
``--eps`` are the attack's norm and radius; ``--direction-norm`` is how landscape directions are normalized.
Older spellings (``--threat-norm``; ``--norm filter|layer|none`` in ``landscape``) still work and print a
one-line notice.
"""

from __future__ import annotations

import sys
from contextlib import suppress
from pathlib import Path
from typing import Optional

import typer

from . import analyses, catalog, distributed, recipes
from .analyses import parse_metrics, parse_span
from .build import schedule_table, schedule_values
from .cli_flags import (EXAMPLES, STACK, TARGET_HELP, WHICH, AttackFlags, analysis_command, split_option,
                        takes_model_source)
from .compare import compare_evals, format_rows, read_eval
from .config import load_config
from .errors import AdvlandError
from .evaluation_run import EvalRequest, evaluate_run
from .export import export
from .jsonio import dumps
from .load import ModelSource
from .plots.schedules import plot_schedules
from .radius import parse_radius
from .report import write_run_report
from .reproduce import reproduce
from .reproduce.report import verdict_label
from .run import atomic_write_text
from .sweep import load_sweep, sweep
from .train import train as run_training

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Adversarial training and the analysis of its loss landscape.")

def _say(message: str) -> None:
    """Print, on the process that writes (all but ranks > 0 of a torchrun launch)."""
    if distributed.is_main():
        typer.echo(message)


def _config(args: Optional[list[str]], *extra: str):
    """The config of ``[recipe | CONFIG.yaml | run directory] key=value ...`` (plus ``extra`` overrides)."""
    args = list(args or [])
    path = args.pop(0) if args and "=" not in args[0] else None
    return load_config(path, [*args, *extra])


@app.command()
def train(
    args: Optional[list[str]] = typer.Argument(None, help="A recipe (digits/at), CONFIG.yaml or a run directory, then key=value overrides."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this config."),
    extend: bool = typer.Option(False, "--extend", help="With --resume: let epochs grow beyond the run's "
                                "(recorded in the run; schedules relative to epochs change from then on)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a model; with no config, PGD-AT of a small CNN on the embedded digits data."""
    if extend and not resume:
        raise AdvlandError("--extend continues a run for more epochs; use it with --resume")
    config = _config(args, *(["resume=true"] if resume else []))
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
    config = _config(args)
    grid = [config.epochs * i / 2000 for i in range(2001)]
    png = plot_schedules(grid, *schedule_values(config, grid), config.cycle_boundaries(),
                         out or Path(f"schedule_{config.name or 'default'}.png"),
                         title=f"eps: {config.schedule.eps}, lr: {config.schedule.lr}")
    for line in [*schedule_table(config), f"saved {png}"]:
        typer.echo(line)


@app.command("eval")
@takes_model_source
def evaluate_cmd(
    target: Path = typer.Argument(..., help=TARGET_HELP),
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
    which: str = typer.Option("best", help="best (selected on validation: summary.json's selected_on), last, or ema "
                                           "(the EMA of the weights of a run trained with ema.decay)."),
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
    request = EvalRequest(attacks=[a.strip() for a in attacks.split(",") if a.strip()], norm=norm, eps=eps,
                          allow_large_eps=allow_large_eps, aa_version=aa_version,
                          aa_attacks=[a.strip() for a in aa_attacks.split(",")] if aa_attacks else None,
                          steps=steps, n=n, batch_size=batch_size, split=split, seed=seed, sanity=sanity,
                          ensemble=ensemble)
    for line in evaluate_run(target, request, which=which, source=source, progress=progress, log=_say).lines():
        _say(line)  # under torchrun only rank 0 prints


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


@app.command()
@analysis_command
def landscape(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    dims: int = typer.Option(2, help="1 for a curve, 2 for a surface."),
    metric: str = typer.Option("clean_loss", help="Comma-separated: clean_loss, clean_acc, adv_loss, adv_acc."),
    split: str = split_option("test"),
    n: int = EXAMPLES,
    span: str = typer.Option("-1:1", "--range", help="Grid range lo:hi along each direction."),
    steps: int = typer.Option(21, help="Grid points per direction."),
    direction_norm: str = typer.Option("filter", help="Direction normalization: filter, layer or none."),
    zero_bias_bn: bool = typer.Option(True, "--zero-bias-bn/--keep-bias-bn", help="Zero the direction on biases and BatchNorm."),
    seed: int = typer.Option(0, help="Seed of the directions (streams 0 and 1 of it: advland.seeds) and of the attack's start."),
    directions: str = typer.Option("random", help="random (Gaussian, normalized by --direction-norm) or hessian (the "
                                   "top unit Hessian eigenvectors of the first metric's loss; --range in weight units)."),
    which: str = WHICH,
    fmt: str = typer.Option("json,npz", "--format", help="Number files to write: json, npz or json,npz."),
    workers: Optional[int] = typer.Option(None, help="Threads evaluating grid points (default: torch's thread count)."),
    stack: Optional[int] = STACK,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    source: Optional[ModelSource] = None,
    threat: Optional[AttackFlags] = None,
) -> None:
    """Loss landscape along random directions (Li et al.) or Hessian eigenvectors: a 1-D curve or a 2-D contour and surface."""
    direction_norm = threat.direction_norm or direction_norm  # given in its older spelling, --norm filter
    analyses.landscape(target, which=which, split=split, n=n, source=source, threat=threat, dims=dims,
                       metrics=parse_metrics(metric), span=parse_span(span), steps=steps, direction_norm=direction_norm,
                       zero_bias_bn=zero_bias_bn, seed=seed, directions=directions,
                       formats=[f.strip() for f in fmt.split(",") if f.strip()], workers=workers, stack=stack,
                       progress=progress, log=_say)


@app.command()
@analysis_command
def interpolate(
    run_a: Path = typer.Argument(..., help="A run directory (alone: its initial and final weights)."),
    run_b: Optional[Path] = typer.Argument(None, help="A second run directory or weights file: interpolate A -> B."),
    bn: str = typer.Option("interpolate", help="BatchNorm statistics: interpolate or recompute (on the train split)."),
    metric: str = typer.Option("clean_loss,clean_acc", help="Comma-separated metrics."),
    split: str = split_option("test"),
    n: int = EXAMPLES,
    span: str = typer.Option("0:1", "--range", help="Range of t, lo:hi (0 is A, 1 is B)."),
    steps: int = typer.Option(21, help="Points along the line."),
    which: str = typer.Option("best", help="Checkpoint of each run when two are given: best, last or ema."),
    seed: int = typer.Option(0),
    workers: Optional[int] = typer.Option(None, help="Threads evaluating points (default: torch's thread count)."),
    stack: Optional[int] = STACK,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    source: Optional[ModelSource] = None,
    threat: Optional[AttackFlags] = None,
) -> None:
    """Loss and accuracy along the line between two checkpoints (default: a run's init -> last)."""
    analyses.interpolation(run_a, run_b, which=which, split=split, n=n, source=source, threat=threat,
                           metrics=parse_metrics(metric), span=parse_span(span), steps=steps, bn=bn, seed=seed,
                           workers=workers, stack=stack, progress=progress, log=_say)


@app.command()
@analysis_command
def hessian(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    loss: str = typer.Option("adv", help="clean or adv (adversarial examples crafted once, held fixed)."),
    top_k: int = typer.Option(5, help="Number of top eigenvalues (Lanczos)."),
    tol: float = typer.Option(1e-3, help="Relative residual tolerance of the eigenpairs."),
    trace: bool = typer.Option(False, "--trace", help="Also estimate the trace (Hutchinson)."),
    probes: int = typer.Option(100, help="Hutchinson probes for --trace."),
    density: bool = typer.Option(False, "--density", help="Also estimate the spectral density (SLQ) and plot it."),
    density_probes: int = typer.Option(5, help="SLQ: Lanczos runs (random start vectors)."),
    density_steps: int = typer.Option(60, help="SLQ: Lanczos steps per run (HVPs)."),
    per_block: bool = typer.Option(False, "--blocks", help="Also the top eigenvalue of each layer's block."),
    split: str = split_option("train"),
    n: int = EXAMPLES,
    which: str = WHICH,
    seed: int = typer.Option(0),
    source: Optional[ModelSource] = None,
    threat: Optional[AttackFlags] = None,
) -> None:
    """Hessian spectrum of the clean or adversarial loss: top eigenvalues, trace, density."""
    analyses.hessian(target, which=which, split=split, n=n, source=source, threat=threat, loss=loss, top_k=top_k,
                     tol=tol, trace=trace, probes=probes, density=density, density_probes=density_probes,
                     density_steps=density_steps, per_block=per_block, seed=seed, log=_say)


@app.command()
@takes_model_source
def gradients(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    split: str = split_option("train"),
    n: int = EXAMPLES,
    step: float = typer.Option(0.01, help="Scattering: θ' = θ + s·u with s = step·‖θ‖."),
    radius: float = typer.Option(0.01, help="Lipschitz: ‖Δ‖ = radius·‖θ‖."),
    directions: int = typer.Option(3, help="Lipschitz: random directions Δ."),
    eps_linf: Optional[float] = typer.Option(None, parser=parse_radius, help="L-inf radius (default: the run's, or eps_l2·4/√d)."),
    eps_l2: Optional[float] = typer.Option(None, parser=parse_radius, help="L2 radius (default: the run's, or eps_linf·√d/4)."),
    which: str = WHICH,
    seed: int = typer.Option(0),
    source: Optional[ModelSource] = None,
) -> None:
    """Gradient norm, scattering and Lipschitz estimate of the adversarial loss, under L-inf and L2 (both, so the
    radii are per norm)."""
    analyses.gradients(target, which=which, split=split, n=n, source=source, eps_linf=eps_linf, eps_l2=eps_l2,
                       step=step, radius=radius, directions=directions, seed=seed, log=_say)


@app.command()
@analysis_command
def flatness(
    target: Path = typer.Argument(..., help=TARGET_HELP),
    split: str = split_option("test"),
    n: int = EXAMPLES,
    xi_average: float = typer.Option(0.5, help="Relative per-layer radius of the random perturbations."),
    xi_worst: float = typer.Option(0.003, help="Relative per-layer radius of the adversarial weight perturbation."),
    samples: int = typer.Option(10, help="Random perturbations for the average case."),
    perturb: str = typer.Option("weights", help="weights (Stutz et al.: not normalization layers; not biases) "
                                "or all (every parameter)."),
    which: str = WHICH,
    seed: int = typer.Option(0),
    source: Optional[ModelSource] = None,
    threat: Optional[AttackFlags] = None,
) -> None:
    """Average- and worst-case flatness of the robust loss (Stutz et al. 2021)."""
    analyses.flatness(target, which=which, split=split, n=n, source=source, threat=threat, xi_average=xi_average,
                      xi_worst=xi_worst, samples=samples, perturb=perturb, seed=seed, log=_say)


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
    """Reproduce the papers' findings: train, measure, and write report.md/.html and findings.json."""
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
    except AdvlandError as error:  # with DatasetError and ModelError
        if not distributed.is_main():
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
        distributed.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
