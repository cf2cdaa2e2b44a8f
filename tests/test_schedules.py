"""Schedules are pure functions of progress t (epochs): values at cycle start, middle, end and across restarts."""

from __future__ import annotations

import math

import pytest

from advland import schedules

CYCLES = [100, 150, 200]  # the official CIFAR-10 snapshot epochs of liu2020


def test_cycle_of_boundaries_open_the_next_cycle() -> None:
    assert schedules.cycle_of(0.0, CYCLES) == (0, 0.0, 100.0)
    assert schedules.cycle_of(99.99, CYCLES) == (0, 0.0, 100.0)
    assert schedules.cycle_of(100.0, CYCLES) == (1, 100.0, 150.0)
    assert schedules.cycle_of(175.0, CYCLES) == (2, 150.0, 200.0)
    assert schedules.cycle_of(200.0, CYCLES) == (2, 150.0, 200.0)
    assert schedules.cycle_of(250.0, CYCLES) == (2, 150.0, 200.0)


@pytest.mark.parametrize("bad", [[], [0, 10], [10, 10], [20, 10]])
def test_bad_boundaries_are_rejected(bad: list[int]) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        schedules.per_cycle(schedules.constant, bad)


def test_cosine_ramp_matches_the_formula() -> None:
    target = 8 / 255
    eps = schedules.cosine_ramp(target, CYCLES)
    eps_max = 2 * target
    assert eps(0.0) == 0.0
    # a quarter of the first cycle: ½·eps_max·(1 − cos(π/4)), below the target
    assert eps(25.0) == pytest.approx(0.5 * eps_max * (1 - math.cos(math.pi / 4)))
    assert eps(25.0) < target
    assert eps(50.0) == pytest.approx(target)  # mid-cycle: reaches the target
    assert eps(99.999) == target  # clipped until the cycle ends
    assert eps(100.0) == 0.0  # restart
    assert eps(112.5) == pytest.approx(0.5 * eps_max * (1 - math.cos(math.pi / 4)))  # a quarter of a 50-epoch cycle
    assert eps(125.0) == pytest.approx(target)
    assert eps(150.0) == 0.0
    assert eps(200.0) == target  # the end of training stays at the target


def test_ramp_max_factor_changes_when_the_target_is_reached() -> None:
    eps = schedules.cosine_ramp(0.4, [100], max_factor=1.5)  # liu2020's MNIST example: eps_max 0.6
    assert eps(50.0) == pytest.approx(0.3)
    r = math.acos(1 - 2 * 0.4 / 0.6) / math.pi  # where ½·0.6·(1 − cos(π r)) = 0.4
    assert eps(100 * r - 1e-6) < 0.4 and eps(100 * r + 1e-6) == 0.4


def test_linear_ramp_matches_the_formula() -> None:
    eps = schedules.linear_ramp(0.3, [10, 20])
    assert eps(0.0) == 0.0
    assert eps(2.5) == pytest.approx(0.6 * 0.25)
    assert eps(5.0) == pytest.approx(0.3)
    assert eps(9.9) == 0.3
    assert eps(10.0) == 0.0
    assert eps(12.5) == pytest.approx(0.15)


def test_cosine_restarts_anneal_within_each_cycle() -> None:
    lr = schedules.cosine_restarts(0.1, CYCLES)
    assert lr(0.0) == pytest.approx(0.1)
    assert lr(50.0) == pytest.approx(0.05)
    assert lr(100.0 - 1e-9) == pytest.approx(0.0, abs=1e-12)
    assert lr(100.0) == pytest.approx(0.1)  # warm restart
    assert lr(125.0) == pytest.approx(0.05)
    assert lr(200.0) == pytest.approx(0.0, abs=1e-12)


def test_piecewise_per_cycle_drops_within_each_cycle() -> None:
    lr = schedules.piecewise_per_cycle(0.1, CYCLES)
    assert lr(0.0) == 0.1 and lr(49.9) == 0.1
    assert lr(50.0) == pytest.approx(0.01) and lr(75.0) == pytest.approx(0.001)
    assert lr(100.0) == 0.1  # restart
    assert lr(125.0) == pytest.approx(0.01) and lr(137.5) == pytest.approx(0.001)
    assert lr(150.0) == 0.1


def test_one_cycle_of_a_periodic_schedule_is_the_plain_schedule() -> None:
    plain, periodic = schedules.cosine(0.1, 30), schedules.cosine_restarts(0.1, [30])
    for t in (0.0, 7.3, 15.0, 29.9, 30.0):
        assert periodic(t) == pytest.approx(plain(t))


def test_plain_schedules_keep_their_values() -> None:
    assert schedules.constant(0.3)(12.0) == 0.3
    assert schedules.linear_warmup(0.3, 10)(5.0) == pytest.approx(0.15)
    assert schedules.piecewise(0.1, 200)(150.0) == pytest.approx(0.001)
    assert schedules.one_cycle(0.2, 10)(4.0) == pytest.approx(0.2)
