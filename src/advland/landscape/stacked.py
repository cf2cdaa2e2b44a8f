"""K weight points at once: ``torch.func.vmap`` over stacked parameters, for GPUs.

A landscape evaluates the same data at many weight points. On a GPU one point of a small
model leaves most of the device idle, so K points are stacked along a new leading dimension
and every forward pass runs them together: ``vmap(functional_call)`` over the stacked
parameters (and BatchNorm buffers, in eval mode). The adversarial metrics re-run PGD at every
point inside the same vmap: each point ascends its own copy of the inputs, all K from the
same random start (the common random numbers of :mod:`.points`: the start of batch b is drawn
from a generator seeded by ``seed``, exactly as the one-point path draws it).

On a CPU this is *not* the default: vmap turns each convolution into a grouped one, which
oneDNN runs about 2x slower per point than K separate calls (docs/landscape.md), so
:func:`.points.evaluate_points` keeps its worker threads there and stacks only when asked.

How many points fit: :func:`points_per_stack` measures the peak memory of one point on the
device and stacks as many as half of the free memory holds (at most ``MAX_STACK``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from ..attacks import bn_mode
from ..threat import ThreatModel
from .flat_model import FlatModel
from .losses import batches, generator

MAX_STACK = 64
"""Most points stacked into one vmap (beyond this a GPU is already saturated for the models we run)."""


def _stack_states(flat: FlatModel, thetas: Sequence[torch.Tensor],
                  buffers: Sequence[Mapping[str, torch.Tensor] | None]) -> dict[str, torch.Tensor]:
    """functional_call's state of every point, stacked along a new dim 0 (the module's buffers where a point has none)."""
    own = dict(flat.model.named_buffers())
    states = [flat.state(theta, {**own, **(b or {})}) for theta, b in zip(thetas, buffers)]
    return {name: torch.stack([s[name] for s in states]) for name in states[0]}


def stacked_metrics(flat: FlatModel, thetas: Sequence[torch.Tensor],
                    buffers: Sequence[Mapping[str, torch.Tensor] | None], x: torch.Tensor, y: torch.Tensor,
                    metrics: Sequence[str], threat: ThreatModel | None, batch_size: int | None,
                    seed: int) -> list[dict[str, float]]:
    """The requested metrics (as :func:`.points.metrics_at`) at every point of ``thetas``, all evaluated at once."""
    state = _stack_states(flat, thetas, buffers)
    k = len(thetas)
    model = flat.model

    def logits(point_state, inputs):
        return functional_call(model, point_state, (flat.layout(inputs),))

    def objective(point_state, inputs, labels):
        return F.cross_entropy(logits(point_state, inputs), labels, reduction="sum")

    clean_logits = vmap(logits, in_dims=(0, None))
    many_logits = vmap(logits, in_dims=(0, 0))
    input_grad = vmap(grad(objective, argnums=1), in_dims=(0, 0, None))
    sums = {kind: torch.zeros(k, 2, dtype=torch.float64, device=flat.device) for kind in ("clean", "adv")}
    kinds = [kind for kind in ("clean", "adv") if any(m.startswith(kind) for m in metrics)]
    with bn_mode(model, "eval"):
        for kind in kinds:
            rng = generator(seed, flat.device)
            for xb, yb in batches(x, y, batch_size):
                if kind == "adv" and threat is not None and threat.active:
                    out = many_logits(state, _stacked_pgd(input_grad, state, xb, yb, threat, rng, k))
                else:
                    with torch.no_grad():
                        out = clean_logits(state, xb)
                with torch.no_grad():
                    labels = yb.expand(k, -1)
                    sums[kind][:, 0] += F.cross_entropy(out.flatten(0, 1), labels.flatten(), reduction="none") \
                        .view(k, -1).sum(1).double()
                    sums[kind][:, 1] += (out.argmax(2) == labels).sum(1)
    n = max(len(y), 1)
    read = {kind: (sums[kind] / n).tolist() for kind in kinds}  # one device read for the whole stack
    return [{m: read[m.split("_")[0]][i][0 if m.endswith("loss") else 1] for m in metrics} for i in range(k)]


def _stacked_pgd(input_grad, state, xb: torch.Tensor, yb: torch.Tensor, threat: ThreatModel,
                 rng: torch.Generator, k: int) -> torch.Tensor:
    """CE-PGD at every stacked point from one shared random start; shape (K, B, ...)."""
    start = threat.random_start(xb, rng)
    x_home = xb.expand(k, *xb.shape).flatten(0, 1)
    x_adv = start.expand(k, *xb.shape).flatten(0, 1)
    with torch.enable_grad():
        for _ in range(threat.steps):
            g = input_grad(state, x_adv.view(k, *xb.shape).detach(), yb).flatten(0, 1)
            x_adv = threat.project(threat.ascent_step(x_adv.detach(), g), x_home).detach()
    return x_adv.view(k, *xb.shape)


def points_per_stack(flat: FlatModel, x: torch.Tensor, y: torch.Tensor, metrics: Sequence[str],
                     threat: ThreatModel | None, batch_size: int | None, seed: int, count: int) -> int:
    """How many points to stack on this device: half the free memory over one point's measured peak (CUDA),
    capped at ``count`` and :data:`MAX_STACK`; 1 where the free memory cannot be read."""
    if flat.device.type != "cuda":
        return 1
    torch.cuda.synchronize(flat.device)
    torch.cuda.reset_peak_memory_stats(flat.device)
    before = torch.cuda.memory_allocated(flat.device)
    stacked_metrics(flat, [flat.vector()], [None], x, y, metrics, threat, batch_size, seed)
    peak = max(torch.cuda.max_memory_allocated(flat.device) - before, 1)
    free, _ = torch.cuda.mem_get_info(flat.device)
    return int(max(1, min(count, MAX_STACK, free // 2 // peak)))
