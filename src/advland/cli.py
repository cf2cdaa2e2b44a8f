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


@app.command("eval")
def evaluate_cmd(
    target: Path = typer.Argument(..., help="A run directory or a .safetensors checkpoint inside one."),
    norm: Optional[str] = typer.Option(None, help="linf, l2 or l1 (default: the run's threat model)."),
    eps: Optional[float] = typer.Option(None, help="Radius in pixel units (default: the run's)."),
    attacks: str = typer.Option("pgd,cw,autoattack", help="Comma-separated subset of pgd, cw, autoattack."),
    steps: int = typer.Option(20, help="Iterations of PGD and CW (step eps/4, random start)."),
    n: Optional[int] = typer.Option(None, help="Evaluate on the first n test examples only."),
    which: str = typer.Option("best", help="best (by validation robust accuracy) or last."),
    split: str = typer.Option("test", help="test or val."),
    seed: int = typer.Option(0),
    sanity: bool = typer.Option(True, "--sanity/--no-sanity", help="Run the automatic sanity checks (SPEC §7)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Evaluate robustness: clean, PGD, CW, AutoAttack, the per-example worst case, and sanity checks."""
    from . import data as datasets
    from .build import resolve_device
    from .evaluate import evaluate
    from .run import load, resolve_checkpoint
    from .sanity import run_sanity_checks

    if norm is not None and norm not in ("linf", "l2", "l1"):
        raise AdvlandError(f"--norm must be linf, l2 or l1, got {norm!r}")
    if which not in ("best", "last") or split not in ("test", "val"):
        raise AdvlandError("--which must be best or last, and --split test or val")
    run, checkpoint = resolve_checkpoint(target, which)
    config = run.config()
    device = resolve_device(config.device)
    model = load(checkpoint, device=device)
    x, y = datasets.load(config.data.name, split, config.data.root, val_fraction=config.data.val_fraction, seed=config.seed)
    if n is not None:
        x, y = x[:n], y[:n]
    report = evaluate(model, x, y, norm=norm or config.threat.norm, eps=config.threat.eps if eps is None else eps,
                      attacks=[a.strip() for a in attacks.split(",") if a.strip()], steps=steps,
                      batch_size=config.data.eval_batch_size, seed=seed, progress=progress)
    checks = []
    if sanity:
        checks = run_sanity_checks(model, x, y, norm=report.norm, eps=report.eps,
                                   num_classes=datasets.info(config.data.name).num_classes,
                                   autoattack_warnings=report.warnings if "autoattack" in report.correct else None,
                                   batch_size=config.data.eval_batch_size)
    out = report.as_dict() | {"checkpoint": str(checkpoint), "split": split,
                              "sanity_checks": [c.as_dict() for c in checks]}
    path = run.write_json(f"eval_{report.norm}_{report.eps:g}_{checkpoint.stem}.json", out)
    typer.echo(f"{report.norm} eps={report.eps:g}, {report.n} {split} examples, checkpoint {checkpoint}")
    for name, acc in report.accuracy.items():
        typer.echo(f"  {name:<12} {100 * acc:6.2f} %")
    for warning in report.warnings:
        typer.echo(f"  warning: {warning}")
    for check in checks:
        typer.echo(f"  sanity {'ok  ' if check.passed else 'FAIL'} {check.name}: {check.detail}")
    typer.echo(f"saved {path}")


@app.command("sweep")
def sweep_cmd(
    spec: Path = typer.Argument(..., help="SWEEP.yaml: base config, grid, metric (see advland.sweep)."),
    executor: str = typer.Option("local", help="local (this machine) or ray (a Ray cluster)."),
    workers: int = typer.Option(2, help="Runs at a time with the local executor."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address (default: start a local Ray)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Expand a grid of config overrides into runs and execute them; finished runs are skipped."""
    from .sweep import load_sweep, sweep

    rows = sweep(spec, executor=executor, workers=workers, address=address, progress=progress)
    failed = [r for r in rows if r["status"].startswith("failed")]
    out_dir = Path(load_sweep(spec).out_dir)
    typer.echo(f"{len(rows) - len(failed)} of {len(rows)} runs finished; results in {out_dir / 'results.csv'}")
    for row in failed:
        typer.echo(f"  {row['run']}: {row['status']}")


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
