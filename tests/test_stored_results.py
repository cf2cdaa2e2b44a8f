"""The full reproduce reports kept in docs/results/ and the README table that quotes them: every stored verdict
follows from its regime check and its Holm-adjusted p-values, and the README names the verdict the file holds."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"
COLUMNS = {"Fashion-MNIST": "fashion_mnist_full.json", "digits": "digits_full.json", "MNIST-1D": "mnist1d_full.json"}
VERDICTS = ("not in regime", "does not hold", "holds", "inconclusive")


def _report(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _holm(p: list[float]) -> list[float]:
    """Holm's step-down adjustment written out once more, from its definition."""
    m, out, running = len(p), [0.0] * len(p), 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


@pytest.mark.parametrize("name", sorted(COLUMNS.values()))
def test_stored_verdicts_follow_from_regime_and_holm(name):
    report = _report(name)
    assert report["meta"]["budget"] == "full" and not report["meta"]["smoke_test"]
    assert len(report["meta"]["data_settings"]["seeds"]) == 8
    findings = report["findings"]
    judged = [f for f in findings if f["regime"]["met"]]
    for kind in ("holds", "does_not_hold"):
        for f, adjusted in zip(judged, _holm([f["p"][kind] for f in judged])):
            assert f["p"][f"{kind}_holm"] == pytest.approx(adjusted, rel=1e-9), (name, f["key"], kind)
    for f in findings:
        assert isinstance(f["regime"]["met"], bool) and f["regime"]["condition"] and f["regime"]["measured"]
        if not f["regime"]["met"]:
            expected = "not in regime"
        elif f["p"]["holds_holm"] < 0.05:
            expected = "holds"
        elif f["p"]["does_not_hold_holm"] < 0.05:
            expected = "does not hold"
        else:
            expected = "inconclusive"
        assert f["verdict"] == expected, (name, f["key"])


def _readme_table() -> tuple[list[str], list[list[str]]]:
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| finding | Fashion-MNIST"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("| ("):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    return header, rows


def _cell_verdict(cell: str) -> str:
    """The verdict a README cell states: after the arrow ("met (...) → **holds** (...)"), or "**not in regime**"."""
    said = cell.split("→", 1)[1] if "→" in cell else cell
    said = said.strip().replace("*", "")
    found = [v for v in VERDICTS if said.startswith(v)]
    assert found, f"no verdict in README cell {cell!r}"
    return found[0]


def test_readme_table_quotes_the_stored_verdicts():
    header, rows = _readme_table()
    for column, name in COLUMNS.items():
        index = next(i for i, h in enumerate(header) if h.startswith(column + ":"))
        stored = {f["key"]: f["verdict"] for f in _report(name)["findings"]}
        quoted = {re.match(r"\((\w)\)", row[0]).group(1): _cell_verdict(row[index]) for row in rows}
        assert quoted == stored, column
