"""How many processes train: one (:class:`SingleProcess`) or data parallel under ``torchrun``
(:class:`DataParallel`). The training loop asks its strategy, never ``world_size``.

Data parallel (docs/scaling.md): every process holds the whole model, takes its shard (batch_size / N
examples) of every global minibatch of the same permutation, crafts the adversarial examples of its
shard on the unwrapped module, and backpropagates the training loss through DistributedDataParallel
(gradients averaged over the global batch). Epoch metrics, validation and the test are sharded and
summed over the processes; only rank 0 writes files, draws progress bars and runs the user's callbacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed as dist
from .config import Config
from .errors import AdvlandError
from .objectives import LossOutput, Objective
from .perturb import WeightPerturbation
from .run import Run

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], LossOutput]
"""(x, x_adv, y) -> the objective's training loss on the training forward."""

RANK_SEED_STRIDE = 1_000_003
"""Process r draws its random attack starts from seed + r * RANK_SEED_STRIDE."""


class SingleProcess:
    """One process: every collective is the identity, every file is written here."""

    rank, world_size, is_main = 0, 1, True

    def __init__(self, device: torch.device):
        self.device = device

    def check(self, config: Config) -> None:
        """Refuse what this strategy cannot train (nothing, on one process)."""

    def prepare(self, model: nn.Module, config: Config) -> nn.Module:
        """The model to train (before the training forward is built on it)."""
        return model

    def loss_fn(self, forward: nn.Module, objective: Objective, config: Config) -> LossFn:
        return lambda x, x_adv, y: objective.loss(forward, x, x_adv, y)

    def share_perturbation(self, perturbation: WeightPerturbation | None) -> None:
        """Make a weight perturbation's ascent direction that of the global batch (one process: it is)."""

    def shard(self, order: torch.Tensor, size: int, smallest: int) -> Iterator[torch.Tensor]:
        """This process's part of each minibatch of ``order`` (``size`` a batch; shorter than ``smallest`` dropped)."""
        for batch in order.split(size):
            if len(batch) >= max(smallest, 1):
                yield batch

    def sum(self, *values: float) -> Sequence[float]:
        """Sums over the processes."""
        return values

    def first_bad(self, bad: int) -> int:
        """The first non-finite minibatch any process saw (-1 for none)."""
        return bad

    def rng_states(self) -> list[torch.Tensor]:
        """Every other process's RNG state, for resume (none here)."""
        return []

    def restore_rng(self, saved: dict[str, Any], seed: int) -> None:
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])

    def prepare_run(self, config: Config) -> Run:
        return Run.for_config(config)

    def main_only(self, callbacks: list) -> list:
        """The callbacks that run on this process of those meant for rank 0."""
        return callbacks

    def summary(self) -> dict[str, Any]:
        """What summary.json records about the processes (nothing for one)."""
        return {}

    def barrier(self) -> None:
        dist.barrier()

    def decide(self, value: Any) -> Any:
        """Rank 0's ``value`` on every process."""
        return dist.broadcast_object(value)


class DataParallel(SingleProcess):
    """``torchrun`` processes, gradients averaged by DistributedDataParallel."""

    def __init__(self, device: torch.device):
        super().__init__(device)
        self.rank, self.world_size, self.is_main = dist.rank(), dist.world_size(), dist.is_main()

    def check(self, config: Config) -> None:
        dist.check_divisible(config.data.batch_size)
        if config.optimizer.name == "entropy_sgd":
            raise AdvlandError("optimizer.name=entropy_sgd is not supported under torchrun (its SGLD noise "
                               "and inner loop are per process); train it on one process")

    def prepare(self, model: nn.Module, config: Config) -> nn.Module:
        has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if config.distributed.sync_bn and has_bn and self.device.type != "cuda":
            raise AdvlandError("distributed.sync_bn=true needs CUDA (torch's SyncBatchNorm is GPU-only); "
                               "set distributed.sync_bn=false on CPU")
        return nn.SyncBatchNorm.convert_sync_batchnorm(model) if config.distributed.sync_bn else model

    def loss_fn(self, forward: nn.Module, objective: Objective, config: Config) -> LossFn:
        ids = [self.device.index] if self.device.type == "cuda" else None
        ddp = DistributedDataParallel(_ObjectiveLoss(forward, objective), device_ids=ids,
                                      find_unused_parameters=config.distributed.find_unused_parameters)
        torch.manual_seed(config.seed + RANK_SEED_STRIDE * self.rank)  # different random attack starts per shard
        return lambda x, x_adv, y: LossOutput(*ddp(x, x_adv, y))  # gradients all-reduced (averaged)

    def share_perturbation(self, perturbation: WeightPerturbation | None) -> None:
        if perturbation is not None:
            perturbation.grad_reduce = dist.mean_tensors  # v from the global batch's gradient

    def shard(self, order: torch.Tensor, size: int, smallest: int) -> Iterator[torch.Tensor]:
        for batch in order.split(size):  # this rank's contiguous part of each global batch
            if len(batch) >= max(smallest, self.world_size):
                yield batch.tensor_split(self.world_size)[self.rank]

    def sum(self, *values: float) -> Sequence[float]:
        return dist.sum_floats(*values)

    def first_bad(self, bad: int) -> int:
        seen = [b for b in dist.all_gather_object(bad) if b >= 0]
        return min(seen) if seen else -1

    def rng_states(self) -> list[torch.Tensor]:
        return dist.all_gather_object(torch.get_rng_state())

    def restore_rng(self, saved: dict[str, Any], seed: int) -> None:
        ranks = saved.get("rng_ranks") or []
        if len(ranks) == self.world_size:
            torch.set_rng_state(ranks[self.rank])
        else:  # a different number of processes: the run continues, not bit-exactly
            torch.manual_seed(seed + RANK_SEED_STRIDE * self.rank + saved["epoch"])

    def prepare_run(self, config: Config) -> Run:
        """Rank 0 prepares the run directory; an error there is raised on every process."""
        error, run = None, None
        if self.is_main:
            try:
                run = Run.for_config(config)
            except AdvlandError as exc:
                error = str(exc)
        error = dist.broadcast_object(error)
        if error is not None:
            raise AdvlandError(error)
        dist.barrier()
        return run if run is not None else Run(Path(config.out_dir) / (config.name or "default"))

    def main_only(self, callbacks: list) -> list:
        return callbacks if self.is_main else []

    def summary(self) -> dict[str, Any]:
        return {"world_size": self.world_size}


class _ObjectiveLoss(nn.Module):
    """The objective's training loss as one module, so that DDP sees a single forward per backward
    (TRADES and MART call the model twice)."""

    def __init__(self, model: nn.Module, objective: Objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, x_adv: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        out = self.objective.loss(self.model, x, x_adv, y)
        return out.loss, out.logits_adv, out.logits_clean


def create_strategy(device: torch.device) -> SingleProcess:
    """Join the torchrun process group when launched by it; the strategy for this process and its device."""
    dist.init(device)
    if dist.world_size() > 1:
        return DataParallel(dist.device_for(device))
    return SingleProcess(dist.device_for(device))
