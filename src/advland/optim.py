"""EntropySGD (Chaudhari et al. 2017, Algorithm 1), the optimizer kanai2021 uses against non-smoothness.

One outer step runs L inner SGLD steps x' from the current weights x, each on a fresh minibatch
(with adversarial examples crafted at the inner weights), keeps an exponential average mu of the
inner iterates, and moves x towards mu::

    x', mu <- x
    for l = 1..L:
        dx' = grad f(x'; batch_l) - gamma_t * (x - x')
        x'  <- x' - inner_lr * dx' + sqrt(inner_lr) * noise * N(0, I)
        mu  <- (1 - alpha) * mu + alpha * x'
    x <- x - lr * (x - mu)        (times gamma_t with outer_gamma; plus weight decay and momentum)
    gamma_t = gamma0 * (1 + gamma1)^t, t = outer steps taken

The outer learning rate is read from ``param_groups[...]["lr"]`` at every step, so learning-rate
schedules (the trainer's or torch's schedulers) are honoured. Noise is drawn with ``torch.randn_like``
from the global generator, parameter by parameter in ``param_groups`` order, inner step by inner step
(nothing is drawn when noise is 0).

``legacy=True`` reproduces the official PyTorch code (ucla-vision/entropy-sgd, python/optim.py):
one extra closure call per outer step whose gradient is discarded, scoping that never advances
(gamma = gamma0), the average taken the other way round (mu <- alpha * mu + (1 - alpha) * x'),
the learning rate frozen at its value when the optimizer was built, noise of scale
sqrt(2 * inner_lr) * noise, weight decay and momentum inside the inner steps (their momentum
buffer restarting at zero every outer step), and the outer momentum buffer starting with the
gradient of the very first discarded closure call instead of zeros. What it does not reproduce:
the official code's default ``nesterov=True`` and ``L=0`` (pass ``nesterov``/``L`` explicitly),
its ``damp`` (dampening, 0 by default there; not offered), its use of only the first parameter
group, and its return of the first closure's outputs (``step`` returns the last inner loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from .errors import AdvlandError


def _momentum_step(d: torch.Tensor, state: dict, key: str, momentum: float, nesterov: bool) -> torch.Tensor:
    """SGD momentum without dampening: state[key] <- momentum * state[key] + d; return the direction to step along."""
    if momentum == 0:
        return d
    buffer = state.setdefault(key, torch.zeros_like(d))
    buffer.mul_(momentum).add_(d)
    return d.add(buffer, alpha=momentum) if nesterov else buffer.clone()


class EntropySGD(torch.optim.Optimizer):
    """Entropy-SGD as a ``torch.optim.Optimizer`` whose ``step(closure)`` calls the closure L times.

    Args:
        params: parameters or parameter groups.
        lr: outer learning rate eta (a schedule may overwrite ``group["lr"]`` before every step).
        L: inner SGLD steps per outer step (closure calls; L + 1 with ``legacy``).
        gamma0, gamma1: scoping, gamma_t = gamma0 * (1 + gamma1)^t with t the outer steps taken.
        noise: SGLD noise scale epsilon; the inner step adds sqrt(inner_lr) * noise * N(0, I).
        alpha: weight of the newest inner iterate in the running average mu.
        inner_lr: inner (SGLD) step size eta'.
        momentum, nesterov, weight_decay: of the outer step, applied to the outer gradient x - mu.
        outer_gamma: multiply the outer gradient by gamma_t as Algorithm 1 writes it (practical
            codes, and the default, do not: with gamma0 = 1e-4 the outer step would barely move).
        legacy: reproduce the official PyTorch code's behaviour (see the module docstring).

    The closure must zero the gradients, draw a fresh minibatch, craft its adversarial examples at
    the current weights, compute the loss, call ``backward()`` and return the loss. ``step`` returns
    the loss of the last closure call. L, legacy and the inner hyper-parameters are read from the
    first parameter group.
    """

    def __init__(self, params, lr: float = 0.1, *, L: int = 20, gamma0: float = 1e-4, gamma1: float = 1e-3,
                 noise: float = 1e-4, alpha: float = 0.75, inner_lr: float = 0.1, momentum: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0, outer_gamma: bool = False,
                 legacy: bool = False):
        if L < 1 or lr < 0 or inner_lr <= 0 or not 0 < alpha <= 1 or gamma0 < 0 or gamma1 < 0 or noise < 0:
            raise ValueError("EntropySGD needs L >= 1, lr >= 0, inner_lr > 0, 0 < alpha <= 1 and "
                             "gamma0, gamma1, noise >= 0")
        defaults = dict(lr=lr, L=L, gamma0=gamma0, gamma1=gamma1, noise=noise, alpha=alpha, inner_lr=inner_lr,
                        momentum=momentum, nesterov=nesterov, weight_decay=weight_decay, outer_gamma=outer_gamma,
                        legacy=legacy)
        super().__init__(params, defaults)
        for group in self.param_groups:
            group.setdefault("initial_lr", group["lr"])

    @property
    def closures_per_step(self) -> int:
        """Closure calls (minibatches) one outer step consumes: L, plus the discarded one with ``legacy``."""
        first = self.param_groups[0]
        return first["L"] + int(first["legacy"])

    def gamma(self) -> float:
        """The scoping coupling gamma_t the next outer step uses."""
        first = self.param_groups[0]
        steps = 0 if first["legacy"] else self._outer_steps()
        return first["gamma0"] * (1.0 + first["gamma1"]) ** steps

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"] if p.requires_grad]

    def _outer_steps(self) -> int:
        params = self._params()
        return int(self.state[params[0]].get("outer_steps", 0)) if params else 0

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:  # type: ignore[override]
        """One outer step: L inner SGLD steps through ``closure``, then the move of x towards mu."""
        if closure is None:
            raise ValueError("EntropySGD.step needs a closure that draws a fresh batch and returns its loss")
        first = self.param_groups[0]
        gamma = self.gamma()
        anchors = {p: p.detach().clone() for p in self._params()}
        averages = {p: x.clone() for p, x in anchors.items()}
        if first["legacy"]:
            with torch.enable_grad():
                closure()  # the official code's wasted gradient evaluation
            self._seed_outer_momentum()
        loss = None
        for _ in range(first["L"]):
            with torch.enable_grad():
                loss = closure()
            self._inner_step(anchors, averages, gamma)
        self._outer_step(anchors, averages, gamma)
        return loss

    def _seed_outer_momentum(self) -> None:
        """The official code starts its outer momentum buffer with the gradient of its very first
        (discarded) closure call, not with zeros; later steps leave the buffer as it is."""
        for group in self.param_groups:
            if group["momentum"] == 0:
                continue
            for p in group["params"]:
                if p.requires_grad and "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = (torch.zeros_like(p) if p.grad is None
                                                        else p.grad.detach().clone())

    def _inner_step(self, anchors: dict, averages: dict, gamma: float) -> None:
        for group in self.param_groups:
            legacy, eta, alpha = group["legacy"], group["inner_lr"], group["alpha"]
            noise_std = group["noise"] * math.sqrt((2.0 if legacy else 1.0) * eta)
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                d = torch.zeros_like(p) if p.grad is None else p.grad.detach().clone()
                if legacy:
                    d.add_(p, alpha=group["weight_decay"])
                    d = _momentum_step(d, self.state[p], "inner_momentum", group["momentum"], group["nesterov"])
                d.sub_(anchors[p] - p, alpha=gamma)
                p.sub_(d, alpha=eta)
                if noise_std > 0:
                    p.add_(torch.randn_like(p), alpha=noise_std)
                if legacy:
                    averages[p].mul_(alpha).add_(p, alpha=1.0 - alpha)
                else:
                    averages[p].mul_(1.0 - alpha).add_(p, alpha=alpha)

    def _outer_step(self, anchors: dict, averages: dict, gamma: float) -> None:
        for group in self.param_groups:
            lr = group["initial_lr"] if group["legacy"] else group["lr"]
            for p in group["params"]:
                if not p.requires_grad:
                    continue
                state = self.state[p]
                x = anchors[p]
                d = (x - averages[p]).mul_(gamma if group["outer_gamma"] else 1.0)
                d.add_(x, alpha=group["weight_decay"])
                d = _momentum_step(d, state, "momentum_buffer", group["momentum"], group["nesterov"])
                p.copy_(x - lr * d)
                state["outer_steps"] = state.get("outer_steps", 0) + 1
                state.pop("inner_momentum", None)


def entropy_sgd_epoch(trainer: Any, epoch: int, batches: list[torch.Tensor], meter: Any) -> dict[str, float]:
    """One epoch of a :class:`advland.train.Trainer` whose optimizer is :class:`EntropySGD`: outer steps, each
    consuming the next ``closures_per_step`` minibatches of the epoch's stream (one per inner step, each
    attacked at the inner weights), so that an epoch has ``n_batches // L`` outer steps and as many gradient
    evaluations as an epoch of SGD; the last ``n_batches % L`` minibatches are left out. Returns the epoch
    record's ``entropy_gamma`` (the scoping gamma_t after the epoch)."""
    optimizer, n_batches = trainer.optimizer, len(batches)
    per_step = optimizer.closures_per_step
    if per_step > n_batches:
        raise AdvlandError(f"optimizer.L={optimizer.param_groups[0]['L']} needs more minibatches per outer "
                           f"step than an epoch has ({n_batches}); lower optimizer.L or data.batch_size")
    starts = range(0, n_batches - per_step + 1, per_step)
    trainer.epoch_start(epoch, len(starts))
    for start in starts:
        trainer.set_lr(trainer.lr_schedule(trainer.progress_at(epoch, start, n_batches)))
        optimizer.step(_inner_closure(trainer, epoch, batches, range(start, start + per_step), meter))
        trainer.step_end()
    return {"entropy_gamma": optimizer.gamma()}


def _inner_closure(trainer: Any, epoch: int, batches: list[torch.Tensor], indices: range,
                   meter: Any) -> Callable[[], torch.Tensor]:
    """A closure that, at each call, backpropagates the next of ``batches[indices]`` attacked at the current weights."""
    stream = iter(indices)

    def closure() -> torch.Tensor:
        i = next(stream)
        x, y = trainer.batch(batches[i])
        step = trainer.gradient(x, y, trainer.threat_at(trainer.progress_at(epoch, i, len(batches))))
        trainer.measure(meter, step, x, y)
        return step.loss

    return closure
