"""Tests for the model registry, Normalize and the built-in nets."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advland.errors import AdvlandError
from advland.models import ModelError, Normalize, create_model, list_models, register_model
from advland.models.registry import _REGISTRY

USER_MODEL = "test_user_linear"  # registered by test_user_registered_model

# Each built-in model with a small natural input and kwargs that keep it fast on a CPU.
CASES: dict[str, tuple[tuple[int, ...], dict]] = {
    "mlp": ((5,), {"hidden": (7, 6)}),
    "cnn_small": ((1, 8, 8), {}),
    "lenet": ((1, 8, 8), {}),
    "preact_resnet18": ((3, 16, 16), {"width": 0.125}),
    "resnet18": ((3, 16, 16), {"width": 0.125}),
    "wrn": ((3, 16, 16), {"depth": 10, "widen_factor": 1}),
    "wrn34_10": ((3, 8, 8), {}),
    "wrn28_10": ((3, 8, 8), {}),
    "vgg16": ((3, 16, 16), {"width": 0.125}),
}


def test_every_built_in_model_has_a_case() -> None:
    built_in = {n for n, f in _REGISTRY.items() if f.__module__.startswith("advland.models.")}
    assert built_in == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_output_shape_and_normalize_wrapper(name: str) -> None:
    shape, kwargs = CASES[name]
    torch.manual_seed(0)
    mean, std = (0.5,) * shape[0], (0.25,) * shape[0]
    model = create_model(name, input_shape=shape, num_classes=7, mean=mean, std=std, **kwargs).eval()
    assert isinstance(model, nn.Sequential) and isinstance(model[0], Normalize)
    x = torch.rand(2, *shape)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 7)
        torch.testing.assert_close(out, model[1]((x - 0.5) / 0.25))
    state = model.state_dict()
    assert torch.equal(state["0.mean"], torch.tensor(mean)) and torch.equal(state["0.std"], torch.tensor(std))


@pytest.mark.parametrize(
    ("name", "shape", "kwargs"),
    [
        ("cnn_small", (1, 40), {}),
        ("cnn_small", (3, 8, 8), {"width": 0.5, "batchnorm": True}),
        ("mlp", (1, 40), {}),
        ("mlp", (3, 8, 8), {"hidden": ()}),
        ("lenet", (1, 28, 28), {}),
        ("resnet18", (3, 8, 12), {"width": 0.125}),
        ("vgg16", (1, 8, 8), {"width": 0.125}),
    ],
)
def test_other_input_shapes(name: str, shape: tuple[int, ...], kwargs: dict) -> None:
    model = create_model(name, input_shape=shape, num_classes=3, **kwargs).eval()
    assert model(torch.rand(2, *shape)).shape == (2, 3)


def test_lenet_parameter_count_on_mnist() -> None:
    model = create_model("lenet", input_shape=(1, 28, 28), num_classes=10)
    expected = (32 * 1 * 25 + 32) + (64 * 32 * 25 + 64) + (64 * 7 * 7 * 1024 + 1024) + (1024 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected


def test_resnet18_width_scales_channels() -> None:
    model = create_model("resnet18", input_shape=(3, 8, 8), num_classes=10, width=0.25)
    assert model.conv1.out_channels == 16 and model.linear.in_features == 128


def test_cnn_small_uses_conv1d_for_signals() -> None:
    model = create_model("cnn_small", input_shape=(1, 40), num_classes=10)
    assert any(isinstance(m, nn.Conv1d) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.modules())


def test_normalize_broadcasts_over_vectors_and_signals() -> None:
    x = torch.rand(4, 3, 5)
    norm = Normalize((0.1, 0.2, 0.3), (1.0, 2.0, 4.0))
    expected = (x - torch.tensor([0.1, 0.2, 0.3]).view(3, 1)) / torch.tensor([1.0, 2.0, 4.0]).view(3, 1)
    torch.testing.assert_close(norm(x), expected)
    v = torch.rand(4, 6)
    torch.testing.assert_close(Normalize((0.5,), (0.5,))(v), (v - 0.5) / 0.5)


def test_unknown_model_lists_available_names() -> None:
    with pytest.raises(ModelError, match="unknown model 'nope'") as info:
        create_model("nope", input_shape=(3, 8, 8), num_classes=10)
    assert all(name in str(info.value) for name in list_models())
    assert isinstance(info.value, AdvlandError)
    assert "\n" not in str(info.value)


def test_unknown_kwarg_is_named_with_accepted_ones() -> None:
    with pytest.raises(ModelError, match="depthh.*accepted: depth, widen_factor"):
        create_model("wrn", input_shape=(3, 8, 8), num_classes=10, depthh=28)


@pytest.mark.parametrize(
    ("name", "shape", "kwargs"),
    [
        ("lenet", (1, 4, 4), {}),
        ("resnet18", (40,), {}),
        ("wrn", (3, 8, 8), {"depth": 30}),
        ("mlp", (3, 8, 8), {"mean": (0.5, 0.5), "std": (0.2, 0.2)}),
        ("mlp", (3, 8, 8), {"mean": (0.5,)}),
        ("mlp", (3, 8, 8), {"mean": (0.5,), "std": (0.0,)}),
    ],
)
def test_bad_arguments_raise_model_error(name: str, shape: tuple[int, ...], kwargs: dict) -> None:
    with pytest.raises(ModelError):
        create_model(name, input_shape=shape, num_classes=10, **kwargs)


def test_user_registered_model() -> None:
    @register_model(USER_MODEL)
    def factory(*, input_shape: tuple[int, ...], num_classes: int, bias: bool = True) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], num_classes, bias=bias))

    assert USER_MODEL in list_models()
    model = create_model(USER_MODEL, input_shape=(4,), num_classes=2, bias=False)
    assert model[1].bias is None and model(torch.rand(3, 4)).shape == (3, 2)
    with pytest.raises(ModelError, match="already registered"):
        register_model(USER_MODEL)(factory)


# ---------------------------------------------------------------- activation choice (SiLU / Swish)

SILU_CASES = [("preact_resnet18", (3, 16, 16), {"width": 0.125}), ("wrn", (3, 16, 16), {"depth": 10, "widen_factor": 1}),
              ("wrn28_10", (3, 8, 8), {}), ("wrn34_10", (3, 8, 8), {})]


@pytest.mark.parametrize(("name", "shape", "kwargs"), SILU_CASES[:2])
def test_silu_replaces_every_relu_and_keeps_the_state_dict(name, shape, kwargs) -> None:
    torch.manual_seed(0)
    relu = create_model(name, input_shape=shape, num_classes=5, **kwargs).eval()
    silu = create_model(name, input_shape=shape, num_classes=5, activation="silu", **kwargs).eval()
    assert not any(isinstance(m, nn.SiLU) for m in relu.modules())
    assert any(isinstance(m, nn.SiLU) for m in silu.modules())
    assert not any(isinstance(m, nn.ReLU) for m in silu.modules())
    silu.load_state_dict(relu.state_dict())  # same names and shapes: an activation has no parameters
    x = torch.rand(3, *shape)
    with torch.no_grad():
        assert not torch.allclose(relu(x), silu(x))
    swish = create_model(name, input_shape=shape, num_classes=5, activation="swish", **kwargs).eval()
    swish.load_state_dict(relu.state_dict())
    with torch.no_grad():
        assert torch.equal(swish(x), silu(x))


@pytest.mark.parametrize(("name", "shape", "kwargs"), SILU_CASES[2:])
def test_the_named_wide_resnets_take_the_activation(name, shape, kwargs) -> None:
    model = create_model(name, input_shape=shape, num_classes=10, activation="silu", **kwargs)
    blocks = 3 * (int(name[3:5]) - 4) // 6  # one activation module per block (used twice), one after the last BN
    assert sum(isinstance(m, nn.SiLU) for m in model.modules()) == 1 + blocks
    assert not any(isinstance(m, nn.ReLU) for m in model.modules())


def test_unknown_activation_is_one_line() -> None:
    with pytest.raises(ModelError, match="unknown activation 'gelu'; choose one of: relu, silu, swish"):
        create_model("preact_resnet18", input_shape=(3, 8, 8), num_classes=10, activation="gelu")


def test_a_silu_preact_resnet_trains_and_loads_back(tmp_path) -> None:
    """Trained through the config (model.kwargs.activation) for an epoch on digits, then rebuilt by advland.load."""
    import advland
    from advland.config import load_config
    from advland.train import Trainer

    config = load_config("digits/at", [f"out_dir={tmp_path}", "name=silu", "epochs=1", "data.train_n=128",
                                       "model.name=preact_resnet18", "model.kwargs={width: 0.125, activation: silu}",
                                       "threat.steps=1", "eval.test_n=40", "data.val_fraction=0.05"])
    trainer = Trainer(config, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    summary = trainer.fit()
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert 0.0 <= summary["test_clean_acc"] <= 1.0
    loaded = advland.load(tmp_path / "silu", which="last").eval()
    assert any(isinstance(m, nn.SiLU) for m in loaded.modules())
    x = advland.data.load("digits", "test")[0][:16]
    trainer.model.eval()
    with torch.no_grad():
        assert torch.equal(loaded(x), trainer.model(x))
