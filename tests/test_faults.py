"""The fault corpus (issue 11): every everyday mistake or fault gives a one-line error (exit status 2,
no traceback) or a right result, and what was on disk before stays intact and loadable."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from advland.cli import main
from advland.config import load_config
from advland.run import Run, load
from advland.train import Trainer

FAST = ["data.batch_size=256", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2", "eval.test_n=60"]


def _config(tmp_path, *extra):
    return load_config("configs/digits/at.yaml", [f"out_dir={tmp_path}", "epochs=2", *FAST, *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch PGD-AT run on digits (a few seconds); tests work on copies of it."""
    out = tmp_path_factory.mktemp("faults")
    Trainer(_config(out, "name=base"), progress=False).fit()
    return out / "base"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "base"
    shutil.copytree(finished_run, copy)
    return copy


def _one_line_error(capsys, *fragments):
    """Assert stderr is one 'error: ...' line without a traceback and contains every fragment."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _strict_json(text):
    """Parse JSON refusing the NaN/Infinity tokens that strict parsers reject."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 4. corrupt or truncated files

@pytest.mark.parametrize("which", ["best", "last"])
def test_damaged_weights_are_one_line_in_eval_and_analyses(run_copy, capsys, which):
    path = run_copy / "checkpoints" / f"{which}.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["eval", str(run_copy), "--which", which, "--attacks", "pgd", "--n", "10", "--no-sanity",
                 "--no-progress"]) == 2
    _one_line_error(capsys, f"{which}.safetensors is damaged or truncated")
    assert main(["hessian", str(run_copy), "--which", which, "--n", "8", "--top-k", "1"]) == 2
    _one_line_error(capsys, f"{which}.safetensors is damaged")
    other = "last" if which == "best" else "best"
    assert isinstance(load(run_copy, other), torch.nn.Module)  # the other checkpoint still loads


def test_damaged_state_is_one_line_at_resume_and_nothing_is_lost(run_copy, capsys):
    state = run_copy / "checkpoints" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    before = _files(run_copy)
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 2
    _one_line_error(capsys, "state.pt is damaged or truncated", "overwrite=true")
    assert _files(run_copy) == before
    assert isinstance(load(run_copy, "last"), torch.nn.Module)


def test_damaged_metrics_is_one_line(run_copy):
    (run_copy / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')
    with pytest.raises(Exception, match="metrics.jsonl is damaged .line 1"):
        Run(run_copy).metrics()


# ---------------------------------------------------------------- 2. strict JSON

def test_every_json_file_of_a_run_is_strict(finished_run):
    for path in finished_run.rglob("*.json*"):
        for line in (path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]):
            _strict_json(line)


def test_json_writers_turn_non_finite_numbers_into_null(tmp_path):
    from advland.jsonio import dumps
    from advland.reproduce.common import Finding
    from advland.reproduce.report import write_report
    from advland.sweep import write_table

    data = {"a": float("nan"), "b": [float("inf"), 1.5, (float("-inf"),)], "c": {"d": 2}}
    assert _strict_json(dumps(data)) == {"a": None, "b": [None, 1.5, [None]], "c": {"d": 2}}
    run = Run(tmp_path / "r")
    run.write_metrics([{"epoch": 1, "val_robust_acc": float("nan")}])
    assert run.metrics() == [{"epoch": 1, "val_robust_acc": None}]
    _strict_json(run.write_json("summary.json", {"x": float("nan")}).read_text())
    finding = Finding("a", "p", "c", {"x": float("nan")}, {}, "inconclusive", "r")
    meta = {"papers": "p", "data": "digits", "budget": "tiny", "device": "cpu", "seconds": 1.0}
    paths = write_report(tmp_path / "rep", [finding], meta)
    assert _strict_json(paths[0].read_text())["findings"][0]["measured"]["x"] is None
    table = write_table([{"run": "r", "test_robust_acc": float("nan")}], tmp_path / "results.csv")
    assert table.read_text().splitlines()[1] == "r,"
