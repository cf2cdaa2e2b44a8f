"""A run is a directory: the resolved config, metrics.jsonl, checkpoints, figures, summary.json.

Layout::

    RUN/config.yaml              the resolved configuration
    RUN/metrics.jsonl            one JSON object per epoch
    RUN/summary.json             final test numbers
    RUN/checkpoints/state.pt     full training state for exact resume (weights-only loadable)
    RUN/checkpoints/init.safetensors, last.safetensors, best.safetensors   model weights
                                 (before training, after the last epoch, best by validation)
    RUN/checkpoints/snapshot_<epoch>.safetensors         weights at cycle ends (schedule.snapshots)
    RUN/landscape/               loss-landscape analyses (numbers as JSON/NPZ, figures as PNG)

Every file is written atomically (temporary file, fsync, rename), so a crash during a write
leaves the previous version intact. Nothing is ever unpickled: weights are safetensors and the
training state is read with ``torch.load(weights_only=True)``. JSON is strict (:mod:`advland.jsonio`).
A damaged or truncated weights or state file is reported in one line naming the file and what to
do (:func:`load_weights`, :func:`load_state`), never as a traceback.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .config import Config, dump_config, load_config
from .errors import AdvlandError
from .jsonio import dumps


def _umask() -> int:
    """The process's file-creation mask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[str], None]) -> None:
    """Write a file through ``write(tmp_path)`` and move it into place only once complete.

    The file gets the permissions an ordinary ``open(path, "w")`` would give (0666 less the umask), not
    the 0600 of a temporary file, so that colleagues and services reading the run can read it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # after write: some writers (safetensors) create the file anew
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(path, write)


ANALYSIS_FILES = {
    "eval": "eval_{}",
    "surface": "landscape/surface_{}",
    "interpolation": "landscape/interpolation_{}",
    "hessian": "landscape/hessian_{}",
    "gradients": "landscape/gradients_{}",
    "flatness": "landscape/flatness_{}",
    "curve": "landscape/curve_epoch{}",
}
"""Where each kind of analysis lives in a run directory: the pattern of its file stem (the label fills ``{}``).
``advland report`` finds them here; nothing else names analysis files."""


def run_dir_of(checkpoint: str | Path) -> Path:
    """The run directory a weights file belongs to: the folder above ``checkpoints/``, else its own folder."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent


class Run:
    """Read and write the files of one run directory."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def state_path(self) -> Path:
        return self.checkpoint_dir / "state.pt"

    def weights_path(self, which: str) -> Path:
        return self.checkpoint_dir / f"{which}.safetensors"

    def snapshot_paths(self) -> list[Path]:
        """The cycle-end snapshots of this run, in epoch order."""
        paths = self.checkpoint_dir.glob("snapshot_*.safetensors")
        return sorted(paths, key=lambda path: int(path.stem.removeprefix("snapshot_")))

    @classmethod
    def for_config(cls, config: Config) -> "Run":
        """The run directory a config trains into: ``out_dir/name``, prepared for a fresh start or a resume."""
        run = cls(Path(config.out_dir) / (config.name or "default"))
        if config.resume:
            if not run.state_path.exists():
                raise AdvlandError(f"cannot resume: no checkpoint at {run.state_path}; drop --resume to start a new run")
        elif run.path.exists() and any(run.path.iterdir()):
            if not config.overwrite:
                raise AdvlandError(
                    f"run directory {run.path} already exists; pass --resume to continue it, "
                    f"overwrite=true to start it afresh, or name=... for a new run"
                )
            shutil.rmtree(run.path)
        run.path.mkdir(parents=True, exist_ok=True)
        return run

    def config(self) -> Config:
        if not self.config_path.exists():
            raise AdvlandError(f"{self.path} is not a run directory (no config.yaml); give the folder advland train wrote")
        return load_config(self.config_path)

    def write_config(self, config: Config) -> None:
        atomic_write_text(self.config_path, dump_config(config))

    def write_metrics(self, records: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl with one line per record (the trainer keeps the history in its state)."""
        atomic_write_text(self.metrics_path, "".join(dumps(r) + "\n" for r in records))

    def metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text().splitlines()
        return [_parse_json(line, self.metrics_path, f"line {i}") for i, line in enumerate(lines, 1) if line.strip()]

    def write_json(self, name: str, data: dict[str, Any]) -> Path:
        path = self.path / name
        atomic_write_text(path, dumps(data, indent=2) + "\n")
        return path

    def summary(self) -> dict[str, Any]:
        return _parse_json(self.summary_path.read_text(), self.summary_path) if self.summary_path.exists() else {}

    def analysis_stem(self, kind: str, label: str) -> Path:
        """The file stem (no suffix) of the ``kind`` analysis (:data:`ANALYSIS_FILES`) named ``label``."""
        return self.path / ANALYSIS_FILES[kind].format(label)

    def save_analysis(self, kind: str, label: str, result: Any, formats: tuple[str, ...] = ("json",)) -> list[Path]:
        """Save an analysis of this run where ``advland report`` finds it; return the files written.

        Args:
            kind: eval, surface, interpolation, hessian, gradients, flatness or curve.
            label: what tells it from others of its kind (e.g. ``adv_train`` for a Hessian of the adversarial
                loss on the training split).
            result: a dict of numbers (strict JSON), or an object saving itself with ``save(stem, formats)``
                (a :class:`~advland.landscape.Landscape`: ``formats`` json and/or npz).
        """
        stem = self.analysis_stem(kind, label)
        if isinstance(result, dict):
            path = stem.with_name(f"{stem.name}.json")
            atomic_write_text(path, dumps(result, indent=2) + "\n")
            return [path]
        return result.save(stem, formats)

    def analyses(self) -> list[tuple[str | None, Path]]:
        """Every saved analysis (its JSON file) as (kind, path): evaluations first, then the files under
        ``landscape/`` by name (kind None for a file no kind names)."""
        found = [("eval", p) for p in sorted(self.path.glob(Path(ANALYSIS_FILES["eval"].format("*.json")).name))]
        for path in sorted((self.path / "landscape").glob("*.json")):
            kind = next((k for k, pattern in ANALYSIS_FILES.items() if pattern.startswith("landscape/")
                         and path.name.startswith(Path(pattern).name.split("{")[0])), None)
            found.append((kind, path))
        return found

    def save_weights(self, which: str, model: nn.Module) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        atomic_write(self.weights_path(which), lambda tmp: save_file(tensors, tmp))

    def save_state(self, state: dict[str, Any]) -> None:
        atomic_write(self.state_path, lambda tmp: torch.save(state, tmp))

    def load_state(self) -> dict[str, Any]:
        return load_state(self.state_path)


class DamagedFileError(AdvlandError):
    """A run file exists but cannot be read (truncated, overwritten, not the format its name says)."""


def _parse_json(text: str, path: Path, where: str = "") -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        at = f" ({where}: {error.msg})" if where else f" ({error.msg})"
        raise DamagedFileError(f"{path} is damaged{at}; it is not valid JSON: restore it or re-create it "
                               f"(metrics.jsonl is rewritten from checkpoints/state.pt by --resume)") from None


def _first_line(error: BaseException) -> str:
    """The gist of a reader's error: its first sentence (torch's unpickler explains more than applies here)."""
    if isinstance(error, pickle.UnpicklingError):
        return "content that is not a checkpoint"
    text = str(error).strip().splitlines()
    return text[0].split(". ")[0][:120] if text else type(error).__name__


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors checkpoint (never executes pickled code); a damaged file is one-line :class:`DamagedFileError`."""
    path = Path(path)
    if not path.is_file():
        raise AdvlandError(f"no checkpoint at {path}; give a run directory or a .safetensors file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise DamagedFileError(
            f"{path} is damaged or truncated ({_first_line(error)}); use another checkpoint of the run "
            f"(--which best/last) or train it again") from None


def load_state(path: str | Path) -> dict[str, Any]:
    """Read a training state written by :meth:`Run.save_state` (``weights_only``: nothing is unpickled
    beyond tensors and plain containers); a damaged file is one-line :class:`DamagedFileError`."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError, RuntimeError, ValueError) as error:
        raise DamagedFileError(
            f"{path} is damaged or truncated ({_first_line(error)}); the run cannot be resumed from it: its "
            f"weights are still in checkpoints/last.safetensors; start again with overwrite=true or name=...") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise DamagedFileError(f"{path} is not a training state written by advland; start again with overwrite=true")
    return state


def load_into(model: nn.Module, tensors: dict[str, torch.Tensor], path: str | Path) -> nn.Module:
    """``model.load_state_dict(tensors)``, with a one-line error naming ``path`` when they do not fit."""
    try:
        model.load_state_dict(tensors)
    except RuntimeError as error:
        raise AdvlandError(f"the weights in {path} do not fit the model of the run's config.yaml "
                           f"({_first_line(error)}); give the run directory the weights were trained in") from None
    return model


def resolve_checkpoint(target: str | Path, which: str = "best") -> tuple[Run, Path]:
    """Accept a run directory or a checkpoint inside one; return the run and the weights file."""
    target = Path(target)
    if target.is_file():
        return Run(run_dir_of(target)), target
    run = Run(target)
    path = run.weights_path(which)
    if not path.exists() and which == "best":
        path = run.weights_path("last")
    if not path.exists() and which in ("ema", "ema_best") and run.config_path.exists():
        raise AdvlandError(f"{run.path} has no EMA of the weights (it was trained without ema.decay); "
                           f"choose --which best or last, or train with ema.decay=0.999")
    return run, path
