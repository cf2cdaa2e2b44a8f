"""Figures of loss landscapes, Hessian spectra and tracked quantities, drawn from computed numbers."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..landscape.surface import Landscape
from . import plt, save

_LABELS = {
    "clean_loss": "clean loss (CE)", "adv_loss": "adversarial loss (CE)",
    "clean_acc": "clean accuracy", "adv_acc": "adversarial accuracy",
}


def plot_curve(landscape: Landscape, path: str | Path, xlabel: str = "α (direction 1)") -> Path:
    """A 1-D landscape or an interpolation: losses on the left axis, accuracies on the right."""
    fig, loss_axis = plt.subplots(figsize=(5.5, 3.8))
    acc_axis = None
    t = landscape.coords[0]
    for i, (metric, values) in enumerate(landscape.values.items()):
        if metric.endswith("acc"):
            acc_axis = acc_axis or loss_axis.twinx()
            acc_axis.plot(t, values, "--", color=f"C{i}", label=_LABELS[metric])
        else:
            loss_axis.plot(t, values, "-", color=f"C{i}", label=_LABELS[metric])
    loss_axis.set(xlabel=xlabel, ylabel="loss (nats)")
    handles, labels = loss_axis.get_legend_handles_labels()
    if acc_axis is not None:
        acc_axis.set(ylabel="accuracy", ylim=(0, 1))
        more = acc_axis.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    loss_axis.legend(handles, labels, fontsize=8, loc="upper center")
    return save(fig, path)


def plot_contour(landscape: Landscape, metric: str, path: str | Path, levels: int = 30) -> Path:
    """Contour lines of one metric of a 2-D landscape over (α, β)."""
    a, b = landscape.coords
    fig, axis = plt.subplots(figsize=(5, 4.4))
    filled = axis.contourf(a, b, landscape.values[metric].T, levels=levels, cmap="viridis")
    axis.contour(a, b, landscape.values[metric].T, levels=levels, colors="k", linewidths=0.3)
    fig.colorbar(filled, ax=axis, label=_LABELS[metric])
    axis.plot([0], [0], "r+", markersize=10)
    axis.set(xlabel="α (direction 1)", ylabel="β (direction 2)", title=_LABELS[metric])
    return save(fig, path)


def plot_surface3d(landscape: Landscape, metric: str, path: str | Path) -> Path:
    """One metric of a 2-D landscape as a 3-D surface."""
    a, b = np.meshgrid(*landscape.coords, indexing="ij")
    fig = plt.figure(figsize=(5.5, 4.5))
    axis = fig.add_subplot(projection="3d")
    axis.plot_surface(a, b, landscape.values[metric], cmap="viridis", linewidth=0, antialiased=True)
    axis.set(xlabel="α", ylabel="β", zlabel=_LABELS[metric])
    return save(fig, path)


def plot_density(grid: np.ndarray, density: np.ndarray, path: str | Path, top: Sequence[float] = ()) -> Path:
    """A Hessian spectral density (log scale) with the top eigenvalues marked."""
    fig, axis = plt.subplots(figsize=(5.5, 3.6))
    axis.semilogy(grid, np.maximum(density, 1e-12))
    for value in top:
        axis.axvline(value, color="tab:red", linewidth=0.6)
    axis.set(xlabel="eigenvalue", ylabel="density", title="Hessian spectral density (SLQ)",
             ylim=(max(float(density.max()) * 1e-8, 1e-12), float(density.max()) * 2))
    return save(fig, path)


def plot_tracked(records: list[dict[str, Any]], keys: Sequence[str], path: str | Path) -> Path:
    """Each of ``keys`` present in the per-epoch records against the epoch, one panel each
    (for list values, e.g. the top Hessian eigenvalues, the first entry)."""
    keys = [k for k in keys if any(k in r for r in records)]
    cols = min(max(len(keys), 1), 4)
    rows = math.ceil(max(len(keys), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows), squeeze=False)
    for axis in axes.flat[len(keys):]:
        axis.set_visible(False)
    for axis, key in zip(axes.flat, keys):
        epochs = [r["epoch"] for r in records if key in r]
        values = [r[key] for r in records if key in r]
        axis.plot(epochs, [v[0] if isinstance(v, list) else v for v in values], "o-", markersize=3)
        axis.set(title=key.replace("_", " ") + (" (top)" if key == "hessian_top_eigs" else ""), xlabel="epoch")
    return save(fig, path)


def plot_curves_by_epoch(records: list[dict[str, Any]], metrics: Sequence[str], path: str | Path) -> Path:
    """The tracked 1-D curves (``curve_<metric>`` of the per-epoch records over [-1, 1]), one panel per
    metric, one line per epoch coloured from early (light) to late (dark)."""
    curves = [r for r in records if f"curve_{metrics[0]}" in r]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    colours = plt.cm.viridis_r(np.linspace(0.15, 1.0, len(curves)))
    for axis, metric in zip(axes.flat, metrics):
        for colour, record in zip(colours, curves):
            values = record[f"curve_{metric}"]
            axis.plot(np.linspace(-1, 1, len(values)), values, color=colour, label=f"epoch {record['epoch']}")
        axis.set(xlabel="α (random direction)", ylabel=_LABELS[metric], title=_LABELS[metric])
    axes.flat[-1].legend(fontsize=7)
    return save(fig, path)
