"""From a validated :class:`Config` to the objects it names: data, model, threat, optimizer, schedules."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from . import data as datasets
from . import schedules
from .config import Config
from .conventions import select_output
from .data.batches import Permutation
from .data.extra import ExtraData, ExtraMix
from .errors import AdvlandError
from .models import create_model
from .objectives import Objective, create_objective
from .optim import EntropySGD
from .perturb import WeightPerturbation, asam, awp, sam
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
        raise AdvlandError("device=cuda asked for but no CUDA GPU is visible; use device=cpu or device=auto")
    return torch.device(name)


def load_split(config: Config, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the config's data exactly as its run sees it (its seed's validation carve, its
    training subset): what the analyses of a run must use."""
    d = config.data
    return datasets.load(d.name, split, d.root, val_fraction=d.val_fraction, seed=config.seed, train_n=d.train_n)


def build_batch_source(config: Config) -> Permutation | ExtraMix:
    """How the training batches are drawn: a permutation of the training set every epoch, or with the config's
    extra data (``data.extra``) mixed into every batch."""
    d = config.data
    if d.extra is None:
        return Permutation(config.seed)
    info = datasets.info(d.name)
    return ExtraMix(ExtraData(d.extra, info.input_shape, info.num_classes), d.batch_size, d.extra_fraction, config.seed)


def build_data(config: Config) -> DataSplits:
    return DataSplits(*load_split(config, "train"), *load_split(config, "val"), *load_split(config, "test"))


RESIDENT_FRACTION = 0.25
"""data.on_device=auto keeps the training set on a GPU when it takes at most this fraction of the free memory."""


def resident_training_data(data: DataSplits, on_device: bool | str, device: torch.device) -> DataSplits:
    """``data`` with the training split moved to ``device`` if ``on_device`` says so (auto: a GPU with room)."""
    if on_device == "auto":
        size = data.x_train.nbytes + data.y_train.nbytes
        on_device = device.type == "cuda" and size <= RESIDENT_FRACTION * torch.cuda.mem_get_info(device)[0]
    if not on_device:
        return data
    return dataclasses.replace(data, x_train=data.x_train.to(device), y_train=data.y_train.to(device))


def check_training_data(config: Config, data: DataSplits, fixed_shapes: bool) -> None:
    """One-line errors for training data the config cannot train on."""
    if config.data.augment == "crop_flip" and data.x_train.dim() != 4:
        raise AdvlandError("data.augment=crop_flip needs image data (N, C, H, W); use data.augment=none")
    if fixed_shapes and len(data.y_train) < config.data.batch_size:
        raise AdvlandError(f"compile=true drops the last partial batch, and the training set ({len(data.y_train)} "
                           f"examples) is smaller than data.batch_size={config.data.batch_size}; lower the batch size")


def build_model(config: Config) -> nn.Module:
    """The config's model with its input normalization inside (inputs in [0, 1])."""
    info = datasets.info(config.data.name)
    normalize = config.model.normalize
    if normalize == "data":
        mean, std = info.mean, info.std
    elif normalize == "none":
        mean, std = None, None
    else:
        mean, std = normalize.mean, normalize.std
    model = create_model(
        config.model.name,
        input_shape=info.input_shape,
        num_classes=info.num_classes,
        mean=mean,
        std=std,
        **config.model.kwargs,
    )
    return select_output(model, config.model.output_index)


def build_threat(config: Config) -> ThreatModel:
    """The training threat model at its target radius."""
    t = config.threat
    return ThreatModel(norm=t.norm, eps=t.eps, step_size=t.resolved_step_size(), steps=t.steps, restarts=t.restarts)


def build_objective(config: Config) -> Objective:
    o = config.objective
    return create_objective(o.name, beta=o.beta, lam=o.lam, start=o.start, label_smoothing=o.label_smoothing,
                            smooth_attack=o.smooth_attack)


def build_optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optimizer
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay, nesterov=o.nesterov)
    if o.name == "entropy_sgd":
        return EntropySGD(params, lr=o.lr, L=o.L, gamma0=o.gamma0, gamma1=o.gamma1, noise=o.noise, alpha=o.alpha,
                          inner_lr=o.inner_lr, momentum=o.momentum, nesterov=o.nesterov,
                          weight_decay=o.weight_decay, outer_gamma=o.outer_gamma, legacy=o.legacy)
    return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)


def build_perturbation(config: Config) -> WeightPerturbation | None:
    """The configured weight perturbation (AWP, SAM, ASAM), or None."""
    p = config.perturb
    if p.name == "awp":
        return awp(p.resolved_gamma(config.objective.name), per_filter=p.per_filter, steps=p.steps)
    if p.name == "sam":
        return sam(p.resolved_rho(), steps=p.steps)
    if p.name == "asam":
        return asam(p.resolved_rho(), eta=p.eta, steps=p.steps)
    return None


_LR_SCHEDULES = {
    "piecewise": schedules.piecewise,
    "cosine": schedules.cosine,
    "one_cycle": schedules.one_cycle,
    "constant": lambda lr, total: schedules.constant(lr),
}


def build_lr_schedule(config: Config) -> schedules.Schedule:
    """The learning rate as a function of progress; periodic (restarted every cycle) for cyclic_* and eps=pas."""
    lr, name, boundaries = config.optimizer.lr, config.schedule.lr, config.cycle_boundaries()
    if name == "cyclic_cosine":
        return schedules.cosine_restarts(lr, boundaries)
    if name == "cyclic_piecewise":
        return schedules.piecewise_per_cycle(lr, boundaries)
    make = _LR_SCHEDULES[name]
    if config.schedule.eps == "pas":  # PAS: the learning rate restarts with every eps cycle
        return schedules.per_cycle(lambda length: make(lr, length), boundaries)
    return make(lr, float(config.epochs))


def build_eps_schedule(config: Config) -> schedules.Schedule:
    """The training eps as a function of progress (the PGD step size follows it, see ThreatModel.with_eps)."""
    s, target = config.schedule, config.threat.eps
    if s.eps == "linear_warmup":
        return schedules.linear_warmup(target, s.eps_warmup_epochs)
    if s.eps in ("cosine_ramp", "pas"):
        return schedules.cosine_ramp(target, config.cycle_boundaries(), s.eps_max_factor)
    if s.eps == "linear_ramp":
        return schedules.linear_ramp(target, config.cycle_boundaries(), s.eps_max_factor)
    return schedules.constant(target)


def schedule_values(config: Config, epochs: Sequence[float]) -> tuple[list[float], list[float]]:
    """eps and learning rate at the given training progress (epochs), as the trainer evaluates them.

    With ``schedule.per = epoch`` the schedules are read at the start of each epoch, so progress is
    rounded down to whole epochs.
    """
    eps, lr = build_eps_schedule(config), build_lr_schedule(config)
    if config.schedule.per == "epoch":
        epochs = [float(math.floor(t)) for t in epochs]
    return [eps(t) for t in epochs], [lr(t) for t in epochs]


def schedule_table(config: Config) -> list[str]:
    """eps and learning rate at the start, middle and last iteration of every cycle, as text lines."""
    lines, start = [f"{'cycle':>5} {'epoch':>9} {'eps':>10} {'lr':>10}"], 0
    for index, end in enumerate(config.cycle_boundaries(), 1):
        points = [(f"{start:g}", start), (f"{(start + end) / 2:g}", (start + end) / 2), (f"{end:g}-", end - 1e-9)]
        values = schedule_values(config, [t for _, t in points])
        lines += [f"{index:>5} {label:>9} {e:>10.6g} {r:>10.6g}" for (label, _), e, r in zip(points, *values)]
        start = end
    return lines + ["(E- is the last iteration before the cycle ending at epoch E)"]
