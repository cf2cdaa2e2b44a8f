"""The activation choice of the residual networks (``model.kwargs.activation``).

``relu`` is the networks' original activation; ``silu`` (alias ``swish``) is x·sigmoid(x), the Swish
with β = 1 of Ramachandran et al. (2017) that the strongest RobustBench CIFAR-10 entries use in their
wide ResNets (Gowal et al. 2020, Rebuffi et al. 2021, Wang et al. 2023). An activation has no parameters,
so the choice leaves the state dict's names and shapes unchanged.
"""

from __future__ import annotations

from torch import nn

from .registry import ModelError

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU}


def make_activation(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (relu, silu or swish)."""
    if name not in ACTIVATIONS:
        raise ModelError(f"unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()
