"""Flatness perturbs what Stutz et al. perturb: weights, not normalization layers or biases (by default)."""

from __future__ import annotations

import torch

from helpers import bn_mlp


def test_flatness_leaves_normalization_layers_and_biases_alone_by_default():
    from advland.landscape import average_flatness
    from advland.landscape.flatness import perturbed_parameters
    from advland.threat import ThreatModel

    model = bn_mlp().eval()
    assert perturbed_parameters(model) == ["1.weight", "5.weight"]  # not the BatchNorm (2.*), not the biases
    assert perturbed_parameters(model, "all") == [n for n, _ in model.named_parameters()]
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    threat = ThreatModel("linf", 0.1, 0.05, 2)
    assert average_flatness(model, x, y, threat, n_samples=1).perturbed == "weights"
    assert average_flatness(model, x, y, threat, n_samples=1, perturb="all").perturbed == "all"
