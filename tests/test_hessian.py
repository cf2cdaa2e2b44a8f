"""The Hessian operator against a dense Hessian, and the estimators built on it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advland.landscape import (
    FlatModel,
    HessianOperator,
    hessian,
    hessian_directions,
    hutchinson,
    hutchpp,
    lanczos,
    power_iteration,
    slq,
)
from advland.landscape.errors import LandscapeError
from advland.threat import ThreatModel


@pytest.fixture(scope="module")
def problem():
    """A tiny float64 model (43 weights), its data, and its dense Hessian with eigenvalues."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double().eval()
    x, y = torch.rand(40, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    flat = FlatModel(model)
    dense = torch.autograd.functional.hessian(lambda t: F.cross_entropy(flat.at(t)(x), y), flat.vector(), vectorize=True)
    return model, x, y, dense, torch.linalg.eigvalsh(dense).flip(0)


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_products_match_dense_and_are_deterministic(problem) -> None:
    model, x, y, dense, _ = problem
    op = HessianOperator(model, x, y)
    v = torch.randn(op.shape[0], 3, dtype=torch.float64)
    torch.testing.assert_close(op @ v, dense @ v)
    torch.testing.assert_close(op @ v[:, 0], dense @ v[:, 0])
    assert op.n_products == 4 and op.check_deterministic()
    batched = HessianOperator(model, x, y, batch_size=7)  # graph rebuilt per batch, summed
    torch.testing.assert_close(batched @ v, dense @ v)


def test_lanczos_top_k_matches_dense_eigenvalues(problem) -> None:
    model, x, y, dense, eigenvalues = problem
    eig = lanczos(HessianOperator(model, x, y), k=4, tol=1e-8)
    assert eig.converged
    for got, want in zip(eig.values.tolist(), eigenvalues[:4].tolist()):
        assert rel(got, want) < 1e-4
    for i in range(4):  # the Ritz vectors are eigenvectors
        u = eig.vectors[:, i]
        torch.testing.assert_close(dense @ u, eig.values[i].item() * u, atol=1e-6, rtol=0)
    on_dense = lanczos(dense, k=2, tol=1e-8)  # estimators take any operator, a plain matrix too
    assert rel(on_dense.values[0].item(), eigenvalues[0].item()) < 1e-4


def test_power_iteration_with_deflation_finds_the_top_pairs(problem) -> None:
    model, x, y, _, eigenvalues = problem
    eig = power_iteration(HessianOperator(model, x, y), k=2, tol=1e-10, max_iter=3000)
    assert eig.converged
    assert rel(eig.values[0].item(), eigenvalues[0].item()) < 1e-4
    assert rel(eig.values[1].item(), eigenvalues[1].item()) < 1e-4


def test_traces(problem) -> None:
    model, x, y, dense, _ = problem
    op = HessianOperator(model, x, y)
    exact = torch.trace(dense).item()
    assert rel(hutchpp(op, 3 * op.shape[0]).value, exact) < 1e-4  # sketch spans everything: exact
    estimate = hutchinson(op, 150, seed=1)
    assert estimate.n_products == 150
    assert abs(estimate.value - exact) < 4 * estimate.std_error


def test_slq_density_integrates_to_one_and_its_moments_match_the_trace(problem) -> None:
    model, x, y, dense, eigenvalues = problem
    density = slq(HessianOperator(model, x, y), n_probes=60, steps=12, seed=2)
    np.testing.assert_allclose(density.weights.sum(axis=1), 1.0, rtol=1e-10)
    grid = np.linspace(eigenvalues.min().item() - 1, eigenvalues.max().item() + 1, 20001)
    assert abs(np.trapezoid(density.density(grid, sigma=0.02), grid) - 1) < 1e-6
    trace = density.trace()
    assert abs(trace.value - torch.trace(dense).item()) < 4 * trace.std_error
    per_probe = density.size * (density.weights * density.nodes**2).sum(axis=1)  # estimates of tr(H²)
    assert np.isclose(per_probe.mean(), density.size * density.moment(2))
    assert abs(per_probe.mean() - torch.trace(dense @ dense).item()) < 4 * per_probe.std(ddof=1) / np.sqrt(60)
    # the nodes are Ritz values: they lie inside the spectrum
    assert density.nodes.max() <= eigenvalues[0].item() + 1e-8


def test_block_operator_is_the_dense_sub_block(problem) -> None:
    model, x, y, dense, _ = problem
    op = HessianOperator(model, x, y, params=["2.weight", "2.bias"])
    start = 4 * 5 + 5  # the first layer's weights come first in the flat vector
    sub = dense[start:, start:]
    v = torch.randn(op.shape[0], dtype=torch.float64)
    torch.testing.assert_close(op @ v, sub @ v)


def test_adversarial_hessian_holds_the_examples_fixed() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    x, y = torch.rand(20, 1, 4, 4), torch.randint(0, 4, (20,))
    threat = ThreatModel("linf", 0.1, 0.03, 5)
    op = hessian(model, x, y, threat=threat, seed=3)
    assert not torch.equal(op.inputs, x) and (op.inputs - x).abs().max() <= 0.1 + 1e-6
    assert torch.equal(hessian(model, x, y, threat=threat, seed=3).inputs, op.inputs)  # seeded
    assert op.check_deterministic()
    with pytest.raises(LandscapeError, match="k must be"):
        lanczos(op, k=0)


def test_lanczos_stops_by_its_residual_tolerance(problem) -> None:
    model, x, y, _, eigenvalues = problem
    loose = lanczos(HessianOperator(model, x, y), k=1, tol=1e-2)
    tight = lanczos(HessianOperator(model, x, y), k=1, tol=1e-9)
    assert loose.n_products < tight.n_products
    assert loose.residuals[0] <= 1e-2 * abs(loose.values[0])
    # the residual bounds the eigenvalue error
    assert abs(loose.values[0] - eigenvalues[0]) <= loose.residuals[0] + 1e-12
    assert math.isfinite(tight.values[0].item())


def test_hessian_directions_are_the_unit_top_eigenvectors(problem) -> None:
    model, x, y, dense, eigenvalues = problem
    directions, described = hessian_directions(model, x, y, 2)
    vectors = torch.linalg.eigh(dense).eigenvectors.flip(1)
    for i, (d, info) in enumerate(zip(directions, described)):
        assert d.norm().item() == pytest.approx(1.0, rel=1e-10)
        assert abs(torch.dot(d, vectors[:, i]).item()) == pytest.approx(1.0, abs=1e-6)
        assert rel(info["eigenvalue"], eigenvalues[i].item()) < 1e-4 and info["loss"] == "clean"
