"""SVHN (cropped digits, format 2) from the official .mat files under a user-given root."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io

from ._common import Arrays, floats, labels, missing_files

FILES = ("train_32x32.mat", "test_32x32.mat")
URL = "http://ufldl.stanford.edu/housenumbers/"


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    mat = scipy.io.loadmat(path)
    x = np.transpose(mat["X"], (3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    y = mat["y"].reshape(-1) % 10  # label 10 is the digit 0
    return x, y


def load_official(root: Path) -> Arrays:
    """(train_x, train_y, test_x, test_y); x of shape (N, 3, 32, 32), labels 0..9."""
    paths = [root / f for f in FILES]
    if absent := [p for p in paths if not p.is_file()]:
        raise missing_files("svhn", absent, f"download {', '.join(p.name for p in absent)} from {URL} into {root}")
    (x_train, y_train), (x_test, y_test) = (_read(p) for p in paths)
    return floats(x_train).div_(255), labels(y_train), floats(x_test).div_(255), labels(y_test)
