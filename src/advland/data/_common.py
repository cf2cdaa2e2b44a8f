"""Helpers shared by the dataset sources."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import AdvlandError

Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""The official (train_x, train_y, test_x, test_y) of a source, x in [0, 1], y int64."""


class DatasetError(AdvlandError, ValueError):
    """A dataset cannot be loaded as asked; the one-line message says what is wrong and how to fix it."""


def missing_files(dataset: str, paths: Sequence[Path | str], how_to_get: str) -> DatasetError:
    """The error for absent dataset files: names the dataset, the expected paths and how to get them."""
    listed = ", ".join(str(p) for p in paths)
    return DatasetError(
        f"{dataset}: expected {listed} (not found); {how_to_get}, or set root (config: data.root) to where they are"
    )


def floats(x: np.ndarray) -> torch.Tensor:
    """Any numeric array -> contiguous float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def labels(y: np.ndarray) -> torch.Tensor:
    """Any integer label array -> flat int64 tensor."""
    return torch.from_numpy(np.asarray(y, dtype=np.int64).reshape(-1))
