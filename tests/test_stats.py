"""advland.stats against hand-computed values, and the verdict rule's false-holds rate on pure noise."""

import math

import numpy as np
import pytest
from scipy import stats as sps

from advland import stats

SAMPLE = [1.0, 2.0, 3.0, 4.0, 5.0]
"""mean 3, sd √2.5 = 1.5811, standard error 0.70711, t = 4.2426 with 4 degrees of freedom."""


def test_paired_t_matches_hand_computed_values_and_scipy():
    result = stats.paired_t(SAMPLE)
    assert result.mean == 3.0
    assert result.t == pytest.approx(3.0 / math.sqrt(2.5 / 5))
    # t_{0.975, 4} = 2.776445; half-width 2.776445 · 0.707107 = 1.963243
    assert result.ci95 == pytest.approx((3.0 - 1.963243, 3.0 + 1.963243), abs=1e-5)
    # one-sided p for t = 4.2426, 4 df: 0.0066 (tables), and scipy's own one-sided test
    assert result.p_greater == pytest.approx(0.006617, abs=2e-5)
    assert result.p_greater == pytest.approx(sps.ttest_1samp(SAMPLE, 0.0, alternative="greater").pvalue)
    assert result.p_less == pytest.approx(1 - result.p_greater)


def test_paired_t_of_identical_differences_is_infinite_not_nan():
    assert stats.paired_t([0.5, 0.5, 0.5]).t == math.inf
    assert stats.paired_t([0.0, 0.0]).p_greater == 0.5


def test_exact_sign_flip_p_on_a_tiny_sample():
    # d = (1, 2, -0.5): of the 8 sign patterns, sums ≥ 2.5 are (+,+,-) = 2.5 and (+,+,+) = 3.5: p = 2/8;
    # sums ≤ 2.5: all but (+,+,+): p_less = 7/8
    greater, less, exact = stats.sign_flip([1.0, 2.0, -0.5])
    assert exact and greater == 2 / 8 and less == 7 / 8
    # all positive: only the observed pattern is as extreme, p = 2^-n
    assert stats.sign_flip(SAMPLE)[0] == 1 / 32


def test_monte_carlo_sign_flip_is_seeded_and_close_to_the_exact_value():
    d = list(np.random.default_rng(3).normal(0.3, 1.0, 12))
    p1, _, exact = stats.sign_flip(d, seed=1)
    assert not exact and p1 == stats.sign_flip(d, seed=1)[0]
    signs = np.array(np.meshgrid(*[[1.0, -1.0]] * 12)).reshape(12, -1).T
    exact_p = np.mean(signs @ np.array(d) >= sum(d) - 1e-12)
    assert p1 == pytest.approx(exact_p, abs=0.01)


def test_spearman_permutation_exact_p():
    # perfectly increasing 4 points: only the identity ordering reaches rho = 1: p = 1/24
    test = stats.spearman_permutation([1, 2, 3, 4], [10, 20, 30, 40])
    assert test.rho == 1.0 and test.p_greater == 1 / 24 and test.p_less == 1.0 and test.exact
    # rho of (1,2,3,4) vs (1,3,2,4): 1 - 6·2/(4·15) = 0.8; orderings with rho ≥ 0.8: the identity and
    # the three single adjacent swaps: 4/24
    test = stats.spearman_permutation([1, 2, 3, 4], [1, 3, 2, 4])
    assert test.rho == pytest.approx(0.8) and test.p_greater == pytest.approx(4 / 24)
    assert test.rho == pytest.approx(sps.spearmanr([1, 2, 3, 4], [1, 3, 2, 4]).statistic)


def test_spearman_permutation_monte_carlo_agrees_with_scipy_on_a_large_sample():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = 0.5 * x + rng.normal(size=30)
    test = stats.spearman_permutation(list(x), list(y), seed=0)
    reference = sps.spearmanr(x, y, alternative="greater")
    assert test.rho == pytest.approx(reference.statistic)
    assert test.p_greater == pytest.approx(reference.pvalue, abs=0.01)


def test_min_detectable_effects():
    # n = 3: the exact sign-flip test's smallest p is 1/8, nothing is detectable
    assert stats.min_detectable_mean(3, 1.0) == math.inf
    # n = 20, sd 1: the normal approximation (z_0.95 + z_0.8) / √20 = 0.556; the t-test needs a bit more
    assert 0.556 < stats.min_detectable_mean(20, 1.0) < 0.60
    assert stats.min_detectable_mean(20, 2.0) == pytest.approx(2 * stats.min_detectable_mean(20, 1.0))
    # Fisher z: tanh((1.645 + 0.842)·√(1.06/27)) = tanh(0.4927) = 0.456
    assert stats.min_detectable_rho(30) == pytest.approx(0.456, abs=0.002)


def test_verdict_rule_and_test_object():
    holds = stats.paired_test(SAMPLE, "d")
    assert stats.verdict(holds) == "holds" and holds.p_value == 1 / 32 and holds.effect == 3.0
    opposite = stats.paired_test([-x for x in SAMPLE], "d")
    assert stats.verdict(opposite) == "does not hold" and "opposite direction is significant (p = 0.0312)" in stats.explain(opposite)
    unclear = stats.paired_test([1.0, -0.8, 0.1, 0.3, -0.2], "d")
    assert stats.verdict(unclear) == "inconclusive"
    assert "smallest effect" in stats.explain(unclear)
    assert "cannot reach" in stats.explain(stats.paired_test([1.0, 1.2, 0.9], "d"))
    many = stats.paired_test(list(np.linspace(0.5, 1.5, 12)), "d")
    assert many.name.startswith("paired t-test") and stats.verdict(many) == "holds"
    record = holds.as_dict()
    assert set(record) >= {"name", "n", "effect", "ci95", "p_value", "alpha"} and isinstance(record["ci95"], list)
    empty = stats.paired_test([], "left out")
    assert stats.verdict(empty) == "inconclusive" and "nothing to test" in stats.explain(empty)
    negative = stats.rank_test([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], "rho", sign=-1)
    assert negative.effect == 1.0 and stats.verdict(negative) == "holds"
    assert stats.combine([holds, unclear]) == "inconclusive"
    assert stats.combine([holds, stats.paired_test([-x for x in SAMPLE], "d")]) == "does not hold"


@pytest.mark.parametrize("n", [5, 8, 12])
def test_pure_noise_is_rarely_called_holds(n):
    # the old rule (|mean| > std across seeds) said "holds" on about 20 % of pure-noise pairs of 2 seeds
    rng = np.random.default_rng(n)
    repetitions = 400
    holds = sum(stats.verdict(stats.paired_test(list(rng.normal(size=n)), "noise")) == "holds"
                for _ in range(repetitions))
    # alpha 0.05 + 3 binomial standard errors (0.033 at 400 repetitions)
    assert holds / repetitions <= 0.05 + 0.033


def test_pure_noise_rank_correlation_is_rarely_called_holds():
    rng = np.random.default_rng(1)
    repetitions = 300
    holds = sum(stats.verdict(stats.rank_test(list(rng.normal(size=7)), list(rng.normal(size=7)), "rho")) == "holds"
                for _ in range(repetitions))
    assert holds / repetitions <= 0.05 + 0.038
