"""Sweeps: grid expansion, local and Ray execution, skip finished runs, resume interrupted ones, report failures."""

import csv

import pytest
import yaml

from advland.errors import AdvlandError
from advland.plots.sweep import plot_sweep
from advland.sweep import collect, command, expand, load_sweep, sweep

TINY = {"epochs": 1, "data.batch_size": 512, "threat.steps": 1, "eval.steps": 1, "eval.test_n": 20,
        "data.val_fraction": 0.05}


def _spec(tmp_path, grid, **extra):
    path = tmp_path / "sweep.yaml"
    spec = {"base": "digits/at", "out_dir": str(tmp_path / "out"), "overrides": TINY, "grid": grid,
            "x": next(iter(grid)), "resources": {"cpus": 1}} | extra
    path.write_text(yaml.safe_dump(spec))
    return path


def test_grid_expands_to_every_combination(tmp_path):
    trials = expand(load_sweep(_spec(tmp_path, {"optimizer.lr": [0.01, 0.1], "seed": [0, 1, 2]})))
    assert len(trials) == 6
    assert trials[0].name == "optimizer.lr-0.01__seed-0"
    assert "optimizer.lr=0.01" in trials[0].overrides and "epochs=1" in trials[0].overrides


def test_section_values_become_safe_run_names(tmp_path):
    grid = {"schedule": [{"lr": "piecewise"}, {"eps": "pas", "lr": "cyclic_cosine", "cycles": [1]}]}
    trials = expand(load_sweep(_spec(tmp_path, grid)))
    assert [t.name for t in trials] == ["schedule-lr_piecewise", "schedule-cycles_1_eps_pas_lr_cyclic_cosine"]
    assert "schedule={cycles: [1], eps: pas, lr: cyclic_cosine}" in trials[1].overrides


def test_section_values_are_rows_and_plot_groups(tmp_path):
    grid = {"schedule": [{"lr": "piecewise"}, {"lr": "cosine"}], "seed": [0, 1]}
    spec = load_sweep(_spec(tmp_path, grid, hue="schedule"))
    rows = [row | {"test_robust_acc": 0.5} for row in collect(spec, expand(spec), {})]
    assert [row["schedule"] for row in rows[::2]] == ["{lr: piecewise}", "{lr: cosine}"]
    assert plot_sweep(rows, "seed", "test_robust_acc", "schedule", tmp_path / "plot.png").stat().st_size > 0


def test_bad_sweeps_are_rejected_before_running(tmp_path):
    with pytest.raises(AdvlandError, match="optimizer.lrr"):
        expand(load_sweep(_spec(tmp_path, {"optimizer.lrr": [0.1]})))
    with pytest.raises(AdvlandError, match="not in the grid"):
        load_sweep(_spec(tmp_path, {"seed": [0]}, hue="objective.name"))


@pytest.mark.slow
def test_local_sweep_of_8_runs_then_relaunch_reruns_only_unfinished(tmp_path):
    path = _spec(tmp_path, {"optimizer.lr": [0.01, 0.03, 0.1, 0.3], "seed": [0, 1]})
    rows = sweep(path, executor="local", workers=2, progress=False)
    assert [r["status"] for r in rows] == ["finished"] * 8
    table = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert len(table) == 8 and all(float(r["test_robust_acc"]) >= 0 for r in table)
    assert (tmp_path / "out" / "test_robust_acc_vs_optimizer.lr.png").exists()

    # "kill" two runs: one lost its summary (interrupted after a checkpoint), one never started
    trials = expand(load_sweep(path))
    trials[0].run.summary_path.unlink()
    import shutil

    shutil.rmtree(trials[1].run.path)
    finished_before = {t.name: t.run.summary_path.stat().st_mtime_ns for t in trials[2:]}
    assert "--resume" in command(load_sweep(path), trials[0])
    rows = sweep(path, executor="local", workers=2, progress=False)
    assert all(r["status"] == "finished" for r in rows)
    assert {t.name: t.run.summary_path.stat().st_mtime_ns for t in trials[2:]} == finished_before


def test_a_failing_run_is_reported_and_does_not_stop_the_others(tmp_path):
    path = _spec(tmp_path, {"model.name": ["cnn_small", "no_such_model"]})
    rows = sweep(path, executor="local", workers=2, progress=False)
    status = {r["model.name"]: r["status"] for r in rows}
    assert status["cnn_small"] == "finished"
    assert status["no_such_model"].startswith("failed (exit 2")


@pytest.mark.slow
def test_ray_sweep_runs_on_a_local_ray(tmp_path):
    pytest.importorskip("ray")
    rows = sweep(_spec(tmp_path, {"seed": [0, 1]}), executor="ray", progress=False)
    assert [r["status"] for r in rows] == ["finished", "finished"]
