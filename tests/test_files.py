"""Files advland writes: the user's umask, imports that never overwrite each other, its own weights as bare files."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from advland.cli import main
from advland.run import atomic_write_text


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "f.json", "{}\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.json").stat().st_mode) == mode


def test_a_training_run_is_readable_by_others_under_umask_022(digits_at_run):
    run = digits_at_run[0].run
    mask = os.umask(0o022)
    os.umask(mask)
    for path in (run.config_path, run.summary_path, run.metrics_path, run.weights_path("best"), run.state_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask, path


EVAL = ["--model", "cnn_small", "--data", "digits", "--normalize", "data", "--norm", "linf", "--eps", "0.2",
        "--attacks", "pgd", "--steps", "2", "--n", "40", "--no-sanity", "--no-progress"]


def test_advland_weights_load_back_as_bare_files_and_same_names_keep_both_results(digits_at_run, tmp_path,
                                                                                  monkeypatch, capsys):
    run = digits_at_run[0].run
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(run.weights_path("best"), tmp_path / "a" / "best.safetensors")
    shutil.copy(run.weights_path("init"), tmp_path / "b" / "best.safetensors")
    assert main(["eval", str(run.path), *EVAL[6:]]) == 0
    own = json.loads((run.path / "eval_linf_0.2_best.json").read_text())["accuracy"]
    assert main(["eval", "a/best.safetensors", *EVAL]) == 0
    assert main(["eval", "b/best.safetensors", *EVAL]) == 0
    out = capsys.readouterr().out
    assert "as the run runs/best " in out and "as the run runs/best-" in out
    first = json.loads((tmp_path / "runs" / "best" / "eval_linf_0.2_best.json").read_text())["accuracy"]
    (second_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.name.startswith("best-")]
    second = json.loads((second_dir / "eval_linf_0.2_best.json").read_text())["accuracy"]
    assert first["clean"] == own["clean"] and first["pgd2"] == own["pgd2"]  # advland's best.safetensors, read back
    assert second["clean"] != first["clean"]  # the init weights, in their own run directory
    assert main(["eval", "a/best.safetensors", *EVAL]) == 0  # the same file again: the same run directory
    assert len(list((tmp_path / "runs").iterdir())) == 2


def test_robustbench_export_reads_back_and_reproduces_the_accuracies(digits_at_run, tmp_path, capsys):
    from advland.build import build_model
    from advland.evaluate import evaluate

    trainer = digits_at_run[0]
    run = trainer.run.path
    assert main(["export", str(run), "--out", str(tmp_path / "zoo")]) == 2
    assert "no evaluation with AutoAttack" in capsys.readouterr().err
    assert main(["eval", str(run), "--attacks", "pgd,autoattack", "--aa-version", "custom", "--aa-attacks", "apgd-ce",
                 "--steps", "3", "--n", "40", "--no-sanity", "--no-progress"]) == 0
    assert main(["export", str(run), "--format", "robustbench", "--out", str(tmp_path / "zoo"), "--name", "Mine"]) == 0
    info = json.loads((tmp_path / "zoo" / "Mine.json").read_text())
    for key in ("dataset", "eps", "clean_acc", "autoattack_acc", "architecture", "number_forward_passes",
                "additional_data", "autoattack_version", "n_test_examples"):
        assert key in info
    assert info["dataset"] == "digits" and info["eps"] == "51/255" and info["autoattack_version"] == "custom"
    assert info["n_test_examples"] == 40 and info["advland"]["seed"] == trainer.config.seed
    import torch

    state = torch.load(tmp_path / "zoo" / "Mine.pt", weights_only=True)["state_dict"]
    model = build_model(trainer.config)
    model.load_state_dict(state)  # the whole [0, 1]-input model: normalization inside
    x, y = trainer.data.x_test[:40], trainer.data.y_test[:40]
    again = evaluate(model.eval(), x, y, norm="linf", eps=0.2, attacks=["pgd", "autoattack"], steps=3, progress=False,
                     aa_version="custom", aa_attacks=["apgd-ce"])
    assert f"{100 * again.accuracy['clean']:.2f}" == info["clean_acc"]
    assert f"{100 * again.accuracy['autoattack']:.2f}" == info["autoattack_acc"]
