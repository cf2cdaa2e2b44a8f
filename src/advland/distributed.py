"""Data parallelism with ``torch.distributed``: the few collective helpers advland needs.

A process started by ``torchrun`` finds RANK, WORLD_SIZE and LOCAL_RANK (and MASTER_ADDR/PORT)
in its environment; :func:`init` joins the process group (gloo on CPU, NCCL on GPU) from them.
Without those variables (a plain ``python -m advland ...``) everything here is a no-op on one
process: ``rank() == 0``, ``world_size() == 1``, gathers return their input, barriers return.

Every helper is safe to call on one process, so library code never branches on "am I distributed"
beyond ``world_size() > 1``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist

from .errors import AdvlandError

T = TypeVar("T")


def launched() -> bool:
    """Whether this process was started by torchrun (or another launcher setting WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    """Whether a process group with more than one process is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    """Whether this process is rank 0 (the one that writes files and prints)."""
    return rank() == 0


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def device_for(device: torch.device) -> torch.device:
    """On CUDA, this process's GPU (``cuda:LOCAL_RANK``); other devices unchanged."""
    if device.type == "cuda" and active():
        index = local_rank() % max(torch.cuda.device_count(), 1)
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return device


def init(device: torch.device | str = "cpu", timeout_s: float = 1800.0) -> bool:
    """Join the torchrun process group if launched with WORLD_SIZE > 1; return whether distributed.

    Idempotent: a second call (or a group created by the caller) is left as it is.
    """
    if not launched():
        return False
    if dist.is_initialized():
        return True
    missing = [k for k in ("RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise AdvlandError(f"WORLD_SIZE > 1 but {', '.join(missing)} unset; launch with torchrun --nproc_per_node=N")
    device = torch.device(device)
    backend = backend_for(device)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % max(torch.cuda.device_count(), 1))
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return True


def shutdown() -> None:
    """Leave the process group (if this module's :func:`init` or the caller created one)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


def shard(items: Sequence[T] | torch.Tensor, r: int | None = None, n: int | None = None):
    """This rank's share of ``items``: every world_size-th item starting at the rank (strided, balanced)."""
    r, n = rank() if r is None else r, world_size() if n is None else n
    return items[r::n]


def _on_backend_device(tensor: torch.Tensor) -> torch.Tensor:
    if active() and dist.get_backend() == "nccl":
        return tensor.cuda()
    return tensor


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The elementwise sum of ``tensor`` over ranks (a new tensor on the input's device)."""
    if not active():
        return tensor.clone()
    work = _on_backend_device(tensor.detach().clone())
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return work.to(tensor.device)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    return all_reduce_sum(tensor) / world_size()


def sum_floats(*values: float) -> list[float]:
    """Sums over ranks of a few Python numbers (float64, so integer counts stay exact)."""
    return all_reduce_sum(torch.tensor(values, dtype=torch.float64)).tolist()


def all_gather_object(obj: Any) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` (``[obj]`` on one process)."""
    if not active():
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def check_divisible(batch_size: int, key: str = "data.batch_size") -> int:
    """The per-process batch ``batch_size / world_size``; a one-line error when it does not divide."""
    n = world_size()
    if batch_size % n:
        raise AdvlandError(f"{key}={batch_size} is the global batch and must be divisible by the "
                           f"{n} processes (per-process batch = {key} / world size)")
    return batch_size // n


def mean_tensors(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """Each tensor averaged over ranks, in one collective (flattened and split back)."""
    if not active() or not tensors:
        return tensors
    flat = all_reduce_mean(torch.cat([t.reshape(-1) for t in tensors]))
    return [part.view_as(t) for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)]
