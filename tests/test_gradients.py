"""Gradient norm, scattering and the gradient's Lipschitz estimate."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advland.landscape import (
    FlatModel,
    HessianOperator,
    gradient_lipschitz,
    gradient_norm,
    gradient_scattering,
    lanczos,
    lipschitz_ratios,
)
from advland.landscape import gradients
from advland.landscape.gradients import per_example_cosine, per_example_gradients
from advland.threat import ThreatModel

THREAT = ThreatModel("linf", 0.1, 0.03, 3)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()
    generator = torch.Generator().manual_seed(1)
    x = torch.rand(30, 1, 4, 4, generator=generator, dtype=torch.float64)
    return model, x, torch.randint(0, 3, (30,), generator=generator)


def test_lipschitz_estimate_on_a_quadratic_is_the_curvature_along_delta() -> None:
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    curvatures = torch.tensor([5.0, 3.0, 2.0, 1.0, 0.5, -1.0], dtype=torch.float64)
    a = q @ torch.diag(curvatures) @ q.T  # L(θ) = ½ θᵀAθ, ∇L(θ) = Aθ
    theta = torch.randn(6, dtype=torch.float64)
    deltas = [0.3 * q[:, 0], 1e-3 * q[:, 5], q[:, 0] + q[:, 1]]
    ratios = lipschitz_ratios(lambda t: a @ t, theta, deltas)
    assert ratios[0] == pytest.approx(5.0, rel=1e-10)
    assert ratios[1] == pytest.approx(1.0, rel=1e-8)  # |−1|: the curvature's size along Δ
    assert ratios[2] == pytest.approx((25 + 9) ** 0.5 / 2**0.5, rel=1e-10)  # ‖AΔ‖/‖Δ‖


def test_lipschitz_along_the_top_eigenvector_is_the_top_eigenvalue(problem) -> None:
    model, x, y = problem
    top = lanczos(HessianOperator(model, x, y), k=1, tol=1e-10)
    estimate = gradient_lipschitz(model, x, y, None, radius=1e-6, direction=top.vectors[:, 0])
    assert estimate.ratios == [pytest.approx(top.values[0].item(), rel=1e-3)]
    assert estimate.radius == pytest.approx(1e-6 * FlatModel(model).vector().norm().item())


def test_gradient_norm_matches_autograd(problem) -> None:
    model, x, y = problem
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    expected = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
    model.zero_grad()
    assert gradient_norm(model, x, y, batch_size=7) == pytest.approx(expected, rel=1e-10)
    assert gradient_norm(model, x, y, THREAT) != pytest.approx(expected, rel=1e-3)
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())  # no .grad written


def test_scattering_is_one_at_zero_step_and_a_cosine_otherwise(problem) -> None:
    model, x, y = problem
    same = gradient_scattering(model, x, y, THREAT, step=0.0)
    assert same.cos_delta == pytest.approx(1.0) and same.cos_sign_delta == pytest.approx(1.0)
    assert same.cos_grad == pytest.approx(1.0) and same.cos_grad_per_example == pytest.approx(1.0)
    moved = gradient_scattering(model, x, y, THREAT, step=0.5, seed=3)
    for value in (moved.cos_delta, moved.cos_sign_delta, moved.cos_grad, moved.cos_grad_per_example):
        assert -1.0 <= value <= 1.0
    assert moved.cos_grad < 1.0 and moved.cos_grad_per_example < 1.0 and moved.step > 0


def test_per_example_gradients_match_one_backward_per_example(problem, monkeypatch) -> None:
    model, x, y = problem
    flat = FlatModel(model)
    theta = flat.vector()
    expected = []
    for xi, yi in zip(x, y):
        model.zero_grad()
        F.cross_entropy(model(xi[None]), yi[None]).backward()
        expected.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    model.zero_grad()
    assert torch.allclose(per_example_gradients(flat, theta, x, y), torch.stack(expected), rtol=1e-10, atol=1e-12)
    other = theta + 0.3 * torch.randn_like(theta)
    monkeypatch.setattr(gradients, "PER_EXAMPLE_CHUNK", 7)  # 30 examples in 5 chunks
    chunked = per_example_cosine(flat, theta, x, other, x, y)
    direct = F.cosine_similarity(per_example_gradients(flat, theta, x, y), per_example_gradients(flat, other, x, y))
    assert chunked == pytest.approx(direct.mean().item(), rel=1e-10)


def test_adversarial_lipschitz_reruns_the_attack(problem) -> None:
    model, x, y = problem
    estimate = gradient_lipschitz(model, x, y, THREAT, radius=1e-2, n_directions=2)
    assert len(estimate.ratios) == 2 and estimate.max >= estimate.mean > 0
