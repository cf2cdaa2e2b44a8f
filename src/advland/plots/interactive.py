"""Interactive (plotly) figures drawn from numbers a run already saved; nothing here computes a result.

Every function takes plain numbers and returns a ``plotly.graph_objects.Figure``; ``advland.report``
places them in a page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

_LAYOUT = dict(template="plotly_white", height=380, margin=dict(l=60, r=20, t=50, b=50))


def lines(x: Sequence[float], series: Mapping[str, Sequence[float | None]], *, title: str, xlabel: str,
          ylabel: str, logy: bool = False) -> go.Figure:
    """One line per series over ``x`` (training curves, 1-D landscapes, interpolations, densities)."""
    fig = go.Figure([go.Scatter(x=list(x), y=list(values), mode="lines+markers" if len(x) < 60 else "lines",
                                name=name) for name, values in series.items()])
    fig.update_layout(title=title, xaxis_title=xlabel, yaxis_title=ylabel, **_LAYOUT)
    if logy:
        fig.update_yaxes(type="log")
    return fig


def surface3d(x: Sequence[float], y: Sequence[float], z: Sequence[Sequence[float]], *, title: str,
              zlabel: str) -> go.Figure:
    """A rotatable 3-D surface of ``z[i][j]`` at (x[i], y[j]) (plotly draws z[row=j][col=i], hence the transpose)."""
    rows = [list(col) for col in zip(*z)]
    fig = go.Figure(go.Surface(x=list(x), y=list(y), z=rows, colorscale="Viridis", colorbar=dict(title=zlabel)))
    fig.update_layout(title=title, scene=dict(xaxis_title="α (direction 1)", yaxis_title="β (direction 2)",
                                              zaxis_title=zlabel), **(_LAYOUT | {"height": 520}))
    return fig


def contour(x: Sequence[float], y: Sequence[float], z: Sequence[Sequence[float]], *, title: str,
            zlabel: str) -> go.Figure:
    """Contours of ``z[i][j]`` at (x[i], y[j]), with the trained weights (0, 0) marked."""
    rows = [list(col) for col in zip(*z)]
    fig = go.Figure([go.Contour(x=list(x), y=list(y), z=rows, colorscale="Viridis", colorbar=dict(title=zlabel)),
                     go.Scatter(x=[0], y=[0], mode="markers", marker=dict(color="red", size=9), name="θ")])
    fig.update_layout(title=title, xaxis_title="α (direction 1)", yaxis_title="β (direction 2)", **_LAYOUT)
    return fig


def bars(labels: Sequence[str], values: Sequence[float], *, title: str, ylabel: str) -> go.Figure:
    """One bar per label (top Hessian eigenvalues, per-block eigenvalues, gradient statistics)."""
    fig = go.Figure(go.Bar(x=list(labels), y=list(values)))
    fig.update_layout(title=title, yaxis_title=ylabel, **_LAYOUT)
    return fig
