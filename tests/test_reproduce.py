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
from advland.reproduce.common import Regime, epochs_to_reach, finalize, finding, make_suite
from advland.reproduce.report import write_report
from advland.stats import paired_test

VERDICTS = {"holds", "does not hold", "inconclusive", "not in regime"}
KEYS = {"liu2020": "abcdef", "kanai2021": "gh", "wu2020": "ijk"}


MET = Regime("a precondition", {"x": 1.0}, True)
UNMET = Regime("a precondition", {"x": 0.0}, False)
UP, DOWN = [1.0, 1.2, 0.9, 1.1, 1.3, 1.05, 0.95, 1.15], [-1.0, -1.2, -0.9, -1.1, -1.3, -1.05, -0.95, -1.15]


def _judge(*groups, regime=MET):
    return finalize([finding("a", "p", "c", {}, {}, [paired_test(g, "d") for g in groups], regime)])[0]


def test_verdicts_come_from_the_tests():
    assert _judge(UP).verdict == "holds" and _judge(DOWN).verdict == "does not hold"
    # the old rule (|mean| > std) called three consistent seeds "holds"; the exact test cannot (p ≥ 1/8)
    three = _judge([1.0, 1.2, 0.9])
    assert three.verdict == "inconclusive" and "cannot reach" in three.reason and three.test["p_value"] == 1 / 8
    two = _judge(UP, [1.0, -0.8, 0.1])
    assert two.verdict == "inconclusive" and len(two.test["parts"]) == 2 and "rule" in two.test
    assert two.test["parts"][0]["values"]["differences"] == UP  # every per-seed value is kept


def test_a_finding_out_of_its_regime_is_never_called_does_not_hold():
    out = _judge(DOWN, regime=UNMET)
    assert out.verdict == "not in regime" and out.reason.startswith("not in regime")
    assert "holds_holm" not in out.p and out.regime["met"] is False
    assert _judge(UP, regime=UNMET).verdict == "not in regime"


def test_holm_decides_within_a_report():
    # five findings each at the 8-seed floor p = 1/256 hold after Holm (5/256 < 0.05); one with p = 2/256 among
    # 10 findings does not (Holm: 10 · 2/256 = 0.078 at its rank), though its raw p is below 0.05
    strong = [finding(k, "p", "c", {}, {}, [paired_test(UP, "d")], MET) for k in "abcde"]
    assert [f.verdict for f in finalize(strong)] == ["holds"] * 5
    one_off = [1.0, 1.2, 0.9, 1.1, 1.3, 1.05, 0.95, -0.01]
    crowd = [finding(k, "p", "c", {}, {}, [paired_test([0.1, -0.1] * 4, "d")], MET) for k in "abcdefghi"]
    weak = finalize([finding("j", "p", "c", {}, {}, [paired_test(one_off, "d")], MET), *crowd])[0]
    assert weak.p["holds"] == 2 / 256 and weak.p["holds_holm"] == pytest.approx(10 * 2 / 256)
    assert weak.verdict == "inconclusive"
    # findings out of their regime are not in the family
    alone = finalize([finding("j", "p", "c", {}, {}, [paired_test(one_off, "d")], MET),
                      *[finding(k, "p", "c", {}, {}, [paired_test(UP, "d")], UNMET) for k in "abc"]])[0]
    assert alone.p["holds_holm"] == 2 / 256 and alone.verdict == "holds"


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
    found = finalize([finding("a", "liu2020", "A claim.", {"x": (1.0, 0.1)}, {"seeds": [0, 1]},
                              [paired_test([0.1, 0.2, 0.15, 0.12, 0.18], "accuracy gain")], MET, figures=[png.name],
                              smoke_test=True)])
    write_report(tmp_path, found, {"papers": "liu2020", "data": "digits", "budget": "tiny", "device": "cpu",
                                   "seconds": 1.0, "smoke_test": True})
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["smoke_test"] is True and data["findings"][0]["verdict"] == "holds"
    assert {"name", "n", "effect", "bounds", "p_value", "p_floor", "alpha", "values"} <= set(data["findings"][0]["test"])
    assert data["findings"][0]["regime"] == {"condition": "a precondition", "measured": {"x": 1.0}, "met": True}
    assert data["findings"][0]["p"]["holds_holm"] == 1 / 32
    md = (tmp_path / "report.md").read_text()
    assert "| (a) | liu2020 |" in md and "**smoke test: holds**" in md and "p = 0.0312" in md and "| met |" in md
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
    for f in findings:  # every finding carries its regime and test: one part, or parts and the rule combining them
        assert set(f.regime) == {"condition", "measured", "met"} and {"holds", "does_not_hold"} <= set(f.p)
        assert f.verdict != "does not hold" or f.regime["met"]
        for part in f.test.get("parts", [f.test]):
            assert {"name", "n", "effect", "bounds", "p_value", "p_floor", "alpha", "values"} <= set(part)
    if paper == "liu2020":  # (e) at ε = 0 is measured, not the constant 1
        by_eps = findings[4].measured["by_eps"]
        assert by_eps["0"]["mean"] != 1.0 and 0.9 < by_eps["0"]["mean"] <= 1.0
        assert "converge" in findings[3].reason and "censored" in findings[1].reason
        assert set(findings[5].measured) == {"AT", "PAS", "PAS (liu2020 MNIST recipe)"}
    if paper == "wu2020":  # every run tracks its robust generalization gap; the accuracy claim uses AutoAttack
        tracked = [json.loads(line) for line in (tmp_path / "runs" / "wu_at_s0" / "metrics.jsonl").read_text().splitlines()]
        assert all({"gap_train_robust_acc", "gap_test_robust_acc", "robust_gap"} <= set(m) for m in tracked)
        assert "autoattack" in findings[1].measured["AT, no early stopping"]
        ema = findings[2]  # (k): the AT runs kept their EMA, judged at its own validation peak and at the end
        assert {"AT+EMA, early stopping", "AT-AWP+EMA, no early stopping"} <= set(ema.measured)
        assert all((tmp_path / "runs" / "wu_at_awp_s0" / "checkpoints" / f"{w}.safetensors").exists()
                   for w in ("ema", "ema_best"))
        assert len(ema.test["parts"]) == 2 and len(ema.test["supplementary"]) == 4
    data = json.loads((tmp_path / "findings.json").read_text())
    assert data["meta"]["provenance"]["source_hash"] and data["meta"]["stale_runs"] == []
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
    assert len(suite.profile.seeds) >= 8 and config.eval.test_n == 2000


def test_unconverged_eigenvalues_are_left_out_of_both_trend_tests():
    from advland.reproduce.liu2020 import _trend

    def row(value, converged=True):
        return {"hessian_top1": value, "hessian_converged": converged}

    table = {0.0: [row(1.0), row(1.1), row(0.9, False)], 0.1: [row(1.5), row(1.6), row(1.4)],
             0.3: [row(2.0), row(99.0, False), row(2.2)]}
    measured, parts = _trend(table, "hessian_top1", +1, lambda r: r["hessian_converged"])
    assert parts[0].n == 1 and parts[0].effect == pytest.approx(1.0)  # only seed 0 has both ends converged
    # the trend test ranks within each seed, over that seed's converged runs only
    assert parts[1].n == 3 and [len(g["x"]) for g in parts[1].values["seeds"]] == [3, 2, 2]
    assert measured["by_eps"]["0.3"]["mean"] == pytest.approx(2.1)


def test_regime_checks_measure_their_preconditions():
    from advland.reproduce.liu2020 import near_minimum, plateau_regime
    from advland.reproduce.wu2020 import checkpoint_of

    flat = {0.0: [{"clean_grad_norms": [4.0, 2.0, 1.0, 0.95], "epochs_to_plateau_exit": 0.5}]}
    falling = {0.0: [{"clean_grad_norms": [4.0, 3.0, 2.0, 1.0], "epochs_to_plateau_exit": 3.0}]}
    assert near_minimum(flat, 4).met and not near_minimum(falling, 4).met
    assert near_minimum(falling, 4).measured["median_fall_last_quarter"] == pytest.approx(0.5)
    assert not plateau_regime(flat, 10).met and plateau_regime(falling, 10).met
    # (i)'s checkpoints are fixed before running: half early-stopped, alternating over seeds and objectives
    picks = [checkpoint_of(o, s) for o in ("at", "trades", "mart") for s in range(8)]
    assert picks.count("best") == picks.count("last") == 12


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


def test_a_finding_through_a_diverged_or_collapsed_run_is_not_in_regime():
    """wu2020's findings need their runs trained to the end: one diverged (or collapsed) run entering a finding
    leaves its regime unmet and names the run; runs of other findings do not count."""
    from advland.reproduce.wu2020 import trained_to_the_end

    health = {"diverged": ["wu_trades_s3"], "collapsed": ["wu_mart_s1"]}
    names = ["wu_at_s0", "wu_trades_s3", "wu_mart_s1"]
    regime = trained_to_the_end(MET, health, names)
    assert not regime.met and regime.measured["runs_diverged_or_collapsed"] == ["wu_mart_s1", "wu_trades_s3"]
    assert regime.measured["x"] == 1.0 and "trained to its end" in regime.condition
    assert trained_to_the_end(MET, health, ["wu_at_s0", "wu_at_awp_s0"]).met
    assert not trained_to_the_end(UNMET, {"diverged": [], "collapsed": []}, names).met
    verdict = finalize([finding("i", "p", "c", {}, {}, [paired_test([-1.0] * 8, "d")], regime)])[0].verdict
    assert verdict == "not in regime"
