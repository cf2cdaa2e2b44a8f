"""Evaluating clean and adversarial metrics at many weight points, fast on a CPU.

Metrics at a point θ (the data fixed, the model in eval mode):

* ``clean_loss`` / ``clean_acc``: mean cross-entropy (nats) / accuracy (fraction in [0, 1]);
* ``adv_loss`` / ``adv_acc``: the same on adversarial inputs, with PGD **re-run at θ** (one
  attack serves both), its random start drawn from ``seed`` at every point (common random
  numbers: differences between points come from the weights, not from the start).

How the points are spread over the machine (measured in docs/landscape.md):

* **points in parallel, operations single-threaded.** Grid points are independent, so on CPU
  ``workers`` Python threads (default: torch's thread count) each evaluate whole points with
  one intra-op thread; PyTorch releases the GIL inside its kernels. Intra-op parallelism of the
  small convolutions of a landscape scales poorly, and with OpenMP's default spin-waiting it
  collapses (5-10x slower) as soon as another process competes for the cores. Each worker owns
  a deep copy of the model, because ``torch.func.functional_call`` swaps parameters inside the
  module it is given and is therefore not thread-safe on a shared module.
* **no vmap over points on CPU; vmap on a GPU.** Stacking K points with ``torch.func.vmap``
  turns every convolution into a grouped one, which oneDNN runs about 2x slower per point on
  CPU than K separate calls (also measured for an MLP); so on CPU each point is its own
  ``functional_call`` on parameter views into one flat vector (no parameter is ever copied into
  the module). On a GPU, where one point of a small model leaves the device mostly idle, K
  points run at once (:mod:`.stacked`, K measured to fit the free memory); ``stack`` forces K.
* **layout chosen by timing.** With ``layout="auto"`` one point is timed in NCHW and in
  channels-last layout and the faster is kept (like ``cudnn.benchmark``); sets of fewer than
  ``AUTO_LAYOUT_MIN_POINTS`` points, for which the timing would cost more than it saves, stay NCHW.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from queue import SimpleQueue
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed as dist
from ..threat import ThreatModel
from .errors import LandscapeError
from .flat_model import FlatModel
from .losses import point_metrics
from .stacked import points_per_stack, stacked_metrics

METRICS: tuple[str, ...] = ("clean_loss", "clean_acc", "adv_loss", "adv_acc")
Layout = Literal["auto", "contiguous", "channels_last"]
AUTO_LAYOUT_MIN_POINTS = 16
GRID_BATCH = 128
"""Default examples per forward pass when evaluating points: on the digits CNN, one CPU thread
ran PGD-10 on 512 examples 15 % faster in batches of 128 than in one batch of 512 (cache)."""

Point = Callable[[FlatModel], tuple[torch.Tensor, Mapping[str, torch.Tensor] | None]]
"""Builds one weight point for a model replica: (θ, BatchNorm buffers or None for the module's own)."""


def check_metrics(metrics: Sequence[str], threat: ThreatModel | None) -> list[str]:
    """The metrics without repeats; a LandscapeError for unknown ones or adversarial ones without a threat."""
    metrics = list(dict.fromkeys(metrics))
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise LandscapeError(f"unknown metric {unknown[0] if unknown else ''!r}; choose from {', '.join(METRICS)}")
    if threat is None and any(m.startswith("adv") for m in metrics):
        raise LandscapeError("adversarial metrics (adv_loss, adv_acc) need a threat model")
    return metrics


def metrics_at(flat, theta, x, y, metrics, threat, batch_size, seed, buffers=None) -> dict[str, float]:
    """The requested metrics at one weight point."""
    out: dict[str, float] = {}
    for kind, point_threat in (("clean", None), ("adv", threat)):
        if any(m.startswith(kind) for m in metrics):
            result = point_metrics(flat, theta, x, y, point_threat, batch_size=batch_size, buffers=buffers, seed=seed)
            out[f"{kind}_loss"], out[f"{kind}_acc"] = result.loss, result.acc
    return {m: out[m] for m in metrics}


def _seconds_per_point(flat, x, y, metrics, threat, batch_size, seed) -> float:
    """Best of two timed evaluations at the model's weights, after one warm-up (oneDNN builds its kernels)."""
    theta, x = flat.vector(), flat.layout(x)
    times = []
    for _ in range(3):
        start = time.perf_counter()
        metrics_at(flat, theta, x, y, metrics, threat, batch_size, seed)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def choose_layout(model, x, y, metrics, threat, batch_size, seed, layout: Layout) -> bool:
    """Whether to evaluate channels-last: as asked, or with "auto" whichever layout is faster."""
    if layout not in ("auto", "contiguous", "channels_last"):
        raise LandscapeError(f"layout must be auto, contiguous or channels_last, got {layout!r}")
    if layout != "auto" or x.dim() != 4:
        return layout == "channels_last"
    timings = {c: _seconds_per_point(FlatModel(model, channels_last=c), x, y, metrics, threat, batch_size, seed)
               for c in (False, True)}
    return min(timings, key=timings.get)


def default_workers(device: torch.device) -> int:
    """Worker threads over points: torch's intra-op thread count on CPU, 1 on a GPU."""
    return torch.get_num_threads() if device.type == "cpu" else 1


@contextmanager
def _intra_op_threads(count: int | None) -> Iterator[None]:
    """Run a block with torch's intra-op thread count set to ``count`` (None: unchanged), restored after."""
    before = torch.get_num_threads()
    if count is not None:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _replicas(model: nn.Module, workers: int, channels_last: bool) -> SimpleQueue:
    """One FlatModel per worker: the model itself for one worker, private eval-mode deep copies for more."""
    pool: SimpleQueue = SimpleQueue()
    models = [model] if workers == 1 else [copy.deepcopy(model).eval() for _ in range(workers)]
    for m in models:
        pool.put(FlatModel(m, channels_last=channels_last))
    return pool


def evaluate_points(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    points: Sequence[Point],
    *,
    metrics: Sequence[str],
    threat: ThreatModel | None,
    batch_size: int | None = GRID_BATCH,
    seed: int = 0,
    layout: Layout = "auto",
    workers: int | None = None,
    stack: int | None = None,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Metrics at every point, as arrays of len(points), and how they were computed (layout, workers,
    points stacked per vmap, seconds). ``stack``: points evaluated at once (None: as many as fit on a
    GPU, 1 on CPU); above 1 there is one worker."""
    metrics = check_metrics(metrics, threat)
    start = time.perf_counter()
    device = next(model.parameters()).device
    workers = default_workers(device) if workers is None else max(int(workers), 1)
    if stack is not None and stack > 1:  # one vmap over the stacked points, with every intra-op thread
        workers = 1
    x, y = x.to(device), y.to(device)
    bar = tqdm(total=len(points) // dist.world_size(), desc="landscape", disable=not progress or not dist.is_main(),
               leave=False)
    if layout == "auto" and len(points) < AUTO_LAYOUT_MIN_POINTS:
        layout = "contiguous"
    mine = dist.shard(list(range(len(points))))  # under torchrun each process takes every N-th point
    with _intra_op_threads(1 if workers > 1 else None):
        # every process runs rank 0's layout, so that all points are computed the same way
        channels_last = dist.broadcast_object(choose_layout(model, x, y, metrics, threat, batch_size, seed, layout))
        flat = FlatModel(model, channels_last=channels_last)
        x = flat.layout(x)
        if stack is None:
            stack = points_per_stack(flat, x, y, metrics, threat, batch_size, seed, len(mine))
        stack = max(int(stack), 1)
        if stack > 1:
            workers, results = 1, []  # (a GPU's measured stack: default_workers was 1 there already)
            for group in (mine[i:i + stack] for i in range(0, len(mine), stack)):
                built = [points[i](flat) for i in group]
                results += stacked_metrics(flat, [theta for theta, _ in built], [b for _, b in built], x, y,
                                           metrics, threat, batch_size, seed)
                bar.update(len(group))
        else:
            replicas = _replicas(model, workers, channels_last)

            def evaluate(point: Point) -> dict[str, float]:
                replica = replicas.get()
                try:
                    theta, buffers = point(replica)
                    return metrics_at(replica, theta, x, y, metrics, threat, batch_size, seed, buffers)
                finally:
                    replicas.put(replica)
                    bar.update()

            if workers == 1:
                results = [evaluate(points[i]) for i in mine]
            else:
                with ThreadPoolExecutor(workers) as pool:
                    results = list(pool.map(evaluate, [points[i] for i in mine]))
    bar.close()
    values = {m: np.zeros(len(points)) for m in metrics}
    for i, result in zip(mine, results):
        for m in metrics:
            values[m][i] = result[m]
    if dist.world_size() > 1:  # each point was computed by exactly one process: the sum gathers them
        stacked = dist.all_reduce_sum(torch.from_numpy(np.stack([values[m] for m in metrics])))
        values = {m: stacked[k].numpy() for k, m in enumerate(metrics)}
    info = {"n": len(y), "metrics": metrics, "threat": None if threat is None else vars(threat).copy(), "seed": seed,
            "points": len(points), "processes": dist.world_size(), "workers": workers, "stack": stack,
            "layout": "channels_last" if channels_last else "contiguous",
            "seconds": time.perf_counter() - start}
    return values, info
