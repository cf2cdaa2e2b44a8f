"""Weight perturbation (AWP, SAM, ASAM): radii, what is and is not perturbed, BN statistics, exact restore."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advland.models import create_model
from advland.perturb import WeightPerturbation, asam, awp, sam


def _model(batchnorm: bool = True) -> nn.Module:
    torch.manual_seed(0)
    return create_model("cnn_small", input_shape=(1, 8, 8), num_classes=10, mean=(0.3,), std=(0.4,),
                        width=0.25, batchnorm=batchnorm).train()


def _batch(n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(n, 1, 8, 8, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def _loss_fn(model: nn.Module):
    x, y = _batch()
    return lambda: F.cross_entropy(model(x), y)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_awp_moves_every_weight_by_gamma_times_its_norm_and_nothing_else() -> None:
    model, gamma = _model(), 0.01
    before = _snapshot(model)
    norm = awp(gamma).perturb(model, _loss_fn(model))
    after = model.state_dict()
    moved = 0.0
    for name, param in model.named_parameters():
        v = after[name] - before[name]
        if param.dim() > 1:
            torch.testing.assert_close(v.norm(), gamma * before[name].norm(), rtol=1e-4, atol=0)
            moved += v.pow(2).sum().item()
        else:  # biases and BatchNorm weights/biases
            assert torch.equal(v, torch.zeros_like(v)), name
    assert norm.item() == pytest.approx(moved**0.5, rel=1e-4)
    assert all(p.grad is None for p in model.parameters())


def test_awp_leaves_batchnorm_running_statistics_untouched() -> None:
    model = _model()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    assert any("running_mean" in k for k in buffers)
    awp(0.01, steps=3).perturb(model, _loss_fn(model))
    for name, value in model.named_buffers():
        assert torch.equal(value, buffers[name]), name


def test_per_filter_radius() -> None:
    model, gamma = _model(), 0.02
    before = _snapshot(model)
    loss_fn = _loss_fn(model)
    weights = [(n, p) for n, p in model.named_parameters() if p.dim() > 1]
    grads = torch.autograd.grad(loss_fn(), [p for _, p in weights])
    for name, value in model.named_buffers():
        value.copy_(before[name])
    awp(gamma, per_filter=True).perturb(model, loss_fn)
    for (name, param), grad in zip(weights, grads):
        v = (param - before[name]).flatten(1).norm(dim=1)
        live = grad.flatten(1).norm(dim=1) > 0  # a filter without gradient (dead ReLU) is not moved
        assert live.float().mean() > 0.5
        torch.testing.assert_close(v[live], gamma * before[name].flatten(1).norm(dim=1)[live], rtol=1e-4, atol=0)
        assert torch.equal(v[~live], torch.zeros_like(v[~live]))


def test_perturbation_ascends_the_loss() -> None:
    model = _model(batchnorm=False)
    loss_fn = _loss_fn(model)
    with torch.no_grad():
        clean = loss_fn().item()
    awp(0.01).perturb(model, loss_fn)
    with torch.no_grad():
        assert loss_fn().item() > clean


def test_several_steps_stay_in_the_ball() -> None:
    model, gamma = _model(), 0.05
    before = _snapshot(model)
    awp(gamma, steps=4).perturb(model, _loss_fn(model))
    for name, param in model.named_parameters():
        if param.dim() > 1:
            assert (param - before[name]).norm() <= gamma * before[name].norm() * (1 + 1e-5)


def test_restore_after_an_optimizer_step_equals_the_step_minus_v() -> None:
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    perturbation = awp(0.01)
    weights = perturbation.parameters(model)
    base = [p.detach().clone() for p in weights]
    loss_fn = _loss_fn(model)
    perturbation.perturb(model, loss_fn)
    v = [d.clone() for d in perturbation.offsets]
    assert len(v) == len(weights) == 4
    optimizer.zero_grad()
    loss_fn().backward()
    optimizer.step()
    stepped = [p.detach().clone() for p in weights]
    perturbation.restore()
    for p, s, d, w in zip(weights, stepped, v, base):
        assert torch.equal(p.detach(), s - d)  # exactly the optimizer's weights, moved back by v
        assert not torch.equal(p.detach(), w)


def test_restore_without_a_step_returns_the_weights() -> None:
    model = _model()
    before = _snapshot(model)
    perturbation = sam(0.05)
    perturbation.perturb(model, _loss_fn(model))
    perturbation.restore()
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=1e-7)
    perturbation.perturb(model, _loss_fn(model))  # ready for the next batch
    with pytest.raises(RuntimeError, match="restore"):
        perturbation.perturb(model, _loss_fn(model))


def test_sam_has_global_norm_rho_and_moves_biases_too() -> None:
    model, rho = _model(), 0.05
    before = _snapshot(model)
    norm = sam(rho).perturb(model, _loss_fn(model))
    assert norm == pytest.approx(rho, rel=1e-5)
    total = sum((p - before[n]).pow(2).sum() for n, p in model.named_parameters())
    assert total.sqrt().item() == pytest.approx(rho, rel=1e-5)
    assert any(p.dim() == 1 and not torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_zero_radius_changes_nothing() -> None:
    model = _model()
    before = _snapshot(model)
    assert sam(0.0).perturb(model, _loss_fn(model)) == 0.0
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name])


def test_asam_is_rho_t_squared_g_over_norm_of_t_g() -> None:
    model, rho, eta = _model(batchnorm=False), 0.5, 0.01
    names, params = zip(*model.named_parameters())
    base = [p.detach().clone() for p in params]
    loss_fn = _loss_fn(model)
    grads = torch.autograd.grad(loss_fn(), params)
    t = [w.abs() + eta if n.endswith("weight") else torch.ones_like(w) for n, w in zip(names, base)]  # biases: T = 1
    assert any(not n.endswith("weight") for n in names)
    denominator = torch.sqrt(sum((ti * g).pow(2).sum() for ti, g in zip(t, grads)))
    asam(rho, eta=eta).perturb(model, loss_fn)
    for p, w, ti, g in zip(params, base, t, grads):
        torch.testing.assert_close(p.detach() - w, rho * ti**2 * g / denominator, rtol=1e-4, atol=1e-7)


def test_invalid_settings() -> None:
    with pytest.raises(ValueError):
        WeightPerturbation(-0.1)
    with pytest.raises(ValueError, match="global"):
        WeightPerturbation(0.1, "layer", adaptive=True)
