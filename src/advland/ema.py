"""An exponential moving average (EMA) of a model's weights, the weight averaging of the strongest
adversarially trained models (Gowal et al. 2020, Rebuffi et al. 2021, Wang et al. 2023).

After every ``every``-th optimizer step the averaged copy moves towards the trained weights::

    ema <- d_t * ema + (1 - d_t) * w,      d_t = min(decay, (1 + t) / (10 + t))   (warmup=True)
                                            d_t = decay                           (warmup=False)

where t = 0, 1, 2, ... counts the averaging updates done before this one. With ``start`` = s > 0 the
average copies the trained weights (d = 0) at the updates within the first s optimizer steps, and t
counts from there (Wang et al. 2023 start after 2.5 % of training). The warm-up is the one of
TensorFlow's ``ExponentialMovingAverage(num_updates=t)`` that Wang et al. (2023) and the DeepMind code
use: the first update takes d = 0.1, so the average forgets the random initialization at once, and
d_t reaches ``decay`` at t = (10·decay - 1) / (1 - decay) (t = 8 990 for 0.999). Every floating
parameter is averaged. BatchNorm running statistics and other buffers are, with ``buffers="copy"``
(the default, as Wang et al.'s ``update_bn`` and timm's ``ModelEmaV3(exclude_buffers=True)``),
copied from the trained model at every update; with ``buffers="average"`` floating buffers are
averaged like the parameters (timm's ``ModelEmaV2``) and integer ones (``num_batches_tracked``)
copied. The averaged copy is always in eval mode and never requires gradients.

:meth:`state_dict` holds the averaged weights and both counters, so that a resumed run continues
the same sequence bit for bit.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch
from torch import nn

Buffers = Literal["copy", "average"]


class WeightEMA:
    """The EMA of ``model``'s weights (see the module's docstring for the formula).

    Args:
        model: the trained model; the average starts as a copy of it.
        decay: the target decay in [0, 1).
        warmup: ramp the decay as min(decay, (1 + t) / (10 + t)).
        every: average after every ``every``-th call of :meth:`step` (one call per optimizer step).
        buffers: ``copy`` the trained model's buffers, or ``average`` the floating ones.
        start: optimizer steps during which the average only copies the trained weights.
    """

    def __init__(self, model: nn.Module, decay: float, *, warmup: bool = True, every: int = 1,
                 buffers: Buffers = "copy", start: int = 0):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every!r}")
        if buffers not in ("copy", "average"):
            raise ValueError(f"buffers must be 'copy' or 'average', got {buffers!r}")
        if start < 0:
            raise ValueError(f"start must be a number of steps >= 0, got {start!r}")
        self.decay, self.warmup, self.every, self.buffers, self.start = decay, warmup, every, buffers, start
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.steps = 0
        """Optimizer steps seen (calls of :meth:`step`)."""
        self.updates = 0
        """Averaging updates done (after ``start``)."""

    def decay_at(self, t: int) -> float:
        """The decay of the update that follows ``t`` earlier updates."""
        return min(self.decay, (1.0 + t) / (10.0 + t)) if self.warmup else self.decay

    @torch.no_grad()
    def step(self, model: nn.Module) -> None:
        """Count one optimizer step of ``model`` and average its weights in when the step is an ``every``-th."""
        self.steps += 1
        if self.steps % self.every:
            return
        averaging = self.steps > self.start
        d = self.decay_at(self.updates) if averaging else 0.0
        averaged = [p for p in self.model.parameters() if p.is_floating_point()]
        trained = [p.detach() for p in model.parameters() if p.is_floating_point()]
        if len(averaged) != len(trained):
            raise ValueError("the model's parameters no longer match the averaged copy's")
        torch._foreach_mul_(averaged, d)
        torch._foreach_add_(averaged, trained, alpha=1.0 - d)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            if self.buffers == "average" and mine.is_floating_point():
                mine.mul_(d).add_(theirs, alpha=1.0 - d)
            else:
                mine.copy_(theirs)
        self.updates += averaging

    def state_dict(self) -> dict[str, Any]:
        """The averaged weights and the counters (the configuration is the caller's)."""
        return {"model": self.model.state_dict(), "steps": self.steps, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.steps, self.updates = int(state["steps"]), int(state["updates"])
