"""The command line: train with no config, eval, and one-line user errors without tracebacks."""

import json
import subprocess
import sys

import pytest

from advland.cli import main

FAST = ["epochs=2", "data.batch_size=256", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2", "eval.test_n=50"]


def test_train_without_config_trains_at_on_digits(tmp_path, capsys):
    assert main(["train", f"out_dir={tmp_path}", *FAST, "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 2 and summary["eps"] == 0.2
    assert (tmp_path / "default" / "metrics.jsonl").exists()


def test_eval_prints_and_saves_accuracies(digits_at_run, capsys):
    trainer, _ = digits_at_run
    status = main(["eval", str(trainer.run.path), "--attacks", "pgd,cw", "--n", "60", "--steps", "5", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 0
    for name in ("clean", "pgd5", "cw5", "worst_case", "sanity ok", "eps_sweep", "more_steps"):
        assert name in out
    saved = json.loads(next(trainer.run.path.glob("eval_linf_0.2_best.json")).read_text())
    acc = saved["accuracy"]
    assert acc["worst_case"] <= min(acc["pgd5"], acc["cw5"]) <= acc["clean"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "optimizer.lrr=1"], "unknown key 'optimizer.lrr'"),
        (["train", "missing.yaml"], "no config file or recipe named 'missing.yaml'"),
        (["train", "data.name=cifar10", "data.root=/nonexistent"], "cifar10: expected"),
        (["train", "model.name=resnet99"], "unknown model 'resnet99'"),
        (["eval", "/nonexistent/run"], "no run directory or weights file at /nonexistent/run"),
        (["eval", ".", "--norm", "l7"], "--norm must be linf, l2 or l1"),
    ],
)
def test_user_errors_are_one_line(argv, message, tmp_path, capsys):
    argv = argv + ([f"out_dir={tmp_path}"] if argv[0] == "train" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_entry_point_reports_errors_without_traceback():
    result = subprocess.run([sys.executable, "-m", "advland", "train", "threat.norm=l9"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("error: config error: threat.norm") and "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, message", [(["train", "--out", "x"], "No such option: --out"),
                                           (["nosuch"], "No such command"),
                                           (["eval"], "Missing argument")])
def test_usage_errors_are_clicks_short_message(argv, message, capsys):
    """Whichever click typer uses (its vendored copy since 0.26), a usage error is click's message, not a traceback."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
