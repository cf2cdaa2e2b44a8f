"""The reproduce pipeline: verdict helpers, the report, one-line errors, and every suite end to end on a tiny
budget (the findings' outcomes are not asserted: at this budget they mean nothing), and that the MNIST-1D
recipe trains robust models at all."""

import json

import pytest

from advland import load_config, train
from advland.cli import main
from advland.plots.reproduce import plot_lines
from advland.reproduce import SUITES, reproduce
from advland.build import build_data
from advland.reproduce.common import Finding, epochs_to_reach, judge, make_suite
from advland.reproduce.report import write_report
from advland.stats import paired_test

VERDICTS = {"holds", "does not hold", "inconclusive"}
KEYS = {"liu2020": "abcdef", "kanai2021": "gh", "wu2020": "ij"}


def test_verdicts_come_from_the_tests():
    assert judge([paired_test([1.0, 1.2, 0.9, 1.1, 1.3], "d")])[0] == "holds"
    assert judge([paired_test([-1.0, -1.2, -0.9, -1.1, -1.3], "d")])[0] == "does not hold"
    # the old rule (|mean| > std) called three consistent seeds "holds"; the exact test cannot (p ≥ 1/8)
    verdict, reason, test = judge([paired_test([1.0, 1.2, 0.9], "d")])
    assert verdict == "inconclusive" and "cannot reach" in reason and test["p_value"] == 1 / 8
    verdict, reason, test = judge([paired_test([1.0, 1.2, 0.9, 1.1, 1.3], "a"), paired_test([1.0, -0.8, 0.1], "b")])
    assert verdict == "inconclusive" and len(test["parts"]) == 2 and "rule" in test


def test_epochs_to_reach_interpolates_and_censors_at_the_bound():
    assert epochs_to_reach([0.3, 0.7], 0.5, 0.1) == (pytest.approx(1.5), False)
    assert epochs_to_reach([0.2, 0.3], 0.5, 0.1) == (2.0, True)


def test_analysis_examples_of_a_run_are_never_its_validation_examples(tmp_path):
    suite = make_suite(tmp_path, "quick", "digits", "cpu", lambda _: None)
    for seed in (1, 2):
        config = load_config(None, suite.overrides([f"seed={seed}", "name=split"]))
        x, _ = suite.analysis_data(config)
        own_val = build_data(config).x_val.flatten(1)
        shared = (x.flatten(1)[:, None, :] == own_val[None]).all(-1).any(1)
        assert len(x) == suite.profile.analysis_n and not shared.any()
        # the old carve (seed 0 for every run) put some of this run's validation examples into the analyses
        old = build_data(load_config(None, suite.overrides(["seed=0", "name=split"]))).x_train[: len(x)].flatten(1)
        assert (old[:, None, :] == own_val[None]).all(-1).any(1).any()


def test_report_is_json_markdown_and_self_contained_html(tmp_path):
    png = plot_lines([0, 1], {"a": [1, 2]}, tmp_path / "figures" / "f.png", xlabel="x", ylabel="y", title="t")
    verdict, reason, test = judge([paired_test([0.1, 0.2, 0.15, 0.12, 0.18], "accuracy gain")])
    finding = Finding("a", "liu2020", "A claim.", {"x": (1.0, 0.1)}, {"seeds": [0, 1]}, verdict, reason, test,
                      [png.name], smoke_test=True)
    write_report(tmp_path, [finding], {"papers": "liu2020", "data": "digits", "budget": "tiny", "device": "cpu",
                                       "seconds": 1.0, "smoke_test": True})
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["smoke_test"] is True and data["findings"][0]["verdict"] == "holds"
    assert {"name", "n", "effect", "ci95", "p_value", "alpha"} <= set(data["findings"][0]["test"])
    md = (tmp_path / "report.md").read_text()
    assert "| (a) | liu2020 |" in md and "**smoke test: holds**" in md and "p = 0.0312" in md
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
    assert all(f.verdict in VERDICTS and f.reason and f.smoke_test for f in findings)
    for f in findings:  # every finding carries its test: one part, or parts and the rule combining them
        for part in f.test.get("parts", [f.test]):
            assert {"name", "n", "effect", "ci95", "p_value", "alpha"} <= set(part)
    if paper == "liu2020":  # (e) at ε = 0 is measured, not the constant 1
        by_eps = findings[4].measured["by_eps"]
        assert by_eps["0"]["mean"] != 1.0 and 0.9 < by_eps["0"]["mean"] <= 1.0
        assert "converge" in findings[3].reason and "censored" in findings[1].reason
    assert {"findings.json", "report.md", "report.html"} <= {p.name for p in tmp_path.iterdir()}
    assert all((tmp_path / "figures" / name).exists() for f in findings for name in f.figures)
    if paper == "kanai2021":  # (g) is judged as in the paper: each norm on a model trained under it
        assert {"linf_trained_linf", "l2_trained_l2"} <= set(findings[0].measured["trained under each norm"])
        assert any(p.name.startswith("at_l2_eps") for p in (tmp_path / "runs").iterdir())
    lines.clear()
    reproduce(paper, tmp_path, budget="tiny", log=lines.append)
    assert not any(line.strip().startswith(("train", "resume")) for line in lines)
    if paper == "liu2020":  # (a)'s linear fits are kept too
        assert sum(line.strip().startswith("reuse  liu2020_a_") for line in lines) == 4


def test_a_cached_measurement_is_reused_until_its_settings_change(tmp_path):
    lines, calls = [], []
    suite = make_suite(tmp_path, "tiny", "digits", "cpu", lines.append)
    compute = lambda: calls.append(1) or [[0.5, 1e-30], [2.0]]  # noqa: E731
    assert suite.cached("m", {"steps": 3, "ratios": (0.5, 2.0)}, compute) == [[0.5, 1e-30], [2.0]]
    assert suite.cached("m", {"steps": 3, "ratios": (0.5, 2.0)}, compute) == [[0.5, 1e-30], [2.0]]
    assert len(calls) == 1 and lines == ["  reuse  m"]
    suite.cached("m", {"steps": 4, "ratios": (0.5, 2.0)}, compute)
    assert len(calls) == 2
    nan = lambda: calls.append(1) or [float("nan")]  # noqa: E731 - not kept: strict JSON has no NaN
    suite.cached("n", {}, nan), suite.cached("n", {}, nan)
    assert len(calls) == 4 and not (tmp_path / "runs" / "n.json").exists()


def test_mnist1d_recipe_trains_robust_models_above_chance(tmp_path):
    # the founding recipe (an MLP at eps = 0.1, one standard deviation of the signals) stayed at chance (0.1)
    suite = make_suite(tmp_path, "quick", "mnist1d", "cpu", lambda _: None)
    config = load_config(None, suite.overrides(["epochs=6", "eval.test_n=300", "name=recipe"]))
    summary = train(config, progress=False)
    assert summary["test_robust_acc"] > 0.3 and summary["eps"] == suite.data.eps


def test_fashion_mnist_suite_settings_are_valid_configs(tmp_path):
    # the recipe of `advland reproduce all --data fashion_mnist` at every budget: a seeded training subset,
    # an MLP, at least 5 seeds at the full budget
    for budget in ("tiny", "quick", "full"):
        suite = make_suite(tmp_path, budget, "fashion_mnist", "cpu", lambda _: None)
        config = load_config(None, suite.overrides(["seed=3", "name=check"]))
        assert config.data.name == "fashion_mnist" and config.data.train_n and config.model.name == "mlp"
        assert suite.profile.smoke_test == (budget != "full")
    assert len(suite.profile.seeds) >= 5 and config.eval.test_n == 2000


def test_unconverged_eigenvalues_are_left_out_of_both_trend_tests():
    from advland.reproduce.liu2020 import _trend

    def row(value, converged=True):
        return {"hessian_top1": value, "hessian_converged": converged}

    table = {0.0: [row(1.0), row(1.1), row(0.9, False)], 0.3: [row(2.0), row(99.0, False), row(2.2)]}
    measured, parts = _trend(table, "hessian_top1", +1, lambda r: r["hessian_converged"])
    assert parts[0].n == 1 and parts[0].effect == pytest.approx(1.0)  # only seed 0 has both ends converged
    assert parts[1].n == 4 and measured["by_eps"]["0.3"]["mean"] == pytest.approx(2.1)


def test_a_run_lock_makes_a_second_process_wait(tmp_path):
    """Suites launched side by side on one report directory wait for a run another process is training."""
    import threading
    import time

    from advland.reproduce.common import _run_lock

    order = []

    def second():
        with _run_lock(tmp_path / ".r.lock"):
            order.append("second")

    with _run_lock(tmp_path / ".r.lock"):
        waiter = threading.Thread(target=second)
        waiter.start()
        time.sleep(0.3)
        order.append("first done")
    waiter.join(5)
    assert order == ["first done", "second"]


def test_the_reported_settings_are_the_effective_ones(tmp_path):
    """The report's settings line names each key once (the value that wins) and the test-set size used."""
    from advland.reproduce.common import make_suite

    quick = make_suite(tmp_path, "quick", "digits", "cpu", print).describe()
    assert [o for o in quick["overrides"] if o.startswith("data.batch_size")] == ["data.batch_size=128"]
    assert make_suite(tmp_path, "full", "fashion_mnist", "cpu", print).describe()["test_examples"] == 2000
