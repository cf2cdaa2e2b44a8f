"""Shared fixtures: small runs trained once per session on digits, and copies of one to damage."""

from __future__ import annotations

import os
import shutil

import pytest
import torch

from advland.config import load_config
from advland.train import Trainer
from helpers import short_config

# One intra-op thread per test process: on 2 cores shared with other work, two spinning OpenMP
# threads per process made a 6-epoch digits training 10x slower (35 s -> 372 s, measured).
# CI runs the suite with pytest-xdist, one process per core.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"  # and for the advland processes that tests start


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` run when a CUDA GPU is visible and are skipped otherwise."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (none visible)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits_at_run(tmp_path_factory):
    """A PGD-AT cnn_small trained for 6 epochs on digits (a few seconds); returns (trainer, summary)."""
    out = tmp_path_factory.mktemp("runs")
    config = load_config("digits/at", [f"out_dir={out}", "epochs=6", "name=at6"])
    trainer = Trainer(config, progress=False)
    summary = trainer.fit()
    return trainer, summary


@pytest.fixture
def tiny_linear():
    """A fixed linear classifier on 4 features, 3 classes, for hand-computed checks."""
    model = torch.nn.Linear(4, 3)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, -1.0, 1.0], [-1.0, 0.0, 1.0, 0.5]]))
        model.bias.copy_(torch.tensor([0.1, -0.2, 0.0]))
    return model


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A 2-epoch PGD-AT run on digits (a few seconds); tests that change it work on :func:`run_copy`."""
    out = tmp_path_factory.mktemp("faults")
    Trainer(short_config(out, "name=base"), progress=False).fit()
    return out / "base"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    """A copy of :func:`finished_run` to damage."""
    copy = tmp_path / "base"
    shutil.copytree(finished_run, copy)
    return copy
