"""A training whose loss or weights stop being finite stops with one line before the bad epoch is saved;
the run keeps its last good epoch, resumes from it, and can be concluded with it."""

from __future__ import annotations

import math

import pytest
import torch

from advland.cli import main
from advland.load import load
from advland.run import Run
from advland.train import Trainer
from helpers import FAST, one_line_error, short_config


def test_exploding_learning_rate_stops_with_one_line(tmp_path, capsys):
    argv = ["train", "digits/at", "optimizer.lr=1e9", "epochs=3", f"out_dir={tmp_path}", "name=nan",
            *FAST, "--no-progress"]
    assert main(argv) == 2
    one_line_error(capsys, "training diverged", "at epoch 1, batch", "optimizer.lr=1e+09", "lower the learning rate")
    run = tmp_path / "nan"
    assert not (run / "checkpoints" / "state.pt").exists() and not (run / "metrics.jsonl").exists()
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "init.safetensors").exists()


class PoisonDataAtEpoch:
    """Makes every training input NaN after epoch ``epoch`` (the next epoch's first loss is NaN)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == self.epoch:
            trainer.data.x_train[:] = float("nan")


def test_nan_epoch_is_never_saved_and_the_run_resumes_bit_exactly(tmp_path):
    from advland.divergence import TrainingDiverged

    whole = Trainer(short_config(tmp_path, "name=whole"), progress=False)
    whole.fit()
    broken = Trainer(short_config(tmp_path, "name=cut"), callbacks=[PoisonDataAtEpoch(1)], progress=False)
    with pytest.raises(TrainingDiverged, match=r"not finite at epoch 2, batch 1 of \d+ .* keeps epoch 1"):
        broken.fit()
    run = Run(tmp_path / "cut")
    assert [r["epoch"] for r in run.metrics()] == [1]
    assert run.load_state()["epoch"] == 1
    resumed = Trainer(short_config(tmp_path, "name=cut", "resume=true"), progress=False)
    resumed.fit()
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_diverged_run_can_be_concluded_with_its_best_saved_epoch(tmp_path):
    """reproduce's learning-rate sweeps: divergence is an outcome; the run is tested as it stood before it."""
    from advland.divergence import TrainingDiverged

    trainer = Trainer(short_config(tmp_path, "name=cut"), callbacks=[PoisonDataAtEpoch(1)], progress=False)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    summary = trainer.conclude_diverged(str(error.value))
    assert summary["diverged"].startswith("training diverged") and summary["epochs"] == 1
    assert summary["best_epoch"] == 1 and math.isfinite(summary["test_robust_acc"])
    assert Run(tmp_path / "cut").summary() == summary
    assert all(torch.isfinite(p).all() for p in load(tmp_path / "cut", "best").parameters())

    first = Trainer(short_config(tmp_path, "name=none"), progress=False)
    first.data.x_train[:] = float("nan")  # the first epoch diverges: only the initial weights exist
    with pytest.raises(TrainingDiverged) as error:
        first.fit()
    summary = first.conclude_diverged(str(error.value))
    assert summary["epochs"] == 0 and "has no finished epoch" in summary["diverged"]
    init = load(tmp_path / "none", "init").state_dict()
    assert all(torch.equal(init[k], v) for k, v in load(tmp_path / "none", "best").state_dict().items())


class OverflowOnLastStep(Trainer):
    """A training step whose update overflows the weights on the last minibatch of epoch 2 (finite loss)."""

    def train_step(self, x, y, threat, epoch=0):
        step = super().train_step(x, y, threat, epoch)
        if epoch == 1 and self.watch.steps == len(list(self.batches(epoch))) - 1:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return step


def test_non_finite_weights_after_an_epoch_are_not_saved(tmp_path):
    from advland.divergence import TrainingDiverged

    trainer = OverflowOnLastStep(short_config(tmp_path, "name=inf"), progress=False)
    with pytest.raises(TrainingDiverged, match="weights are not finite after epoch 2"):
        trainer.fit()
    state = Run(tmp_path / "inf").load_state()
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for t in state["model"].values())
