"""The Hessian spectrum of a model's loss in one call: top eigenvalues (Lanczos), and on request the trace
(Hutchinson), the spectral density (SLQ, evaluated on a grid) and the top eigenvalue of each layer's block.
What ``advland hessian`` reports, as numbers (strict-JSON-ready lists)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from torch import nn

from ..threat import ThreatModel
from .hessian import HessianOperator, blocks, hessian
from .spectral import hutchinson, lanczos, slq

DENSITY_GRID = 1000
"""Points at which the SLQ density is evaluated (the nodes' range widened by 5 % on each side)."""


def hessian_spectrum(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, threat: ThreatModel | None = None,
                     top_k: int = 5, tol: float = 1e-3, trace_probes: int = 0, density_probes: int = 0,
                     density_steps: int = 60, per_block: bool = False, seed: int = 0) -> dict[str, Any]:
    """The spectrum of the Hessian of the loss (adversarial under ``threat``, examples crafted once and held
    fixed; clean when None).

    Returns ``threat``, ``parameters`` (P), ``top_eigenvalues``, ``residuals``, ``converged``, ``lanczos_products``;
    with ``trace_probes`` > 0 ``trace`` (value, std_error, probes); with ``density_probes`` > 0 ``density``
    (SLQ nodes and weights, the density on a grid, the trace estimated from it); with ``per_block``
    ``blocks`` (layer name -> top eigenvalue of its block)."""
    op = hessian(model, x, y, threat=threat, seed=seed)
    eig = lanczos(op, k=min(top_k, op.shape[0]), tol=tol, seed=seed)
    out: dict[str, Any] = {"threat": None if threat is None else asdict(threat), "parameters": op.shape[0],
                           "top_eigenvalues": eig.values.tolist(), "residuals": eig.residuals.tolist(),
                           "converged": eig.converged, "lanczos_products": eig.n_products}
    if trace_probes:
        t = hutchinson(op, trace_probes, seed=seed)
        out["trace"] = {"value": t.value, "std_error": t.std_error, "probes": trace_probes}
    if density_probes:
        d = slq(op, density_probes, density_steps, seed=seed)
        width = 0.05 * np.ptp(d.nodes)
        grid = np.linspace(d.nodes.min() - width, d.nodes.max() + width, DENSITY_GRID)
        out["density"] = {"nodes": d.nodes.tolist(), "weights": d.weights.tolist(), "grid": grid.tolist(),
                          "density": d.density(grid).tolist(), "trace_estimate": d.trace().value}
    if per_block:
        out["blocks"] = {name: lanczos(HessianOperator(model, op.inputs, y, params=params), k=1, tol=tol,
                                       seed=seed).values[0].item() for name, params in blocks(model).items()}
    return out
