"""Sweeps: a base recipe changed under finished runs is refused; a relative base resolves against the sweep
file's folder."""

from __future__ import annotations

import shutil

import pytest

from advland.config import load_config
from advland.recipes import path as recipe_path
from advland.train import Trainer


def test_sweep_refuses_a_base_changed_under_its_runs(tmp_path):
    import yaml

    from advland.errors import AdvlandError
    from advland.sweep import expand, load_sweep, sweep

    base = tmp_path / "base.yaml"
    shutil.copy(recipe_path("digits/at"), base)
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump({"base": "base.yaml", "out_dir": str(tmp_path / "out"), "grid": {"seed": [0]},
                                         "overrides": {"epochs": 1, "data.batch_size": 256, "threat.steps": 1}}))
    trial = expand(load_sweep(spec_path))[0]
    Trainer(load_config(base, trial.overrides), progress=False).fit()  # the sweep's run, finished
    base.write_text(base.read_text().replace("lr: 0.05", "lr: 0.2"))
    with pytest.raises(AdvlandError, match=r"run .*seed-0 was trained under another config .*optimizer.lr 0.05 -> 0.2"):
        sweep(spec_path, progress=False)


def test_sweep_base_resolves_against_the_sweep_files_folder(tmp_path, monkeypatch):
    from advland.sweep import expand, load_sweep

    (tmp_path / "sweeps").mkdir()
    shutil.copy(recipe_path("digits/at"), tmp_path / "at.yaml")
    (tmp_path / "sweeps" / "s.yaml").write_text("base: ../at.yaml\ngrid: {seed: [0, 1]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_sweep(tmp_path / "sweeps" / "s.yaml")
    assert len(expand(spec)) == 2 and spec.base == str(tmp_path / "sweeps" / "../at.yaml")
    assert len(expand(load_sweep("sweeps/digits_lr"))) == 8  # the shipped sweep runs from any directory
