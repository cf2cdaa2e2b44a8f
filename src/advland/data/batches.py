"""How the training batches of an epoch are drawn: the order of the examples and where each one comes from.

A batch source has ``order(epoch, n)``, the indices of the epoch's examples one batch after the other,
drawn from a generator seeded by (seed, epoch) so that a resumed run draws the same batches, and
``examples(x, y, idx)``, the examples at some of those indices. :class:`Permutation` is a fresh
permutation of the n training examples every epoch; :class:`advland.data.extra.ExtraMix` mixes extra
data into every batch. ``record`` says what the run should record about the source (None: nothing).
"""

from __future__ import annotations

from typing import Any

import torch


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of epoch ``epoch``'s draws."""
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


class Permutation:
    """Every epoch a fresh permutation of the training set."""

    record: dict[str, Any] | None = None

    def __init__(self, seed: int):
        self.seed = seed

    def order(self, epoch: int, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=epoch_generator(self.seed, epoch))

    def examples(self, x: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[idx], y[idx]
