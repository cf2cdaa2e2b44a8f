"""Experiment sweeps: a grid of config overrides expanded into runs, executed locally or on Ray.

A sweep file names a base config, the grid and what to report::

    base: digits/at                         # a recipe name, or a YAML file (relative: to this file's folder)
    out_dir: runs/sweep_lr
    overrides: {epochs: 10}                 # applied to every run
    grid:                                   # every combination becomes one run
      objective.name: [at, trades]
      optimizer.lr: [0.01, 0.03, 0.1]
      seed: [0, 1, 2]
    metric: test_robust_acc                 # from each run's summary.json
    x: optimizer.lr                         # x-axis of the plot
    hue: objective.name                     # one line per value (mean and spread over the rest)
    resources: {cpus: 1, gpus: 0}           # per trial

A ``base`` that is a YAML file (``.yaml``/``.yml``) and relative is resolved against the folder of
the sweep file, so the sweep runs from any directory; any other ``base`` is a recipe name.
``out_dir``, where the sweep writes, is relative to the current directory, as the ``out_dir`` of
``advland train`` is.

Every run is a separate ``advland train`` process, so a failing run cannot take the others down.
A run whose ``summary.json`` exists is finished and skipped on re-launch; one with a saved
training state is resumed; anything else starts afresh. Before anything runs, every finished or
interrupted run is compared with the config the sweep file now gives it: a difference (the base
config or the sweep's overrides changed under it) is refused in one line naming the run and the
keys, since the table would otherwise mix runs of two configs.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm.auto import tqdm

from . import recipes
from .config import ConfigError, load_config
from .errors import AdvlandError
from .jsonio import finite_or_null
from .plots.sweep import plot_sweep
from .resume import config_changes, describe_changes
from .run import Run, atomic_write_text


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cpus: float = Field(1.0, gt=0)
    gpus: float = Field(0.0, ge=0)


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: Optional[str] = None
    out_dir: str = "runs/sweep"
    overrides: dict[str, Any] = {}
    grid: dict[str, list[Any]]
    metric: str = "test_robust_acc"
    x: Optional[str] = None
    hue: Optional[str] = None
    resources: Resources = Resources()
    description: Optional[str] = None
    """One line saying what the sweep measures (listed by ``advland recipes``)."""
    expected_time: Optional[str] = None
    """Wall time of the whole sweep as measured, or "GPU"."""


@dataclass
class Trial:
    """One run of the sweep: its name, its overrides and where it lives."""

    name: str
    values: dict[str, Any]
    overrides: list[str]
    run: Run

    @property
    def status(self) -> Literal["finished", "interrupted", "new"]:
        if self.run.summary_path.exists():
            return "finished"
        if self.run.state_path.exists():
            return "interrupted"
        return "new"


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (a path, or a shipped recipe such as ``sweeps/digits_lr``); a relative YAML ``base``
    becomes a path relative to the sweep file's folder."""
    path = recipes.resolve(path)
    if not path.is_file():
        raise AdvlandError(f"sweep error: no sweep file at {path}; see advland.sweep for the format")
    try:
        spec = SweepSpec.model_validate(yaml.safe_load(path.read_text()) or {})
    except ValidationError as error:
        first = error.errors()[0]
        raise AdvlandError(f"sweep error: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    for key in (spec.x, spec.hue):
        if key is not None and key not in spec.grid:
            raise AdvlandError(f"sweep error: x/hue key {key!r} is not in the grid ({', '.join(spec.grid)})")
    base = Path(spec.base) if spec.base is not None else None
    if base is not None and base.suffix in (".yaml", ".yml") and not base.is_absolute():
        spec.base = str(path.parent / base)
    return spec


def _format(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _name_part(value: Any) -> str:
    """A grid value as part of a run name: its YAML flow form with every character outside
    letters, digits and ``.+-`` turned into ``_`` (``{lr: cosine}`` -> ``lr_cosine``)."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", _format(value)).strip("_")


def expand(spec: SweepSpec) -> list[Trial]:
    """Every combination of the grid as a trial; configs are validated before anything runs."""
    fixed = [f"{k}={_format(v)}" for k, v in spec.overrides.items()]
    trials = []
    for combo in itertools.product(*spec.grid.values()):
        values = dict(zip(spec.grid, combo))
        name = "__".join(f"{k}-{_name_part(v)}" for k, v in values.items())
        overrides = fixed + [f"{k}={_format(v)}" for k, v in values.items()]
        overrides += [f"out_dir={spec.out_dir}", f"name={name}"]
        try:
            load_config(spec.base, overrides)
        except ConfigError as error:
            raise AdvlandError(f"sweep error in run {name}: {error}") from None
        trials.append(Trial(name, values, overrides, Run(Path(spec.out_dir) / name)))
    return trials


def check_unchanged(spec: SweepSpec, trials: list[Trial]) -> None:
    """Refuse (one line) when a finished or interrupted run was made with another config than the sweep now gives it."""
    for trial in trials:
        if trial.status == "new" or not trial.run.config_path.exists():
            continue
        changes = config_changes(trial.run.config(), load_config(spec.base, trial.overrides))
        if changes:
            raise AdvlandError(f"sweep error: run {trial.run.path} was trained under another config than the sweep "
                               f"now gives it ({describe_changes(changes)}); restore the sweep file and its base, "
                               f"or give the sweep a new out_dir")


def command(spec: SweepSpec, trial: Trial) -> list[str]:
    """The ``advland train`` command line of a trial (resuming it when it was interrupted)."""
    cmd = [sys.executable, "-m", "advland", "train"] + ([spec.base] if spec.base else []) + trial.overrides
    cmd.append("--no-progress")
    cmd.append("--resume" if trial.status == "interrupted" else "overwrite=true")
    return cmd


def _trial_env(cpus: float) -> dict[str, str]:
    threads = str(max(1, int(cpus)))
    return os.environ | {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_trial(cmd: list[str], log_path: str, cpus: float) -> int:
    """Run one trial's command, writing its output to ``log_path``; return its exit status."""
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=_trial_env(cpus)).returncode


def _log_path(spec: SweepSpec, trial: Trial) -> str:
    return str(Path(spec.out_dir) / "logs" / f"{trial.name}.log")


def execute_local(spec: SweepSpec, trials: list[Trial], workers: int, progress: bool = True) -> dict[str, int]:
    """Run trials ``workers`` at a time on this machine; return each trial's exit status."""
    statuses = {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(run_trial, command(spec, t), _log_path(spec, t), spec.resources.cpus): t for t in trials}
        for future in tqdm(as_completed(futures), total=len(futures), desc="sweep", disable=not progress):
            statuses[futures[future].name] = future.result()
    return statuses


def execute_ray(spec: SweepSpec, trials: list[Trial], address: str | None, progress: bool = True) -> dict[str, int]:
    """Submit every trial as a Ray task with the sweep's resources (a local Ray is started if no address)."""
    try:
        import ray
    except ImportError:
        raise AdvlandError("--executor ray needs Ray: pip install 'advland[ray]' (or use --executor local)") from None
    ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    try:
        remote = ray.remote(num_cpus=spec.resources.cpus, num_gpus=spec.resources.gpus)(run_trial)
        refs = {remote.remote(command(spec, t), str(Path(_log_path(spec, t)).resolve()), spec.resources.cpus): t
                for t in trials}
        statuses, pending = {}, list(refs)
        bar = tqdm(total=len(refs), desc="sweep (ray)", disable=not progress)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            statuses[refs[done[0]].name] = ray.get(done[0])
            bar.update(1)
        bar.close()
        return statuses
    finally:
        ray.shutdown()


def collect(spec: SweepSpec, trials: list[Trial], statuses: dict[str, int]) -> list[dict[str, Any]]:
    """One row per trial: grid values (sections and lists in YAML flow form), status and every number of
    its summary.json."""
    rows = []
    for trial in trials:
        code = statuses.get(trial.name)
        state = trial.status if code in (None, 0) else f"failed (exit {code}, see logs/{trial.name}.log)"
        values = {k: v if isinstance(v, (bool, int, float, str)) else _format(v) for k, v in trial.values.items()}
        rows.append({"run": trial.name, **values, "status": state, **trial.run.summary()})
    return rows


def write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    """results.csv: one row per run; a number that is not finite (NaN: not defined) is an empty cell."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(finite_or_null(row) for row in rows)
    atomic_write_text(path, buffer.getvalue())
    return path


def sweep(path: str | Path, *, executor: str = "local", workers: int = 2, address: str | None = None,
          progress: bool = True) -> list[dict[str, Any]]:
    """Run (or finish) the sweep of ``path``; write results.csv and the metric plot; return the rows."""
    spec = load_sweep(path)
    trials = expand(spec)
    check_unchanged(spec, trials)
    todo = [t for t in trials if t.status != "finished"]
    if executor == "local":
        statuses = execute_local(spec, todo, workers, progress)
    elif executor == "ray":
        statuses = execute_ray(spec, todo, address, progress)
    else:
        raise AdvlandError(f"--executor must be local or ray, got {executor!r}")
    rows = collect(spec, trials, statuses)
    out = Path(spec.out_dir)
    write_table(rows, out / "results.csv")
    finished = [r for r in rows if r["status"] == "finished" and spec.metric in r]
    if finished and spec.x:
        plot_sweep(finished, spec.x, spec.metric, spec.hue, out / f"{spec.metric}_vs_{spec.x}.png")
    return rows
