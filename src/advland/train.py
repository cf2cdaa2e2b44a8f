"""The training loop: data -> objective -> (weight perturbation) -> optimizer step -> validation -> checkpoint.

One training step crafts adversarial inputs on the current weights, optionally moves the weights to
w + v (AWP, SAM: :mod:`advland.perturb`), steps the optimizer and restores. With EntropySGD an
outer step consumes ``L`` consecutive minibatches of the epoch's stream (one per inner step, each
attacked at the inner weights), so an epoch has ``n_batches // L`` outer steps and the same number
of gradient evaluations as an epoch of SGD; the last ``n_batches % L`` minibatches are left out.
Every epoch logs ``grad_evals``: the forward-backward passes over a minibatch it took (attack
steps, training losses and weight-ascent steps), so that the methods' costs compare.

Precision, compilation and memory format (:mod:`advland.accel`) live in the *training forward*
``self.forward``, a module sharing the model's parameters that the step, the training attack and
the weight perturbation call; validation and the test call the plain model at ``eval.precision``.
The step does not wait on the host: epoch statistics are summed on the device and read once per
epoch.

The trainer owns one run directory. After every epoch it writes, atomically, the full training
state (weights, optimizer, RNG, metric history) so that ``resume`` continues to exactly the
result of an uninterrupted run: the data order of epoch e is drawn from a generator seeded by
(seed, e), and the global RNG that drives random attack starts is saved and restored. A resume
under a config that differs from the run's config.yaml is refused (:mod:`advland.resume`); an
epoch whose training loss or weights stop being finite is never saved (:mod:`advland.divergence`).

The checkpoint ``best`` is selected on the validation split by :func:`selection_criterion`: robust
accuracy at the target eps for adversarial training, clean accuracy for clean training (or eps 0),
and the last epoch when there is no validation split; summary.json says which (``selected_on``).

Each module keeps its own training-mode flag: the flags the model had when handed to the trainer
(a root in train mode; a root in eval mode means "all in train mode") are restored at the start
of every epoch, so a user's frozen BatchNorm or eval-mode dropout stays as the user set it.

Under ``torchrun`` (docs/scaling.md) the trainer is data-parallel: every process holds the whole
model, takes its shard (batch_size / N examples) of every global minibatch of the same permutation,
crafts the adversarial examples of its shard on the unwrapped module, and backpropagates the
training loss through DistributedDataParallel (gradients averaged over the global batch). Epoch
metrics, validation and the test are sharded and summed over the processes; only rank 0 writes
files and draws progress bars.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .accel import Accel, evaluation_model
from .attacks import bn_mode
from .augment import random_crop_flip
from .binomial import with_intervals
from .build import (
    DataSplits,
    build_callbacks,
    build_data,
    build_eps_schedule,
    build_lr_schedule,
    build_model,
    build_objective,
    build_optimizer,
    build_perturbation,
    build_threat,
    resident_training_data,
    resolve_device,
)
from . import distributed as dist
from .config import Config
from .divergence import NonFiniteWatch, TrainingDiverged, diverged_message
from .ensemble import SnapshotEnsemble
from .errors import AdvlandError
from .evaluate import correct_under_attack, eval_threat, predict
from .objectives import LossOutput
from .optim import EntropySGD
from .plots.training import plot_training_curves
from .load import user_model_config
from .resume import check_resume, extension_record
from .run import Run, load_into
from .threat import ThreatModel

Criterion = str
"""``val_robust_acc``, ``val_clean_acc`` or ``last_epoch``: how the checkpoint ``best`` is selected."""


class Callback(Protocol):
    """Hook called after each epoch's validation; may add entries to ``record`` (they land in metrics.jsonl).
    A callback may also define ``on_train_end(trainer, summary)``, called once the test numbers are known."""

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None: ...


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class StepResult:
    loss: torch.Tensor
    """The step's training loss, detached, on the device (never copied to the host per step)."""
    logits_adv: torch.Tensor
    grad_evals: int
    """Forward-backward passes over the minibatch this step took."""
    perturb_norm: torch.Tensor | None = None
    """||v||_2 of the weight perturbation the step used, if any (on the device)."""
    logits_clean: torch.Tensor | None = None
    """Clean logits the objective computed anyway (TRADES, MART), reused for the training clean accuracy."""


class EpochMeter:
    """Running sums of one epoch's training statistics, kept on the device and read once by :meth:`totals`."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss * n, clean, robust, sum of ||v||
        self.n = self.grad_evals = self.perturb_steps = 0

    def add(self, step: StepResult, y: torch.Tensor, clean_logits: torch.Tensor) -> None:
        zero = self.sums.new_zeros(())
        norm = zero if step.perturb_norm is None else step.perturb_norm.double()
        self.sums += torch.stack([step.loss.double() * len(y), (clean_logits.argmax(1) == y).sum().double(),
                                  (step.logits_adv.argmax(1) == y).sum().double(), norm])
        self.n += len(y)
        self.grad_evals += step.grad_evals
        self.perturb_steps += step.perturb_norm is not None

    def totals(self, *extra: torch.Tensor) -> list[float]:
        """(loss * n, clean, robust, sum of ||v||) summed over the epoch, then the entries of ``extra``
        (float64 device tensors read along): the one device-to-host read."""
        return torch.cat([self.sums, *extra]).tolist()


def selection_criterion(config: Config, n_val: int) -> Criterion:
    """The record key the checkpoint ``best`` maximizes: clean validation accuracy for clean training
    (whose robust accuracy at the config's eps is near 0 every epoch) and eps 0, robust validation
    accuracy otherwise; without a validation split ``last_epoch`` (best is the last epoch's weights)."""
    if n_val == 0:
        return "last_epoch"
    return "val_clean_acc" if config.objective.name == "clean" or config.threat.eps == 0 else "val_robust_acc"


@dataclass
class TrainState:
    """What is carried from epoch to epoch (and saved for resume)."""

    epoch: int = 0
    """Number of finished epochs."""
    best_score: float = -1.0
    """The selection criterion's value at the best epoch."""
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    extensions: list[dict[str, Any]] = field(default_factory=list)
    """Resumes that extended ``epochs`` (:func:`advland.resume.extension_record`)."""


class _ObjectiveLoss(nn.Module):
    """The objective's training loss as one module, so that DDP sees a single forward per backward
    (TRADES and MART call the model twice)."""

    def __init__(self, model: nn.Module, objective):
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x: torch.Tensor, x_adv: torch.Tensor,
                y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        out = self.objective.loss(self.model, x, x_adv, y)
        return out.loss, out.logits_adv, out.logits_clean


class Trainer:
    """Adversarial training of ``model`` under ``config``, writing into a :class:`Run` directory.

    Args:
        config: validated configuration.
        model: a user model taking inputs in [0, 1] (default: the config's registered model).
        model_factory: ``package.module:factory`` that builds ``model`` (called with ``model_kwargs``, and
            ``input_shape``/``num_classes`` when it takes them): recorded in the run's config so that
            ``advland.load``, ``eval`` and the analyses rebuild it. Without it a run of a user model records
            only the model's class, and loading it asks for ``--model``.
        model_kwargs: keyword arguments of ``model_factory``.
        data: user data splits (default: the config's dataset).
        run: the run directory (default: ``config.out_dir/config.name``).
        callbacks: extra per-epoch hooks; those the config's ``track`` section asks for are added.
        progress: show progress bars.
        extend: when resuming, allow ``config.epochs`` to exceed the run's (nothing else may differ);
            the extension is recorded in state.pt, config.yaml and summary.json.
    """

    def __init__(
        self,
        config: Config,
        *,
        model: nn.Module | None = None,
        model_factory: str | None = None,
        model_kwargs: dict[str, Any] | None = None,
        data: DataSplits | None = None,
        run: Run | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
        extend: bool = False,
    ):
        if model is not None:
            config = config.model_copy(update={"model": user_model_config(model, config, model_factory, model_kwargs)})
        elif model_factory is not None:
            raise AdvlandError("model_factory records how to rebuild the model= given to Trainer; pass both")
        self.config = config
        seed_everything(config.seed, config.deterministic)
        self.device = resolve_device(config.device)
        dist.init(self.device)
        self.rank, self.world_size = dist.rank(), dist.world_size()
        self.device = dist.device_for(self.device)
        if self.world_size > 1:
            dist.check_divisible(config.data.batch_size)
            if config.optimizer.name == "entropy_sgd":
                raise AdvlandError("optimizer.name=entropy_sgd is not supported under torchrun (its SGLD noise "
                                   "and inner loop are per process); train it on one process")
        self.data = resident_training_data(data if data is not None else build_data(config), config.data.on_device,
                                           self.device)
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.objective = build_objective(config)
        self.threat = build_threat(config)
        self.accel = Accel.from_config(config, self.device)
        self.ddp: nn.Module | None = None
        if self.world_size > 1:
            has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules())
            if config.distributed.sync_bn and has_bn and self.device.type != "cuda":
                raise AdvlandError("distributed.sync_bn=true needs CUDA (torch's SyncBatchNorm is GPU-only); "
                                   "set distributed.sync_bn=false on CPU")
            if config.distributed.sync_bn:
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.forward = self.accel.prepare(self.model)
        if self.world_size > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(_ObjectiveLoss(self.forward, self.objective), device_ids=ids,
                                               find_unused_parameters=config.distributed.find_unused_parameters)
            torch.manual_seed(config.seed + 1_000_003 * self.rank)  # different random attack starts per shard
        self.train_modes = _training_modes(self.model, self.forward)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.perturbation = build_perturbation(config)
        if self.perturbation is not None and self.world_size > 1:
            self.perturbation.grad_reduce = dist.mean_tensors  # v from the global batch's gradient
        self.lr_schedule = build_lr_schedule(config)
        self.eps_schedule = build_eps_schedule(config)
        self.run = run if run is not None else self._prepare_run(config)
        # epochs of the run's config.yaml (fewer than config.epochs when a resume extends the run)
        self.run_epochs = check_resume(self.run, config, extend).epochs if config.resume else config.epochs
        self.callbacks = [*callbacks, *build_callbacks(config)]
        self.progress = progress and dist.is_main()
        self.state = TrainState()
        self.criterion = selection_criterion(config, len(self.data.y_val))
        self.watch = NonFiniteWatch()
        if config.data.augment == "crop_flip" and self.data.x_train.dim() != 4:
            raise AdvlandError("data.augment=crop_flip needs image data (N, C, H, W); use data.augment=none")
        if self.accel.fixed_shapes and len(self.data.y_train) < config.data.batch_size:
            raise AdvlandError(f"compile=true drops the last partial batch, and the training set ({len(self.data.y_train)} "
                               f"examples) is smaller than data.batch_size={config.data.batch_size}; lower the batch size")

    @staticmethod
    def _prepare_run(config: Config) -> Run:
        """Rank 0 prepares the run directory; an error there is raised on every process."""
        if dist.world_size() == 1:
            return Run.for_config(config)
        error, run = None, None
        if dist.is_main():
            try:
                run = Run.for_config(config)
            except AdvlandError as exc:
                error = str(exc)
        error = dist.broadcast_object(error)
        if error is not None:
            raise AdvlandError(error)
        dist.barrier()
        return run if run is not None else Run(Path(config.out_dir) / (config.name or "default"))

    # ---------------------------------------------------------------- schedules
    def progress_at(self, epoch: int, batch: int, n_batches: int) -> float:
        """Training progress t in epochs at which schedules are evaluated."""
        if self.config.schedule.per == "epoch":
            return float(epoch)
        return epoch + batch / n_batches

    def threat_at(self, t: float) -> ThreatModel:
        """The training threat model at progress t (step size scales with eps)."""
        return self.threat.with_eps(self.eps_schedule(t))

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    # ---------------------------------------------------------------- one epoch
    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """Index batches of epoch ``epoch``: a permutation drawn from a generator seeded by (seed, epoch).

        With fixed shapes (a compiled model) the last partial batch is dropped."""
        n, size = len(self.data.y_train), self.config.data.batch_size
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).to(self.data.x_train.device)  # index where the data lives
        smallest = size if self.accel.fixed_shapes else self.world_size
        for batch in order.split(size):  # this rank's contiguous part of each global batch
            if len(batch) >= smallest:
                yield batch if self.world_size == 1 else batch.tensor_split(self.world_size)[self.rank]

    def _attack_cost(self, threat: ThreatModel) -> int:
        """Forward-backward passes PGD takes on one minibatch."""
        return threat.steps * threat.restarts if threat.active and self.objective.name != "clean" else 0

    def _perturb_weights(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                         epoch: int) -> torch.Tensor | None:
        """Move the weights to w + v ascending the objective's loss (after the warm-up); return ||v|| or None.

        The ascent direction is normalized, so the loss is scaled like the attack's objective (fp16)."""
        if self.perturbation is None or epoch < self.config.perturb.warmup_epochs:
            return None
        scale = self.accel.attack_scale
        return self.perturbation.perturb(self.model, lambda: self.objective.loss(self.forward, x, x_adv, y).loss * scale)

    def _craft(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
        """Adversarial inputs crafted on the current weights; every module's mode flag is restored after."""
        return self.objective.perturb(self.forward, x, y, threat, self.config.threat.bn_mode)

    def _backward(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor) -> LossOutput:
        self.optimizer.zero_grad(set_to_none=True)
        if self.ddp is not None:  # gradients all-reduced (averaged) over the processes
            out = LossOutput(*self.ddp(x, x_adv, y))
        else:
            out = self.objective.loss(self.forward, x, x_adv, y)
        self.accel.scaler.scale(out.loss).backward()
        return out

    def train_step(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, epoch: int = 0) -> StepResult:
        """Craft adversarial inputs on the current weights, then take one optimizer step on the objective.

        With a weight perturbation the step is taken at w + v (v from the same adversarial inputs)
        and v is subtracted afterwards.
        """
        x_adv = self._craft(x, y, threat)
        perturb_norm = self._perturb_weights(x, x_adv, y, epoch)
        out = self._backward(x, x_adv, y)
        self.accel.scaler.step(self.optimizer)
        self.accel.scaler.update()
        ascent = 0
        if perturb_norm is not None:
            self.perturbation.restore()
            ascent = self.perturbation.steps
        cost = self._attack_cost(threat) + 1 + ascent
        return StepResult(out.loss.detach(), out.logits_adv.detach(), cost, perturb_norm, _detached(out.logits_clean))

    def _gradient(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> StepResult:
        """Attack at the current weights and backpropagate the objective (an EntropySGD inner step's closure)."""
        out = self._backward(x, self._craft(x, y, threat), y)
        return StepResult(out.loss.detach(), out.logits_adv.detach(), self._attack_cost(threat) + 1,
                          logits_clean=_detached(out.logits_clean))

    def _measure(self, meter: EpochMeter, step: StepResult, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the step to the epoch's sums; the clean accuracy comes from the objective's clean logits
        where it has them (TRADES, MART), else from one no-grad forward in eval mode after the step (AT)."""
        self.watch.observe(step.loss)
        clean_logits = step.logits_clean
        if clean_logits is None:
            with torch.no_grad(), bn_mode(self.forward, "eval"):
                clean_logits = self.forward(x)
        meter.add(step, y, clean_logits)

    def _examples(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples at indices ``idx``, on the device."""
        return self.data.x_train[idx].to(self.device), self.data.y_train[idx].to(self.device)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training minibatch at indices ``idx`` on the device, augmented if the config says so."""
        x, y = self._examples(idx)
        if self.config.data.augment == "crop_flip":
            x = random_crop_flip(x)
        return x, y

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of training; raises :class:`TrainingDiverged` when a loss or the weights are not finite."""
        batches = list(self.batches(epoch))
        n_batches = len(batches)
        meter = EpochMeter(self.device)
        _set_modes(self.train_modes)
        self.watch.start_epoch()
        if isinstance(self.optimizer, EntropySGD):
            self._entropy_sgd_epoch(epoch, batches, meter)
        else:
            bar = tqdm(batches, desc=f"epoch {epoch + 1}", leave=False, disable=not self.progress or n_batches < 20)
            for i, idx in enumerate(bar):
                x, y = self._batch(idx)
                t = self.progress_at(epoch, i, n_batches)
                self.set_lr(self.lr_schedule(t))
                self._measure(meter, self.train_step(x, y, self.threat_at(t), epoch), x, y)
        loss, clean, robust, norms, first_bad, weights_finite = meter.totals(self.watch.summary(self.model.parameters(),
                                                                                               self.device))
        self._check_finite(epoch, n_batches, int(first_bad), weights_finite == 1)
        n = meter.n
        if self.world_size > 1:  # sums over the processes; grad_evals and perturb_norm stay per process
            loss, clean, robust, n = dist.sum_floats(loss, clean, robust, n)
        n = max(n, 1)
        t_end = self.progress_at(epoch, n_batches - 1, n_batches)
        record = {"lr": self.optimizer.param_groups[0]["lr"], "eps": self.threat_at(t_end).eps, "train_loss": loss / n,
                  "train_clean_acc": clean / n, "train_robust_acc": robust / n, "grad_evals": meter.grad_evals}
        if self.perturbation is not None:
            record["perturb_norm"] = norms / max(meter.perturb_steps, 1)
        if isinstance(self.optimizer, EntropySGD):
            record["entropy_gamma"] = self.optimizer.gamma()
        return record

    def _check_finite(self, epoch: int, n_batches: int, bad: int, weights_finite: bool) -> None:
        """Raise :class:`TrainingDiverged` on every process if any process saw a non-finite loss or weights."""
        if self.world_size > 1:
            seen = [b for b in dist.all_gather_object(bad) if b >= 0]
            bad = min(seen) if seen else -1
        if bad < 0 and weights_finite:
            return
        raise TrainingDiverged(diverged_message(epoch + 1, bad, n_batches, self.config.optimizer.lr, self.state.epoch,
                                                str(self.run.path)))

    def _entropy_sgd_epoch(self, epoch: int, batches: list[torch.Tensor], meter: EpochMeter) -> None:
        """Outer EntropySGD steps, each consuming the next ``closures_per_step`` minibatches of the epoch."""
        per_step, n_batches = self.optimizer.closures_per_step, len(batches)
        if per_step > n_batches:
            raise AdvlandError(f"optimizer.L={self.optimizer.param_groups[0]['L']} needs more minibatches per outer "
                               f"step than an epoch has ({n_batches}); lower optimizer.L or data.batch_size")
        starts = range(0, n_batches - per_step + 1, per_step)
        for start in tqdm(starts, desc=f"epoch {epoch + 1}", leave=False, disable=not self.progress or len(starts) < 20):
            self.set_lr(self.lr_schedule(self.progress_at(epoch, start, n_batches)))
            self.optimizer.step(self._inner_closure(epoch, batches, range(start, start + per_step), meter))

    def _inner_closure(self, epoch: int, batches: list[torch.Tensor], indices: range,
                       meter: EpochMeter) -> Callable[[], torch.Tensor]:
        """A closure that, at each call, backpropagates the next of ``batches[indices]`` attacked at the current weights."""
        stream = iter(indices)

        def closure() -> torch.Tensor:
            i = next(stream)
            x, y = self._batch(batches[i])
            step = self._gradient(x, y, self.threat_at(self.progress_at(epoch, i, len(batches))))
            self._measure(meter, step, x, y)
            return step.loss

        return closure

    def validate(self) -> dict[str, float]:
        """Clean and PGD accuracy on the validation split at the target eps (the checkpoint criterion)."""
        x, y = self.data.x_val, self.data.y_val
        if len(y) == 0:  # no validation split: NaN here, null in metrics.jsonl
            return {"val_clean_acc": math.nan, "val_robust_acc": math.nan}
        steps = self.config.eval.val_steps or max(self.threat.steps, 1)
        threat = ThreatModel(self.threat.norm, self.threat.eps, self.threat.eps / 4, steps)
        with bn_mode(self.model, "eval"):
            clean, robust = self._accuracies(self.model, x, y, threat)
        return {"val_clean_acc": clean, "val_robust_acc": robust}

    def _accuracies(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> tuple[float, float]:
        """Clean and PGD accuracy at ``eval.precision``; under DDP each process attacks its shard and the
        counts are summed."""
        model = evaluation_model(model, self.device, self.config.eval.precision)
        batch = self.config.data.eval_batch_size
        x, y = dist.shard(x), dist.shard(y)
        clean = robust = 0.0
        if len(y):
            clean = (predict(model, x, batch) == y).sum().item()
            robust = correct_under_attack(model, x, y, threat, batch_size=batch).sum().item()
        clean, robust, n = dist.sum_floats(clean, robust, len(y))
        return (clean / n, robust / n) if n else (math.nan, math.nan)

    # ---------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Write the resume state, then the weight files, then metrics (each write is atomic)."""
        rng_ranks = dist.all_gather_object(torch.get_rng_state()) if self.world_size > 1 else []
        if not dist.is_main():
            dist.barrier()
            return
        state = {
            "rng_ranks": rng_ranks,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.accel.scaler.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.state.epoch,
            "best_score": self.state.best_score,
            "best_epoch": self.state.best_epoch,
            "history": self.state.history,
            "extensions": self.state.extensions,
        }
        self.run.save_state(state)
        self.run.save_weights("last", self.model)
        self.run.write_metrics(self.state.history)
        dist.barrier()

    def restore(self) -> None:
        saved = self.run.load_state()
        load_into(self.model, saved["model"], self.run.state_path)
        self.optimizer.load_state_dict(saved["optimizer"])
        if saved.get("scaler"):  # fp16 runs: the gradient scaler's scale and growth tracker
            self.accel.scaler.load_state_dict(saved["scaler"])
        ranks = saved.get("rng_ranks") or []
        if self.world_size == 1:
            torch.set_rng_state(saved["rng"])
        elif len(ranks) == self.world_size:
            torch.set_rng_state(ranks[self.rank])
        else:  # a different number of processes: the run continues, not bit-exactly
            torch.manual_seed(self.config.seed + 1_000_003 * self.rank + saved["epoch"])
        if saved["cuda_rng"] and torch.cuda.is_available() and self.world_size == 1:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        best_score = saved.get("best_score", saved.get("best_val_robust_acc"))  # the key before issue 11
        self.state = TrainState(saved["epoch"], best_score, saved["best_epoch"], saved["history"],
                                saved.get("extensions", []))
        if self.config.epochs != self.run_epochs:  # check_resume allowed it: extend was given
            self.state.extensions.append(extension_record(self.state.epoch, self.run_epochs, self.config.epochs))
            if dist.is_main():
                self.run.write_config(self.config)
        if dist.is_main():
            self.run.write_metrics(self.state.history)

    # ---------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (continuing a saved state when resuming); return the summary."""
        if self.config.resume:
            self.restore()
        elif dist.is_main():
            self.run.write_config(self.config)
            self.run.save_weights("init", self.model)
        epochs = tqdm(range(self.state.epoch, self.config.epochs), initial=self.state.epoch,
                      total=self.config.epochs, desc="train", disable=not self.progress)
        if self.state.epoch < self.config.epochs:  # compile (if asked) before the first timed epoch
            self.accel.warm_up(*self._examples(next(self.batches(self.state.epoch))), self.config.threat.bn_mode)
        for epoch in epochs:
            start = time.perf_counter()
            record = {"epoch": epoch + 1, **self.train_epoch(epoch), **self.validate()}
            for callback in self.callbacks if dist.is_main() else ():  # tracking: rank 0 only
                callback.on_epoch_end(self, epoch + 1, record)
            record["seconds"] = time.perf_counter() - start
            self.state.history.append(record)
            self.state.epoch = epoch + 1
            if self._improves(record):
                self.state.best_score = record.get(self.criterion, math.nan)
                self.state.best_epoch = epoch + 1
                if dist.is_main():
                    self.run.save_weights("best", self.model)
            if self.config.schedule.snapshots and epoch + 1 in self.config.cycle_boundaries() and dist.is_main():
                self.run.save_weights(f"snapshot_{epoch + 1}", self.model)
            self.save()
            epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_clean_acc']:.3f}",
                               rob=f"{record['train_robust_acc']:.3f}", val_rob=f"{record['val_robust_acc']:.3f}")
        return self._finish()

    def conclude_diverged(self, message: str) -> dict[str, Any]:
        """Finish a run that :class:`TrainingDiverged` stopped, as if its saved epochs were all it had: the
        best of them (selected as usual; the initial weights when none finished) is tested and the summary
        records ``diverged`` (the error's line). For comparisons in which divergence is an outcome (the
        learning-rate sweeps of ``advland reproduce``); ``advland train`` itself stops with the error."""
        from .run import load_weights

        if self.run.state_path.exists():
            self.restore()
        else:
            self.model.load_state_dict(load_weights(self.run.weights_path("init")))
            if dist.is_main():
                self.run.save_weights("best", self.model)
        return self._finish(diverged=message)

    def _finish(self, **extra: Any) -> dict[str, Any]:
        """Test, write summary.json (with ``extra`` entries) and call the callbacks' ``on_train_end``."""
        dist.barrier()  # every weight file is written before any process reads one
        if self.state.history and dist.is_main():
            plot_training_curves(self.state.history, self.run.path / "curves.png")
        summary = self.test() | extra
        if self.world_size > 1:
            summary["world_size"] = self.world_size
        if dist.is_main():
            self.run.write_json("summary.json", summary)
            for callback in self.callbacks:
                if hasattr(callback, "on_train_end"):
                    callback.on_train_end(self, summary)
        dist.barrier()
        return summary

    def _improves(self, record: dict[str, Any]) -> bool:
        """Whether this epoch's weights become ``best`` under the run's selection criterion."""
        if self.criterion == "last_epoch" or self.state.best_epoch < 0:
            return True
        return record[self.criterion] > self.state.best_score

    def test(self) -> dict[str, Any]:
        """Test clean and PGD accuracy of the best (by validation) and the last weights, and of the snapshot ensemble
        (each ``*_acc`` followed by its Clopper–Pearson 95 % interval ``*_acc_ci``)."""
        from .run import load_weights

        threat = eval_threat(self.threat.norm, self.threat.eps, self.config.eval.steps, self.config.eval.restarts)
        x, y = self.data.x_test[: self.config.eval.test_n], self.data.y_test[: self.config.eval.test_n]
        last = {k: v.clone() for k, v in self.model.state_dict().items()}
        summary: dict[str, Any] = {
            "epochs": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "selected_on": self.criterion,
            "best_score": self.state.best_score,
            "norm": self.threat.norm,
            "eps": self.threat.eps,
            "test_attack": f"pgd{threat.steps}",
            "n_test": len(y),
            "train_seconds": sum(r["seconds"] for r in self.state.history),
            "compile_seconds": self.accel.compile_seconds,
        }
        if self.state.extensions:
            summary["extensions"] = self.state.extensions
        best = load_weights(self.run.weights_path("best"))
        self.model.load_state_dict(best)
        tested = self._test_model(self.model, x, y, threat, "")
        summary.update(tested)
        self.model.load_state_dict(last)
        # the last epoch was the best: the same seeded test would repeat itself. Rank 0 decides for every process
        # (BatchNorm buffers differ between DDP processes, and the test's collectives need them all).
        if dist.broadcast_object(_same_weights(best, last)):
            summary.update({f"last_{k}": v for k, v in tested.items()})
        else:
            summary.update(self._test_model(self.model, x, y, threat, "last_"))
        snapshots = self.run.snapshot_paths()
        if snapshots:
            summary["n_snapshots"] = len(snapshots)
            summary.update(self._test_model(self._snapshot_ensemble(snapshots), x, y, threat, "ensemble_"))
        return with_intervals(summary, len(y))  # every test accuracy with its exact 95 % interval (n_test examples)

    def _test_model(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel,
                    prefix: str) -> dict[str, float]:
        model.eval()
        torch.manual_seed(self.config.seed + 1_000_003 * self.rank)
        clean, robust = self._accuracies(model, x, y, threat)
        return {f"{prefix}test_clean_acc": clean, f"{prefix}test_robust_acc": robust}

    def _snapshot_ensemble(self, paths: list[Path]) -> SnapshotEnsemble:
        """The cycle-end snapshots as copies of the trained model (works for user models too)."""
        from .run import load_weights

        members = []
        for path in paths:
            member = copy.deepcopy(self.model)
            member.load_state_dict(load_weights(path))
            members.append(member)
        return SnapshotEnsemble(members)


def _detached(tensor: torch.Tensor | None) -> torch.Tensor | None:
    return None if tensor is None else tensor.detach()


def _training_modes(model: nn.Module, forward: nn.Module) -> list[tuple[nn.Module, bool]]:
    """Each module's training flag as the model was handed over (a root in eval mode: all in train mode),
    for every module of the training forward (its wrappers in train mode)."""
    own = {module: module.training or not model.training for module in model.modules()}
    return [(module, own.get(module, True)) for module in forward.modules()]


def _set_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for module, flag in modes:
        module.training = flag


def train(config: Config, **kwargs: Any) -> dict[str, Any]:
    """Train under ``config`` (see :class:`Trainer` for the keyword arguments); return the summary."""
    return Trainer(config, **kwargs).fit()


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same tensors (same keys, equal values)."""
    return a.keys() == b.keys() and all(torch.equal(a[k].to(b[k].device), b[k]) for k in a)
