"""Average- and worst-case flatness of the robust loss (Stutz et al. 2021)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advland.landscape import FlatModel, average_flatness, worst_flatness
from advland.landscape.flatness import random_relative_perturbation
from advland.threat import ThreatModel

THREAT = ThreatModel("linf", 0.1, 0.03, 3)


@pytest.fixture(scope="module")
def problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    generator = torch.Generator().manual_seed(1)
    return model, torch.rand(40, 1, 4, 4, generator=generator), torch.randint(0, 3, (40,), generator=generator)


def test_random_perturbation_stays_in_the_relative_ball(problem) -> None:
    model = problem[0]
    flat = FlatModel(model)
    theta = flat.vector()
    nu = flat.split(random_relative_perturbation(flat, theta, 0.2, seed=0))
    for name, w in model.named_parameters():
        assert 0 < nu[name].norm() <= 0.2 * w.detach().norm() + 1e-6


def test_no_perturbation_means_no_rise(problem) -> None:
    model, x, y = problem
    assert average_flatness(model, x, y, THREAT, xi=0.0, n_samples=2).value == pytest.approx(0.0, abs=1e-6)
    assert worst_flatness(model, x, y, THREAT, xi=0.0).value == pytest.approx(0.0, abs=1e-6)


def test_worst_case_rises_more_than_average_case_at_the_same_radius(problem) -> None:
    model, x, y = problem
    xi = 0.05
    average = average_flatness(model, x, y, THREAT, xi=xi, n_samples=4, batch_size=16)
    worst = worst_flatness(model, x, y, THREAT, xi=xi, steps=5, batch_size=16)
    assert worst.base_loss == pytest.approx(average.base_loss)
    assert worst.value > max(average.value, 0.0)
    assert len(average.perturbed_losses) == 4 and average.xi == xi
