"""From a validated :class:`Config` to the objects it names: data, model, threat, optimizer, schedules."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import data as datasets
from . import schedules
from .config import Config
from .models import create_model
from .objectives import Objective, create_objective
from .threat import ThreatModel


@dataclass
class DataSplits:
    """Train, validation and test tensors (inputs in [0, 1], integer labels)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from .errors import AdvlandError

        raise AdvlandError("device=cuda asked for but no CUDA GPU is visible; use device=cpu or device=auto")
    return torch.device(name)


def build_data(config: Config) -> DataSplits:
    kwargs = dict(root=config.data.root, val_fraction=config.data.val_fraction, seed=config.seed)
    x_train, y_train = datasets.load(config.data.name, "train", **kwargs)
    x_val, y_val = datasets.load(config.data.name, "val", **kwargs)
    x_test, y_test = datasets.load(config.data.name, "test", **kwargs)
    return DataSplits(x_train, y_train, x_val, y_val, x_test, y_test)


def build_model(config: Config) -> nn.Module:
    """The config's model with the dataset's normalization inside (inputs in [0, 1])."""
    info = datasets.info(config.data.name)
    return create_model(
        config.model.name,
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        mean=info.mean,
        std=info.std,
        **config.model.kwargs,
    )


def build_threat(config: Config) -> ThreatModel:
    """The training threat model at its target radius."""
    t = config.threat
    return ThreatModel(norm=t.norm, eps=t.eps, step_size=t.resolved_step_size(), steps=t.steps, restarts=t.restarts)


def build_objective(config: Config) -> Objective:
    return create_objective(config.objective.name, beta=config.objective.beta, lam=config.objective.lam)


def build_optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


def build_lr_schedule(config: Config) -> schedules.Schedule:
    lr, total = config.optimizer.lr, float(config.epochs)
    name = config.schedule.lr
    if name == "piecewise":
        return schedules.piecewise(lr, total)
    if name == "cosine":
        return schedules.cosine(lr, total)
    if name == "one_cycle":
        return schedules.one_cycle(lr, total)
    return schedules.constant(lr)


def build_callbacks(config: Config) -> list:
    """The per-epoch hooks the config asks for: landscape tracking when ``track`` enables anything."""
    from .landscape.track import LandscapeTracker

    return [LandscapeTracker(config.track)] if config.track.enabled else []


def build_eps_schedule(config: Config) -> schedules.Schedule:
    if config.schedule.eps == "linear_warmup":
        return schedules.linear_warmup(config.threat.eps, config.schedule.eps_warmup_epochs)
    return schedules.constant(config.threat.eps)
