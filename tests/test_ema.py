"""The weight EMA against sequences computed by hand (warm-up, every k steps, buffers, resume)."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from advland.ema import WeightEMA


def _scalar_model(value: float = 0.0) -> nn.Module:
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(value)
    return model


def _set(model: nn.Module, value: float) -> None:
    with torch.no_grad():
        model.weight.fill_(value)


def _run(ema: WeightEMA, model: nn.Module, weights: list[float]) -> list[float]:
    seen = []
    for w in weights:
        _set(model, w)
        ema.step(model)
        seen.append(ema.model.weight.item())
    return seen


def test_warmup_sequence_by_hand():
    """decay 0.5 with warm-up: d_t = min(0.5, (1 + t) / (10 + t)) = 1/10, 2/11, 3/12, ..., 8/17, then 0.5."""
    model = _scalar_model(0.0)
    ema = WeightEMA(model, 0.5)
    weights = [float(k) for k in range(1, 13)]
    expected, e = [], 0.0
    decays = [1 / 10, 2 / 11, 3 / 12, 4 / 13, 5 / 14, 6 / 15, 7 / 16, 8 / 17, 0.5, 0.5, 0.5, 0.5]
    for d, w in zip(decays, weights):
        e = d * e + (1 - d) * w
        expected.append(e)
    assert _run(ema, model, weights) == pytest.approx(expected, rel=1e-6)
    assert expected[0] == pytest.approx(0.9) and expected[1] == pytest.approx(2 / 11 * 0.9 + 9 / 11 * 2)
    assert [ema.decay_at(t) for t in range(len(decays))] == pytest.approx(decays)
    assert (ema.steps, ema.updates) == (12, 12)


def test_constant_decay_without_warmup_and_every_k_steps():
    model = _scalar_model(1.0)
    ema = WeightEMA(model, 0.8, warmup=False, every=3)
    seen = _run(ema, model, [2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0])
    # averages at steps 3 and 6 only (d = 0.8 each time): 0.8·1 + 0.2·6 = 2.0, then 0.8·2 + 0.2·12 = 4.0
    assert seen == pytest.approx([1.0, 1.0, 2.0, 2.0, 2.0, 4.0, 4.0])
    assert (ema.steps, ema.updates) == (7, 2)


def test_warmup_counts_updates_not_steps():
    model = _scalar_model(0.0)
    ema = WeightEMA(model, 0.99, every=2)
    seen = _run(ema, model, [5.0, 10.0, 20.0, 40.0])
    first = 0.1 * 0.0 + 0.9 * 10.0
    assert seen == pytest.approx([0.0, first, first, 2 / 11 * first + 9 / 11 * 40.0])


def test_start_copies_the_weights_and_the_warmup_counts_from_there():
    """start = 3 steps: the first three copy (d = 0), the fourth is the warm-up's first update (d = 0.1)."""
    model = _scalar_model(0.0)
    ema = WeightEMA(model, 0.9, start=3)
    seen = _run(ema, model, [1.0, 2.0, 3.0, 4.0, 5.0])
    fourth = 0.1 * 3.0 + 0.9 * 4.0
    assert seen == pytest.approx([1.0, 2.0, 3.0, fourth, 2 / 11 * fourth + 9 / 11 * 5.0])
    assert (ema.steps, ema.updates) == (5, 2)


def test_decay_zero_follows_the_model_and_the_copy_is_frozen_in_eval_mode():
    model = _scalar_model(3.0).train()
    ema = WeightEMA(model, 0.0)
    assert _run(ema, model, [7.0, -1.0]) == [7.0, -1.0]
    assert not ema.model.training and not any(p.requires_grad for p in ema.model.parameters())
    assert model.training and model.weight.requires_grad


def _bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))


@pytest.mark.parametrize("buffers", ["copy", "average"])
def test_batchnorm_buffers_copied_or_averaged(buffers):
    model = _bn_net()
    ema = WeightEMA(model, 0.9, warmup=False, buffers=buffers)
    start_mean = model[1].running_mean.clone()
    model.train()
    model(torch.randn(16, 3) + 2.0)  # moves the running statistics
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.step(model)
    bn_ema, bn = ema.model[1], model[1]
    assert torch.equal(bn_ema.num_batches_tracked, bn.num_batches_tracked)  # integers always copied
    if buffers == "copy":
        assert torch.equal(bn_ema.running_mean, bn.running_mean) and torch.equal(bn_ema.running_var, bn.running_var)
    else:
        torch.testing.assert_close(bn_ema.running_mean, 0.9 * start_mean + 0.1 * bn.running_mean)
    # the parameters are averaged either way
    torch.testing.assert_close(ema.model[0].weight, model[0].weight - 0.9)


def test_state_dict_resumes_bit_exactly():
    """Stop after 5 of 11 steps, save and load the state through torch.save into a fresh EMA: the same weights
    as an uninterrupted run, bit for bit."""
    torch.manual_seed(1)
    updates = [torch.randn(2, 3) for _ in range(11)]

    def trained(k):
        model = _bn_net()
        with torch.no_grad():
            model[0].weight.copy_(updates[k][:, :3].repeat(2, 1))
        return model

    whole = WeightEMA(_bn_net(), 0.95, every=2)
    for k in range(11):
        whole.step(trained(k))
    first = WeightEMA(_bn_net(), 0.95, every=2)
    for k in range(5):
        first.step(trained(k))
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = WeightEMA(_bn_net(), 0.95, every=2)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for k in range(5, 11):
        resumed.step(trained(k))
    assert (resumed.steps, resumed.updates) == (whole.steps, whole.updates) == (11, 5)
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay must be in"):
        WeightEMA(_scalar_model(), 1.0)
    with pytest.raises(ValueError, match="every must be"):
        WeightEMA(_scalar_model(), 0.9, every=0)
    with pytest.raises(ValueError, match="buffers must be"):
        WeightEMA(_scalar_model(), 0.9, buffers="mean")
    with pytest.raises(ValueError, match="start must be"):
        WeightEMA(_scalar_model(), 0.9, start=-1)
