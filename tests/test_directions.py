"""Directions in weight space and the flat view of a model they live in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advland.landscape import FlatModel, random_direction, random_directions
from advland.landscape.directions import DirectionSpec, random_unit
from advland.landscape.errors import LandscapeError
from advland.seeds import stream_seed


def conv_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 3)
    ).eval()


def test_flat_model_round_trip_and_forward() -> None:
    model = conv_net()
    flat = FlatModel(model)
    theta = flat.vector()
    assert theta.shape == (sum(p.numel() for p in model.parameters()),) == (flat.size,)
    for name, param in model.named_parameters():
        assert torch.equal(flat.split(theta)[name], param.detach())
    x = torch.rand(6, 1, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(flat.at(theta)(x), model(x))
        shifted = flat.at(theta + 1.0)(x)
    assert not torch.allclose(shifted, model(x))
    assert torch.equal(flat.vector(), theta)  # the module itself was not touched


def test_channels_last_gives_the_same_outputs() -> None:
    model, x = conv_net(), torch.rand(6, 1, 5, 5)
    flat, flat_cl = FlatModel(model), FlatModel(model, channels_last=True)
    with torch.no_grad():
        torch.testing.assert_close(flat_cl.at(flat.vector())(x), flat.at(flat.vector())(x))
    assert flat_cl.layout(x).is_contiguous(memory_format=torch.channels_last)


def test_block_model_holds_other_parameters_fixed() -> None:
    model = conv_net()
    flat = FlatModel(model, ["4.weight"])
    assert flat.size == 3 * 100
    assert FlatModel(model).blocks() == {"0": ["0.weight", "0.bias"], "1": ["1.weight", "1.bias"],
                                         "4": ["4.weight", "4.bias"]}
    with pytest.raises(LandscapeError, match="no parameter"):
        FlatModel(model, ["nope"])


def test_filter_normalization_matches_each_filter_norm() -> None:
    model = conv_net()
    flat = FlatModel(model)
    d = flat.split(random_direction(flat, DirectionSpec(seed=3, norm="filter")))
    for name, w in model.named_parameters():
        if w.dim() > 1:
            rows_d, rows_w = d[name].reshape(w.shape[0], -1), w.detach().reshape(w.shape[0], -1)
            torch.testing.assert_close(rows_d.norm(dim=1), rows_w.norm(dim=1))
        else:
            assert torch.count_nonzero(d[name]) == 0  # biases and BatchNorm zeroed by default


def test_layer_normalization_and_kept_bias_bn() -> None:
    model = conv_net()
    flat = FlatModel(model)
    d = flat.split(random_direction(flat, DirectionSpec(seed=3, norm="layer", zero_bias_bn=False)))
    for name, w in model.named_parameters():
        if w.dim() > 1:
            torch.testing.assert_close(d[name].norm(), w.detach().norm())
        else:
            assert torch.equal(d[name], w.detach())  # Li et al.: the bias direction is the bias itself


def test_directions_are_seeded_and_none_is_raw_gaussian() -> None:
    flat = FlatModel(conv_net())
    (a, b), specs = random_directions(flat, 2, seed=5, norm="none", zero_bias_bn=False)
    assert [s.seed for s in specs] == [stream_seed(5, 0), stream_seed(5, 1)]  # streams of seed 5 (advland.seeds)
    assert torch.equal(a, torch.randn(flat.size, generator=torch.Generator().manual_seed(stream_seed(5, 0))))
    assert torch.equal(random_direction(flat, specs[1]), b)
    assert not torch.equal(a, b)
    with pytest.raises(LandscapeError, match="normalization"):
        random_direction(flat, DirectionSpec(seed=0, norm="bogus"))  # type: ignore[arg-type]


def test_random_unit_has_unit_norm() -> None:
    u = random_unit(1000, seed=1, like=torch.zeros(1, dtype=torch.float64))
    assert u.dtype == torch.float64 and abs(u.norm().item() - 1) < 1e-12
