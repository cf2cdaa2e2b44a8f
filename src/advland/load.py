"""One loader for every command: a run directory, a checkpoint inside one, or a weights file advland
did not write.

A bare weights file (``.pt``/``.pth``/``.bin``/``.ckpt``: a state dict, or a dict holding one under
``state_dict``/``model``/``model_state_dict``/``net``; or ``.safetensors``) is read without executing
pickled code (``torch.load(weights_only=True)``), its keys are matched to the model (leading
``module.``, ``model.``, ``_orig_mod.`` stripped) and it is *imported*: written as a run directory
(``runs/<file stem>/config.yaml`` and ``checkpoints/best.safetensors``) that says which model,
normalization, data and threat model it stands for. From there every command takes the same path as
for a run advland trained, and ``advland report`` can read what the analyses saved.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import torch
from torch import nn

from .build import build_model, load_split
from .config import Config, ConfigError, ModelConfig, _merge, build_config, dump_config
from .conventions import parse_output_index
from .ensemble import SnapshotEnsemble
from .errors import AdvlandError
from .models import ModelError
from .run import Run, _first_line, atomic_write_text, load_weights, resolve_checkpoint, run_dir_of

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
PREFIXES = ("module.", "model.", "_orig_mod.")
_HOLDERS = ("state_dict", "model_state_dict", "model", "net", "state")


class LoadError(AdvlandError):
    """Weights that cannot be read or do not fit the model (one line)."""


@dataclass
class ModelSource:
    """The flags that say how to rebuild a model: all optional for a run directory (they override its
    config), ``model`` and ``data`` required for a bare weights file."""

    model: Optional[str] = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    data: Optional[str] = None
    data_root: Optional[str] = None
    normalize: Optional[str] = None
    output_index: Optional[str] = None

    def overrides(self) -> dict[str, Any]:
        """The config keys these flags set."""
        tree: dict[str, Any] = {}
        if self.output_index is not None:
            tree["model"] = {"output_index": parse_output_index(self.output_index)}
        if self.model is not None:
            tree.setdefault("model", {}).update({"name": self.model, "kwargs": self.model_kwargs})
        elif self.model_kwargs:
            tree.setdefault("model", {})["kwargs"] = self.model_kwargs
        if self.normalize is not None:
            tree.setdefault("model", {})["normalize"] = parse_normalize(self.normalize)
        if self.data is not None:
            tree["data"] = {"name": self.data} | ({"root": self.data_root} if self.data_root else {})
        elif self.data_root is not None:
            tree["data"] = {"root": self.data_root}
        return tree


def parse_model_kwargs(text: Optional[str]) -> dict[str, Any]:
    """``--model-kwargs '{"width": 2}'`` as a dict."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise AdvlandError(f"--model-kwargs must be a JSON object such as '{{\"width\": 2}}' ({error.msg})") from None
    if not isinstance(value, dict):
        raise AdvlandError(f"--model-kwargs must be a JSON object such as '{{\"width\": 2}}', got {text!r}")
    return value


def parse_normalize(text: str) -> Union[str, dict[str, list[float]]]:
    """``none``, ``data`` (the dataset's mean/std), ``MEAN,STD`` (one value each, every channel) or
    ``m1,...,mC,s1,...,sC`` (per channel) as the ``model.normalize`` config value."""
    if text in ("none", "data"):
        return text
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) < 2 or len(values) % 2:
        raise AdvlandError(f"--normalize must be none, data, MEAN,STD or m1,..,mC,s1,..,sC, got {text!r}")
    half = len(values) // 2
    return {"mean": values[:half], "std": values[half:]}


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of a weights file, never executing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"no weights file at {path}")
    if path.suffix == ".safetensors":
        return load_weights(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise LoadError(f"{path} holds Python objects besides tensors, which advland does not unpickle "
                        f"(weights_only loading); save model.state_dict() and load that") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise LoadError(f"{path} is damaged or not a PyTorch weights file ({_first_line(error)})") from None
    for _ in range(2):  # a checkpoint dict holding the state dict, possibly once more nested
        if isinstance(obj, dict):
            holder = next((k for k in _HOLDERS if isinstance(obj.get(k), dict)), None)
            if holder is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = obj[holder]
    if not isinstance(obj, dict) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        keys = ", ".join(list(obj)[:5]) if isinstance(obj, dict) else type(obj).__name__
        raise LoadError(f"{path} holds no state dict of tensors (found: {keys}); "
                        f"give a file saved from model.state_dict() or a dict holding it under state_dict or model")
    return obj


def _strip(key: str, expected: set[str]) -> str:
    while key not in expected:
        prefix = next((p for p in PREFIXES if key.startswith(p)), None)
        if prefix is None:
            break
        key = key[len(prefix):]
    return key


def fit_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str, model_name: str) -> None:
    """Load ``state`` into ``model`` after stripping wrapper prefixes; any key or shape mismatch is one line."""
    own = model.state_dict()
    expected = set(own)
    state = {_strip(k, expected): v for k, v in state.items()}
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
              if k in expected and v.shape != own[k].shape]

    def few(keys: list[str]) -> str:
        return ", ".join(keys[:4]) + (", ..." if len(keys) > 4 else "")

    problems = [f"{len(missing)} missing ({few(missing)})" if missing else "",
                f"{len(unexpected)} unexpected ({few(unexpected)})" if unexpected else "",
                f"{len(shapes)} of another shape ({few(shapes)})" if shapes else ""]
    if any(problems):
        raise LoadError(f"{source} does not fit model {model_name}: keys {'; '.join(p for p in problems if p)}; "
                        f"check --model, --model-kwargs and --data")
    model.load_state_dict(state, strict=False)  # strict but for num_batches_tracked, absent from old checkpoints


def _inner(model: nn.Module, config: Config) -> nn.Module:
    """The network without the Normalize layer build_model puts in front of it."""
    return model if config.model.normalize == "none" else model[1]


def build_run_model(config: Config, source: str) -> nn.Module:
    """``build_model(config)``, with a one-line answer when the run cannot say how to rebuild its model."""
    if config.model.name.startswith("<"):
        raise LoadError(f"{source} was trained on a model object ({config.model.name.strip('<>')}) without a "
                        f"model_factory; pass --model package.module:factory (and --model-kwargs JSON) that builds it")
    try:
        return build_model(config)
    except ModelError as error:
        raise LoadError(f"{source}: cannot rebuild its model ({error}); pass --model NAME or "
                        f"--model package.module:factory (and --model-kwargs JSON) to say which") from None


def user_model_config(model: nn.Module, config: Config, factory: Optional[str],
                      kwargs: Optional[dict[str, Any]]) -> ModelConfig:
    """The ``model`` section a run of a user model records: the factory that rebuilds it (checked to build the
    same parameter names and shapes), or, without one, only the model's class in angle brackets."""
    if factory is None:
        return ModelConfig(name=f"<{type(model).__module__}.{type(model).__qualname__}>", normalize="none")
    recorded = ModelConfig(name=factory, kwargs=kwargs or {}, normalize="none")
    rebuilt = build_run_model(config.model_copy(update={"model": recorded}), f"model_factory {factory!r}")
    own, other = model.state_dict(), rebuilt.state_dict()
    differ = [k for k in own.keys() | other.keys() if k not in own or k not in other or own[k].shape != other[k].shape]
    if differ:
        raise AdvlandError(f"model_factory {factory!r} with kwargs {kwargs or {}} builds a model that differs from the "
                           f"one given ({len(differ)} parameters, e.g. {', '.join(sorted(differ)[:3])})")
    return recorded


def with_user_model(config: Config, model: Optional[nn.Module], factory: Optional[str],
                    kwargs: Optional[dict[str, Any]]) -> Config:
    """``config`` with the ``model`` section a run of the user's ``model`` records (:func:`user_model_config`);
    unchanged without a model."""
    if model is None:
        if factory is not None:
            raise AdvlandError("model_factory records how to rebuild the model= given to Trainer; pass both")
        return config
    return config.model_copy(update={"model": user_model_config(model, config, factory, kwargs)})


def is_weights_file(target: Path) -> bool:
    """Whether ``target`` is a weights file that is not a checkpoint inside an advland run."""
    if not target.is_file() or target.suffix not in WEIGHT_SUFFIXES:
        return False
    return not Run(run_dir_of(target)).config_path.is_file()


def import_weights(path: str | Path, source: ModelSource, threat: dict[str, Any], out_dir: str | Path = "runs") -> Run:
    """Write ``out_dir/<stem>/config.yaml`` and ``checkpoints/best.safetensors`` for a bare weights file.

    Args:
        source: ``model`` and ``data`` are required; ``normalize`` defaults to none (inputs in [0, 1]).
        threat: the ``threat`` config section (``norm`` and ``eps`` required).
    """
    path = Path(path)
    if source.model is None or source.data is None:
        raise AdvlandError(f"{path} is a weights file: say what it is with --model NAME (or package.module:factory) "
                           f"and --data NAME (the dataset it was trained on)")
    tree = {"name": path.stem, "out_dir": str(out_dir), "description": f"imported from {path.resolve()}",
            "threat": threat, "model": {"normalize": "none"}}
    tree = _merge(tree, source.overrides())
    try:
        config = build_config(tree)
    except ConfigError as error:
        raise AdvlandError(f"{path}: {error}") from None
    run = import_dir(path, Path(out_dir))
    config = config.model_copy(update={"name": run.path.name})
    model, state = build_run_model(config, str(path)), read_state_dict(path)
    fit_state_dict(model_for_weights(model, config, state), state, str(path), config.model.name)
    run.path.mkdir(parents=True, exist_ok=True)
    # the record first: a process importing the same file at the same time (torchrun) then reuses this directory
    run.write_json(IMPORTED_FROM, {"path": str(path.resolve()), "sha256": file_digest(path)})
    atomic_write_text(run.config_path, dump_config(config))
    run.save_weights("best", model)
    return run


IMPORTED_FROM = "imported_from.json"
"""The file of an imported run saying which weights file (path and SHA-256) it holds."""


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_dir(path: Path, out_dir: Path) -> Run:
    """The run directory a weights file is imported into: ``out_dir/<stem>``, unless that holds a training run
    or the import of another file (another path or other contents), then ``out_dir/<stem>-<first 8 hex
    digits of the file's SHA-256>``; so two files sharing a name never overwrite each other's results."""
    digest = file_digest(path)
    for name in (path.stem, f"{path.stem}-{digest[:8]}"):
        run = Run(out_dir / name)
        if not run.path.exists() or not any(not p.name.startswith(".") for p in run.path.iterdir()):
            return run  # new, or being created (only hidden temporary files yet)
        record = run.path / IMPORTED_FROM
        if record.is_file() and not run.metrics_path.exists():
            known = json.loads(record.read_text())
            if known.get("path") == str(path.resolve()) and known.get("sha256") == digest:
                return run
    raise AdvlandError(f"{out_dir / path.stem} and {out_dir / f'{path.stem}-{digest[:8]}'} already hold other runs; "
                       f"cannot import {path} without overwriting one: rename {path.name} or move those runs away")


def model_for_weights(model: nn.Module, config: Config, state: dict[str, torch.Tensor]) -> nn.Module:
    """The module a weights file's tensors belong to: the whole model when they include advland's
    normalization layer (a ``best.safetensors`` advland wrote, keys ``0.mean``, ``1.<layer>``), else the
    network behind it."""
    own = {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}
    if config.model.normalize != "none" and own <= {_strip(k, own) for k in state}:
        return model
    return _inner(model, config)


@dataclass
class Target:
    """What a command works on: the run (where results go), its config with any flags applied, and the weights."""

    run: Run
    config: Config
    checkpoint: Path
    imported: bool = False

    def model(self, device: str | torch.device = "cpu") -> nn.Module:
        """The model with the checkpoint's weights, in eval mode on ``device``."""
        model = build_run_model(self.config, str(self.run.path))
        weights = load_weights(self.checkpoint)
        fit_state_dict(model, weights, str(self.checkpoint), self.config.model.name)
        return model.to(device).eval()

    def data(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs (in [0, 1]) and labels of a split of the config's dataset, as the run sees it."""
        return load_split(self.config, split)


def resolve_target(target: str | Path, which: str = "best", source: ModelSource | None = None,
                   threat: dict[str, Any] | None = None, out_dir: str | Path = "runs",
                   threat_hint: str = "threat={'norm': ..., 'eps': ...}",
                   log: Callable[[str], None] = lambda _: None) -> Target:
    """A run directory, a checkpoint inside one, or a bare weights file (imported first) as a :class:`Target`.

    Args:
        which: best, last, init or ema (the EMA of the weights) for a run (best falls back to last); a weights
            file has only one.
        source: flags overriding the run's model and data, or describing a weights file.
        threat: the threat section of a weights file (``norm``, ``eps``), required for one.
        threat_hint: how the caller's user gives the threat (the CLI: its flags), named in the error.
        log: told in one line when a weights file was imported as a run.
    """
    target, source = Path(target), source or ModelSource()
    if is_weights_file(target):
        if which not in ("best",):
            raise AdvlandError(f"{target} is one weights file; --which {which} applies to run directories only")
        if not threat or threat.get("norm") is None or threat.get("eps") is None:
            raise AdvlandError(f"{target} is a weights file and carries no threat model: give {threat_hint}")
        run = import_weights(target, source, {k: v for k, v in threat.items() if v is not None}, out_dir)
        log(f"imported {target} as the run {run.path} (config.yaml, checkpoints/best.safetensors)")
        return Target(run, run.config(), run.weights_path("best"), imported=True)
    if not target.exists():
        raise AdvlandError(f"no run directory or weights file at {target}; give the folder advland train wrote "
                           f"or a .pt/.pth/.safetensors file")
    run, checkpoint = resolve_checkpoint(target, which)
    try:
        config = run.config()
    except ConfigError as error:
        raise AdvlandError(f"{run.config_path}: {error}") from None
    overrides = source.overrides()
    if overrides:
        config = build_config(_merge(config.model_dump(mode="json"), overrides))
    return Target(run, config, checkpoint)


def load(target: str | Path, which: str = "best", device: str | torch.device = "cpu", *, model: Optional[str] = None,
         data: Optional[str] = None, model_kwargs: Optional[dict[str, Any]] = None,
         normalize: Optional[str] = None) -> nn.Module:
    """A model as an ``nn.Module`` taking inputs in [0, 1] (normalization inside), in eval mode on ``device``.

    Args:
        target: a run directory, a checkpoint inside one, or a bare weights file (``.pt``/``.pth``/
            ``.safetensors``; nothing is written for it).
        which: "best" (selected on validation), "last", "init" (the weights before training) or "ema" (the EMA
            of the weights, for a run trained with ``ema.decay``) of a run.
        model: a registered model name or ``package.module:factory`` (required for a bare file; overrides a run's).
        data: the dataset whose input shape and classes the model has (required for a registered model
            with a bare file).
        model_kwargs: keyword arguments of the model (override a run's).
        normalize: ``none`` (default for a bare file), ``data``, ``MEAN,STD`` or ``m1,..,mC,s1,..,sC``:
            wrapped in front of the model so that attack budgets stay in pixel units.
    """
    source = ModelSource(model, model_kwargs or {}, data, None, normalize)
    path = Path(target)
    if not is_weights_file(path):
        return resolve_target(path, which, source).model(device)
    if model is None or (data is None and ":" not in model):
        raise AdvlandError(f"{path} is a weights file: pass model= (a registered name, with data= the dataset it "
                           f"was trained on, or package.module:factory)")
    config = build_config(_merge({"model": {"normalize": "none"}}, source.overrides()))
    net = build_run_model(config, str(path))
    state = read_state_dict(path)
    fit_state_dict(model_for_weights(net, config, state), state, str(path), config.model.name)
    return net.to(device).eval()


def load_model(weights: str | Path, model: Optional[str] = None, *, data: Optional[str] = None,
               model_kwargs: Optional[dict[str, Any]] = None, normalize: Optional[str] = None, which: str = "best",
               device: str | torch.device = "cpu") -> nn.Module:
    """:func:`load` with the model named second (the older spelling, kept as an alias)."""
    return load(weights, which, device, model=model, data=data, model_kwargs=model_kwargs, normalize=normalize)


def load_ensemble(target: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The snapshot ensemble of a run (mean softmax of its cycle-end snapshots), in eval mode."""
    run = Run(target)
    paths = run.snapshot_paths()
    if not paths:
        raise AdvlandError(f"{run.path} has no snapshots (checkpoints/snapshot_*.safetensors); "
                           f"train with schedule.snapshots=true")
    return SnapshotEnsemble.of(resolve_target(paths[0]).model(device), paths)
