"""Every JSON file advland writes is strict (no NaN or Infinity tokens): non-finite numbers become null."""

from __future__ import annotations

import json

from advland.run import Run
from helpers import strict_json


def test_every_json_file_of_a_run_is_strict(finished_run):
    for path in finished_run.rglob("*.json*"):
        for line in (path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]):
            strict_json(line)


def test_json_writers_turn_non_finite_numbers_into_null(tmp_path):
    from advland.jsonio import dumps
    from advland.reproduce.common import Finding
    from advland.reproduce.report import write_report
    from advland.stats import paired_test
    from advland.sweep import write_table

    data = {"a": float("nan"), "b": [float("inf"), 1.5, (float("-inf"),)], "c": {"d": 2}}
    assert strict_json(dumps(data)) == {"a": None, "b": [None, 1.5, [None]], "c": {"d": 2}}
    run = Run(tmp_path / "r")
    run.write_metrics([{"epoch": 1, "val_robust_acc": float("nan")}])
    assert run.metrics() == [{"epoch": 1, "val_robust_acc": None}]
    strict_json(run.write_json("summary.json", {"x": float("nan")}).read_text())
    test = paired_test([0.01, 0.02, 0.03], "x").as_dict() | {"p_value": float("nan")}
    finding = Finding(key="a", paper="p", claim="c", measured={"x": float("nan")}, settings={},
                      regime={"condition": "c", "measured": {"x": float("nan")}, "met": True},
                      p={"holds": float("nan"), "does_not_hold": 1.0}, verdict="inconclusive", reason="r", test=test)
    meta = {"papers": "p", "data": "digits", "budget": "tiny", "device": "cpu", "seconds": 1.0}
    paths = write_report(tmp_path / "rep", [finding], meta)
    written = strict_json(paths[0].read_text())["findings"][0]
    assert written["measured"]["x"] is None and written["test"]["p_value"] is None
    table = write_table([{"run": "r", "test_robust_acc": float("nan")}], tmp_path / "results.csv")
    assert table.read_text().splitlines()[1] == "r,"
