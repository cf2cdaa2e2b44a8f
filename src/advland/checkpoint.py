"""Checkpointing as a Trainer callback: the run's files, the selection of ``best``, snapshots and resume.

After every epoch the :class:`Checkpointer` writes, atomically, the full training state (weights,
optimizer, gradient scaler, RNG, metric history) so that a resume continues to exactly the result of an
uninterrupted run: the data order of epoch e is drawn from a generator seeded by (seed, e), and the
global RNG that drives random attack starts is saved and restored. A resume under a config that
differs from the run's config.yaml is refused (:mod:`advland.resume`); an epoch whose training loss or
weights stop being finite is never saved (:mod:`advland.divergence`), so the last good epoch stays.

The checkpoint ``best`` is selected on the validation split by :func:`selection_criterion`: robust
accuracy at the target eps for adversarial training, clean accuracy for clean training (or eps 0),
and the last epoch when there is no validation split; summary.json says which (``selected_on``).
The candidates of an epoch are the trained weights and whatever callbacks offer (the EMA of the weights,
:meth:`advland.callbacks.Callback.candidates`); the best-scoring one (the first on ties: the trained
weights before the others) becomes ``best`` when it beats every earlier epoch, and ``best_weights`` in the
state and the summary says which it was. ``ema.select`` may leave the trained weights out (``ema``).
With ``schedule.snapshots`` the weights at every cycle end are kept as ``snapshot_<epoch>``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from .callbacks.base import Callback, Trainer
from .config import Config
from .resume import check_resume, extension_record
from .run import Run, load_into, load_weights
from .strategy import SingleProcess

Criterion = str
"""``val_robust_acc``, ``val_clean_acc`` or ``last_epoch``: how the checkpoint ``best`` is selected."""


def selection_criterion(config: Config, n_val: int) -> Criterion:
    """The record key the checkpoint ``best`` maximizes: clean validation accuracy for clean training
    (whose robust accuracy at the config's eps is near 0 every epoch) and eps 0, robust validation
    accuracy otherwise; without a validation split ``last_epoch`` (best is the last epoch's weights)."""
    if n_val == 0:
        return "last_epoch"
    return "val_clean_acc" if config.objective.name == "clean" or config.threat.eps == 0 else "val_robust_acc"


@dataclass
class TrainState:
    """What is carried from epoch to epoch (and saved for resume)."""

    epoch: int = 0
    """Number of finished epochs."""
    best_score: float = -1.0
    """The selection criterion's value at the best epoch."""
    best_epoch: int = -1
    best_weights: str = "raw"
    """Which candidate ``best`` holds: ``raw`` (the trained weights) or a callback's (``ema``)."""
    history: list[dict[str, Any]] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    """Resumes that extended ``epochs`` (:func:`advland.resume.extension_record`)."""


class Checkpointer(Callback):
    """Writes and restores one run's checkpoints; owns the selection of ``best``.

    Args:
        run: the run directory.
        config: the config being trained (a resume is checked against the run's config.yaml here).
        strategy: the process strategy (only the main process writes; every process's RNG is saved).
        criterion: what ``best`` maximizes (:func:`selection_criterion`).
        extend: when resuming, allow ``config.epochs`` to exceed the run's (recorded as an extension).
    """

    def __init__(self, run: Run, config: Config, strategy: SingleProcess, criterion: Criterion, extend: bool = False):
        self.run, self.config, self.strategy, self.criterion = run, config, strategy, criterion
        # epochs of the run's config.yaml (fewer than config.epochs when a resume extends the run)
        self.run_epochs = check_resume(run, config, extend).epochs if config.resume else config.epochs

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.config.resume:
            self.restore(trainer)
        elif self.strategy.is_main:
            self.run.write_config(self.config)
            self.run.save_weights("init", trainer.model)

    def on_epoch_done(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        state = trainer.state
        which, weights, score = self.choose(trainer, record)
        if self.improves(state, score):
            state.best_score, state.best_epoch, state.best_weights = score, epoch, which
            if self.strategy.is_main:
                self.run.save_weights("best", weights)
        if self.config.schedule.snapshots and epoch in self.config.cycle_boundaries() and self.strategy.is_main:
            self.run.save_weights(f"snapshot_{epoch}", trainer.model)
        self.save(trainer)

    def choose(self, trainer: Trainer, record: dict[str, Any]) -> tuple[str, Any, float]:
        """This epoch's best candidate for ``best``: (which, weights, validation score)."""
        raw_allowed = not (self.config.ema.enabled and self.config.ema.select == "ema")
        own = [("raw", trainer.model, record.get(self.criterion, math.nan))] if raw_allowed else []
        offered = [c for callback in trainer.callbacks for c in callback.candidates(record, self.criterion)]
        candidates = own + offered
        if self.criterion == "last_epoch":  # no validation: the first candidate's last weights
            return candidates[0]
        return max(candidates, key=lambda c: c[2])  # max keeps the first of equal scores

    def improves(self, state: TrainState, score: float) -> bool:
        """Whether this epoch's chosen weights become ``best`` under the run's selection criterion."""
        if self.criterion == "last_epoch" or state.best_epoch < 0:
            return True
        return score > state.best_score

    def save(self, trainer: Trainer) -> None:
        """Write the resume state, then the weight files, then metrics (each write is atomic)."""
        rng_ranks = self.strategy.rng_states()
        if self.strategy.is_main:
            state = trainer.state
            self.run.save_state({
                "rng_ranks": rng_ranks,
                "model": trainer.model.state_dict(),
                "optimizer": trainer.optimizer.state_dict(),
                "scaler": trainer.accel.scaler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "epoch": state.epoch,
                "best_score": state.best_score,
                "best_epoch": state.best_epoch,
                "best_weights": state.best_weights,
                "callbacks": {type(c).__name__: c.state_dict() for c in trainer.callbacks if c.state_dict()},
                "history": state.history,
                "extensions": state.extensions,
            })
            self.run.save_weights("last", trainer.model)
            self.run.write_metrics(state.history)
        self.strategy.barrier()

    def restore(self, trainer: Trainer) -> None:
        """Continue from the run's saved state: weights, optimizer, scaler, RNG, history."""
        saved = self.run.load_state()
        load_into(trainer.model, saved["model"], self.run.state_path)
        trainer.optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):  # fp16 runs: the gradient scaler's scale and growth tracker
            trainer.accel.scaler.load_state_dict(saved["scaler"])
        self.strategy.restore_rng(saved, self.config.seed)
        best_score = saved.get("best_score", saved.get("best_val_robust_acc"))  # the key of older state files
        trainer.state = TrainState(saved["epoch"], best_score, saved["best_epoch"], saved.get("best_weights", "raw"),
                                   saved["history"], saved.get("extensions", []))
        kept = saved.get("callbacks", {})
        for callback in trainer.callbacks:
            if type(callback).__name__ in kept:
                callback.load_state_dict(kept[type(callback).__name__])
        if self.config.epochs != self.run_epochs:  # check_resume allowed it: extend was given
            trainer.state.extensions.append(extension_record(trainer.state.epoch, self.run_epochs, self.config.epochs))
            if self.strategy.is_main:
                self.run.write_config(self.config)
        if self.strategy.is_main:
            self.run.write_metrics(trainer.state.history)

    def rewind(self, trainer: Trainer) -> None:
        """Back to the last saved epoch (the initial weights, kept as ``best``, when none was saved)."""
        if self.run.state_path.exists():
            self.restore(trainer)
        else:
            trainer.model.load_state_dict(load_weights(self.run.weights_path("init")))
            if self.strategy.is_main:
                self.run.save_weights("best", trainer.model)
