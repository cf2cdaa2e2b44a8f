"""Stop a diverged training at the first non-finite loss, before anything of that epoch is saved.

The watch never waits on the device: every step folds ``isfinite(loss)`` into a device tensor
holding the index of the first bad minibatch, and :meth:`NonFiniteWatch.summary` adds whether the
weights themselves are finite (which catches an update that overflowed on the epoch's last step);
the trainer reads both with the epoch's statistics, in its one device-to-host read per epoch. A bad epoch raises
:class:`TrainingDiverged` before validation and checkpointing, so the run directory keeps the last
good epoch: checkpoints, ``state.pt`` and ``metrics.jsonl`` stay intact and resumable.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .errors import AdvlandError


class TrainingDiverged(AdvlandError):
    """The training loss or the weights stopped being finite; the message names the epoch and the minibatch."""


class NonFiniteWatch:
    """The first minibatch of an epoch whose training loss was NaN or infinite (kept on the device)."""

    def __init__(self) -> None:
        self.first_bad: torch.Tensor | None = None
        self.steps = 0

    def start_epoch(self) -> None:
        self.first_bad, self.steps = None, 0

    def observe(self, loss: torch.Tensor | float) -> None:
        """Record the loss of the epoch's next minibatch (no host synchronization)."""
        loss = torch.as_tensor(loss).detach()
        if self.first_bad is None:
            self.first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        fresh = (~torch.isfinite(loss)).all() & (self.first_bad < 0)
        self.first_bad = torch.where(fresh, torch.full_like(self.first_bad, self.steps), self.first_bad)
        self.steps += 1

    def summary(self, parameters: Iterable[torch.Tensor], device: torch.device) -> torch.Tensor:
        """(index of the first minibatch with a non-finite loss or -1, 1 if every weight is finite else 0),
        float64 on ``device``, not read."""
        first = self.first_bad if self.first_bad is not None else torch.full((), -1, dtype=torch.long, device=device)
        finite = [torch.isfinite(p.detach()).all() for p in parameters]
        all_finite = torch.stack(finite).all() if finite else torch.ones((), dtype=torch.bool, device=device)
        return torch.stack([first.to(device, torch.float64), all_finite.to(device, torch.float64)])


def check_finite(epoch: int, first_bad: int, weights_finite: bool, n_batches: int, lr: float, kept_epoch: int,
                 run: str) -> None:
    """Raise :class:`TrainingDiverged` if a minibatch of epoch ``epoch`` (from 1) had a non-finite loss
    (``first_bad`` >= 0) or the weights are not finite after it."""
    if first_bad >= 0 or not weights_finite:
        raise TrainingDiverged(diverged_message(epoch, first_bad, n_batches, lr, kept_epoch, run))


def diverged_message(epoch: int, batch: int, n_batches: int, lr: float, kept_epoch: int, run: str) -> str:
    """The one line of a :class:`TrainingDiverged`: where, what is kept, what to do."""
    where = (f"the training loss is not finite at epoch {epoch}, batch {batch + 1} of {n_batches}" if batch >= 0
             else f"the weights are not finite after epoch {epoch}")
    kept = (f"{run} keeps epoch {kept_epoch} (checkpoints, state.pt, metrics.jsonl)" if kept_epoch > 0
            else f"{run} has no finished epoch")
    return (f"training diverged: {where} with optimizer.lr={lr:g}; nothing of epoch {epoch} was saved and {kept}; "
            f"lower the learning rate (e.g. optimizer.lr={lr / 10:g}) and train again with overwrite=true "
            f"or name=... for a new run")
