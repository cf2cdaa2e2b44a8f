"""The trainer: run directory contents, exact resume, checkpoint selection, atomic writes."""

import importlib
import json

import pytest
import torch

from advland.config import load_config
from advland.errors import AdvlandError
from advland.load import load
from advland.run import Run, atomic_write
from advland.train import Trainer

FAST = ["epochs=3", "data.batch_size=256", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2", "eval.test_n=100"]


class Crash(Exception):
    """Stands for a crash in the middle of training."""


class CrashAtEpoch:
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == self.epoch:
            raise Crash


def _config(tmp_path, *extra):
    return load_config("digits/at", [f"out_dir={tmp_path}", *FAST, *extra])


def test_run_directory_contents(tmp_path):
    summary = Trainer(_config(tmp_path, "name=full"), progress=False).fit()
    run = Run(tmp_path / "full")
    records = run.metrics()
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key in ("epoch", "lr", "eps", "train_loss", "train_clean_acc", "train_robust_acc", "val_clean_acc",
                "val_robust_acc", "seconds"):
        assert key in records[0]
    assert json.loads(run.summary_path.read_text()) == summary
    assert {"test_clean_acc", "test_robust_acc"} <= set(summary)
    best = max(records, key=lambda r: r["val_robust_acc"])
    assert summary["best_epoch"] == best["epoch"]
    for name in ("config.yaml", "curves.png", "checkpoints/best.safetensors", "checkpoints/last.safetensors"):
        assert (run.path / name).exists()
    model = load(run.path, "last")
    assert isinstance(model, torch.nn.Module) and not model.training


def test_resume_is_bit_exact(tmp_path):
    whole = Trainer(_config(tmp_path, "name=whole"), progress=False)
    whole.fit()
    interrupted = Trainer(_config(tmp_path, "name=cut"), callbacks=[CrashAtEpoch(3)], progress=False)
    with pytest.raises(Crash):
        interrupted.fit()
    assert len(Run(tmp_path / "cut").metrics()) == 2
    resumed = Trainer(_config(tmp_path, "name=cut", "resume=true"), progress=False)
    resumed.fit()
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(Run(tmp_path / "cut").metrics()) == strip(Run(tmp_path / "whole").metrics())


def test_existing_run_is_not_overwritten_silently(tmp_path):
    Trainer(_config(tmp_path, "name=r", "epochs=1"), progress=False).fit()
    with pytest.raises(AdvlandError, match="already exists; pass --resume"):
        Trainer(_config(tmp_path, "name=r", "epochs=1"), progress=False)
    with pytest.raises(AdvlandError, match="cannot resume"):
        Trainer(_config(tmp_path, "name=other", "resume=true"), progress=False)


def test_clean_training_goes_through_the_same_path(tmp_path):
    summary = Trainer(_config(tmp_path, "name=clean", "objective=clean"), progress=False).fit()
    assert summary["test_clean_acc"] > 0.3  # chance is 0.1


def test_atomic_write_keeps_previous_file_on_crash(tmp_path):
    path = tmp_path / "state.pt"
    path.write_text("old")

    def broken(tmp):
        with open(tmp, "w") as handle:
            handle.write("half")
        raise RuntimeError("crash during write")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_text() == "old"
    assert list(tmp_path.iterdir()) == [path]


def test_crop_flip_moves_pixels_but_keeps_shape_and_range():
    from advland.augment import random_crop_flip

    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    out = random_crop_flip(x, padding=2)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, x)
    same = random_crop_flip(x, padding=0)  # no padding: only flips
    assert all(torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(same, x))


@pytest.mark.parametrize("epochs, best_is_last", [(1, True), (3, False)])
def test_last_weights_are_tested_again_only_when_they_differ_from_the_best(tmp_path, monkeypatch, epochs, best_is_last):
    trainer = Trainer(_config(tmp_path, f"epochs={epochs}"), progress=False)
    if not best_is_last:  # make epoch 1 the best so that the last weights differ
        scores = iter([0.9, 0.1, 0.2])
        monkeypatch.setattr(trainer, "validate", lambda: {"val_clean_acc": 0.5, "val_robust_acc": next(scores)})
    calls = []
    evaluation = importlib.import_module("advland.evaluate")  # the module (advland.evaluate is also a function)
    real = evaluation.accuracies
    monkeypatch.setattr(evaluation, "accuracies", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    summary = trainer.fit()
    assert (summary["best_epoch"] == epochs) == best_is_last
    assert len(calls) == (1 if best_is_last else 2)  # the test of best, then of last only when they differ
    assert {"last_test_clean_acc", "last_test_robust_acc"} <= set(summary)
    if best_is_last:
        assert summary["last_test_robust_acc"] == summary["test_robust_acc"]
