"""Shared setup of the benchmarks: a trained digits AT run, its model and 512 training examples.

The run is read from ``--run`` (default runs/at) and trained there first if missing
(``advland train digits/at``). Every benchmark times both sides in one process, on
the same model and data, alternating them, and reports the best of the repeats of each side.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

import advland
from advland.build import build_threat

ROOT = Path(__file__).resolve().parents[1]


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--run", default=str(ROOT / "runs" / "at"), help="digits AT run directory")
    parser.add_argument("--n", type=int, default=512, help="training examples")
    parser.add_argument("--repeats", type=int, default=2, help="timed repeats of each side (best is reported)")
    return parser.parse_args()


def load_problem(run: str, n: int):
    """(model, x, y, threat) of a digits AT run, training the run first if it does not exist."""
    path = Path(run)
    if not (path / "config.yaml").exists():
        config = advland.load_config("digits/at", [f"out_dir={path.parent}", f"name={path.name}"])
        advland.train(config, progress=False)
    config = advland.Run(path).config()
    x, y = advland.data.load(config.data.name, "train", val_fraction=config.data.val_fraction, seed=config.seed)
    return advland.load(path), x[:n], y[:n], build_threat(config)


def environment() -> str:
    """One line describing where the numbers were measured."""
    return (f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs "
            f"({platform.processor() or platform.machine()}), OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, "
            f"load average {os.getloadavg()[0]:.1f}")


def best_of(repeats: int, sides: dict[str, Callable[[], object]]) -> dict[str, tuple[float, object]]:
    """Run every side ``repeats`` times, alternating sides; return (best seconds, last result) per side."""
    best: dict[str, tuple[float, object]] = {}
    for _ in range(repeats):
        for name, side in sides.items():
            start = time.perf_counter()
            result = side()
            seconds = time.perf_counter() - start
            best[name] = (min(seconds, best.get(name, (math.inf,))[0]), result)
    return best
