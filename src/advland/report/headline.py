"""The answer a run's report opens with: its accuracies with their exact intervals, which weights were
selected and why, and the verdicts of the sanity checks; read from summary.json and the eval_*.json files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..binomial import clopper_pearson, count

_WHY = {"val_robust_acc": "the highest robust accuracy on the validation split",
        "val_clean_acc": "the highest clean accuracy on the validation split (clean training)",
        "last_epoch": "the last epoch (no validation split to select on)"}


def selection(summary: dict[str, Any]) -> str:
    """Which weights the run's numbers are of, and why."""
    if not summary:
        return "no summary.json: the run has not finished training (or the weights were imported)"
    criterion = summary.get("selected_on", "")
    why = _WHY.get(criterion, criterion)
    score = summary.get("best_score")
    at = f" ({criterion} = {score:.4f})" if isinstance(score, float) and criterion != "last_epoch" else ""
    return f"selected weights: epoch {summary.get('best_epoch')} of {summary.get('epochs')}, chosen for {why}{at}"


def accuracy_rows(summary: dict[str, Any], evaluations: dict[str, dict[str, Any]]) -> list[list[Any]]:
    """Rows (source, accuracy, value %, 95 % interval %, n) for the training test and every evaluation."""
    rows: list[list[Any]] = []
    n = summary.get("n_test")
    for key, label in (("test_clean_acc", "clean"), ("test_robust_acc", summary.get("test_attack", "robust"))):
        value = summary.get(key)
        if isinstance(value, float) and n:
            low, high = summary.get(f"{key}_ci") or clopper_pearson(count(value, n), n)
            rows.append(["summary.json (end of training)", label, 100 * value, f"{100 * low:.2f} to {100 * high:.2f}", n])
    for name, data in evaluations.items():
        version = data.get("settings", {}).get("autoattack", {}).get("version")
        source = name + (f" (AutoAttack {version})" if version else "")
        intervals = data.get("interval_95", {})
        for attack, value in (data.get("accuracy") or {}).items():
            if value is None:
                continue
            low, high = intervals.get(attack) or clopper_pearson(count(value, data["n"]), data["n"])
            rows.append([source, attack, 100 * value, f"{100 * low:.2f} to {100 * high:.2f}", data["n"]])
    return rows


def sanity_verdicts(evaluations: dict[str, dict[str, Any]]) -> list[str]:
    """One line per evaluation: how many checks passed, and every failed one with its detail."""
    lines = []
    for name, data in evaluations.items():
        checks = data.get("sanity_checks", [])
        if not checks:
            continue
        failed = [c for c in checks if not c["passed"]]
        line = f"{name}: {len(checks) - len(failed)} of {len(checks)} sanity checks passed"
        if failed:
            line += "; FAILED: " + "; ".join(f"{c['name']} ({c['detail']})" for c in failed)
        if data.get("randomized"):
            line += "; the model is randomized"
        lines.append(line)
    return lines


def best_evaluations(files: list[Path], read: Any) -> dict[str, dict[str, Any]]:
    """The evaluations of the selected weights (``eval_*_best.json``), else every evaluation, by file stem."""
    chosen = [f for f in files if f.stem.endswith("_best")] or files
    return {f.stem: read(f) for f in chosen}
