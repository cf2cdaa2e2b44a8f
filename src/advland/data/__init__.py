"""Datasets as tensors in [0, 1]: a registry of named sources and one fixed train/val carve.

``load(name, split)`` returns ``(x, y)``: x float32 of shape (N, *info(name).input_shape) in [0, 1],
y int64 class indices. "val" is a fixed, seeded share of the official training data, "train" the rest.
Any mean/std normalization belongs inside the model (see ``DatasetInfo.mean`` / ``std``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

from . import cifar, digits, mnist, mnist1d, svhn, synthetic
from ._common import Arrays, DatasetError

__all__ = ["DATASET_NAMES", "DEFAULT_ROOTS", "SPLITS", "DatasetError", "DatasetInfo", "info", "load"]


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset."""

    name: str
    input_shape: tuple[int, ...]  # per example, channels first: (C, H, W), (C, L) or (D,)
    num_classes: int
    mean: tuple[float, ...]  # per channel, of the training data in [0, 1]
    std: tuple[float, ...]
    needs_root: bool  # read from files under a user-given root


# mean/std: well-known constants for the image datasets; for digits, mnist1d and synthetic the values
# measured once on the official training data (one channel; tests check them).
_REGISTRY: dict[str, tuple[DatasetInfo, Callable[..., Arrays]]] = {
    i.name: (i, source)
    for i, source in [
        (DatasetInfo("digits", (1, 8, 8), 10, (0.3054,), (0.3761,), False), digits.load_official),
        (DatasetInfo("mnist1d", (1, 40), 10, (0.5472,), (0.0996,), False), mnist1d.load_official),
        (DatasetInfo("synthetic", (20,), 2, (0.5003,), (0.1417,), False), synthetic.load_official),
        (DatasetInfo("mnist", (1, 28, 28), 10, (0.1307,), (0.3081,), True), partial(mnist.load_official, name="mnist")),
        (
            DatasetInfo("fashion_mnist", (1, 28, 28), 10, (0.2860,), (0.3530,), True),
            partial(mnist.load_official, name="fashion_mnist"),
        ),
        (
            DatasetInfo("cifar10", (3, 32, 32), 10, (0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616), True),
            partial(cifar.load_official, name="cifar10"),
        ),
        (
            DatasetInfo("cifar100", (3, 32, 32), 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), True),
            partial(cifar.load_official, name="cifar100"),
        ),
        (
            DatasetInfo("svhn", (3, 32, 32), 10, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), True),
            svhn.load_official,
        ),
    ]
}

DATASET_NAMES: tuple[str, ...] = tuple(_REGISTRY)

DEFAULT_ROOTS: dict[str, tuple[str, ...]] = {
    "fashion_mnist": ("/usr/share/datasets/fashion-mnist",),  # Debian: apt-get install dataset-fashion-mnist
    "mnist": ("/usr/share/datasets/mnist",),
}
"""Folders searched, in order, when a dataset read from files is loaded without ``root`` (``data.root`` wins)."""

INSTALL_HINTS: dict[str, str] = {
    "fashion_mnist": "on Debian/Ubuntu, `apt-get install dataset-fashion-mnist` installs the official files "
                     "under /usr/share/datasets/fashion-mnist",
}
SPLITS: tuple[str, ...] = ("train", "val", "test")


def info(name: str) -> DatasetInfo:
    """The DatasetInfo of ``name``; DatasetError if there is no such dataset."""
    if name not in _REGISTRY:
        raise DatasetError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
    return _REGISTRY[name][0]


def load(
    name: str,
    split: str,
    root: str | os.PathLike[str] | None = None,
    *,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_n: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a dataset as ``(x, y)``: x float32 in [0, 1] of shape (N, *input_shape), y int64.

    "test" is the official test set. "val" is ``round(val_fraction * n)`` examples of the n official
    training examples, chosen by a permutation seeded by ``seed`` (the same on every machine); "train"
    is the rest, so the two are disjoint and together make up the official training set. Both keep the
    original order. ``train_n`` keeps only that many "train" examples, drawn by the same seeded
    permutation (so they never overlap "val"). ``root`` is the directory holding the files of datasets
    with ``needs_root`` (default: the first of :data:`DEFAULT_ROOTS` that holds them), and is ignored by
    the others.
    """
    meta = info(name)
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise DatasetError(f"val_fraction must be a number in [0, 1) (0 for no validation set), got {val_fraction!r}")
    if train_n is not None and (isinstance(train_n, bool) or not isinstance(train_n, int) or train_n < 1):
        raise DatasetError(f"train_n must be a positive whole number (or None for all), got {train_n!r}")
    source = _REGISTRY[name][1]
    if not meta.needs_root:
        arrays = source()
    else:
        arrays = source(Path(root).expanduser() if root is not None else default_root(name))
    x_train, y_train, x_test, y_test = arrays
    if split == "test":
        return x_test.contiguous(), y_test
    perm = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(seed))
    n_val = round(val_fraction * len(y_train))
    if split == "train" and train_n is not None and train_n > len(y_train) - n_val:
        raise DatasetError(f"train_n={train_n} but {name} has {len(y_train) - n_val} training examples after the "
                           f"validation carve; lower data.train_n or leave it unset for all")
    end = None if train_n is None else n_val + train_n
    idx = (perm[:n_val] if split == "val" else perm[n_val:end]).sort().values
    return x_train[idx], y_train[idx]


def default_root(name: str) -> Path:
    """Where ``name``'s files are looked for when no root is given: the first of ``DEFAULT_ROOTS[name]``
    that exists (e.g. the Debian package dataset-fashion-mnist's folder); without one, the error says how
    to get the files or to set data.root."""
    candidates = [Path(p) for p in DEFAULT_ROOTS.get(name, ())]
    found = next((p for p in candidates if p.is_dir()), None)
    if found is None:
        where = f" (looked in {', '.join(map(str, candidates))})" if candidates else ""
        how = f"; {INSTALL_HINTS[name]}" if name in INSTALL_HINTS else ""
        raise DatasetError(f"{name} is read from dataset files{where}: pass root=<directory holding them> "
                           f"(config: data.root){how}")
    return found
