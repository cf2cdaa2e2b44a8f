"""What a resume may change (nothing but a recorded epochs extension), and which directory it continues."""

from __future__ import annotations

import json

from advland.cli import main
from advland.config import load_config
from advland.run import Run
from helpers import FAST, files_of, one_line_error, strict_json


def test_resume_with_a_changed_config_is_refused_and_changes_nothing(tmp_path, capsys):
    base = ["train", "digits/at", f"out_dir={tmp_path}", "name=r", *FAST, "--no-progress"]
    assert main(base + ["epochs=2"]) == 0
    capsys.readouterr()
    before = files_of(tmp_path / "r")
    assert main(base + ["epochs=4", "optimizer.lr=0.5", "--resume"]) == 2
    one_line_error(capsys, "cannot resume", "epochs 2 -> 4", "optimizer.lr 0.05 -> 0.5", "--extend")
    assert main(base + ["epochs=4", "optimizer.lr=0.5", "--resume", "--extend"]) == 2
    one_line_error(capsys, "optimizer.lr 0.05 -> 0.5", "only lets epochs grow")
    assert files_of(tmp_path / "r") == before
    assert main(base + ["epochs=3", "--resume", "--extend"]) == 0
    summary = strict_json(capsys.readouterr().out)
    assert summary["epochs"] == 3
    assert summary["extensions"][0] | {"note": ""} == {"at_epoch": 2, "epochs_before": 2, "epochs_after": 3, "note": ""}
    assert load_config(tmp_path / "r").epochs == 3
    assert [r["epoch"] for r in Run(tmp_path / "r").metrics()] == [1, 2, 3]


def test_extend_needs_resume(capsys):
    assert main(["train", "--extend"]) == 2
    one_line_error(capsys, "use it with --resume")


def test_resuming_a_moved_run_directory_continues_that_directory(finished_run, run_copy, capsys):
    """Found on the way: `advland train RUN --resume` used the out_dir/name written in RUN/config.yaml,
    so a moved (or copied) run resumed, and rewrote, the original."""
    original = files_of(finished_run)
    (run_copy / "summary.json").unlink()
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 0
    assert (run_copy / "summary.json").exists() and files_of(finished_run) == original
