"""Schedules: pure functions of training progress t (in epochs, fractional within an epoch).

Each factory returns a plain callable ``t -> value``, in the spirit of optax: tiny, pure and
testable at a point. The trainer evaluates them once per iteration (or per epoch).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

Schedule = Callable[[float], float]


def constant(value: float) -> Schedule:
    """value at every t."""
    return lambda t: value


def piecewise(value: float, total: float, milestones: Sequence[float] = (0.5, 0.75),
              factors: Sequence[float] = (0.1, 0.01)) -> Schedule:
    """value, multiplied by factors[i] once t reaches milestones[i] * total (default x0.1 at 50 %, x0.01 at 75 %)."""
    if len(milestones) != len(factors):
        raise ValueError("piecewise schedule needs as many factors as milestones")

    def schedule(t: float) -> float:
        factor = 1.0
        for milestone, f in zip(milestones, factors):
            if t >= milestone * total:
                factor = f
        return value * factor

    return schedule


def cosine(value: float, total: float, final: float = 0.0) -> Schedule:
    """Cosine annealing from value at t = 0 to final at t = total."""
    return lambda t: final + 0.5 * (value - final) * (1 + math.cos(math.pi * min(t, total) / total))


def one_cycle(peak: float, total: float, warmup_fraction: float = 0.4) -> Schedule:
    """Triangular one-cycle (Wong et al. 2020): 0 -> peak linearly over warmup_fraction of training, then -> 0."""
    rise = warmup_fraction * total

    def schedule(t: float) -> float:
        if t <= rise:
            return peak * t / rise
        return peak * max(0.0, (total - t) / (total - rise))

    return schedule


def linear_warmup(value: float, warmup: float) -> Schedule:
    """Linear ramp from 0 to value over the first ``warmup`` epochs, then constant."""
    if warmup <= 0:
        return constant(value)
    return lambda t: value * min(1.0, t / warmup)
