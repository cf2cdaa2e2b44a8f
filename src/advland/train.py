"""The training loop: data -> objective -> optimizer step -> validation -> checkpoint -> callbacks.

The trainer owns one run directory. After every epoch it writes, atomically, the full training
state (weights, optimizer, RNG, metric history) so that ``resume`` continues to exactly the
result of an uninterrupted run: the data order of epoch e is drawn from a generator seeded by
(seed, e), and the global RNG that drives random attack starts is saved and restored.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from .attacks import bn_mode
from .augment import random_crop_flip
from .build import (
    DataSplits,
    build_callbacks,
    build_data,
    build_eps_schedule,
    build_lr_schedule,
    build_model,
    build_objective,
    build_optimizer,
    build_threat,
    resolve_device,
)
from .config import Config
from .errors import AdvlandError
from .evaluate import correct_under_attack, eval_threat, predict
from .plots.training import plot_training_curves
from .run import Run
from .threat import ThreatModel


class Callback(Protocol):
    """Hook called after each epoch's validation; may add entries to ``record`` (they land in metrics.jsonl)."""

    def on_epoch_end(self, trainer: "Trainer", epoch: int, record: dict[str, Any]) -> None: ...


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class StepResult:
    loss: float
    logits_adv: torch.Tensor


@dataclass
class TrainState:
    """What is carried from epoch to epoch (and saved for resume)."""

    epoch: int = 0
    """Number of finished epochs."""
    best_val_robust_acc: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Adversarial training of ``model`` under ``config``, writing into a :class:`Run` directory.

    Args:
        config: validated configuration.
        model: a user model taking inputs in [0, 1] (default: the config's registered model).
        data: user data splits (default: the config's dataset).
        run: the run directory (default: ``config.out_dir/config.name``).
        callbacks: extra per-epoch hooks; those the config's ``track`` section asks for are added.
        progress: show progress bars.
    """

    def __init__(
        self,
        config: Config,
        *,
        model: nn.Module | None = None,
        data: DataSplits | None = None,
        run: Run | None = None,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ):
        self.config = config
        seed_everything(config.seed, config.deterministic)
        self.device = resolve_device(config.device)
        self.data = data if data is not None else build_data(config)
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.objective = build_objective(config)
        self.threat = build_threat(config)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.lr_schedule = build_lr_schedule(config)
        self.eps_schedule = build_eps_schedule(config)
        self.run = run if run is not None else Run.for_config(config)
        self.callbacks = [*callbacks, *build_callbacks(config)]
        self.progress = progress
        self.state = TrainState()
        if config.data.augment == "crop_flip" and self.data.x_train.dim() != 4:
            raise AdvlandError("data.augment=crop_flip needs image data (N, C, H, W); use data.augment=none")

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
        """Index batches of epoch ``epoch``: a permutation drawn from a generator seeded by (seed, epoch)."""
        n = len(self.data.y_train)
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator)
        yield from order.split(self.config.data.batch_size)

    def train_step(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> StepResult:
        """Craft adversarial inputs on the current weights, then take one optimizer step on the objective."""
        x_adv = self.objective.perturb(self.model, x, y, threat, self.config.threat.bn_mode)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        out = self.objective.loss(self.model, x, x_adv, y)
        out.loss.backward()
        self.optimizer.step()
        return StepResult(out.loss.item(), out.logits_adv.detach())

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        n_batches = math.ceil(len(self.data.y_train) / self.config.data.batch_size)
        totals = {"loss": 0.0, "clean": 0, "robust": 0, "n": 0}
        lr = eps = 0.0
        bar = tqdm(self.batches(epoch), total=n_batches, desc=f"epoch {epoch + 1}", leave=False,
                   disable=not self.progress or n_batches < 20)
        for i, idx in enumerate(bar):
            x = self.data.x_train[idx].to(self.device)
            y = self.data.y_train[idx].to(self.device)
            if self.config.data.augment == "crop_flip":
                x = random_crop_flip(x)
            t = self.progress_at(epoch, i, n_batches)
            lr, threat = self.lr_schedule(t), self.threat_at(t)
            eps = threat.eps
            self.set_lr(lr)
            step = self.train_step(x, y, threat)
            with torch.no_grad(), bn_mode(self.model, "eval"):
                clean_pred = self.model(x).argmax(1)
            totals["loss"] += step.loss * len(y)
            totals["clean"] += (clean_pred == y).sum().item()
            totals["robust"] += (step.logits_adv.argmax(1) == y).sum().item()
            totals["n"] += len(y)
        n = max(totals["n"], 1)
        return {
            "lr": lr,
            "eps": eps,
            "train_loss": totals["loss"] / n,
            "train_clean_acc": totals["clean"] / n,
            "train_robust_acc": totals["robust"] / n,
        }

    def validate(self) -> dict[str, float]:
        """Clean and PGD accuracy on the validation split at the target eps (the checkpoint criterion)."""
        x, y = self.data.x_val, self.data.y_val
        if len(y) == 0:
            return {"val_clean_acc": math.nan, "val_robust_acc": math.nan}
        self.model.eval()
        steps = self.config.eval.val_steps or max(self.threat.steps, 1)
        threat = ThreatModel(self.threat.norm, self.threat.eps, self.threat.eps / 4, steps)
        batch = self.config.data.eval_batch_size
        clean = (predict(self.model, x, batch) == y).float().mean().item()
        robust = correct_under_attack(self.model, x, y, threat, batch_size=batch).float().mean().item()
        return {"val_clean_acc": clean, "val_robust_acc": robust}

    # ---------------------------------------------------------------- checkpoints
    def save(self) -> None:
        """Write the resume state, then the weight files, then metrics (each write is atomic)."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "epoch": self.state.epoch,
            "best_val_robust_acc": self.state.best_val_robust_acc,
            "best_epoch": self.state.best_epoch,
            "history": self.state.history,
        }
        self.run.save_state(state)
        self.run.save_weights("last", self.model)
        self.run.write_metrics(self.state.history)

    def restore(self) -> None:
        saved = self.run.load_state()
        self.model.load_state_dict(saved["model"])
        self.optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        self.state = TrainState(saved["epoch"], saved["best_val_robust_acc"], saved["best_epoch"], saved["history"])
        self.run.write_metrics(self.state.history)

    # ---------------------------------------------------------------- the loop
    def fit(self) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (continuing a saved state when resuming); return the summary."""
        if self.config.resume:
            self.restore()
        else:
            self.run.write_config(self.config)
            self.run.save_weights("init", self.model)
        epochs = tqdm(range(self.state.epoch, self.config.epochs), initial=self.state.epoch,
                      total=self.config.epochs, desc="train", disable=not self.progress)
        for epoch in epochs:
            start = time.perf_counter()
            record = {"epoch": epoch + 1, **self.train_epoch(epoch), **self.validate()}
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch + 1, record)
            record["seconds"] = time.perf_counter() - start
            self.state.history.append(record)
            self.state.epoch = epoch + 1
            if record["val_robust_acc"] > self.state.best_val_robust_acc or self.state.best_epoch < 0:
                self.state.best_val_robust_acc = record["val_robust_acc"]
                self.state.best_epoch = epoch + 1
                self.run.save_weights("best", self.model)
            self.save()
            epochs.set_postfix(loss=f"{record['train_loss']:.3f}", acc=f"{record['train_clean_acc']:.3f}",
                               rob=f"{record['train_robust_acc']:.3f}", val_rob=f"{record['val_robust_acc']:.3f}")
        if self.state.history:
            plot_training_curves(self.state.history, self.run.path / "curves.png")
        summary = self.test()
        self.run.write_json("summary.json", summary)
        return summary

    def test(self) -> dict[str, Any]:
        """Test clean and PGD accuracy of the best (by validation) and the last weights."""
        from .run import load_weights

        x, y = self.data.x_test, self.data.y_test
        if self.config.eval.test_n is not None:
            x, y = x[: self.config.eval.test_n], y[: self.config.eval.test_n]
        threat = eval_threat(self.threat.norm, self.threat.eps, self.config.eval.steps, self.config.eval.restarts)
        batch = self.config.data.eval_batch_size
        last = {k: v.clone() for k, v in self.model.state_dict().items()}
        summary: dict[str, Any] = {
            "epochs": self.state.epoch,
            "best_epoch": self.state.best_epoch,
            "best_val_robust_acc": self.state.best_val_robust_acc,
            "norm": self.threat.norm,
            "eps": self.threat.eps,
            "test_attack": f"pgd{threat.steps}",
            "n_test": len(y),
            "train_seconds": sum(r["seconds"] for r in self.state.history),
        }
        for prefix, which in (("", "best"), ("last_", "last")):
            if which == "best":
                self.model.load_state_dict(load_weights(self.run.weights_path("best")))
            else:
                self.model.load_state_dict(last)
            self.model.eval()
            torch.manual_seed(self.config.seed)
            summary[f"{prefix}test_clean_acc"] = (predict(self.model, x, batch) == y).float().mean().item()
            summary[f"{prefix}test_robust_acc"] = correct_under_attack(self.model, x, y, threat, batch_size=batch).float().mean().item()
        return summary


def train(config: Config, **kwargs: Any) -> dict[str, Any]:
    """Train under ``config`` (see :class:`Trainer` for the keyword arguments); return the summary."""
    return Trainer(config, **kwargs).fit()
