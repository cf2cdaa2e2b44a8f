"""advland.stats against hand-computed values, and the verdict rule's false-holds rate on pure noise."""

import itertools
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
    # one-sided bounds: t_{0.95, 4} = 2.131847; half-width 2.131847 · 0.707107 = 1.507443
    assert result.bounds == pytest.approx((3.0 - 1.507443, 3.0 + 1.507443), abs=1e-5)
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
    # n = 5: the sign-flip test decides, and it needs every difference positive; the t-test's 1.36 sd understates it
    assert stats.min_detectable_mean(5, 1.0) == pytest.approx(1.71, abs=0.06)
    # Fisher z gives tanh((1.645 + 0.842)·√(1.06/27)) = 0.456 for 30 points; the simulated test agrees closely
    assert stats.min_detectable_rho(30) == pytest.approx(0.456, abs=0.04)


def _brute_force_sign_flip_power(n: int, delta: float, rng: np.random.Generator, draws: int = 3000) -> float:
    """Power of the exact sign-flip test at mean delta (sd 1), every sample's p enumerated over 2^n patterns."""
    signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    d = rng.normal(delta, 1.0, size=(draws, n))
    observed = d.mean(1)
    p = ((d @ signs.T) / n >= observed[:, None] - 1e-12).mean(1)
    return float(np.mean(p < 0.05))


@pytest.mark.parametrize("n", [5, 6, 8])
def test_sign_flip_power_at_the_detectable_effect_is_the_stated_power(n):
    delta = stats.min_detectable_mean(n, 1.0)
    assert _brute_force_sign_flip_power(n, delta, np.random.default_rng(n)) == pytest.approx(0.8, abs=0.03)


@pytest.mark.parametrize("d", [[0.3, -0.1, 0.5, 0.2, 0.4], [1.0, 2.0, 3.0, 4.0, 5.0, -0.5, 0.7, 1.5],
                               [-0.2, 0.1, -0.4, -0.3, 0.05, -0.1]])
def test_exact_sign_flip_bounds_are_the_inverted_test(d):
    low, high = stats.sign_flip_bounds(d)
    # brute force: μ is inside the lower bound's region exactly when the test of d − μ does not reject at 0.05
    grid = np.linspace(min(d) - 1, max(d) + 1, 4001)
    accepted_low = [mu for mu in grid if stats.sign_flip([x - mu for x in d])[0] >= 0.05]
    accepted_high = [mu for mu in grid if stats.sign_flip([x - mu for x in d])[1] >= 0.05]
    step = grid[1] - grid[0]
    assert min(accepted_low) == pytest.approx(low, abs=step) and max(accepted_high) == pytest.approx(high, abs=step)
    # and the bounds never contradict the verdict
    test = stats.paired_test(d, "d")
    assert (stats.verdict(test) == "holds") == (low > 0) and (stats.verdict(test) == "does not hold") == (high < 0)


def test_holm_against_a_hand_computed_case():
    # sorted 0.01, 0.02, 0.03, 0.5: times 4, 3, 2, 1 = 0.04, 0.06, 0.06, 0.5; monotone: 0.04, 0.06, 0.06, 0.5
    assert stats.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and stats.holm([]) == []


def test_p_floor_and_monte_carlo_bounds_are_stated():
    assert stats.paired_test(SAMPLE, "d").p_floor == 1 / 32
    assert stats.paired_test(list(np.linspace(0.5, 1.5, 12)), "d").p_floor == 0.0  # t-test: any p
    perfect = stats.rank_test(list(range(12)), list(range(12)), "rho")
    assert perfect.p_is_bound and perfect.p_value == perfect.p_floor == 1 / (1 + stats.RESAMPLES)
    assert "p < " in stats.explain(perfect)
    exact = stats.rank_test([1, 2, 3, 4], [10, 20, 30, 40], "rho")
    assert exact.p_floor == 1 / 24 and not exact.p_is_bound


def test_within_seed_rank_test_is_exact_and_never_mixes_seeds():
    # two seeds, 3 levels, both perfectly increasing: each seed's ρ = 1 with probability 1/6: p = 1/36
    both = stats.within_seed_rank_test([([0, 1, 2], [5, 6, 7]), ([0, 1, 2], [100, 200, 300])])
    assert both.rho == 1.0 and both.p_greater == pytest.approx(1 / 36) and both.p_floor == pytest.approx(1 / 36)
    # brute force over the 6 × 6 within-seed orderings for a mixed case
    groups = [([0, 1, 2], [1.0, 3.0, 2.0]), ([0, 1, 2], [2.0, 1.0, 3.0])]
    observed = np.mean([sps.spearmanr(x, y).statistic for x, y in groups])
    null = [np.mean([sps.spearmanr(groups[0][0], a).statistic, sps.spearmanr(groups[1][0], b).statistic])
            for a in itertools.permutations(groups[0][1]) for b in itertools.permutations(groups[1][1])]
    test = stats.within_seed_rank_test(groups)
    assert test.rho == pytest.approx(observed)
    assert test.p_greater == pytest.approx(np.mean(np.array(null) >= observed - 1e-9))
    # a level shift between seeds that pooling would read as a trend is no trend within seeds
    shifted = [([0, 1, 2], [10.0, 9.0, 11.0]), ([0, 1, 2], [20.0, 21.0, 19.0])]
    assert stats.within_seed_rank_test(shifted).rho == 0.0


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
    assert set(record) >= {"name", "n", "effect", "bounds", "p_value", "alpha", "p_floor", "values"}
    assert isinstance(record["bounds"], list) and record["values"]["differences"] == SAMPLE
    empty = stats.paired_test([], "left out")
    assert stats.verdict(empty) == "inconclusive" and "nothing to test" in stats.explain(empty)
    negative = stats.rank_test([1, 2, 3, 4, 5], [5, 4, 3, 2, 1], "rho", sign=-1)
    assert negative.effect == 1.0 and stats.verdict(negative) == "holds"
    assert stats.claim_p([holds, unclear])[0] == unclear.p_value
    # "does not hold" needs a part opposite after Bonferroni: 2 · 1/32 = 0.0625 is not enough with two parts
    assert stats.claim_p([holds, opposite]) == (1.0, 0.0625)
    assert stats.decide(0.01, 0.9, in_regime=True) == "holds"
    assert stats.decide(0.9, 0.01, in_regime=True) == "does not hold"
    assert stats.decide(0.9, 0.01, in_regime=False) == "not in regime"  # never "does not hold" out of regime


@pytest.mark.parametrize("n", [5, 8, 12])
def test_pure_noise_is_rarely_called_holds(n):
    # the old rule (|mean| > std across seeds) said "holds" on about 20 % of pure-noise pairs of 2 seeds
    rng = np.random.default_rng(n)
    repetitions = 400
    holds = sum(stats.verdict(stats.paired_test(list(rng.normal(size=n)), "noise")) == "holds"
                for _ in range(repetitions))
    # alpha 0.05 + 3 binomial standard errors (0.033 at 400 repetitions)
    assert holds / repetitions <= 0.05 + 0.033


@pytest.mark.parametrize("parts", [1, 3])
def test_pure_noise_claims_rarely_hold_or_fail(parts):
    # both directions controlled at α, also for claims of several parts (any part opposite used to fail a claim
    # about 9 % of the time with three parts)
    rng = np.random.default_rng(parts)
    repetitions = 400
    verdicts = [stats.decide(*stats.claim_p([stats.paired_test(list(rng.normal(size=8)), "noise")
                                             for _ in range(parts)]), in_regime=True) for _ in range(repetitions)]
    assert verdicts.count("holds") / repetitions <= 0.05 + 0.033
    assert verdicts.count("does not hold") / repetitions <= 0.05 + 0.033


def test_pure_noise_rank_correlation_is_rarely_called_holds():
    rng = np.random.default_rng(1)
    repetitions = 300
    holds = sum(stats.verdict(stats.rank_test(list(rng.normal(size=7)), list(rng.normal(size=7)), "rho")) == "holds"
                for _ in range(repetitions))
    assert holds / repetitions <= 0.05 + 0.038


def test_rank_test_leaves_out_non_finite_points_and_says_so():
    x = [1.0, 2.0, math.nan, 4.0, 5.0, math.inf]
    y = [1.5, 2.5, 3.0, 4.5, 6.0, 1.0]
    test = stats.rank_test(x, y, "ρ")
    assert test.n == 4 and test.effect == 1.0 and "2 of 6 points left out" in test.what
    assert test.values == {"x": [1.0, 2.0, 4.0, 5.0], "y": [1.5, 2.5, 4.5, 6.0]}
    assert test.p_value == stats.rank_test(x[:2] + x[3:5], y[:2] + y[3:5], "ρ").p_value == 1 / 24
    empty = stats.rank_test([math.nan, 1.0, 2.0], [1.0, 2.0, 3.0], "ρ")
    assert empty.n == 2 and (empty.p_value, empty.p_opposite) == (1.0, 1.0) and stats.verdict(empty) == "inconclusive"
