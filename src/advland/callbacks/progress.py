"""Progress bars of training: one over the epochs (with the last epoch's loss and accuracies) and one over
each epoch's optimizer steps (drawn only when an epoch has at least 20 of them)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm

from .base import Callback, Trainer

MIN_STEPS = 20
"""Epochs with fewer optimizer steps get no per-step bar (it would flash by)."""


class ProgressBars(Callback):
    """tqdm bars on stderr; ``enabled=False`` draws nothing."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.epochs = self.steps = tqdm(disable=True)  # until fit starts

    def on_fit_start(self, trainer: Trainer) -> None:
        done, total = trainer.state.epoch, trainer.config.epochs
        self.epochs = tqdm(total=total, initial=done, desc="train", disable=not self.enabled)

    def on_epoch_start(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        self.steps = tqdm(total=n_steps, desc=f"epoch {epoch}", leave=False,
                          disable=not self.enabled or n_steps < MIN_STEPS)

    def on_step_end(self, trainer: Trainer) -> None:
        self.steps.update()

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        self.steps.close()

    def on_epoch_done(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        self.epochs.update()
        self.epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_clean_acc']:.3f}",
                                rob=f"{record['train_robust_acc']:.3f}", val_rob=f"{record['val_robust_acc']:.3f}")

    def on_fit_end(self, trainer: Trainer) -> None:
        self.epochs.close()
