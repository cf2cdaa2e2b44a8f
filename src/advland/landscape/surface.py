"""Loss landscapes on grids of weight points: 1-D and 2-D surfaces, and interpolation between checkpoints.

A surface evaluates metrics at θ + a·d1 (+ b·d2) for a, b on a grid (Li et al. 2018); an
interpolation at (1 − t)·θ_A + t·θ_B. The metrics (clean/adversarial loss/accuracy, PGD re-run
at every point) and how the points are spread over the machine are in :mod:`.points`. A grid
point costs two in-place vector operations (θ + a·d1 + b·d2); its parameters are views into it.

Under ``torchrun`` (several processes in a torch.distributed group) the grid points are dealt out
by rank (point k to rank k mod N), each process evaluates its points, and the values are summed
over the processes (float64, every point computed by exactly one of them): the same numbers as one
process, N times faster. The layout is rank 0's choice, so every process runs the same kernels.

BatchNorm: surfaces keep the running statistics of the origin; interpolation either
interpolates them linearly between the two checkpoints or recomputes them at every point.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from ..jsonio import dumps
from ..threat import ThreatModel
from .directions import DirectionSpec, Normalization, random_directions
from .errors import LandscapeError
from .flat_model import FlatModel
from .losses import DEFAULT_BATCH
from .points import GRID_BATCH, Layout, Point, evaluate_points

BNHandling = Literal["interpolate", "recompute"]


@dataclass
class Landscape:
    """Metric values on a 1-D or 2-D grid of weight points.

    ``values[m][i]`` (1-D) or ``values[m][i, j]`` (2-D) is metric m at coordinates
    ``coords[0][i]`` (and ``coords[1][j]``). Losses are mean cross-entropy in nats, accuracies
    fractions in [0, 1]. ``info`` says how the grid was made (directions, threat, data, seconds).
    """

    coords: list[np.ndarray]
    values: dict[str, np.ndarray]
    info: dict[str, Any] = field(default_factory=dict)
    directions: list[torch.Tensor] = field(default_factory=list, repr=False)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: coordinates, values (nested lists) and info."""
        return {
            "coords": [c.tolist() for c in self.coords],
            "values": {k: v.tolist() for k, v in self.values.items()},
            "info": self.info,
        }

    def save(self, stem: str | Path, formats: Sequence[str] = ("json", "npz")) -> list[Path]:
        """Write ``stem.json`` (numbers and info) and/or ``stem.npz`` (the same arrays and the directions)."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        paths = []
        if "json" in formats:
            paths.append(stem.parent / f"{stem.name}.json")
            paths[-1].write_text(dumps(self.as_dict(), indent=1) + "\n")
        if "npz" in formats:
            arrays = {f"coords_{i}": c for i, c in enumerate(self.coords)}
            arrays |= {f"values_{k}": v for k, v in self.values.items()}
            arrays |= {f"direction_{i}": d.detach().cpu().numpy() for i, d in enumerate(self.directions)}
            paths.append(stem.parent / f"{stem.name}.npz")
            np.savez_compressed(paths[-1], info=dumps(self.info), **arrays)
        return paths

    @classmethod
    def load(cls, path: str | Path) -> "Landscape":
        """Read a landscape written by :meth:`save` (give the .npz file)."""
        with np.load(Path(path)) as data:
            coords = [data[k] for k in sorted(k for k in data.files if k.startswith("coords_"))]
            values = {k.removeprefix("values_"): data[k] for k in data.files if k.startswith("values_")}
            directions = [torch.from_numpy(data[k]) for k in sorted(k for k in data.files if k.startswith("direction_"))]
            info = json.loads(str(data["info"]))
        return cls(coords, values, info, directions)


def grid(span: tuple[float, float], steps: int) -> np.ndarray:
    """``steps`` evenly spaced coordinates from span[0] to span[1], with the one nearest 0 snapped to exactly 0."""
    if steps < 2 or not span[0] < span[1]:
        raise LandscapeError(f"a grid needs steps >= 2 and lo < hi, got steps={steps}, span={span}")
    coords = np.linspace(span[0], span[1], steps)
    coords[np.abs(coords) < 1e-9 * (span[1] - span[0])] = 0.0
    return coords


def evaluate_grid(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    directions: Sequence[torch.Tensor],
    coords: Sequence[np.ndarray],
    *,
    metrics: Sequence[str] = ("clean_loss",),
    threat: ThreatModel | None = None,
    batch_size: int | None = GRID_BATCH,
    seed: int = 0,
    layout: Layout = "auto",
    workers: int | None = None,
    stack: int | None = None,
    progress: bool = False,
) -> Landscape:
    """Metrics at θ + coords[0][i]·directions[0] (+ coords[1][j]·directions[1]), θ the model's weights.

    Args:
        directions: one or two flat vectors in the parameter order of ``FlatModel(model)``.
        coords: one coordinate array per direction.
        metrics: any of clean_loss, clean_acc, adv_loss, adv_acc.
        threat: the attack re-run at every point for the adversarial metrics.
        seed: seed of the attack's random start (the same at every point).
        layout: "contiguous", "channels_last", or "auto" (time one point in both, keep the faster).
        workers: threads evaluating points in parallel (default: torch's thread count on CPU).
        stack: points evaluated at once by vmap (default: as many as fit on a GPU, 1 on CPU).
    """
    if len(directions) != len(coords) or len(directions) not in (1, 2):
        raise LandscapeError("give one or two directions, each with its coordinate array")
    theta = FlatModel(model).vector()
    d = [direction.to(theta) for direction in directions]
    grid_points = [(float(a),) for a in coords[0]] if len(d) == 1 else [
        (float(a), float(b)) for a in coords[0] for b in coords[1]]

    def point(ab: tuple[float, ...]) -> Point:
        def build(flat: FlatModel) -> tuple[torch.Tensor, None]:
            theta_ab = theta.clone()
            for c, v in zip(ab, d):
                theta_ab.add_(v, alpha=c)
            return theta_ab, None

        return build

    values, info = evaluate_points(model, x, y, [point(ab) for ab in grid_points], metrics=metrics, threat=threat,
                                   batch_size=batch_size, seed=seed, layout=layout, workers=workers, stack=stack,
                           progress=progress)
    shape = tuple(len(c) for c in coords)
    return Landscape([np.asarray(c, dtype=float) for c in coords], {m: v.reshape(shape) for m, v in values.items()},
                     info, [v.detach() for v in directions])


def surface(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    dims: int = 2,
    metrics: Sequence[str] = ("clean_loss",),
    span: tuple[float, float] = (-1.0, 1.0),
    steps: int = 21,
    norm: Normalization = "filter",
    zero_bias_bn: bool = True,
    seed: int = 0,
    threat: ThreatModel | None = None,
    directions: Sequence[torch.Tensor] | None = None,
    batch_size: int | None = GRID_BATCH,
    layout: Layout = "auto",
    workers: int | None = None,
    stack: int | None = None,
    progress: bool = False,
) -> Landscape:
    """A 1-D curve or 2-D surface of ``metrics`` around the model's weights along random directions.

    The directions are Gaussian, normalized by ``norm`` (filter, layer, none), drawn from streams
    0 and 1 of ``seed`` (:func:`advland.seeds.stream_seed`; the seeds are recorded in ``info["directions"]`` and saved as vectors); pass
    ``directions`` (e.g. Hessian eigenvectors) to use your own. The grid is ``steps`` points
    per axis over ``span`` (default [-1, 1]). The other arguments are those of :func:`evaluate_grid`.
    """
    if dims not in (1, 2):
        raise LandscapeError(f"dims must be 1 or 2, got {dims}")
    specs: list[DirectionSpec] = []
    if directions is None:
        directions, specs = random_directions(FlatModel(model), dims, seed=seed, norm=norm, zero_bias_bn=zero_bias_bn)
    elif len(directions) != dims:
        raise LandscapeError(f"dims={dims} needs {dims} directions, got {len(directions)}")
    coords = [grid(span, steps)] * dims
    result = evaluate_grid(model, x, y, directions, coords, metrics=metrics, threat=threat,
                           batch_size=batch_size, seed=seed, layout=layout, workers=workers, stack=stack,
                           progress=progress)
    result.info |= {"kind": "surface", "span": list(span), "steps": steps,
                    "directions": [dataclasses.asdict(s) for s in specs] if specs else "given"}
    return result


# ---------------------------------------------------------------- interpolation

def _float_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: b.detach() for n, b in model.named_buffers() if b.is_floating_point()}


@contextmanager
def _bn_statistics_mode(model: nn.Module) -> Iterator[list[nn.modules.batchnorm._BatchNorm]]:
    """BatchNorm layers in train mode with cumulative averaging (momentum None), the rest in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    flags = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    model.eval()
    for m in norms:
        m.train()
        m.momentum = None
    try:
        yield norms
    finally:
        for m, flag in flags.items():
            m.training = flag
        for m, momentum in momenta.items():
            m.momentum = momentum


def recompute_bn_statistics(
    flat: FlatModel, theta: torch.Tensor, x: torch.Tensor, batch_size: int | None = DEFAULT_BATCH
) -> dict[str, torch.Tensor]:
    """BatchNorm running statistics of the model at ``theta``, averaged over the batches of ``x``.

    Returns the buffers by name (empty for a model without BatchNorm); the module is not modified.
    """
    fresh: dict[str, torch.Tensor] = {}
    with _bn_statistics_mode(flat.model) as norms, torch.no_grad():
        names = {m: n for n, m in flat.model.named_modules()}
        for m in norms:
            prefix = names[m]
            fresh[f"{prefix}.running_mean"] = torch.zeros_like(m.running_mean)
            fresh[f"{prefix}.running_var"] = torch.ones_like(m.running_var)
            fresh[f"{prefix}.num_batches_tracked"] = torch.zeros_like(m.num_batches_tracked)
        if fresh:
            model_at = flat.at(theta, fresh)
            for xb in x.split(batch_size or len(x)):
                model_at(xb)
    return fresh


def interpolate(
    model_a: nn.Module,
    model_b: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    metrics: Sequence[str] = ("clean_loss", "clean_acc"),
    span: tuple[float, float] = (0.0, 1.0),
    steps: int = 21,
    bn: BNHandling = "interpolate",
    bn_data: torch.Tensor | None = None,
    threat: ThreatModel | None = None,
    batch_size: int | None = GRID_BATCH,
    seed: int = 0,
    layout: Layout = "auto",
    workers: int | None = None,
    stack: int | None = None,
    progress: bool = False,
) -> Landscape:
    """Metrics along the line θ(t) = (1 − t)·θ_A + t·θ_B, t on a grid over ``span`` (default [0, 1]).

    Args:
        bn: "interpolate" the float buffers (BatchNorm running statistics) linearly like the
            weights, or "recompute" them at every point from ``bn_data`` (default: ``x``).
    The other arguments are those of :func:`evaluate_grid`. At t = 0 and t = 1 with
    ``bn="interpolate"`` the metrics are exactly those of A and B.
    """
    if bn not in ("interpolate", "recompute"):
        raise LandscapeError(f"bn must be interpolate or recompute, got {bn!r}")
    flat_a, flat_b = FlatModel(model_a), FlatModel(model_b)
    if flat_a.names != flat_b.names or flat_a.shapes != flat_b.shapes:
        raise LandscapeError("the two models must have the same architecture (parameter names and shapes)")
    theta_a, theta_b = flat_a.vector(), flat_b.vector().to(flat_a.device)
    buffers_a = _float_buffers(model_a)
    buffers_b = {n: b.to(flat_a.device) for n, b in _float_buffers(model_b).items()}
    bn_x = (x if bn_data is None else bn_data).to(flat_a.device)
    ts = grid(span, steps)

    def point(t: float) -> Point:
        def build(flat: FlatModel) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            theta = (1.0 - t) * theta_a + t * theta_b
            if bn == "interpolate":
                return theta, {n: (1.0 - t) * buffers_a[n] + t * buffers_b[n] for n in buffers_a}
            return theta, recompute_bn_statistics(flat, theta, flat.layout(bn_x), batch_size)

        return build

    values, info = evaluate_points(model_a, x, y, [point(t) for t in ts.tolist()], metrics=metrics, threat=threat,
                                   batch_size=batch_size, seed=seed, layout=layout, workers=workers, stack=stack,
                           progress=progress)
    info |= {"kind": "interpolation", "bn": bn, "span": list(span), "steps": steps}
    return Landscape([ts], values, info, [theta_b - theta_a])
