"""MNIST and Fashion-MNIST from the standard IDX files (raw or .gz) under a user-given root."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ._common import Arrays, DatasetError, floats, labels, missing_files

FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
_VARIANTS = {  # dataset name -> (folder torchvision writes, where to download, another way to get them)
    "mnist": ("MNIST", "https://ossci-datasets.s3.amazonaws.com/mnist/", ""),
    "fashion_mnist": ("FashionMNIST", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
                      " (or, on Debian/Ubuntu, `apt-get install dataset-fashion-mnist` and leave data.root unset)"),
}


def read_idx(path: Path) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzipped) into a uint8 array of its stored shape."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    ndim = data[3] if len(data) >= 4 else 0
    header = 4 + 4 * ndim
    if len(data) < header or data[:3] != b"\x00\x00\x08":
        raise DatasetError(f"{path}: not an unsigned-byte IDX file; download it again")
    shape = tuple(int.from_bytes(data[i : i + 4], "big") for i in range(4, header, 4))
    if len(data) - header != math.prod(shape):
        raise DatasetError(f"{path}: truncated IDX file (header says shape {shape}); download it again")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _find(root: Path, folder: str, name: str) -> Path | None:
    """The first of root/name, root/name.gz, root/<folder>/raw/name, root/<folder>/raw/name.gz that exists."""
    candidates = [d / f for d in (root, root / folder / "raw") for f in (name, name + ".gz")]
    return next((p for p in candidates if p.is_file()), None)


def load_official(root: Path, name: str = "mnist") -> Arrays:
    """(train_x, train_y, test_x, test_y) of ``name`` ("mnist" or "fashion_mnist"); x of shape (N, 1, 28, 28)."""
    folder, url, alternative = _VARIANTS[name]
    paths = {f: _find(root, folder, f) for f in FILES}
    if absent := [f for f, p in paths.items() if p is None]:
        raise missing_files(
            name,
            [f"{root / f}[.gz]" for f in absent],
            f"download {', '.join(f + '.gz' for f in absent)} from {url} into {root} or {root / folder / 'raw'}"
            f"{alternative}",
        )
    x_train, y_train, x_test, y_test = (read_idx(paths[f]) for f in FILES)
    return floats(x_train[:, None]).div_(255), labels(y_train), floats(x_test[:, None]).div_(255), labels(y_test)
