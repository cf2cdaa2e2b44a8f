"""Independent random streams from one seed, and the seeding of a training process (:func:`seed_everything`).

An estimator that needs several random draws (probe blocks, Lanczos starts, random directions,
weight perturbations) takes draw k from ``stream_seed(seed, k)``: numpy's ``SeedSequence`` child
k of ``seed`` (the key of ``SeedSequence(seed).spawn(...)[k]``), hashed to 64 bits. Unlike
``seed + k``, two calls with different seeds never share a draw (``seed=0`` and ``seed=1`` used
to share all but one of their probes), and draw k does not depend on how many draws are taken.
"""

from __future__ import annotations

import os

import numpy as np
import torch


def stream_seed(seed: int, index: int) -> int:
    """The torch seed of stream ``index`` of ``seed`` (any int seed; negative ones are taken mod 2^64)."""
    sequence = np.random.SeedSequence(seed % 2**64, spawn_key=(index,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0])


def seed_everything(seed: int, deterministic: bool) -> None:
    """Seed the global torch generator; with ``deterministic``, ask torch for deterministic kernels."""
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
