"""Trainer callbacks: the protocol (:mod:`.base`), and one file per hook set: landscape tracking
(:mod:`.track`), TensorBoard logging (:mod:`.tensorboard`), progress bars (:mod:`.progress`) and
training-curve plots (:mod:`.curves`), the EMA of the weights (:mod:`.ema`). Checkpointing is a callback
too (:mod:`advland.checkpoint`)."""

from __future__ import annotations

from ..config import Config
from .base import HOOKS, Callback, as_callback
from .curves import TrainingCurves
from .ema import WeightAveraging
from .progress import ProgressBars
from .tensorboard import TensorBoardLogger
from .track import LandscapeTracker


def from_config(config: Config) -> list[Callback]:
    """The callbacks the config asks for: landscape tracking when ``track`` enables anything, then the
    loggers of ``log`` (after tracking, so that they see what it measured)."""
    callbacks: list[Callback] = [LandscapeTracker(config.track, config.eval.steps)] if config.track.enabled else []
    if config.log.tensorboard:
        callbacks.append(TensorBoardLogger())
    return callbacks


def on_every_process(config: Config) -> list[Callback]:
    """The callbacks the config asks for that every process runs (their state is part of training): the EMA of
    the weights when ``ema.decay`` is set."""
    return [WeightAveraging(config.ema)] if config.ema.enabled else []


__all__ = ["HOOKS", "Callback", "LandscapeTracker", "ProgressBars", "TensorBoardLogger", "TrainingCurves",
           "WeightAveraging", "as_callback", "from_config", "on_every_process"]
