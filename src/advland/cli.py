"""The ``advland`` command line: a thin layer over the Python API.

User errors (bad config, missing data, unknown model, a missing run) print one line on stderr
and exit with status 2; they never show a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .errors import AdvlandError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Adversarial training and the analysis of its loss landscape.")


def _user_errors() -> tuple[type[Exception], ...]:
    from .data import DatasetError
    from .models import ModelError

    return AdvlandError, DatasetError, ModelError


@app.command()
def train(
    args: Optional[list[str]] = typer.Argument(None, help="CONFIG.yaml (or a run directory) then key=value overrides."),
    resume: bool = typer.Option(False, "--resume", help="Continue the interrupted run of this config."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Train a model; with no config, PGD-AT of a small CNN on the embedded digits data."""
    from .config import load_config
    from .train import train as run_training

    args = list(args or [])
    path = args.pop(0) if args and "=" not in args[0] else None
    if resume:
        args.append("resume=true")
    config = load_config(path, args)
    summary = run_training(config, progress=progress)
    typer.echo(json.dumps(summary, indent=2))


@app.command()
def schedule(
    args: Optional[list[str]] = typer.Argument(None, help="CONFIG.yaml (or a run directory) then key=value overrides."),
    out: Optional[Path] = typer.Option(None, help="PNG to write (default: schedule_<config name>.png here)."),
) -> None:
    """Plot the eps and learning-rate schedules of a config over training; print them at cycle boundaries."""
    from .build import schedule_values
    from .config import load_config
    from .plots.schedules import plot_schedules

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
def evaluate_cmd(
    target: Path = typer.Argument(..., help="A run directory or a .safetensors checkpoint inside one."),
    norm: Optional[str] = typer.Option(None, help="linf, l2 or l1 (default: the run's threat model)."),
    eps: Optional[float] = typer.Option(None, help="Radius in pixel units (default: the run's)."),
    attacks: str = typer.Option("pgd,cw,autoattack", help="Comma-separated subset of pgd, cw, autoattack."),
    steps: int = typer.Option(20, help="Iterations of PGD and CW (step eps/4, random start)."),
    n: Optional[int] = typer.Option(None, help="Evaluate on the first n test examples only."),
    which: str = typer.Option("best", help="best (by validation robust accuracy) or last."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Evaluate the run's snapshot ensemble (mean softmax)."),
    split: str = typer.Option("test", help="test or val."),
    seed: int = typer.Option(0),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Evaluate robustness: clean, PGD, CW, AutoAttack and the per-example worst case."""
    from . import data as datasets
    from .build import resolve_device
    from .evaluate import evaluate
    from .run import load, load_ensemble, resolve_checkpoint

    if norm is not None and norm not in ("linf", "l2", "l1"):
        raise AdvlandError(f"--norm must be linf, l2 or l1, got {norm!r}")
    if which not in ("best", "last") or split not in ("test", "val"):
        raise AdvlandError("--which must be best or last, and --split test or val")
    run, checkpoint = resolve_checkpoint(target, which)
    config = run.config()
    device = resolve_device(config.device)
    if ensemble:
        model, stem = load_ensemble(run.path, device=device), "ensemble"
        label = "ensemble of " + ", ".join(path.name for path in run.snapshot_paths())
    else:
        model, stem, label = load(checkpoint, device=device), checkpoint.stem, str(checkpoint)
    x, y = datasets.load(config.data.name, split, config.data.root, val_fraction=config.data.val_fraction, seed=config.seed)
    if n is not None:
        x, y = x[:n], y[:n]
    report = evaluate(model, x, y, norm=norm or config.threat.norm, eps=config.threat.eps if eps is None else eps,
                      attacks=[a.strip() for a in attacks.split(",") if a.strip()], steps=steps,
                      batch_size=config.data.eval_batch_size, seed=seed, progress=progress)
    out = report.as_dict() | {"checkpoint": label, "split": split}
    path = run.write_json(f"eval_{report.norm}_{report.eps:g}_{stem}.json", out)
    typer.echo(f"{report.norm} eps={report.eps:g}, {report.n} {split} examples, checkpoint {label}")
    for name, acc in report.accuracy.items():
        typer.echo(f"  {name:<12} {100 * acc:6.2f} %")
    for warning in report.warnings:
        typer.echo(f"  warning: {warning}")
    typer.echo(f"saved {path}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``advland`` command; returns the exit status."""
    command = typer.main.get_command(app)
    try:
        command.main(args=argv, prog_name="advland", standalone_mode=False)
    except _user_errors() as error:
        typer.echo(f"error: {error}", err=True)
        return 2
    except typer.Exit as done:
        return done.exit_code
    except Exception as error:  # click's own usage errors
        import click

        if isinstance(error, click.ClickException):
            error.show()
            return error.exit_code
        if isinstance(error, click.exceptions.Abort):
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
