"""Weight perturbation: ascend in weight space before the update, then restore.

AWP (Wu et al. 2020), SAM (Foret et al. 2021) and ASAM (Kwon et al. 2021) are one mechanism that
differs only in the ball the perturbation v lives in:

* ``scope="layer"`` (AWP): every weight tensor w_l with ndim > 1 (conv and linear weights; biases
  and BatchNorm parameters are never perturbed) gets ||v_l|| = gamma * ||w_l||_F;
* ``scope="filter"``: the same per output filter (per row of a linear weight);
* ``scope="global"`` (SAM): one ball of radius rho over all parameters;
* ``adaptive=True`` (ASAM): the global ball measured in coordinates scaled by T, so that
  v = rho * T^2 g / ||T g||, with T = |w| + eta on weights and T = 1 on biases (as the official
  ASAM code: parameters whose name ends in "weight", BatchNorm's included, are rescaled).

Per minibatch the trainer calls :meth:`WeightPerturbation.perturb` (weights become w + v), takes
its optimizer step at w + v, then :meth:`WeightPerturbation.restore` (subtracts exactly the v that
was added). The ascent evaluates the training loss in whatever mode the model is in, but every
buffer (BatchNorm running statistics) is put back as it was: the ascent never changes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

Scope = Literal["layer", "filter", "global"]
_TINY = 1e-20


def _group_norms(tensors: list[torch.Tensor], scope: Scope) -> list[torch.Tensor]:
    """Euclidean norm of each tensor's groups, broadcastable against it (one value for the global scope)."""
    if scope == "global":
        total = torch.sqrt(sum(t.pow(2).sum() for t in tensors))
        return [total] * len(tensors)
    if scope == "layer":
        return [t.norm() for t in tensors]
    return [t.flatten(1).norm(dim=1).reshape(-1, *([1] * (t.dim() - 1))) for t in tensors]


def _project(u: list[torch.Tensor], radii: list[torch.Tensor], scope: Scope) -> list[torch.Tensor]:
    """Scale each group of u back into its ball ||u_group|| <= radius."""
    return [x * (r / n.clamp_min(_TINY)).clamp(max=1.0) for x, r, n in zip(u, radii, _group_norms(u, scope))]


@dataclass
class WeightPerturbation:
    """An adversarial weight perturbation v in a ball around the current weights.

    Attributes:
        size: gamma (relative radius: ||v_group|| = gamma * ||w_group||) for the layer and filter
            scopes; rho (absolute radius) for the global scope.
        scope: "layer" (AWP), "filter" (AWP per filter) or "global" (SAM, ASAM).
        adaptive: ASAM's rescaling by T = |w| + eta of weights (global scope).
        eta: ASAM's offset in T.
        steps: normalized ascent steps; each moves size/steps and projects back onto the ball, so
            steps = 1 is the single step v = radius * g / ||g|| of the official AWP and SAM codes.
    """

    size: float
    scope: Scope = "layer"
    adaptive: bool = False
    eta: float = 0.01
    steps: int = 1
    grad_reduce: Callable[[list[torch.Tensor]], list[torch.Tensor]] | None = field(default=None, repr=False)
    """Applied to the ascent gradients before they are normalized; the trainer sets it to the mean over
    the processes under DDP, so that every process moves its weights by the same v."""
    _params: list[nn.Parameter] = field(default_factory=list, init=False, repr=False)
    _v: list[torch.Tensor] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.size < 0 or self.steps < 1 or self.eta < 0:
            raise ValueError("weight perturbation needs size >= 0, steps >= 1 and eta >= 0")
        if self.adaptive and self.scope != "global":
            raise ValueError("the adaptive (ASAM) perturbation uses the global scope")

    def parameters(self, model: nn.Module) -> list[nn.Parameter]:
        """The tensors this perturbation moves: weights with ndim > 1 (layer, filter scopes) or all (global)."""
        trainable = [p for p in model.parameters() if p.requires_grad]
        return trainable if self.scope == "global" else [p for p in trainable if p.dim() > 1]

    def _adaptive_scales(self, model: nn.Module, params: list[nn.Parameter]) -> list[torch.Tensor]:
        """ASAM's T per parameter: |w| + eta for weights (names ending in "weight"), 1 for biases."""
        names = {id(p): name for name, p in model.named_parameters()}
        return [p.detach().abs() + self.eta if names[id(p)].endswith("weight") else torch.ones_like(p) for p in params]

    def _radii(self, weights: list[torch.Tensor]) -> list[torch.Tensor]:
        if self.scope == "global":
            return [torch.tensor(self.size, device=w.device, dtype=w.dtype) for w in weights]
        return [self.size * n for n in _group_norms(weights, self.scope)]

    @property
    def offsets(self) -> list[torch.Tensor]:
        """The perturbation v currently applied, one tensor per perturbed parameter (empty when restored)."""
        return list(self._v)

    @torch.no_grad()
    def perturb(self, model: nn.Module, loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Move the weights to w + v, v ascending ``loss_fn``; return ||v||_2 over all perturbed tensors
        (a 0-d tensor on the weights' device, so that a training step need not wait for it).

        ``loss_fn()`` evaluates the training loss at the current weights (e.g. the objective's loss on
        adversarial inputs crafted once on w). Parameter ``.grad`` fields are not touched; buffers are
        restored after the ascent.
        """
        if self._params:
            raise RuntimeError("restore() the previous weight perturbation before perturbing again")
        params = self.parameters(model)
        buffers = [b.clone() for b in model.buffers()]
        base = [p.detach().clone() for p in params]
        scale = self._adaptive_scales(model, params) if self.adaptive else None
        radii = self._radii(base)
        u = [torch.zeros_like(w) for w in base]
        v = u
        for _ in range(self.steps):
            with torch.enable_grad():
                grads = torch.autograd.grad(loss_fn(), params, allow_unused=True)
            grads = [torch.zeros_like(w) if g is None else g for g, w in zip(grads, base)]
            if self.grad_reduce is not None:
                grads = self.grad_reduce(grads)
            if scale is not None:
                grads = [g * s for g, s in zip(grads, scale)]
            norms = _group_norms(grads, self.scope)
            u = [x + (r / self.steps) * g / n.clamp_min(_TINY) for x, r, g, n in zip(u, radii, grads, norms)]
            u = _project(u, radii, self.scope)
            v = [x * s for x, s in zip(u, scale)] if scale is not None else u
            for p, w, d in zip(params, base, v):
                p.copy_(w + d)
        for b, saved in zip(model.buffers(), buffers):
            b.copy_(saved)
        self._params, self._v = params, v
        return torch.sqrt(sum(d.pow(2).sum() for d in v))

    @torch.no_grad()
    def restore(self) -> None:
        """Subtract the v that :meth:`perturb` added (after the optimizer stepped at w + v)."""
        for p, d in zip(self._params, self._v):
            p.sub_(d)
        self._params, self._v = [], []


def awp(gamma: float, *, per_filter: bool = False, steps: int = 1) -> WeightPerturbation:
    """AWP: per-layer (or per-filter) relative radius gamma on conv/linear weights."""
    return WeightPerturbation(gamma, "filter" if per_filter else "layer", steps=steps)


def sam(rho: float, *, steps: int = 1) -> WeightPerturbation:
    """SAM: one global ball of radius rho over all parameters."""
    return WeightPerturbation(rho, "global", steps=steps)


def asam(rho: float, *, eta: float = 0.01, steps: int = 1) -> WeightPerturbation:
    """ASAM: SAM in coordinates scaled by T (|w| + eta on weights, 1 on biases), v = rho * T^2 g / ||T g||."""
    return WeightPerturbation(rho, "global", adaptive=True, eta=eta, steps=steps)
