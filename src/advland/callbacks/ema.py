"""The exponential moving average of the weights as a Trainer callback (the config's ``ema`` section).

The average (:class:`advland.ema.WeightEMA`) is updated after every optimizer step (after AWP/SAM have
restored the weights, after each EntropySGD outer step), validated every epoch beside the trained
weights (``val_clean_acc_ema`` and ``val_robust_acc_ema`` in metrics.jsonl, with the ``ema_decay``
of the epoch's last update), and saved as ``checkpoints/ema.safetensors``; the average of the epoch where
its own validation score peaked is kept as ``checkpoints/ema_best.safetensors`` (the averaged weights
early-stopped, whichever weights ``best`` holds). Its validation attack draws
its random starts from a generator of its own, seeded by (seed, epoch), so that the trained weights
follow exactly the trajectory of the same run without EMA. The checkpointer may select the average as
``best`` (``ema.select``; see :meth:`candidates`); the resume state holds the average and its counters.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..config import EMAConfig
from ..ema import WeightEMA
from .base import Callback, Trainer

SUFFIX = "_ema"
"""Appended to the validation keys of the averaged weights in metrics.jsonl."""


class WeightAveraging(Callback):
    """Keeps, validates and saves the EMA of the trained weights."""

    def __init__(self, config: EMAConfig):
        if config.decay is None:
            raise ValueError("WeightAveraging needs ema.decay")
        self.config = config
        self.ema: WeightEMA | None = None
        self._saved: dict[str, Any] | None = None
        self.best_score = -math.inf
        """The average's own validation peak (``ema_best``)."""

    def on_fit_start(self, trainer: Trainer) -> None:
        c = self.config
        self.ema = WeightEMA(trainer.model, c.decay, warmup=c.warmup, every=c.every, buffers=c.buffers)
        if self._saved is not None:  # restored by the checkpointer before this hook
            self.ema.load_state_dict(self._saved)
            self._saved = None

    def on_epoch_start(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self.ema.start = round(self.config.start_epochs * n_steps)

    def on_step_end(self, trainer: Trainer) -> None:
        self.ema.step(trainer.model)

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        devices = [torch.cuda.current_device()] if trainer.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(trainer.config.seed * 100_003 + epoch)
            validated = trainer.validate(self.ema.model)
        record.update({f"{key}{SUFFIX}": value for key, value in validated.items()})
        record["ema_decay"] = self.ema.decay_at(self.ema.updates - 1) if self.ema.updates else 0.0
        score = record.get(f"{trainer.criterion}{SUFFIX}", math.nan)
        improved = trainer.criterion != "last_epoch" and score > self.best_score  # NaN never improves
        if improved:
            self.best_score = score
        if trainer.strategy.is_main:
            trainer.run.save_weights("ema", self.ema.model)
            if improved:
                trainer.run.save_weights("ema_best", self.ema.model)

    def candidates(self, record: dict[str, Any], criterion: str) -> list[tuple[str, nn.Module, float]]:
        """The averaged weights as a candidate for ``best`` (unless ``ema.select=raw``), scored on validation
        (NaN without a validation split, where ``best`` is the last epoch's first candidate)."""
        if self.config.select == "raw":
            return []
        return [("ema", self.ema.model, record.get(criterion + SUFFIX, math.nan))]

    def state_dict(self) -> dict[str, Any]:
        return {**self.ema.state_dict(), "best_score": self.best_score}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back the saved average: at once when it exists (a rewind), else when :meth:`on_fit_start` builds it."""
        # a state saved before ema_best existed has no peak yet: the next validated epoch sets one
        self.best_score = float(state.get("best_score", -math.inf))
        if self.ema is None:
            self._saved = state
        else:
            self.ema.load_state_dict(state)
