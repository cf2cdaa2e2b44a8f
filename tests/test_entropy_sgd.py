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
    """Algorithm 1 of Chaudhari et al. (2017) written out, with the outer step x <- x - lr * (x - mu) plus wd and momentum."""
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


def _official_by_hand(params: list[torch.Tensor], outer_steps: int, *, L: int, lr: float, g0: float, mom: float,
                      wd: float, nesterov: bool, llr: float = 0.1, beta1: float = 0.75,
                      seed_momentum: bool = True) -> list[torch.Tensor]:
    """The official PyTorch code's update (ucla-vision/entropy-sgd, python/optim.py) written out for the quadratic,
    noise 0: a discarded gradient at the start of every step, whose first one seeds the outer momentum buffer;
    inner steps with weight decay and momentum (buffer zeroed every outer step); mu <- beta1 mu + (1 - beta1) x'."""
    params = [p.clone() for p in params]
    call = 0

    def grads(point: list[torch.Tensor]) -> list[torch.Tensor]:
        nonlocal call
        c = CENTRES[call % len(CENTRES)]
        call += 1
        return [_grad(point[0], c), _grad(point[1][0], c)[None]]

    def momentum_step(d, buffer):
        buffer.mul_(mom).add_(d)
        return d + mom * buffer if nesterov else buffer.clone()

    outer_buffers = None
    for _ in range(outer_steps):
        first = grads(params)
        if outer_buffers is None:
            outer_buffers = [g.clone() if seed_momentum else torch.zeros_like(g) for g in first]
        inner, mu = [p.clone() for p in params], [p.clone() for p in params]
        inner_buffers = [torch.zeros_like(p) for p in params]
        for _ in range(L):
            for i, g in enumerate(grads(inner)):
                dw = momentum_step(g + wd * inner[i], inner_buffers[i])
                dw = dw - g0 * (params[i] - inner[i])
                inner[i] = inner[i] - llr * dw
                mu[i] = beta1 * mu[i] + (1 - beta1) * inner[i]
        for i in range(len(params)):
            dw = momentum_step((params[i] - mu[i]) + wd * params[i], outer_buffers[i])
            params[i] = params[i] - lr * dw
    return params


@pytest.mark.parametrize("nesterov", [False, True])
def test_legacy_momentum_starts_from_the_first_discarded_gradient_as_the_official_code(nesterov: bool) -> None:
    problem = Quadratic(X0, W0)
    settings = dict(L=2, lr=0.3, momentum=0.9, weight_decay=5e-3, nesterov=nesterov)
    optimizer = EntropySGD([problem.x, problem.w], gamma0=0.05, noise=0.0, alpha=0.75, inner_lr=0.1, legacy=True,
                           **settings)
    for _ in range(4):
        optimizer.step(problem.closure(optimizer))
    expected = _official_by_hand([X0, W0], 4, L=2, lr=0.3, g0=0.05, mom=0.9, wd=5e-3, nesterov=nesterov)
    torch.testing.assert_close(problem.x.detach(), expected[0])
    torch.testing.assert_close(problem.w.detach(), expected[1])
    # a buffer started at zero ends elsewhere: the comparison can tell the two apart
    zero_start = _official_by_hand([X0, W0], 4, L=2, lr=0.3, g0=0.05, mom=0.9, wd=5e-3, nesterov=nesterov,
                                   seed_momentum=False)
    assert (zero_start[0] - expected[0]).norm() > 1e-3
