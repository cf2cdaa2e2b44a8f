"""The eps and learning-rate schedules of a config over training, with its cycle boundaries."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from . import plt, save


def plot_schedules(epochs: Sequence[float], eps: Sequence[float], lr: Sequence[float],
                   boundaries: Sequence[float], path: str | Path, title: str = "") -> Path:
    """Two panels sharing the epoch axis: eps (pixel units) and learning rate; dashed lines at cycle ends."""
    fig, (ax_eps, ax_lr) = plt.subplots(2, 1, sharex=True, figsize=(7, 5))
    ax_eps.plot(epochs, eps, color="tab:red")
    ax_eps.set(ylabel="eps", title=title or "schedules")
    ax_lr.plot(epochs, lr, color="tab:blue")
    ax_lr.set(ylabel="learning rate", xlabel="epoch")
    for boundary in boundaries[:-1]:
        for axis in (ax_eps, ax_lr):
            axis.axvline(boundary, linestyle="--", color="gray", linewidth=0.8)
    return save(fig, path)
