"""A binary Gaussian-mixture task for linear-model theory.

x = clip(0.5 + s·μ + σ·z, 0, 1) in [0, 1]^20 with s = +1 for y = 1 and s = -1 for y = 0,
μ = 0.1·(1, ..., 1) (‖μ‖₂ ≈ 0.447, ‖μ‖₁ = 2), σ = 0.1 and z ~ N(0, I). Classes are exactly balanced.
2000 training and 1000 test examples, drawn from numpy's default_rng(0) (train first, then test).

Ignoring the clipping (at 4σ from the means, negligible), the Bayes classifier is sign(μ·(x − 0.5));
its clean error is Φ(−‖μ‖₂/σ) ≈ 4e-6, and its error under an L∞ attack of budget ε is
Φ((ε‖μ‖₁ − ‖μ‖₂²)/(σ‖μ‖₂)), which is 1/2 at ε = 0.1.
"""

from __future__ import annotations

import numpy as np

from ._common import Arrays, floats, labels

DIM = 20
MU = 0.1
SIGMA = 0.1
N_TRAIN = 2000
N_TEST = 1000
SEED = 0


def _sample(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = rng.permutation(np.arange(n) % 2)
    s = 2.0 * y - 1.0
    x = np.clip(0.5 + s[:, None] * MU + SIGMA * rng.standard_normal((n, DIM)), 0.0, 1.0)
    return x, y


def load_official() -> Arrays:
    """(train_x, train_y, test_x, test_y); x of shape (N, 20), y in {0, 1}. Deterministic."""
    rng = np.random.default_rng(SEED)
    x_train, y_train = _sample(rng, N_TRAIN)
    x_test, y_test = _sample(rng, N_TEST)
    return floats(x_train), labels(y_train), floats(x_test), labels(y_test)
