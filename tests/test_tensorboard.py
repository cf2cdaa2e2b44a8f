"""log.tensorboard=true: every per-epoch number of metrics.jsonl, the test numbers and the figures in TensorBoard."""

from __future__ import annotations

import math
import sys

import pytest

from advland.config import load_config
from advland.errors import AdvlandError
from advland.run import Run
from advland.train import Trainer

pytest.importorskip("tensorboard")

FAST = ["epochs=2", "threat.steps=1", "eval.steps=1", "eval.test_n=20", "data.batch_size=128", "track.n=32"]


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_every_metric_and_tracked_value_becomes_a_scalar(tmp_path):
    config = load_config("digits/at", [f"out_dir={tmp_path}", "name=tb", "log.tensorboard=true", "track.grad_norm=true",
                                       "track.hessian_every=1", *FAST])
    summary = Trainer(config, progress=False).fit()
    run = Run(tmp_path / "tb")
    events = _events(run.path / "tensorboard")
    tags = set(events.Tags()["scalars"])
    for record in run.metrics():
        for key, value in record.items():
            if key == "epoch":
                continue
            values = value if isinstance(value, list) else [value]
            for i, v in enumerate(values):
                tag = f"{key}/{i}" if isinstance(value, list) else key
                logged = {e.step: e.value for e in events.Scalars(tag)}
                assert math.isclose(logged[record["epoch"]], v, rel_tol=1e-6), tag
    assert {"grad_norm", "hessian_top_eigs/0", "seconds", "train_loss", "val_robust_acc"} <= tags
    assert math.isclose(events.Scalars("test/test_robust_acc")[0].value, summary["test_robust_acc"], rel_tol=1e-6)
    images = set(events.Tags()["images"])
    assert {"curves", "landscape/tracked"} <= images


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    config = load_config("digits/at", [f"out_dir={tmp_path}", "log.tensorboard=true", *FAST])
    with pytest.raises(AdvlandError) as info:
        Trainer(config, progress=False)
    assert "pip install 'advland[tensorboard]'" in str(info.value) and "\n" not in str(info.value)
