"""The reproduce pipeline: verdict helpers, the report, one-line errors, and every suite end to end on a tiny
budget (the findings' outcomes are not asserted: at this budget they mean nothing), and that the MNIST-1D
recipe trains robust models at all."""

import json

import pytest

from advland import load_config, train
from advland.cli import main
from advland.plots.reproduce import plot_lines
from advland.reproduce import SUITES, reproduce
from advland.reproduce.common import Finding, epochs_to_reach, make_suite, spread_verdict
from advland.reproduce.report import write_report

VERDICTS = {"holds", "does not hold", "inconclusive"}
KEYS = {"liu2020": "abcdef", "kanai2021": "gh", "wu2020": "ij"}


def test_verdict_needs_the_difference_to_exceed_the_spread():
    assert spread_verdict([1.0, 1.2, 0.9], "d")[0] == "holds"
    assert spread_verdict([-1.0, -1.2, -0.9], "d")[0] == "does not hold"
    assert spread_verdict([1.0, -0.8, 0.1], "d")[0] == "inconclusive"
    assert spread_verdict([1.0], "d")[0] == "inconclusive"


def test_epochs_to_reach_interpolates_and_censors():
    assert epochs_to_reach([0.3, 0.7], 0.5, 0.1) == pytest.approx(1.5)
    assert epochs_to_reach([0.2, 0.3], 0.5, 0.1) == 3.0


def test_report_is_json_markdown_and_self_contained_html(tmp_path):
    png = plot_lines([0, 1], {"a": [1, 2]}, tmp_path / "figures" / "f.png", xlabel="x", ylabel="y", title="t")
    finding = Finding("a", "liu2020", "A claim.", {"x": (1.0, 0.1)}, {"seeds": [0, 1]}, "holds", "because", [png.name])
    write_report(tmp_path, [finding], {"papers": "liu2020", "data": "digits", "budget": "tiny", "device": "cpu",
                                       "seconds": 1.0})
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["findings"][0]["verdict"] == "holds"
    assert "| (a) | liu2020 |" in (tmp_path / "report.md").read_text()
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and 'src="figures/' not in page


def test_unknown_paper_or_data_is_a_one_line_error(tmp_path, capsys):
    assert main(["reproduce", "liu2021", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "all", "--data", "svhn", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.count("error:") == 2


@pytest.mark.slow
@pytest.mark.parametrize("paper", list(SUITES))
def test_suite_runs_end_to_end_on_a_tiny_budget_and_reuses_its_runs(tmp_path, paper):
    lines: list[str] = []
    findings = reproduce(paper, tmp_path, budget="tiny", log=lines.append)
    assert [f.key for f in findings] == list(KEYS[paper])
    assert all(f.verdict in VERDICTS and f.reason for f in findings)
    assert {"findings.json", "report.md", "report.html"} <= {p.name for p in tmp_path.iterdir()}
    assert all((tmp_path / "figures" / name).exists() for f in findings for name in f.figures)
    if paper == "kanai2021":  # (g) is judged as in the paper: each norm on a model trained under it
        assert {"linf_trained_linf", "l2_trained_l2"} <= set(findings[0].measured["trained under each norm"])
        assert any(p.name.startswith("at_l2_eps") for p in (tmp_path / "runs").iterdir())
    lines.clear()
    reproduce(paper, tmp_path, budget="tiny", log=lines.append)
    assert not any(line.strip().startswith(("train", "resume")) for line in lines)


def test_mnist1d_recipe_trains_robust_models_above_chance(tmp_path):
    # the founding recipe (an MLP at eps = 0.1, one standard deviation of the signals) stayed at chance (0.1)
    suite = make_suite(tmp_path, "quick", "mnist1d", "cpu", lambda _: None)
    config = load_config(None, suite.overrides(["epochs=6", "eval.test_n=300", "name=recipe"]))
    summary = train(config, progress=False)
    assert summary["test_robust_acc"] > 0.3 and summary["eps"] == suite.data.eps
