"""Surfaces and interpolations: what they must equal at the points where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advland.attacks import pgd
from advland.landscape import (
    FlatModel,
    Landscape,
    evaluate_grid,
    interpolate,
    recompute_bn_statistics,
    surface,
)
from advland.landscape.errors import LandscapeError
from advland.landscape.surface import grid
from advland.seeds import stream_seed
from advland.threat import ThreatModel

THREAT = ThreatModel("linf", 0.1, 0.03, 3)


def small_cnn(seed: int = 0, batchnorm: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    norm = [nn.BatchNorm2d(4)] if batchnorm else []
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), *norm, nn.ReLU(), nn.Flatten(), nn.Linear(64, 3)).eval()


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(24, 1, 4, 4, generator=generator), torch.randint(0, 3, (24,), generator=generator)


def test_surface_at_the_origin_is_the_unperturbed_model(data) -> None:
    x, y = data
    model = small_cnn()
    s = surface(model, x, y, dims=2, steps=5, metrics=["clean_loss", "clean_acc", "adv_loss", "adv_acc"],
                threat=THREAT, seed=7, layout="contiguous")
    assert s.values["adv_loss"].shape == (5, 5) and s.coords[0][2] == 0.0 and s.coords[1][2] == 0.0
    with torch.no_grad():
        logits = model(x)
    assert s.values["clean_loss"][2, 2] == pytest.approx(F.cross_entropy(logits, y).item(), rel=1e-6)
    assert s.values["clean_acc"][2, 2] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    torch.manual_seed(7)  # the same random start as the surface's attack at every point
    x_adv = pgd(model, x, y, THREAT)
    with torch.no_grad():
        assert s.values["adv_loss"][2, 2] == pytest.approx(F.cross_entropy(model(x_adv), y).item(), rel=1e-5)
    assert (s.values["adv_loss"] >= s.values["clean_loss"] - 1e-6).all()
    assert s.info["directions"][0] == {"seed": stream_seed(7, 0), "norm": "filter", "zero_bias_bn": True}


def test_worker_threads_give_the_same_surface(data) -> None:
    x, y = data
    model = small_cnn()
    kwargs = dict(dims=2, steps=3, metrics=["adv_loss", "clean_acc"], threat=THREAT, layout="contiguous", seed=2)
    threads = torch.get_num_threads()
    one = surface(model, x, y, workers=1, **kwargs)
    three = surface(model, x, y, workers=3, batch_size=10, **kwargs)
    assert torch.get_num_threads() == threads  # restored after the single-threaded workers
    np.testing.assert_allclose(three.values["adv_loss"], one.values["adv_loss"], rtol=1e-6)
    np.testing.assert_array_equal(three.values["clean_acc"], one.values["clean_acc"])
    assert three.info["workers"] == 3 and one.info["workers"] == 1
    assert not model.training


def test_pgd_random_start_from_a_generator(data) -> None:
    x, y = data
    model = small_cnn()
    for norm in ("linf", "l2", "l1"):
        threat = ThreatModel(norm, 0.3, 0.1, 2)
        a = pgd(model, x, y, threat, generator=torch.Generator().manual_seed(4))
        b = pgd(model, x, y, threat, generator=torch.Generator().manual_seed(4))
        torch.manual_seed(4)
        c = pgd(model, x, y, threat)  # the global RNG with the same seed: the same start
        assert torch.equal(a, b) and torch.equal(a, c)


def test_one_dimensional_surface_follows_its_direction(data) -> None:
    x, y = data
    model = small_cnn()
    flat = FlatModel(model)
    direction = torch.zeros(flat.size)
    direction[-3:] = 1.0  # moves only the last layer's biases: logits + a for every class
    s = evaluate_grid(model, x, y, [direction], [np.array([-1.0, 0.0, 2.0])], metrics=["clean_loss"])
    assert np.allclose(s.values["clean_loss"], s.values["clean_loss"][1], rtol=1e-5)  # CE is shift-invariant


def test_layouts_agree_and_auto_records_its_choice(data) -> None:
    x, y = data
    model = small_cnn()
    kwargs = dict(dims=1, steps=16, metrics=["clean_loss"], seed=1)  # 16 points: "auto" times both layouts
    a = surface(model, x, y, layout="contiguous", **kwargs)
    b = surface(model, x, y, layout="channels_last", **kwargs)
    c = surface(model, x, y, layout="auto", **kwargs)
    np.testing.assert_allclose(a.values["clean_loss"], b.values["clean_loss"], rtol=1e-5)
    np.testing.assert_allclose(a.values["clean_loss"], c.values["clean_loss"], rtol=1e-5)
    assert c.info["layout"] in ("contiguous", "channels_last")


def test_interpolation_endpoints_are_both_models(data) -> None:
    x, y = data
    model_a, model_b = small_cnn(0, batchnorm=True), small_cnn(1, batchnorm=True)
    with torch.no_grad():  # give the two BatchNorms different running statistics
        model_b[1].running_mean.fill_(0.3)
        model_b[1].running_var.fill_(2.0)
    r = interpolate(model_a, model_b, x, y, steps=5, metrics=["clean_loss", "adv_loss"], threat=THREAT)
    for model, t in ((model_a, 0), (model_b, -1)):
        with torch.no_grad():
            assert r.values["clean_loss"][t] == pytest.approx(F.cross_entropy(model(x), y).item(), rel=1e-6)
    assert r.coords[0].tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    torch.testing.assert_close(r.directions[0], FlatModel(model_b).vector() - FlatModel(model_a).vector())
    recomputed = interpolate(model_a, model_b, x, y, steps=3, bn="recompute")
    assert recomputed.info["bn"] == "recompute" and np.isfinite(recomputed.values["clean_loss"]).all()


def test_recomputed_bn_statistics_are_the_data_statistics() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)).eval()
    x = torch.randn(50, 3)
    flat = FlatModel(model)
    stats = recompute_bn_statistics(flat, flat.vector(), x, batch_size=None)
    with torch.no_grad():
        features = model[0](x)
    torch.testing.assert_close(stats["1.running_mean"], features.mean(0))
    torch.testing.assert_close(stats["1.running_var"], features.var(0))  # unbiased, as BatchNorm keeps it
    assert torch.equal(model[1].running_mean, torch.zeros(2))  # the module itself is untouched
    assert recompute_bn_statistics(FlatModel(nn.Linear(3, 2)), torch.zeros(8), x) == {}


def test_save_and_load_round_trip(tmp_path, data) -> None:
    x, y = data
    s = surface(small_cnn(), x, y, dims=2, steps=3, metrics=["clean_loss"], layout="contiguous")
    paths = s.save(tmp_path / "surf.v1")
    assert [p.name for p in paths] == ["surf.v1.json", "surf.v1.npz"]
    loaded = Landscape.load(paths[1])
    np.testing.assert_array_equal(loaded.values["clean_loss"], s.values["clean_loss"])
    torch.testing.assert_close(loaded.directions[1], s.directions[1])
    assert loaded.info == s.info


def test_user_errors(data) -> None:
    x, y = data
    model = small_cnn()
    with pytest.raises(LandscapeError, match="unknown metric"):
        surface(model, x, y, metrics=["clean_los"])
    with pytest.raises(LandscapeError, match="need a threat"):
        surface(model, x, y, metrics=["adv_acc"])
    with pytest.raises(LandscapeError, match="lo < hi"):
        grid((1.0, -1.0), 5)
    with pytest.raises(LandscapeError, match="same architecture"):
        interpolate(model, nn.Sequential(nn.Flatten(), nn.Linear(16, 3)), x, y)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_stacked_points_give_the_same_surface(data, norm) -> None:
    """K points at once under vmap (the GPU path) = one point at a time, clean and adversarial, with BatchNorm."""
    x, y = data
    model = small_cnn(batchnorm=True)
    with torch.no_grad():
        model[1].running_mean.fill_(0.1)
        model[1].running_var.fill_(1.5)
    threat = THREAT if norm == "linf" else ThreatModel("l2", 0.5, 0.2, 3)
    kwargs = dict(dims=2, steps=3, metrics=["adv_loss", "adv_acc", "clean_loss", "clean_acc"], threat=threat,
                  layout="contiguous", seed=2, batch_size=10, workers=1)
    one = surface(model, x, y, stack=1, **kwargs)
    four = surface(model, x, y, stack=4, **kwargs)  # 9 points: stacks of 4, 4 and 1
    for metric in kwargs["metrics"]:
        np.testing.assert_allclose(four.values[metric], one.values[metric], rtol=1e-5, atol=1e-6)
    assert four.info["stack"] == 4 and one.info["stack"] == 1
    assert not model.training


def test_stacked_interpolation_carries_each_points_buffers(data) -> None:
    x, y = data
    model_a, model_b = small_cnn(0, batchnorm=True), small_cnn(1, batchnorm=True)
    with torch.no_grad():
        model_b[1].running_mean.fill_(0.3)
        model_b[1].running_var.fill_(2.0)
    kwargs = dict(steps=5, metrics=["clean_loss", "adv_loss"], threat=THREAT, layout="contiguous", workers=1)
    one = interpolate(model_a, model_b, x, y, stack=1, **kwargs)
    all_five = interpolate(model_a, model_b, x, y, stack=5, **kwargs)
    for metric in kwargs["metrics"]:
        np.testing.assert_allclose(all_five.values[metric], one.values[metric], rtol=1e-5, atol=1e-6)
