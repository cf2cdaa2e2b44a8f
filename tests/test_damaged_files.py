"""A damaged or truncated run file is one line naming the file and what to do (exit status 2, no
traceback), and nothing on disk is lost."""

from __future__ import annotations

import pytest
import torch

from advland.cli import main
from advland.load import load
from advland.run import Run
from helpers import files_of, one_line_error


@pytest.mark.parametrize("which", ["best", "last"])
def test_damaged_weights_are_one_line_in_eval_and_analyses(run_copy, capsys, which):
    path = run_copy / "checkpoints" / f"{which}.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["eval", str(run_copy), "--which", which, "--attacks", "pgd", "--n", "10", "--no-sanity",
                 "--no-progress"]) == 2
    one_line_error(capsys, f"{which}.safetensors is damaged or truncated")
    assert main(["hessian", str(run_copy), "--which", which, "--n", "8", "--top-k", "1"]) == 2
    one_line_error(capsys, f"{which}.safetensors is damaged")
    other = "last" if which == "best" else "best"
    assert isinstance(load(run_copy, other), torch.nn.Module)  # the other checkpoint still loads


def test_damaged_state_is_one_line_at_resume_and_nothing_is_lost(run_copy, capsys):
    state = run_copy / "checkpoints" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    before = files_of(run_copy)
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, "state.pt is damaged or truncated", "overwrite=true")
    assert files_of(run_copy) == before
    assert isinstance(load(run_copy, "last"), torch.nn.Module)


def test_state_of_another_model_is_one_line_at_resume(run_copy, capsys):
    state = run_copy / "checkpoints" / "state.pt"
    saved = torch.load(state, weights_only=True)
    saved["model"] = {k: torch.zeros(3) for k in saved["model"]}
    torch.save(saved, state)
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 2
    one_line_error(capsys, "state.pt do not fit the model")


def test_damaged_metrics_is_one_line(run_copy):
    (run_copy / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')
    with pytest.raises(Exception, match="metrics.jsonl is damaged .line 1"):
        Run(run_copy).metrics()
