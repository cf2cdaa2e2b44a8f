"""The training loop: data -> objective -> (weight perturbation) -> optimizer step -> validation -> callbacks.

One training step crafts adversarial inputs on the current weights, optionally moves the weights to
w + v (AWP, SAM: :mod:`advland.perturb`), steps the optimizer and restores. Every epoch logs
``grad_evals``: the forward-backward passes over a minibatch it took (attack steps, training losses and
weight-ascent steps), so that the methods' costs compare. Precision, compilation and memory format
(:mod:`advland.accel`) live in the *training forward* ``self.forward``, a module sharing the model's
parameters that the step, the training attack and the weight perturbation call; validation and the
test call the plain model at ``eval.precision``. Epoch statistics stay on the device (:mod:`advland.meter`).

Around the loop: the process strategy (:mod:`advland.strategy`), checkpoints, selection and resume
(:mod:`advland.checkpoint`), progress bars, curve plots, tracking and loggers (:mod:`advland.callbacks`),
EntropySGD's epoch (:func:`advland.optim.entropy_sgd_epoch`), the final test (:func:`advland.evaluate.test_run`),
each module's own training flag (:mod:`advland.modes`). An epoch whose training loss or weights stop
being finite raises :class:`~advland.divergence.TrainingDiverged` before anything of it is saved.
"""

from __future__ import annotations

import math
import time
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from . import callbacks as cbs
from .accel import Accel
from .attacks import bn_mode
from .augment import random_crop_flip
from .build import (DataSplits, build_batch_source, build_data, build_eps_schedule, build_lr_schedule, build_model,
                    build_objective, build_optimizer, build_perturbation, build_threat, check_training_data,
                    resident_training_data, resolve_device)
from .checkpoint import Checkpointer, TrainState, selection_criterion
from .config import Config
from .divergence import NonFiniteWatch, check_finite
from .evaluate import accuracies, eval_threat, test_run
from .load import with_user_model
from .meter import EpochMeter, StepResult
from .modes import TrainingModes
from .optim import EntropySGD, entropy_sgd_epoch
from .run import Run
from .seeds import seed_everything
from .strategy import RANK_SEED_STRIDE, create_strategy
from .threat import ThreatModel

Callback = cbs.Callback  # the protocol of every hook, importable from here as before


class Trainer:
    """Adversarial training of ``model`` under ``config``, writing into a :class:`Run` directory.

    Args:
        model: a user model taking inputs in [0, 1] (default: the config's registered model).
        model_factory: ``package.module:factory`` that builds ``model`` from ``model_kwargs`` (and ``input_shape``/
            ``num_classes`` when it takes them), recorded so that ``advland.load`` and every command rebuild it;
            without it a run of a user model records only the model's class (loading it asks for ``--model``).
        data: user data splits (default: the config's dataset). run: the run directory (default: out_dir/name).
        callbacks: extra hooks (:class:`advland.callbacks.Callback`, or any object defining some of its hooks),
            run on the main process after those the config's ``track`` and ``log`` sections ask for.
        extend: when resuming, allow ``config.epochs`` to exceed the run's (recorded as an extension).
    """

    def __init__(self, config: Config, *, model: nn.Module | None = None, model_factory: str | None = None,
                 model_kwargs: dict[str, Any] | None = None, data: DataSplits | None = None, run: Run | None = None,
                 callbacks: Sequence[Any] = (), progress: bool = True, extend: bool = False):
        self.config = config = with_user_model(config, model, model_factory, model_kwargs)
        seed_everything(config.seed, config.deterministic)
        self.strategy = create_strategy(resolve_device(config.device))
        self.device = self.strategy.device
        self.strategy.check(config)
        self.data = resident_training_data(data if data is not None else build_data(config), config.data.on_device,
                                           self.device)
        self.source = build_batch_source(config)
        self.model = (model if model is not None else build_model(config)).to(self.device)
        self.objective = build_objective(config)
        self.threat = build_threat(config)
        self.accel = Accel.from_config(config, self.device)
        self.model = self.strategy.prepare(self.model, config)
        self.forward = self.accel.prepare(self.model)
        self.loss_fn = self.strategy.loss_fn(self.forward, self.objective, config)
        self.train_modes = TrainingModes(self.model, self.forward)
        self.optimizer = build_optimizer(config, self.model.parameters())
        self.epoch_driver = entropy_sgd_epoch if isinstance(self.optimizer, EntropySGD) else minibatch_epoch
        self.perturbation = build_perturbation(config)
        self.strategy.share_perturbation(self.perturbation)
        self.lr_schedule = build_lr_schedule(config)
        self.eps_schedule = build_eps_schedule(config)
        self.run = run if run is not None else self.strategy.prepare_run(config)
        self.criterion = selection_criterion(config, len(self.data.y_val))
        self.checkpoint = Checkpointer(self.run, config, self.strategy, self.criterion, extend)
        user = [*map(cbs.as_callback, callbacks), *cbs.from_config(config)]
        self.callbacks: list[cbs.Callback] = [self.checkpoint, *cbs.on_every_process(config),
                                              *self.strategy.main_only([*user, cbs.TrainingCurves()]),
                                              cbs.ProgressBars(progress and self.strategy.is_main)]
        self.state = TrainState()
        self.watch = NonFiniteWatch()
        check_training_data(config, self.data, self.accel.fixed_shapes)

    def fit(self) -> dict[str, Any]:
        """Train for ``config.epochs`` epochs (continuing a saved state when resuming); return the summary."""
        for callback in self.callbacks:
            callback.on_fit_start(self)  # the checkpointer first: a resume restores the state here
        if self.state.epoch < self.config.epochs:  # compile (if asked) before the first timed epoch
            self.accel.warm_up(*self.examples(next(self.batches(self.state.epoch))), self.config.threat.bn_mode)
        for epoch in range(self.state.epoch, self.config.epochs):
            start = time.perf_counter()
            record = {"epoch": epoch + 1, **self.train_epoch(epoch), **self.validate()}
            for callback in self.callbacks:
                callback.on_epoch_end(self, epoch + 1, record)
            record["seconds"] = time.perf_counter() - start
            self.state.history.append(record)
            self.state.epoch = epoch + 1
            for callback in self.callbacks:
                callback.on_epoch_done(self, epoch + 1, record)  # the checkpointer selects and saves here
        return self.finish()

    def train_epoch(self, epoch: int) -> dict[str, Any]:
        """One epoch of training; raises :class:`TrainingDiverged` when a loss or the weights are not finite."""
        batches = list(self.batches(epoch))
        meter = EpochMeter(self.device)
        self.train_modes.restore()
        self.watch.start_epoch()
        extra = self.epoch_driver(self, epoch, batches, meter)
        loss, clean, robust, norms, first_bad, weights_finite = meter.totals(self.watch.summary(self.model.parameters(),
                                                                                               self.device))
        check_finite(epoch + 1, self.strategy.first_bad(int(first_bad)), weights_finite == 1, len(batches),
                     self.config.optimizer.lr, self.state.epoch, str(self.run.path))  # on every process
        loss, clean, robust, n = self.strategy.sum(loss, clean, robust, meter.n)  # grad_evals, ||v||: per process
        n = max(n, 1)
        t_end = self.progress_at(epoch, len(batches) - 1, len(batches))
        record = {"lr": self.optimizer.param_groups[0]["lr"], "eps": self.threat_at(t_end).eps, "train_loss": loss / n,
                  "train_clean_acc": clean / n, "train_robust_acc": robust / n, "grad_evals": meter.grad_evals}
        if self.perturbation is not None:
            record["perturb_norm"] = norms / max(meter.perturb_steps, 1)
        return record | extra

    def step(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, meter: EpochMeter, epoch: int = 0) -> StepResult:
        """One step of the loop: :meth:`train_step` on (x, y), its statistics added to ``meter``."""
        result = self.train_step(x, y, threat, epoch)
        self.measure(meter, result, x, y)
        return result

    def train_step(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, epoch: int = 0) -> StepResult:
        """Craft adversarial inputs on the current weights, then take one optimizer step on the objective.

        With a weight perturbation the step is taken at w + v (v from the same adversarial inputs)
        and v is subtracted afterwards.
        """
        x_adv = self.craft(x, y, threat)
        perturb_norm = self._perturb_weights(x, x_adv, y, epoch)
        out = self._backward(x, x_adv, y)
        self.accel.scaler.step(self.optimizer)
        self.accel.scaler.update()
        ascent = 0
        if perturb_norm is not None:
            self.perturbation.restore()
            ascent = self.perturbation.steps
        return StepResult.of(out, self._attack_cost(threat) + 1 + ascent, perturb_norm)

    def gradient(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> StepResult:
        """Attack at the current weights and backpropagate the objective, without a step (EntropySGD's closure)."""
        out = self._backward(x, self.craft(x, y, threat), y)
        return StepResult.of(out, self._attack_cost(threat) + 1)

    def craft(self, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel) -> torch.Tensor:
        """Adversarial inputs crafted on the current weights; every module's mode flag is restored after."""
        return self.objective.perturb(self.forward, x, y, threat, self.config.threat.bn_mode, self.accel.attack_scale)

    def measure(self, meter: EpochMeter, step: StepResult, x: torch.Tensor, y: torch.Tensor) -> None:
        """Add the step to the epoch's sums; the clean accuracy comes from the objective's clean logits
        where it has them (TRADES, MART), else from one no-grad forward in eval mode after the step (AT)."""
        self.watch.observe(step.loss)
        clean_logits = step.logits_clean
        if clean_logits is None:
            with torch.no_grad(), bn_mode(self.forward, "eval"):
                clean_logits = self.forward(x)
        meter.add(step, y, clean_logits)

    def validate(self, model: nn.Module | None = None) -> dict[str, float]:
        """Clean and PGD accuracy of ``model`` (default: the trained one) on validation at the target eps."""
        model = self.model if model is None else model
        x, y = self.data.x_val, self.data.y_val
        if len(y) == 0:  # no validation split: NaN here, null in metrics.jsonl
            return {"val_clean_acc": math.nan, "val_robust_acc": math.nan}
        threat = eval_threat(self.threat.norm, self.threat.eps, self.config.eval.val_steps or max(self.threat.steps, 1))
        with bn_mode(model, "eval"):
            clean, robust = accuracies(model, x, y, threat, device=self.device,
                                       precision=self.config.eval.precision, batch_size=self.config.data.eval_batch_size)
        return {"val_clean_acc": clean, "val_robust_acc": robust}

    def finish(self, **extra: Any) -> dict[str, Any]:
        """Test, write summary.json (with ``extra`` entries) and call the callbacks' end hooks."""
        self.strategy.barrier()  # every weight file is written before any process reads one
        for callback in self.callbacks:
            callback.on_fit_end(self)
        summary = self.test() | extra | self.strategy.summary()
        if self.strategy.is_main:
            self.run.write_json("summary.json", summary)
        for callback in self.callbacks:
            callback.on_train_end(self, summary)
        self.strategy.barrier()
        return summary

    def conclude_diverged(self, message: str) -> dict[str, Any]:
        """Finish a run that :class:`TrainingDiverged` stopped, as if its saved epochs were all it had: the
        best of them (selected as usual; the initial weights when none finished) is tested and the summary
        records ``diverged`` (the error's line). For comparisons in which divergence is an outcome (the
        learning-rate sweeps of ``advland reproduce``); ``advland train`` itself stops with the error."""
        self.checkpoint.rewind(self)
        return self.finish(diverged=message)

    def test(self) -> dict[str, Any]:
        """The summary: what was trained and how ``best`` was selected, then :func:`advland.evaluate.test_run`."""
        threat = eval_threat(self.threat.norm, self.threat.eps, self.config.eval.steps, self.config.eval.restarts)
        x, y = self.data.x_test[: self.config.eval.test_n], self.data.y_test[: self.config.eval.test_n]
        summary = {"epochs": self.state.epoch, "best_epoch": self.state.best_epoch, "selected_on": self.criterion,
                   "best_score": self.state.best_score, "best_weights": self.state.best_weights,  # raw or ema
                   "norm": self.threat.norm, "eps": self.threat.eps, "test_attack": f"pgd{threat.steps}",
                   "n_test": len(y), "extra_data": self.source.record,  # data.extra's path, sizes, SHA-256 (or null)
                   "train_seconds": sum(r["seconds"] for r in self.state.history),
                   "compile_seconds": self.accel.compile_seconds}
        extensions = {"extensions": self.state.extensions} if self.state.extensions else {}
        return summary | extensions | test_run(self.model, self.run, x, y, threat, device=self.device,
                                  precision=self.config.eval.precision, batch_size=self.config.data.eval_batch_size,
                                  seed=self.config.seed + RANK_SEED_STRIDE * self.strategy.rank)

    def progress_at(self, epoch: int, batch: int, n_batches: int) -> float:
        """Training progress t in epochs at which schedules are evaluated."""
        return float(epoch) if self.config.schedule.per == "epoch" else epoch + batch / n_batches

    def threat_at(self, t: float) -> ThreatModel:
        """The training threat model at progress t (step size scales with eps)."""
        return self.threat.with_eps(self.eps_schedule(t))

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def batches(self, epoch: int) -> Iterator[torch.Tensor]:
        """This process's index batches of epoch ``epoch``, in the order of the batch source (a permutation
        seeded by (seed, epoch), :mod:`advland.data.batches`). With fixed shapes (a compiled model) the last
        partial batch is dropped."""
        n, size = len(self.data.y_train), self.config.data.batch_size
        order = self.source.order(epoch, n).to(self.data.x_train.device)  # index where the data lives
        return self.strategy.shard(order, size, size if self.accel.fixed_shapes else 0)

    def examples(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training examples at indices ``idx`` (extra data too with ``data.extra``), on the device."""
        x, y = self.source.examples(self.data.x_train, self.data.y_train, idx)
        return x.to(self.device), y.to(self.device)

    def batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training minibatch at indices ``idx`` on the device, augmented if the config says so."""
        x, y = self.examples(idx)
        return (random_crop_flip(x) if self.config.data.augment == "crop_flip" else x), y

    def epoch_start(self, epoch: int, n_steps: int) -> None:  # called by the epoch drivers
        for callback in self.callbacks:
            callback.on_epoch_start(self, epoch + 1, n_steps)

    def step_end(self) -> None:
        for callback in self.callbacks:
            callback.on_step_end(self)

    def _attack_cost(self, threat: ThreatModel) -> int:
        """Forward-backward passes PGD takes on one minibatch."""
        return threat.steps * threat.restarts if threat.active and self.objective.name != "clean" else 0

    def _perturb_weights(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor, epoch: int) -> torch.Tensor | None:
        """Move the weights to w + v ascending the objective's loss (after the warm-up); return ||v|| or None.

        The ascent direction is normalized, so the loss is scaled like the attack's objective (fp16)."""
        if self.perturbation is None or epoch < self.config.perturb.warmup_epochs:
            return None
        scale = self.accel.attack_scale
        return self.perturbation.perturb(self.model, lambda: self.objective.loss(self.forward, x, x_adv, y).loss * scale)

    def _backward(self, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor):
        self.optimizer.zero_grad(set_to_none=True)
        out = self.loss_fn(x, x_adv, y)
        self.accel.scaler.scale(out.loss).backward()
        return out


def minibatch_epoch(trainer: Trainer, epoch: int, batches: list[torch.Tensor], meter: EpochMeter) -> dict[str, Any]:
    """One optimizer step per minibatch (SGD, Adam), at the schedules' values of that point of the epoch."""
    trainer.epoch_start(epoch, len(batches))
    for i, idx in enumerate(batches):
        x, y = trainer.batch(idx)
        t = trainer.progress_at(epoch, i, len(batches))
        trainer.set_lr(trainer.lr_schedule(t))
        trainer.step(x, y, trainer.threat_at(t), meter, epoch)
        trainer.step_end()
    return {}


def train(config: Config, **kwargs: Any) -> dict[str, Any]:
    """Train under ``config`` (see :class:`Trainer` for the keyword arguments); return the summary."""
    return Trainer(config, **kwargs).fit()
