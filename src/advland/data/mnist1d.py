"""MNIST-1D (Greydanus 2020), generated locally by the ``mnist1d`` package (never downloaded).

The generation arguments are the package's defaults, i.e. the canonical dataset: 4000 training and
1000 test signals of length 40, 10 classes. The generated arrays are cached as an .npz file under
``$ADVLAND_CACHE`` (default ``~/.cache/advland``), keyed by the arguments and the package version.
Signals are real valued; they are mapped to [0, 1] by the affine map that sends the training set's
minimum to 0 and its maximum to 1, the same map is applied to the test set, and both are clipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ._common import Arrays, floats, labels

GENERATION_ARGS = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}
"""``mnist1d.data.get_dataset_args()`` without its download url."""


def cache_dir() -> Path:
    """Where generated data is cached: ``$ADVLAND_CACHE`` or ``~/.cache/advland``."""
    return Path(os.environ.get("ADVLAND_CACHE") or Path.home() / ".cache" / "advland")


def cache_path() -> Path:
    """The cache file of the generated arrays."""
    key = json.dumps({**GENERATION_ARGS, "mnist1d": version("mnist1d")}, sort_keys=True)
    return cache_dir() / f"mnist1d-{hashlib.sha256(key.encode()).hexdigest()[:16]}.npz"


def _generate() -> dict[str, np.ndarray]:
    from mnist1d.data import make_dataset  # slow import (matplotlib), only needed on a cache miss
    from mnist1d.utils import ObjectView

    # make_dataset reseeds the global numpy and random generators: restore them afterwards
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(ObjectView(dict(GENERATION_ARGS)))
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {key: data[key] for key in ("x", "y", "x_test", "y_test")}


def _save_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _arrays() -> dict[str, np.ndarray]:
    path = cache_path()
    if path.is_file():
        with np.load(path) as cached:
            return dict(cached)
    arrays = _generate()
    try:
        _save_atomic(path, arrays)
    except OSError as e:
        warnings.warn(f"mnist1d: could not cache the generated data at {path} ({e}); set ADVLAND_CACHE to a writable directory")
    return arrays


def load_official() -> Arrays:
    """(train_x, train_y, test_x, test_y); x of shape (N, 1, 40) in [0, 1]."""
    a = _arrays()
    lo, hi = a["x"].min(), a["x"].max()

    def unit(x: np.ndarray) -> np.ndarray:
        return np.clip((x - lo) / (hi - lo), 0.0, 1.0)[:, None]

    return floats(unit(a["x"])), labels(a["y"]), floats(unit(a["x_test"])), labels(a["y_test"])
