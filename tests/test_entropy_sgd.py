"""EntropySGD against Algorithm 1 computed by hand on a quadratic, its reduction to SGD, and the legacy switch."""

from __future__ import annotations

import math

import pytest
import torch

from advland.optim import EntropySGD

A = torch.tensor([[2.0, 0.3], [0.3, 1.0]])
CENTRES = [torch.tensor([1.0, -1.0]), torch.tensor([0.5, 2.0]), torch.tensor([-1.0, 0.0]), torch.tensor([2.0, 1.0])]


def _grad(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Gradient of f(x; c) = ½ (x − c)ᵀ A (x − c): a 'minibatch' is a centre c."""
    return A @ (x - c)


class Quadratic:
    """Two parameters (a vector and a 1x2 matrix) under the quadratic; each closure call takes the next centre."""

    def __init__(self, x0: torch.Tensor, w0: torch.Tensor):
        self.x = torch.nn.Parameter(x0.clone())
        self.w = torch.nn.Parameter(w0.clone())
        self.calls = 0

    def closure(self, optimizer: torch.optim.Optimizer):
        def closure() -> torch.Tensor:
            c = CENTRES[self.calls % len(CENTRES)]
            self.calls += 1
            optimizer.zero_grad()
            loss = 0.5 * (self.x - c) @ A @ (self.x - c) + 0.5 * (self.w[0] - c) @ A @ (self.w[0] - c)
            loss.backward()
            return loss

        return closure


X0, W0 = torch.tensor([0.3, -0.7]), torch.tensor([[1.5, 0.2]])


def _by_hand(params: list[torch.Tensor], outer_steps: int, *, L: int, lr: float, gamma0: float, gamma1: float,
             noise: float, alpha: float, inner_lr: float, momentum: float, weight_decay: float) -> list[torch.Tensor]:
    """Algorithm 1 (SPEC §5) written out, with the outer step x <- x - lr * (x - mu) plus wd and momentum."""
    params = [p.clone() for p in params]
    buffers = [torch.zeros_like(p) for p in params]
    call = 0
    for t in range(outer_steps):
        gamma = gamma0 * (1 + gamma1) ** t
        inner = [p.clone() for p in params]
        mu = [p.clone() for p in params]
        for _ in range(L):
            c = CENTRES[call % len(CENTRES)]
            call += 1
            grads = [_grad(inner[0], c), _grad(inner[1][0], c)[None]]
            for i in range(len(params)):
                dx = grads[i] - gamma * (params[i] - inner[i])
                inner[i] = inner[i] - inner_lr * dx + math.sqrt(inner_lr) * noise * torch.randn_like(inner[i])
                mu[i] = (1 - alpha) * mu[i] + alpha * inner[i]
        for i in range(len(params)):
            d = (params[i] - mu[i]) + weight_decay * params[i]
            buffers[i] = momentum * buffers[i] + d
            params[i] = params[i] - lr * buffers[i]
    return params


def test_matches_algorithm_1_by_hand_with_seeded_noise() -> None:
    settings = dict(L=3, lr=0.5, gamma0=0.5, gamma1=0.1, noise=0.05, alpha=0.75, inner_lr=0.1, momentum=0.9,
                    weight_decay=1e-2)
    problem = Quadratic(X0, W0)
    optimizer = EntropySGD([problem.x, problem.w], **settings)
    torch.manual_seed(7)
    for _ in range(3):
        optimizer.step(problem.closure(optimizer))
    torch.manual_seed(7)
    expected = _by_hand([X0, W0], 3, **settings)
    torch.testing.assert_close(problem.x.detach(), expected[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(problem.w.detach(), expected[1], rtol=1e-6, atol=1e-7)
    assert problem.calls == 9
    assert optimizer.gamma() == pytest.approx(0.5 * 1.1**3)


def test_with_one_inner_step_no_coupling_and_no_noise_it_is_sgd() -> None:
    problem, reference = Quadratic(X0, W0), Quadratic(X0, W0)
    optimizer = EntropySGD([problem.x, problem.w], lr=0.05, L=1, gamma0=0.0, noise=0.0, alpha=1.0, inner_lr=1.0,
                           momentum=0.9, nesterov=True, weight_decay=5e-4)
    sgd = torch.optim.SGD([reference.x, reference.w], lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    for _ in range(6):
        optimizer.step(problem.closure(optimizer))
        sgd.step(reference.closure(sgd))
    torch.testing.assert_close(problem.x.detach(), reference.x.detach(), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(problem.w.detach(), reference.w.detach(), rtol=1e-6, atol=1e-7)


def test_the_learning_rate_of_the_param_group_is_honoured() -> None:
    settings = dict(L=2, gamma0=0.1, noise=0.0, momentum=0.0)
    moved = []
    for lr in (0.0, 0.4):
        problem = Quadratic(X0, W0)
        optimizer = EntropySGD([problem.x, problem.w], lr=1.0, **settings)
        optimizer.param_groups[0]["lr"] = lr  # what the trainer's schedule does every iteration
        optimizer.step(problem.closure(optimizer))
        moved.append((problem.x.detach() - X0).norm().item())
    assert moved[0] == 0.0 and moved[1] > 0


def test_legacy_reproduces_the_official_code() -> None:
    problem = Quadratic(X0, W0)
    lr, alpha, eta = 0.5, 0.75, 0.1
    optimizer = EntropySGD([problem.x, problem.w], lr=lr, L=1, gamma0=0.2, gamma1=0.5, noise=0.0, alpha=alpha,
                           inner_lr=eta, legacy=True)
    optimizer.param_groups[0]["lr"] = 123.0  # ignored: the official code keeps the lr it was built with
    optimizer.step(problem.closure(optimizer))
    assert problem.calls == 2 and optimizer.closures_per_step == 2  # one wasted closure call
    # the wasted call sees centre 0, the inner step centre 1; mu = alpha * x + (1 - alpha) * x'
    inner = X0 - eta * _grad(X0, CENTRES[1])
    mu = alpha * X0 + (1 - alpha) * inner
    torch.testing.assert_close(problem.x.detach(), X0 - lr * (X0 - mu))
    optimizer.step(problem.closure(optimizer))
    assert optimizer.gamma() == 0.2  # scoping never advances


def test_scoping_survives_a_state_dict_round_trip() -> None:
    problem = Quadratic(X0, W0)
    optimizer = EntropySGD([problem.x, problem.w], L=2, gamma0=0.1, gamma1=0.5, noise=0.0)
    for _ in range(2):
        optimizer.step(problem.closure(optimizer))
    restored = EntropySGD([problem.x, problem.w], L=2, gamma0=0.1, gamma1=0.5, noise=0.0)
    restored.load_state_dict(optimizer.state_dict())
    assert restored.gamma() == pytest.approx(0.1 * 1.5**2)


def test_a_closure_is_required() -> None:
    problem = Quadratic(X0, W0)
    with pytest.raises(ValueError, match="closure"):
        EntropySGD([problem.x]).step()
    with pytest.raises(ValueError):
        EntropySGD([problem.x], L=0)
