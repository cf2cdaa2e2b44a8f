"""Figures of the reproduction suites, drawn from numbers the suites already measured."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import plt, save


def plot_lines(x: Sequence[float], series: dict[str, Sequence[float]], path: str | Path, *, xlabel: str, ylabel: str,
               title: str, logx: bool = False, logy: bool = False, vline: float | None = None) -> Path:
    """One line per series over ``x`` (e.g. training curves, 1-D landscapes, ‖w‖ against ε/ε*)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, values in series.items():
        ax.plot(x, values, marker="o", markersize=3, label=label)
    if vline is not None:
        ax.axvline(vline, color="gray", linestyle="--", linewidth=1)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if logx else "linear",
           yscale="log" if logy else "linear")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_seeds(x: Sequence[float], series: dict[str, Sequence[Sequence[float]]], path: str | Path, *, xlabel: str,
               ylabel: str, title: str, logx: bool = False) -> Path:
    """Mean ± std across seeds (and every seed as a dot) of each series; ``series[label][seed][i]`` at x[i]."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, per_seed in series.items():
        values = np.array(per_seed, dtype=float)
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        line = ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=label)
        for row in values:
            ax.scatter(x, row, s=8, alpha=0.4, color=line[0].get_color())
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xscale="log" if logx else "linear")
    ax.legend(fontsize=8)
    return save(fig, path)


def plot_bars(groups: dict[str, Sequence[float]], path: str | Path, *, ylabel: str, title: str) -> Path:
    """One bar per group at its mean across seeds, the std as an error bar, every seed as a dot (no bar for a
    group without a finite value: nothing was measured)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for i, (label, values) in enumerate(groups.items()):
        finite = [v for v in values if not math.isnan(v)]
        if finite:
            ax.bar(i, np.mean(finite), yerr=np.std(finite), capsize=4, alpha=0.7)
        ax.scatter([i] * len(finite), finite, color="black", s=10, zorder=3)
    ax.set_xticks(range(len(groups)), list(groups), rotation=20, fontsize=8)
    ax.set(ylabel=ylabel, title=title)
    return save(fig, path)


def plot_scatter(points: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, *, xlabel: str,
                 ylabel: str, title: str) -> Path:
    """Labelled groups of (x, y) points, e.g. sharpness against the robust generalization gap per method."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, (xs, ys) in points.items():
        ax.scatter(xs, ys, label=label, s=20)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    return save(fig, path)
