"""Trainer callbacks: the protocol (:mod:`.base`), and one file per hook set: landscape tracking
(:mod:`.track`), TensorBoard logging (:mod:`.tensorboard`), progress bars (:mod:`.progress`) and
training-curve plots (:mod:`.curves`). Checkpointing is a callback too (:mod:`advland.checkpoint`)."""

from __future__ import annotations

from ..config import Config
from .base import HOOKS, Callback, as_callback
from .curves import TrainingCurves
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


__all__ = ["HOOKS", "Callback", "LandscapeTracker", "ProgressBars", "TensorBoardLogger", "TrainingCurves",
           "as_callback", "from_config"]
