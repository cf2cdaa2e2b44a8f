"""The full reproduce reports kept in docs/results/ and the README table that quotes them: every stored verdict
follows from its regime check and its Holm-adjusted p-values, and the README names the verdict the file holds."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

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


def _records(finding: dict) -> list[dict]:
    """Every test record of a finding: its parts (or the single test) and the supplementary ones."""
    test = finding["test"]
    return [*test.get("parts", [test]), *test.get("supplementary", [])]


def _sign_flip_by_enumeration(d: list[float]) -> tuple[float, float]:
    """One-sided p-values of the mean difference over all 2^n sign patterns, written out from the definition
    (a pattern ties with the observed mean only up to rounding, 1e-12 relative)."""
    observed = float(np.mean(d))
    tol = 1e-12 * max(1.0, abs(observed))
    means = [float(np.mean([s * v for s, v in zip(signs, d)])) for signs in itertools.product((1, -1), repeat=len(d))]
    return (sum(m >= observed - tol for m in means) / len(means), sum(m <= observed + tol for m in means) / len(means))


@pytest.mark.parametrize("name", sorted(COLUMNS.values()))
def test_stored_tests_recompute_from_their_stored_values(name):
    """The per-seed values kept in each record give back its effect and p (sign-flip by enumeration, Spearman's ρ
    by scipy), and a claim's p follows the stated rule (largest part p; k × the smallest opposite p)."""
    checked = 0
    for f in _report(name)["findings"]:
        for record in _records(f):
            if record["name"].startswith("exact sign-flip"):
                d = record["values"]["differences"]
                assert record["effect"] == pytest.approx(float(np.mean(d)), abs=1e-12), (f["key"], record["what"])
                greater, less = _sign_flip_by_enumeration(d)
                assert (record["p_value"], record["p_opposite"]) == pytest.approx((greater, less)), (f["key"], record["what"])
                assert record["p_floor"] == 2.0 ** -len(d)
                lower, upper = (-np.inf if record["bounds"][0] is None else record["bounds"][0],
                                np.inf if record["bounds"][1] is None else record["bounds"][1])
                assert (record["p_value"] < 0.05) == (lower > 0), (f["key"], record["what"])
                assert (record["p_opposite"] < 0.05) == (upper < 0), (f["key"], record["what"])
                checked += 1
            elif "Spearman" in record["name"] and "x" in record.get("values", {}):
                rho = scipy_stats.spearmanr(record["values"]["x"], record["values"]["y"]).statistic
                assert abs(record["effect"]) == pytest.approx(abs(rho), abs=1e-9), (f["key"], record["what"])
                checked += 1
        parts = f["test"].get("parts", [f["test"]])
        assert f["p"]["holds"] == pytest.approx(max(t["p_value"] for t in parts))
        assert f["p"]["does_not_hold"] == pytest.approx(min(1.0, len(parts) * min(t["p_opposite"] for t in parts)))
    assert checked >= 20


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
