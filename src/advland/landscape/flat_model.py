"""A model seen as a function of one flat weight vector θ ∈ R^P.

Every analysis in :mod:`advland.landscape` moves the weights: along directions, between two
checkpoints, along Hessian eigenvectors. :class:`FlatModel` makes that cheap and side-effect
free: a weight point is a 1-D tensor, its parameters are *views* into it (no copies, nothing
written into the user's module), and the forward pass is ``torch.func.functional_call``. The
user's module is only read.

A *block* is a subset of the parameters (e.g. one layer's): a FlatModel over a block holds the
other parameters fixed at their current values.

With ``channels_last=True``, 4-D inputs and weights are laid out channels-last, which oneDNN
runs faster than NCHW for some models and thread settings and slower for others (grid
evaluation picks the faster one by timing both, see :mod:`.surface`); the numbers agree to
float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn
from torch.func import functional_call

from .errors import LandscapeError

Logits = Callable[[torch.Tensor], torch.Tensor]


class FlatModel:
    """The parameters ``names`` of ``model`` as one flat vector, and the model as a function of it.

    Args:
        model: any module; it is never modified.
        names: the parameters that make up the vector (default: all that require grad), in the
            order of ``model.named_parameters()``.
        channels_last: evaluate 4-D inputs and 4-D weights in channels-last layout.
    """

    def __init__(self, model: nn.Module, names: Iterable[str] | None = None, *, channels_last: bool = False):
        named = dict(model.named_parameters())
        wanted = set(names) if names is not None else {n for n, p in named.items() if p.requires_grad}
        unknown = wanted - set(named)
        if unknown:
            raise LandscapeError(f"no parameter(s) {sorted(unknown)} in the model")
        self.model = model
        self.names = [n for n in named if n in wanted]
        self.shapes = [named[n].shape for n in self.names]
        self.numels = [named[n].numel() for n in self.names]
        self.fixed = {n: p.detach() for n, p in named.items() if n not in wanted}
        first = next(iter(named.values()))
        self.device, self.dtype = first.device, first.dtype
        self.channels_last = channels_last

    @property
    def size(self) -> int:
        """P, the number of scalar weights in the vector."""
        return sum(self.numels)

    def vector(self) -> torch.Tensor:
        """The model's current weights as a detached flat vector (a copy)."""
        named = dict(self.model.named_parameters())
        return torch.cat([named[n].detach().reshape(-1) for n in self.names])

    def split(self, theta: torch.Tensor) -> dict[str, torch.Tensor]:
        """The parameters of weight point ``theta`` (shape (P,)), as views into it by name."""
        return {n: t.view(s) for n, t, s in zip(self.names, theta.split(self.numels), self.shapes)}

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in this model's memory layout (channels-last for 4-D tensors when ``channels_last``)."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def state(self, theta: torch.Tensor, buffers: Mapping[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Everything functional_call needs at ``theta``: its parameters, the fixed ones, and buffers."""
        params = {n: self.layout(p) for n, p in self.split(theta).items()}
        return {**self.fixed, **params, **(buffers or {})}

    def at(self, theta: torch.Tensor, buffers: Mapping[str, torch.Tensor] | None = None) -> Logits:
        """The model at weights ``theta`` as a function inputs -> logits (differentiable in both).

        ``buffers`` replaces module buffers (e.g. BatchNorm running statistics) by name.
        """
        state = self.state(theta, buffers)
        return lambda x: functional_call(self.model, state, (self.layout(x),))

    def blocks(self) -> dict[str, list[str]]:
        """Parameter names grouped by the module that owns them (one block per layer), in model order."""
        groups: dict[str, list[str]] = {}
        for name in self.names:
            owner = name.rpartition(".")[0] or name
            groups.setdefault(owner, []).append(name)
        return groups
