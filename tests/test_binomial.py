"""Exact intervals on every accuracy, and the paired comparison of two evaluations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as sps

from advland.binomial import (clopper_pearson, mcnemar_exact, paired_comparison, paired_difference_ci,
                              with_intervals)
from advland.cli import main
from advland.compare import compare_evals


@pytest.mark.parametrize("k, n", [(0, 10), (10, 10), (7, 40), (500, 1000), (1, 3)])
def test_clopper_pearson_matches_the_beta_quantiles(k, n):
    low, high = clopper_pearson(k, n)
    expected_low = 0.0 if k == 0 else sps.beta.ppf(0.025, k, n - k + 1)
    expected_high = 1.0 if k == n else sps.beta.ppf(0.975, k + 1, n - k)
    assert low == pytest.approx(expected_low, abs=1e-9) and high == pytest.approx(expected_high, abs=1e-9)


def test_clopper_pearson_of_no_examples_is_undefined():
    assert all(math.isnan(v) for v in clopper_pearson(0, 0))


def test_mcnemar_exact_by_hand():
    # 7 discordant pairs one way, 2 the other: p = 2 * (C(9,0) + C(9,1) + C(9,2)) / 2^9 = 92 / 512
    assert mcnemar_exact(7, 2) == pytest.approx(92 / 512)
    assert mcnemar_exact(2, 7) == pytest.approx(92 / 512)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0


def test_paired_comparison_counts_and_interval():
    a = [True] * 30 + [True] * 7 + [False] * 2 + [False] * 11
    b = [True] * 30 + [False] * 7 + [True] * 2 + [False] * 11
    result = paired_comparison(a, b)
    assert (result.n, result.b, result.c) == (50, 7, 2)
    assert result.difference == pytest.approx(5 / 50) and result.p_value == pytest.approx(92 / 512)
    low, high = result.difference_ci
    assert low < 0.1 < high and low < 0 and high < 0.25  # not significant: the interval holds 0


def test_paired_difference_interval_covers_the_true_difference_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    cells = np.array([0.5, 0.15, 0.05, 0.3])  # both right, only A, only B, neither: true difference 0.10
    draws = rng.multinomial(60, cells, size=1000)
    covered = [low <= 0.10 <= high for low, high in (paired_difference_ci(*d) for d in draws)]
    assert 0.93 <= np.mean(covered) <= 0.985


def test_summary_records_get_intervals():
    record = with_intervals({"n_test": 50, "test_clean_acc": 0.5, "test_robust_acc": 0.2, "epochs": 3}, 50)
    assert record["test_clean_acc_ci"] == list(clopper_pearson(25, 50))
    assert record["test_robust_acc_ci"] == list(clopper_pearson(10, 50)) and "epochs_ci" not in record


def test_training_summary_carries_intervals(digits_at_run):
    _, summary = digits_at_run
    n = summary["n_test"]
    low, high = summary["test_robust_acc_ci"]
    assert low <= summary["test_robust_acc"] <= high
    assert (low, high) == clopper_pearson(round(summary["test_robust_acc"] * n), n)


def test_compare_pairs_two_evaluations_and_refuses_other_examples(digits_at_run, tmp_path, capsys):
    run = digits_at_run[0].run.path
    common = ["--attacks", "pgd", "--steps", "2", "--no-sanity", "--no-progress"]
    assert main(["eval", str(run), "--n", "40", "--which", "best", *common]) == 0
    best = json.loads((run / "eval_linf_0.2_best.json").read_text())
    assert main(["eval", str(run), "--n", "40", "--which", "last", *common]) == 0
    last = json.loads((run / "eval_linf_0.2_last.json").read_text())
    assert best["interval_95"]["clean"] == list(clopper_pearson(round(best["accuracy"]["clean"] * 40), 40))
    assert len(best["per_example"]["pgd2"]) == 40 and best["examples_sha256"] == last["examples_sha256"]
    rows = {r["accuracy"]: r for r in compare_evals(best, last)}
    assert rows["clean"]["n"] == 40 and rows["clean"]["acc_a"] == pytest.approx(best["accuracy"]["clean"])
    capsys.readouterr()
    out = tmp_path / "cmp.json"
    assert main(["compare", str(run / "eval_linf_0.2_best.json"), str(run / "eval_linf_0.2_last.json"),
                 "--out", str(out)]) == 0
    assert "McNemar p" in capsys.readouterr().out and json.loads(out.read_text())["rows"]
    assert main(["eval", str(run), "--n", "30", "--which", "last", *common]) == 0
    assert main(["compare", str(run / "eval_linf_0.2_best.json"), str(run / "eval_linf_0.2_last.json")]) == 2
    err = capsys.readouterr().err
    assert "not evaluated on the same examples" in err and err.count("\n") == 1
    other = dict(last, examples_sha256=best["examples_sha256"], n=40, settings=dict(best["settings"], steps=5))
    with pytest.raises(Exception, match=r"not evaluated with the same attack \(steps: 2 vs 5\)"):
        compare_evals(best, other)
