"""A swept metric against one grid key, one line per value of another (mean ± std over the rest)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import plt, save


def plot_sweep(rows: list[dict[str, Any]], x: str, metric: str, hue: str | None, path: str | Path) -> Path:
    """Error-bar plot of ``metric`` vs ``x``; runs that share (hue, x) are averaged (e.g. over seeds)."""
    groups: dict[Any, dict[Any, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        groups[row[hue] if hue else metric][row[x]].append(float(row[metric]))
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, by_x in groups.items():
        xs = sorted(by_x)
        means = [statistics.fmean(by_x[v]) for v in xs]
        spreads = [statistics.pstdev(by_x[v]) for v in xs]
        ax.errorbar(xs, means, yerr=spreads, marker="o", capsize=3, label=f"{hue}={label}" if hue else metric)
    numeric = [v for by_x in groups.values() for v in by_x if isinstance(v, (int, float))]
    if numeric and min(numeric) > 0 and max(numeric) / min(numeric) >= 10:
        ax.set_xscale("log")
    ax.set(xlabel=x, ylabel=metric, title=f"{metric} vs {x} (mean ± std over the other keys)")
    ax.legend(fontsize=8)
    return save(fig, path)
