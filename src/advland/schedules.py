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


# ---------------------------------------------------------------- cycles (PAS, liu2020)
def check_boundaries(boundaries: Sequence[float]) -> None:
    """Raise ValueError unless the cycle ends are a non-empty, strictly increasing list of positive epochs."""
    if not boundaries or boundaries[0] <= 0 or any(b <= a for a, b in zip(boundaries, boundaries[1:])):
        raise ValueError(f"cycle boundaries must be positive and strictly increasing, got {list(boundaries)}")


def cycle_of(t: float, boundaries: Sequence[float]) -> tuple[int, float, float]:
    """The cycle holding progress t, as (index, start, end) in epochs.

    ``boundaries`` are the cycle ends b_0 < b_1 < ...: cycles are [0, b_0), [b_0, b_1), ... A boundary
    opens the next cycle (a restart); t at or past the last boundary stays in the last cycle.
    """
    start = 0.0
    for index, end in enumerate(boundaries):
        if t < end or index == len(boundaries) - 1:
            return index, start, float(end)
        start = float(end)
    raise ValueError("cycle_of needs at least one boundary")


def per_cycle(make: Callable[[float], Schedule], boundaries: Sequence[float]) -> Schedule:
    """Restart a schedule at every cycle boundary.

    ``make(length)`` builds the schedule of one cycle of ``length`` epochs; it is evaluated at the
    time elapsed since the current cycle began. ``per_cycle(lambda n: cosine(0.1, n), [100, 150, 200])``
    is cosine annealing with warm restarts at epochs 100 and 150.
    """
    check_boundaries(boundaries)
    starts = [0.0, *boundaries[:-1]]
    inner = [make(end - start) for start, end in zip(starts, boundaries)]

    def schedule(t: float) -> float:
        index, start, _ = cycle_of(t, boundaries)
        return inner[index](t - start)

    return schedule


def _ramp(target: float, boundaries: Sequence[float], max_factor: float, shape: Callable[[float], float]) -> Schedule:
    """eps(t) = min(target, eps_max * shape(r)) with eps_max = max_factor * target, r the cycle fraction elapsed."""
    eps_max = max_factor * target

    def make(length: float) -> Schedule:
        return lambda t: min(target, eps_max * shape(min(max(t / length, 0.0), 1.0)))

    return per_cycle(make, boundaries)


def cosine_ramp(target: float, boundaries: Sequence[float], max_factor: float = 2.0) -> Schedule:
    """liu2020's cyclic cosine eps: min(target, ½·eps_max·(1 − cos(π r))), eps_min = 0, eps_max = max_factor·target.

    r is the fraction of the current cycle elapsed; with the default eps_max = 2·target, eps reaches
    the target at mid-cycle, stays there until the cycle ends, and restarts from 0 at each boundary.
    """
    return _ramp(target, boundaries, max_factor, lambda r: 0.5 * (1.0 - math.cos(math.pi * r)))


def linear_ramp(target: float, boundaries: Sequence[float], max_factor: float = 2.0) -> Schedule:
    """liu2020's cyclic linear eps: min(target, eps_max·r), eps_min = 0, eps_max = max_factor·target."""
    return _ramp(target, boundaries, max_factor, lambda r: r)


def cosine_restarts(value: float, boundaries: Sequence[float], final: float = 0.0) -> Schedule:
    """Cosine annealing from value to final within every cycle, restarting at each boundary (SGDR)."""
    return per_cycle(lambda length: cosine(value, length, final), boundaries)


def piecewise_per_cycle(value: float, boundaries: Sequence[float], milestones: Sequence[float] = (0.5, 0.75),
                        factors: Sequence[float] = (0.1, 0.01)) -> Schedule:
    """Step drops within every cycle: value times factors[i] once milestones[i] of the cycle has elapsed."""
    return per_cycle(lambda length: piecewise(value, length, milestones, factors), boundaries)
