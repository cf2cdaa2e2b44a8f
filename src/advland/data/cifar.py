"""CIFAR-10 and CIFAR-100 from the official python pickle batches under a user-given root."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ._common import Arrays, floats, labels, missing_files

_VARIANTS = {  # dataset name -> (folder, training files, test file, label key, archive url)
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        "test_batch",
        b"labels",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ),
    "cifar100": ("cifar-100-python", ("train",), "test", b"fine_labels", "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"),
}


def _read(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    # The official format is a pickle, and unpickling can run arbitrary code: only read trusted dataset files.
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return batch[b"data"].reshape(-1, 3, 32, 32), np.asarray(batch[label_key])


def load_official(root: Path, name: str = "cifar10") -> Arrays:
    """(train_x, train_y, test_x, test_y) of ``name`` ("cifar10" or "cifar100"); x of shape (N, 3, 32, 32)."""
    folder, train_files, test_file, label_key, url = _VARIANTS[name]
    paths = [root / folder / f for f in (*train_files, test_file)]
    if absent := [p for p in paths if not p.is_file()]:
        raise missing_files(name, absent, f"download and extract {url} into {root}")
    batches = [_read(p, label_key) for p in paths]
    x_test, y_test = batches.pop()
    x_train = np.concatenate([x for x, _ in batches])
    y_train = np.concatenate([y for _, y in batches])
    return floats(x_train).div_(255), labels(y_train), floats(x_test).div_(255), labels(y_test)
