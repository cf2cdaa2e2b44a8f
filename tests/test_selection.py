"""Which epoch becomes the checkpoint ``best``: robust validation accuracy for adversarial training, clean
for clean training, the last epoch without a validation split."""

from __future__ import annotations

from advland.run import Run
from advland.train import Trainer
from helpers import short_config, strict_json


def test_without_validation_the_last_epoch_is_selected(tmp_path, capsys):
    summary = Trainer(short_config(tmp_path, "name=noval", "data.val_fraction=0", "epochs=3"), progress=False).fit()
    run = Run(tmp_path / "noval")
    assert summary["selected_on"] == "last_epoch" and summary["best_epoch"] == 3
    assert summary["test_clean_acc"] == summary["last_test_clean_acc"]
    assert (run.checkpoint_dir / "best.safetensors").read_bytes() == (run.checkpoint_dir / "last.safetensors").read_bytes()
    for line in run.metrics_path.read_text().splitlines():
        assert strict_json(line)["val_robust_acc"] is None  # null: no validation split
    assert summary["best_score"] is None or summary["best_score"] != summary["best_score"]


def test_clean_training_is_selected_on_clean_validation_accuracy(tmp_path):
    summary = Trainer(short_config(tmp_path, "name=clean", "objective=clean", "epochs=3"), progress=False).fit()
    records = Run(tmp_path / "clean").metrics()
    assert summary["selected_on"] == "val_clean_acc"
    best = max(records, key=lambda r: r["val_clean_acc"])  # first maximum, as the trainer keeps the first
    assert summary["best_epoch"] == best["epoch"] and summary["best_score"] == best["val_clean_acc"]


def test_adversarial_training_is_selected_on_robust_validation_accuracy(finished_run):
    summary = Run(finished_run).summary()
    records = Run(finished_run).metrics()
    assert summary["selected_on"] == "val_robust_acc"
    assert summary["best_epoch"] == max(records, key=lambda r: r["val_robust_acc"])["epoch"]
