"""Threat models: projections stay in the ball and the box, steps have the right length."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from advland.threat import ThreatError, ThreatModel, ThreatOverrides, fgsm_rs, linf_l2_budgets, lp_norm

norms = st.sampled_from(["linf", "l2", "l1"])


@settings(max_examples=60, deadline=None)
@given(norm=norms, eps=st.floats(0.0, 3.0), seed=st.integers(0, 2**16), scale=st.floats(0.0, 10.0))
def test_projection_stays_in_ball_and_box(norm, eps, seed, scale):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(5, 3, 4, 4, generator=g)
    x_adv = x + scale * torch.randn(5, 3, 4, 4, generator=g)
    threat = ThreatModel(norm=norm, eps=eps)
    projected = threat.project(x_adv, x)
    assert projected.min() >= 0 and projected.max() <= 1
    # (x + δ) − x is re-measured in float32: each coordinate may be off by about one ulp of 1
    rounding = {"linf": 1, "l2": 48 ** 0.5, "l1": 48}[norm] * 2.4e-7
    assert (lp_norm(projected - x, norm) <= eps * (1 + 1e-5) + rounding).all()


@settings(max_examples=30, deadline=None)
@given(norm=norms, eps=st.floats(0.01, 2.0), seed=st.integers(0, 2**16))
def test_random_start_is_inside_threat_set(norm, eps, seed):
    torch.manual_seed(seed)
    x = torch.rand(8, 1, 8, 8)
    start = ThreatModel(norm=norm, eps=eps).random_start(x)
    assert start.min() >= 0 and start.max() <= 1
    rounding = {"linf": 1, "l2": 8, "l1": 64}[norm] * 2.4e-7  # float32 re-measurement, as above
    assert (lp_norm(start - x, norm) <= eps * (1 + 1e-5) + rounding).all()


def test_projection_is_identity_inside_ball():
    x = torch.full((2, 10), 0.5)
    delta = torch.full((2, 10), 0.01)
    for norm in ("linf", "l2", "l1"):
        assert torch.allclose(ThreatModel(norm=norm, eps=1.0).project(x + delta, x), x + delta)


def test_l1_projection_matches_known_solution():
    # the Euclidean projection of (0.9, 0.5) onto the L1 ball of radius 0.6 is (0.5, 0.1)
    x = torch.zeros(1, 2)
    projected = ThreatModel(norm="l1", eps=0.6).project(torch.tensor([[0.9, 0.5]]), x)
    assert torch.allclose(projected, torch.tensor([[0.5, 0.1]]), atol=1e-6)


@pytest.mark.parametrize("norm", ["linf", "l2", "l1"])
def test_ascent_step_has_step_size_length(norm):
    threat = ThreatModel(norm=norm, eps=1.0, step_size=0.1)
    grad = torch.randn(4, 50)
    step = threat.ascent_step(torch.zeros(4, 50), grad)
    assert torch.allclose(lp_norm(step, norm), torch.full((4,), 0.1), atol=1e-6)
    assert ((step * grad) >= 0).all()  # never against the gradient


def test_with_eps_keeps_step_ratio():
    threat = ThreatModel(eps=0.2, step_size=0.05).with_eps(0.1)
    assert threat.eps == 0.1 and threat.step_size == pytest.approx(0.025)


def test_fgsm_rs_is_one_step_of_125_eps():
    threat = fgsm_rs(0.1)
    assert threat.steps == 1 and threat.step_size == pytest.approx(0.125)


def test_invalid_threat_is_rejected():
    with pytest.raises(ValueError, match="norm"):
        ThreatModel(norm="l3")


def test_linf_and_l2_budgets_come_from_the_flags_the_run_or_each_other():
    d = 64  # sqrt(d) / 4 = 2
    assert linf_l2_budgets(ThreatModel("linf", 0.1, 0.025, 10), d) == (0.1, pytest.approx(0.2))
    assert linf_l2_budgets(ThreatModel("l2", 0.5, 0.1, 10), d) == (pytest.approx(0.25), 0.5)
    assert linf_l2_budgets(ThreatModel("linf", 0.1, 0.025, 10), d, eps_l2=1.0) == (0.1, 1.0)
    with pytest.raises(ThreatError, match="trained with eps 0"):
        linf_l2_budgets(ThreatModel("linf", 0.0, 0.0, 10), d)


def test_threat_overrides_keep_the_step_to_radius_ratio_and_the_total_step():
    base = ThreatModel("linf", 0.1, 0.025, 10)
    assert ThreatOverrides().apply(base) == base
    assert ThreatOverrides(eps=0.2).apply(base).step_size == pytest.approx(0.05)
    assert ThreatOverrides(steps=5).apply(base).step_size == pytest.approx(0.05)
    assert ThreatOverrides(norm="l2", step_size=0.3).apply(base) == ThreatModel("l2", 0.1, 0.3, 10)
