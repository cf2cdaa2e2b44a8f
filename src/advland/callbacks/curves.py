"""The training curves (loss and accuracies by epoch) drawn into RUN/curves.png once training ends."""

from __future__ import annotations

from ..plots.training import plot_training_curves
from .base import Callback, Trainer


class TrainingCurves(Callback):
    """Draws ``trainer.state.history`` into ``RUN/curves.png`` after the last epoch (before the test)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.state.history:
            plot_training_curves(trainer.state.history, trainer.run.path / "curves.png")
