"""Figures drawn from numbers that were already computed; nothing in this package computes them.

Each module draws one family of figures and returns the path of the PNG it wrote.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def save(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as a PNG at ``path`` (folders created) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["plt", "save"]
