"""Directions in weight space: random (normalized as Li et al. 2018), between checkpoints, eigenvectors.

A direction is a flat vector d ∈ R^P in the parameter order of a :class:`FlatModel`; a grid
point is θ + a·d1 + b·d2. Random directions are Gaussian, drawn from a CPU generator seeded by
``seed`` (the same on every device), then normalized per parameter tensor against the weights θ:

* ``filter``: every filter d_f (a slice along dim 0: a conv output channel, a row of a linear
  layer) is rescaled to ‖d_f‖ = ‖θ_f‖ (Li et al., "filter normalization");
* ``layer``: every tensor d_l is rescaled to ‖d_l‖ = ‖θ_l‖;
* ``none``: the raw N(0, I) sample.

Parameters with at most one dimension (biases, BatchNorm weights and shifts) get a zero
direction when ``zero_bias_bn`` (the default of Li et al.'s ``ignore='biasbn'``); otherwise, with
filter or layer normalization, their direction is their own value (Li et al.'s code) and with
``none`` the Gaussian sample. Eigenvectors of the Hessian (:func:`hessian_directions`, from
:func:`advland.landscape.spectral.lanczos`) are unit vectors, kept as they are: along them the grid
coordinate is the Euclidean distance moved in weight space. (Rescaled to ‖θ‖ like a filter-normalized
direction they are far too long: an eigenvector concentrates on few weights, and on the digits AT
model the adversarial loss reached 15,000 at the edge of [-1, 1]².)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..seeds import stream_seed
from ..threat import ThreatModel
from .errors import LandscapeError
from .flat_model import FlatModel
from .hessian import hessian
from .spectral import lanczos

Normalization = Literal["filter", "layer", "none"]
NORMALIZATIONS: tuple[str, ...] = ("filter", "layer", "none")

_TINY = 1e-10


@dataclass(frozen=True)
class DirectionSpec:
    """How a random direction was drawn; saved with results so that it can be drawn again."""

    seed: int
    norm: Normalization = "filter"
    zero_bias_bn: bool = True


def _normalize_tensor(d: torch.Tensor, w: torch.Tensor, norm: Normalization, zero_bias_bn: bool) -> torch.Tensor:
    if w.dim() <= 1:
        if zero_bias_bn:
            return torch.zeros_like(d)
        return d if norm == "none" else w.clone()
    if norm == "layer":
        return d * (w.norm() / (d.norm() + _TINY))
    if norm == "filter":
        d_rows, w_rows = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
        scale = w_rows.norm(dim=1, keepdim=True) / (d_rows.norm(dim=1, keepdim=True) + _TINY)
        return (d_rows * scale).reshape_as(d)
    return d


def normalize_direction(
    flat: FlatModel, direction: torch.Tensor, theta: torch.Tensor, norm: Normalization, zero_bias_bn: bool = True
) -> torch.Tensor:
    """``direction`` normalized tensor by tensor against the weights ``theta`` (see the module docstring)."""
    if norm not in NORMALIZATIONS:
        raise LandscapeError(f"direction normalization must be one of {', '.join(NORMALIZATIONS)}, got {norm!r}")
    d_parts, w_parts = flat.split(direction), flat.split(theta)
    return torch.cat([_normalize_tensor(d_parts[n], w_parts[n], norm, zero_bias_bn).reshape(-1) for n in flat.names])


def random_direction(flat: FlatModel, spec: DirectionSpec, theta: torch.Tensor | None = None) -> torch.Tensor:
    """A Gaussian direction drawn with ``spec.seed`` and normalized against ``theta`` (default: the model's weights)."""
    theta = flat.vector() if theta is None else theta
    generator = torch.Generator().manual_seed(spec.seed)
    sample = torch.randn(flat.size, generator=generator, dtype=theta.dtype).to(theta.device)
    return normalize_direction(flat, sample, theta, spec.norm, spec.zero_bias_bn)


def random_directions(
    flat: FlatModel, count: int, *, seed: int = 0, norm: Normalization = "filter", zero_bias_bn: bool = True
) -> tuple[list[torch.Tensor], list[DirectionSpec]]:
    """``count`` independent random directions (direction i from stream i of ``seed``:
    :func:`advland.seeds.stream_seed`, recorded in its spec) and how each was drawn."""
    specs = [DirectionSpec(stream_seed(seed, i), norm, zero_bias_bn) for i in range(count)]
    theta = flat.vector()
    return [random_direction(flat, spec, theta) for spec in specs], specs


def random_unit(size: int, *, seed: int, like: torch.Tensor) -> torch.Tensor:
    """A uniformly random unit vector of R^size (normalized Gaussian), on ``like``'s device and dtype."""
    sample = torch.randn(size, generator=torch.Generator().manual_seed(seed), dtype=like.dtype).to(like.device)
    return sample / sample.norm()


def hessian_directions(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, k: int, *, threat: ThreatModel | None = None, seed: int = 0
) -> tuple[list[torch.Tensor], list[dict]]:
    """The top-``k`` unit Hessian eigenvectors of the clean loss (or, with ``threat``, of the adversarial loss
    at x' crafted once), and per direction its eigenvalue and Lanczos residual."""
    eig = lanczos(hessian(model, x, y, threat=threat, seed=seed), k=k, seed=seed)
    loss = "adv" if threat is not None and threat.active else "clean"
    info = [{"kind": "hessian", "loss": loss, "eigenvalue": float(v), "residual": float(r)}
            for v, r in zip(eig.values, eig.residuals)]
    return [eig.vectors[:, i] for i in range(k)], info
