"""Statistics of verdicts: paired tests, permutation tests, confidence bounds, power, and the verdict rule.

Pure functions on lists of floats; ``advland.reproduce`` calls them and nothing else decides a verdict.

* :func:`paired_test`: the test of per-seed paired differences d_s (positive = as claimed). For n ≤
  :data:`EXACT_MAX_N` the exact sign-flip permutation test (all 2^n sign patterns), above the one-sided
  paired t-test. Its confidence bounds and smallest detectable effect come from the same test: the
  exact bounds invert the sign-flip test (order statistics of the subset means), the power of the
  sign-flip test is simulated with seeded normal differences.
* :func:`rank_test`: Spearman's ρ with its permutation test (independent points).
* :func:`within_seed_rank_test`: a trend over a factor (ε) measured in every seed: the mean over seeds
  of the within-seed Spearman ρ, tested by permuting the factor within each seed only (the exact null is
  the convolution of the seeds' own permutation distributions); it never treats runs of different seeds
  as exchangeable.
* :func:`claim_p`: the p-values of a claim made of several parts: it holds only if every part holds
  (intersection-union: the largest p), it does not hold if any part is significantly opposite, Bonferroni
  over the parts (so that "does not hold" is controlled at α like "holds").
* :func:`holm`: Holm's step-down adjustment within one report; :func:`decide` turns adjusted p-values and
  the regime check into the verdict: holds, does not hold, inconclusive or not in regime.

One-sided p-values are "greater": the claimed direction is positive (callers orient the differences).
Every test states its smallest attainable p (``p_floor``); a Monte Carlo p that no resample reached is
reported as the bound 1 / (1 + resamples) with ``p_is_bound`` set.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats as sps
from scipy.optimize import brentq

ALPHA = 0.05
POWER = 0.8
EXACT_MAX_N = 10
"""The sign-flip test enumerates all 2^n flips up to this n (1024 flips)."""
EXACT_MAX_PERM = 8
"""Spearman's permutation test enumerates all n! orderings up to this n (40 320)."""
RESAMPLES = 20_000
"""Monte Carlo resamples above the exact sizes."""
SIMULATIONS = 4_000
"""Seeded simulated samples behind a power (smallest detectable effect) of a permutation test."""
_TOL = 1e-12
"""Statistics within this (relative) distance of the observed one count as ties (as extreme)."""

Verdict = Literal["holds", "does not hold", "inconclusive", "not in regime"]


def _finite(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"statistics need finite values, got {list(values)}")
    return array


# ---------------------------------------------------------------- paired differences

@dataclass(frozen=True)
class TTest:
    t: float
    """The t statistic mean / (sd / √n); ±inf when every difference is the same non-zero value."""
    p_greater: float
    p_less: float
    mean: float
    bounds: tuple[float, float]
    """One-sided 95 % bounds: mean ± t_{0.95, n−1}·sd/√n (together a two-sided 90 % interval)."""


def t_bounds(values: Sequence[float], alpha: float = ALPHA) -> tuple[float, float]:
    """The one-sided (1 − α) lower and upper t bounds of the mean (NaN with fewer than two values)."""
    d = _finite(values)
    if len(d) < 2:
        return math.nan, math.nan
    half = sps.t.ppf(1 - alpha, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def paired_t(differences: Sequence[float], alpha: float = ALPHA) -> TTest:
    """One-sided paired t-test of mean(d) > 0 and of mean(d) < 0 on paired differences d (n ≥ 2)."""
    d = _finite(differences)
    if len(d) < 2:
        raise ValueError("a paired t-test needs at least two differences")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        t = math.copysign(math.inf, mean) if mean else 0.0
        p_greater = 0.0 if mean > 0 else 1.0 if mean < 0 else 0.5
        p_less = 0.0 if mean < 0 else 1.0 if mean > 0 else 0.5
    else:
        t = mean / (sd / math.sqrt(len(d)))
        p_greater, p_less = float(sps.t.sf(t, len(d) - 1)), float(sps.t.cdf(t, len(d) - 1))
    return TTest(t, p_greater, p_less, mean, t_bounds(differences, alpha))


def _tail(null: np.ndarray, observed: float) -> tuple[int, int]:
    """How many null statistics are ≥ and ≤ the observed one (ties within a relative tolerance count)."""
    tol = _TOL * max(1.0, abs(observed))
    return int(np.sum(null >= observed - tol)), int(np.sum(null <= observed + tol))


def sign_flip(differences: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, bool]:
    """The sign-flip permutation test of the mean paired difference: (p_greater, p_less, exact).

    Under the null each d_i is as likely to be −d_i. Exact for n ≤ EXACT_MAX_N: every one of the
    2^n sign patterns (the observed one included) is a null draw, p = #(mean ≥ observed) / 2^n.
    Above, ``resamples`` seeded random patterns and p = (1 + #) / (1 + resamples).
    """
    d = _finite(differences)
    if len(d) == 0:
        raise ValueError("a sign-flip test needs at least one difference")
    observed = float(d.mean())
    if len(d) <= EXACT_MAX_N:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        greater, less = _tail(signs @ d / len(d), observed)
        return greater / len(signs), less / len(signs), True
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(resamples, len(d)))
    greater, less = _tail(signs @ d / len(d), observed)
    return (1 + greater) / (1 + resamples), (1 + less) / (1 + resamples), False


@functools.lru_cache(maxsize=EXACT_MAX_N)
def _subset_averaging(n: int) -> np.ndarray:
    """Rows average the differences over every non-empty subset of n: shape (2^n − 1, n)."""
    masks = np.array(list(itertools.product((0.0, 1.0), repeat=n)))[1:]
    return masks / masks.sum(1, keepdims=True)


def _bound_rank(n: int, alpha: float) -> int:
    """The rank m of the subset mean that bounds the exact sign-flip test at α (0: no bound exists).

    The sign-flip p of H0 "mean = μ" against "greater" is (1 + #{F ≠ ∅ : mean_F(d) ≤ μ}) / 2^n, so μ is
    not rejected exactly when at least m = ⌈α·2^n⌉ − 1 subset means are ≤ μ.
    """
    return max(math.ceil(alpha * 2**n - 1e-9) - 1, 0)


def sign_flip_bounds(differences: Sequence[float], alpha: float = ALPHA) -> tuple[float, float]:
    """The exact one-sided (1 − α) confidence bounds of the mean difference, by inverting the sign-flip test.

    The lower bound L is the m-th smallest of the 2^n − 1 subset means (m = :func:`_bound_rank`), the upper
    the m-th largest: the test rejects "mean ≤ 0" (p < α) exactly when L > 0 and "mean ≥ 0" exactly when
    U < 0, so the bounds never contradict the verdict. ±inf when 2^-n ≥ α (no bound at this n).
    """
    d = _finite(differences)
    if not 0 < len(d) <= EXACT_MAX_N:
        raise ValueError(f"exact sign-flip bounds need 1 to {EXACT_MAX_N} differences, got {len(d)}")
    m = _bound_rank(len(d), alpha)
    if m == 0:
        return -math.inf, math.inf
    means = np.sort(_subset_averaging(len(d)) @ d)
    return float(means[m - 1]), float(means[-m])


@functools.lru_cache(maxsize=64)
def _sign_flip_detectable_sd(n: int, alpha: float, power: float, seed: int = 0) -> float:
    """The smallest true mean difference, in units of the differences' sd, that the exact sign-flip test of n
    normal differences detects with probability ``power`` at α, by seeded simulation (:data:`SIMULATIONS`).

    The test rejects when the m-th smallest subset mean is > 0; that order statistic of δ + z is δ plus that of
    z, so the power at δ is P(K > −δ) with K simulated once, and δ = −(1 − power)-quantile of K."""
    m = _bound_rank(n, alpha)
    if m == 0:
        return math.inf
    z = np.random.default_rng(seed).standard_normal((SIMULATIONS, n))
    k = np.sort(z @ _subset_averaging(n).T, axis=1)[:, m - 1]
    return float(-np.quantile(k, 1 - power))


@functools.lru_cache(maxsize=64)
def _noncentrality(n: int, alpha: float, power: float) -> float:
    """The non-centrality δ at which a one-sided t-test of n values rejects with probability ``power``."""
    df, critical = n - 1, sps.t.ppf(1 - alpha, n - 1)
    return brentq(lambda delta: float(sps.nct.sf(critical, df, delta)) - power, 0.0, 100.0)


def min_detectable_mean(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference the deciding paired test of n differences with standard deviation
    ``sd`` detects with probability ``power`` at α: the exact sign-flip test's simulated power for
    n ≤ EXACT_MAX_N (inf when 2^-n ≥ α: it cannot reach p < α at all), the t-test's (non-central t) above."""
    if n < 2 or not math.isfinite(sd):
        return math.inf
    if n <= EXACT_MAX_N:
        return _sign_flip_detectable_sd(n, alpha, power) * sd
    return _noncentrality(n, alpha, power) * sd / math.sqrt(n)


# ---------------------------------------------------------------- rank correlation

@functools.lru_cache(maxsize=EXACT_MAX_PERM)
def _orderings(n: int) -> np.ndarray:
    """Every ordering of range(n), shape (n!, n)."""
    return np.array(list(itertools.permutations(range(n))))


def _ranks(values: np.ndarray) -> np.ndarray:
    return sps.rankdata(values, axis=-1)  # average ranks for ties


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of a (n,) with every row of b (m, n); 0 where either is constant."""
    a = a - a.mean()
    b = b - b.mean(axis=-1, keepdims=True)
    denom = np.sqrt((a**2).sum() * (b**2).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (b @ a) / np.where(denom > 0, denom, 1.0), 0.0)


@dataclass(frozen=True)
class RankTest:
    rho: float
    """Spearman's ρ (Pearson correlation of the average ranks; 0 for constant inputs)."""
    p_greater: float
    p_less: float
    exact: bool
    critical: tuple[float, float]
    """The ρ the test needs: the smallest null value with p_greater < α and the largest with p_less < α
    (±inf when no ρ reaches p < α at this n)."""
    p_floor: float


def _critical(null: np.ndarray, alpha: float, denominator: float, plus_one: bool) -> tuple[float, float]:
    """(smallest value whose upper-tail p < α, largest value whose lower-tail p < α) of a null sample, with
    p = (plus_one + #as extreme) / denominator (±inf where no value reaches p < α)."""
    values = np.sort(null)
    tol = _TOL * np.maximum(1.0, np.abs(values))
    at_least = len(values) - np.searchsorted(values, values - tol, side="left")
    at_most = np.searchsorted(values, values + tol, side="right")
    upper = values[(plus_one + at_least) / denominator < alpha]
    lower = values[(plus_one + at_most) / denominator < alpha]
    return (float(upper.min()) if len(upper) else math.inf), (float(lower.max()) if len(lower) else -math.inf)


def spearman_permutation(x: Sequence[float], y: Sequence[float], *, resamples: int = RESAMPLES, seed: int = 0,
                         alpha: float = ALPHA) -> RankTest:
    """Spearman's ρ of (x, y) and its permutation p-values (ρ > 0 and ρ < 0), n ≥ 3.

    Null: the pairing of x and y is random. Exact for n ≤ EXACT_MAX_PERM (all n! orderings of y's
    ranks, p = #(ρ ≥ observed) / n!); above, ``resamples`` seeded random orderings, p = (1 + #) / (1 + resamples).
    """
    rx, ry = _ranks(_finite(x)), _ranks(_finite(y))
    n = len(rx)
    if n != len(ry) or n < 3:
        raise ValueError(f"Spearman's test needs two equally long samples of at least 3 values (got {len(rx)}, {len(ry)})")
    rho = float(_pearson(rx, ry[None, :])[0])
    if n <= EXACT_MAX_PERM:
        null = _pearson(rx, ry[_orderings(n)])
        greater, less = _tail(null, rho)
        top = _tail(null, float(null.max()))[0]
        return RankTest(rho, greater / len(null), less / len(null), True,
                        _critical(null, alpha, len(null), False), top / len(null))
    rng = np.random.default_rng(seed)
    null = _pearson(rx, ry[rng.permuted(np.tile(np.arange(n), (resamples, 1)), axis=1)])
    greater, less = _tail(null, rho)
    return RankTest(rho, (1 + greater) / (1 + resamples), (1 + less) / (1 + resamples), False,
                    _critical(null, alpha, 1 + resamples, True), 1 / (1 + resamples))


def _population_spearman(r: float) -> float:
    """Spearman's ρ of a bivariate normal with Pearson correlation r: (6/π)·asin(r/2)."""
    return 6 / math.pi * math.asin(r / 2)


def _detectable_rho(statistic, critical: float, shape: tuple[int, ...], power: float, seed: int = 0) -> float:
    """The smallest population Spearman ρ (bivariate normal) whose simulated ``statistic`` of samples of
    ``shape`` exceeds ``critical`` with probability ``power`` (common random numbers, bisection over r)."""
    if not math.isfinite(critical):
        return math.inf
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((SIMULATIONS, *shape)), rng.standard_normal((SIMULATIONS, *shape))

    def reach(r: float) -> float:
        return float(np.mean(statistic(a, r * a + math.sqrt(1 - r * r) * b) >= critical - _TOL))

    if reach(0.999) < power:
        return math.inf
    low, high = 0.0, 0.999
    for _ in range(30):
        mid = (low + high) / 2
        low, high = (mid, high) if reach(mid) < power else (low, mid)
    return _population_spearman(high)


def _row_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's ρ along the last axis of two equally shaped arrays (continuous samples: no ties)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(-1, keepdims=True), rb - rb.mean(-1, keepdims=True)
    return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


@functools.lru_cache(maxsize=64)
def min_detectable_rho(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest population Spearman ρ (bivariate normal) that the permutation test of n independent points
    detects with probability ``power`` at α (one-sided), by seeded simulation; inf when no ρ reaches p < α."""
    if n < 3:
        return math.inf
    x = np.arange(n, dtype=np.float64)
    critical = spearman_permutation(x, x, alpha=alpha).critical[0]
    return _detectable_rho(_row_spearman, critical, (n,), power)


@dataclass(frozen=True)
class WithinSeedRankTest:
    rho: float
    """The mean over seeds of each seed's Spearman ρ."""
    p_greater: float
    p_less: float
    critical: tuple[float, float]
    p_floor: float


def _null_distribution(x: np.ndarray, y: np.ndarray) -> dict[float, float]:
    """One seed's exact null: Spearman ρ of x against every ordering of y, value -> probability."""
    rx, ry = _ranks(x), _ranks(y)
    null = np.round(_pearson(rx, ry[_orderings(len(rx))]), 9)
    values, counts = np.unique(null, return_counts=True)
    return dict(zip(values.tolist(), (counts / counts.sum()).tolist()))


def within_seed_rank_test(groups: Sequence[tuple[Sequence[float], Sequence[float]]],
                          alpha: float = ALPHA) -> WithinSeedRankTest:
    """The trend test that respects the seeds: statistic = mean over seeds of Spearman ρ(x_s, y_s); null = the
    factor permuted within each seed independently. Exact: the null of the mean is the convolution of every
    seed's own permutation distribution (ties as average ranks). Each seed needs 2 to EXACT_MAX_PERM points."""
    if not groups:
        raise ValueError("a within-seed rank test needs at least one seed")
    total: dict[float, float] = {0.0: 1.0}
    observed = 0.0
    for x, y in groups:
        x, y = _finite(x), _finite(y)
        if len(x) != len(y) or not 2 <= len(x) <= EXACT_MAX_PERM:
            raise ValueError(f"each seed needs 2 to {EXACT_MAX_PERM} paired points, got {len(x)} and {len(y)}")
        observed += float(_pearson(_ranks(x), _ranks(y)[None, :])[0])
        merged: dict[float, float] = {}
        for s, p in total.items():
            for v, q in _null_distribution(x, y).items():
                key = round(s + v, 9)
                merged[key] = merged.get(key, 0.0) + p * q
        total = merged
    n = len(groups)
    values = np.array(sorted(total)) / n
    probs = np.array([total[k] for k in sorted(total)])
    rho = observed / n
    tol = _TOL * max(1.0, abs(rho)) + 1e-9 / n
    greater, less = float(probs[values >= rho - tol].sum()), float(probs[values <= rho + tol].sum())
    upper_tail, lower_tail = np.cumsum(probs[::-1])[::-1], np.cumsum(probs)
    upper = next((float(v) for v, p in zip(values, upper_tail) if p < alpha), math.inf)
    lower = next((float(v) for v, p in zip(values[::-1], lower_tail[::-1]) if p < alpha), -math.inf)
    return WithinSeedRankTest(rho, min(greater, 1.0), min(less, 1.0), (upper, lower), float(probs[-1]))


def min_detectable_within_seed_rho(k: int, seeds: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest population Spearman ρ (bivariate normal within each seed) that the within-seed rank test of
    ``seeds`` seeds × ``k`` levels detects with probability ``power`` at α, by seeded simulation."""
    return _detectable_within(k, seeds, alpha, power)


@functools.lru_cache(maxsize=64)
def _detectable_within(k: int, seeds: int, alpha: float, power: float) -> float:
    if k < 2 or seeds < 1:
        return math.inf
    x = np.arange(k, dtype=np.float64)
    critical = within_seed_rank_test([(x, x)] * seeds, alpha).critical[0]
    return _detectable_rho(lambda a, b: _row_spearman(a, b).mean(-1), critical, (seeds, k), power)


# ---------------------------------------------------------------- test objects and verdicts

@dataclass(frozen=True)
class Test:
    """The test behind one verdict (or one part of it), as findings.json carries it."""

    name: str
    n: int
    effect: float
    """In the claimed direction: the mean paired difference (finding's units) or Spearman's ρ."""
    bounds: tuple[float, float]
    """Confidence bounds of ``effect`` from the deciding test itself (see ``bounds_kind``): the lower one is > 0
    exactly when p < α, the upper one < 0 exactly when p_opposite < α. NaN for rank tests, whose permutation
    null tests independence only (they state ``critical`` instead)."""
    bounds_kind: str
    p_value: float
    """One-sided p in the claimed direction."""
    p_opposite: float
    """One-sided p in the opposite direction."""
    alpha: float
    min_detectable: float
    """The smallest effect (same units as ``effect``) this test detects with power 0.8 at α (inf: none)."""
    what: str
    """What ``effect`` measures, e.g. "top eigenvalue at ε = 0.3 minus at ε = 0"."""
    p_floor: float
    """The smallest p this test can reach with this n (and these ties)."""
    p_is_bound: bool = False
    """A Monte Carlo p that no resample reached: the true p is below it."""
    values: dict[str, Any] = field(default_factory=dict)
    """Every value that enters the test: per-seed differences, or the paired points of a rank test."""
    critical: tuple[float, float] = (math.nan, math.nan)
    """Rank tests: the effect needed for p < α as claimed, and the one needed for p < α opposite (±inf: none)."""

    def as_dict(self) -> dict:
        """JSON-ready (tuples as lists, non-finite numbers as None)."""
        return _clean(asdict(self))


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (tuple, list)):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def paired_test(differences: Sequence[float], what: str, *, alpha: float = ALPHA, seed: int = 0) -> Test:
    """The test of paired differences d_s (positive = as claimed): the exact sign-flip test for
    n ≤ EXACT_MAX_N, the one-sided paired t-test above; bounds and power of the same test."""
    d = _finite(differences)
    n = len(d)
    if n == 0:  # every pair left out (e.g. unconverged estimates): nothing to test, never a verdict
        return Test("no test (no usable pairs)", 0, math.nan, (math.nan, math.nan), "none", 1.0, 1.0, alpha, math.inf,
                    what, 1.0, values={"differences": []})
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    values = {"differences": d.tolist()}
    if n <= EXACT_MAX_N:
        p, q, _ = sign_flip(differences, seed=seed)
        return Test("exact sign-flip permutation test of the mean paired difference (one-sided)", n, float(d.mean()),
                    sign_flip_bounds(differences, alpha), f"exact one-sided {1 - alpha:.0%} bounds (sign-flip test inverted)",
                    p, q, alpha, min_detectable_mean(n, sd, alpha), what, 2.0**-n, values=values)
    t = paired_t(differences, alpha)
    return Test("paired t-test of the mean difference (one-sided)", n, float(d.mean()), t.bounds,
                f"one-sided {1 - alpha:.0%} t bounds", t.p_greater, t.p_less, alpha, min_detectable_mean(n, sd, alpha),
                what, 0.0, values=values)


def rank_test(x: Sequence[float], y: Sequence[float], what: str, *, sign: int = 1, alpha: float = ALPHA,
              seed: int = 0) -> Test:
    """The permutation test of Spearman's ρ(x, y) over independent points; ``sign`` −1 when the claim is a
    negative correlation (the effect is then −ρ, so that positive is always as claimed). A point with a
    non-finite value (e.g. the sharpness of a run that blew up) is left out, and ``what`` says how many were."""
    keep = [i for i, pair in enumerate(zip(x, y)) if all(math.isfinite(v) for v in pair)]
    if len(keep) < len(x):
        what += f" ({len(x) - len(keep)} of {len(x)} points left out: a non-finite value)"
        x, y = [x[i] for i in keep], [y[i] for i in keep]
    if len(x) < 3:  # too few usable points: nothing to test, never a verdict
        return Test("no test (fewer than 3 usable points)", len(x), math.nan, (math.nan, math.nan), "none", 1.0, 1.0,
                    alpha, math.inf, what, 1.0, values={"x": list(map(float, x)), "y": list(map(float, y))})
    r = spearman_permutation(x, y, seed=seed, alpha=alpha)
    p, q = (r.p_greater, r.p_less) if sign > 0 else (r.p_less, r.p_greater)
    need = (r.critical[0], r.critical[1]) if sign > 0 else (-r.critical[1], -r.critical[0])
    name = f"{'exact' if r.exact else 'Monte Carlo'} permutation test of Spearman's ρ (one-sided)"
    return Test(name, len(x), sign * r.rho, (math.nan, math.nan), "none (a permutation test of independence)",
                p, q, alpha, min_detectable_rho(len(x), alpha), what, r.p_floor,
                p_is_bound=not r.exact and p <= r.p_floor, values={"x": list(map(float, x)), "y": list(map(float, y))},
                critical=need)


def within_seed_test(groups: Sequence[tuple[Sequence[float], Sequence[float]]], what: str, *, sign: int = 1,
                     alpha: float = ALPHA) -> Test:
    """:func:`within_seed_rank_test` as a test object (``sign`` as in :func:`rank_test`)."""
    r = within_seed_rank_test(groups, alpha)
    p, q = (r.p_greater, r.p_less) if sign > 0 else (r.p_less, r.p_greater)
    need = (r.critical[0], r.critical[1]) if sign > 0 else (-r.critical[1], -r.critical[0])
    k = max(len(x) for x, _ in groups)
    return Test("exact within-seed permutation test of the mean Spearman ρ (one-sided)", len(groups), sign * r.rho,
                (math.nan, math.nan), "none (a permutation test of independence)", p, q, alpha,
                min_detectable_within_seed_rho(k, len(groups), alpha), what, r.p_floor,
                values={"seeds": [{"x": list(map(float, x)), "y": list(map(float, y))} for x, y in groups]},
                critical=need)


def verdict(test: Test) -> Verdict:
    """One test on its own: holds when p < α as claimed; does not hold when the opposite direction is significant
    at α; inconclusive otherwise (a report adjusts for multiplicity with :func:`decide`)."""
    if test.p_value < test.alpha:
        return "holds"
    if test.p_opposite < test.alpha:
        return "does not hold"
    return "inconclusive"


def claim_p(parts: Sequence[Test]) -> tuple[float, float]:
    """(p that the claim holds, p that it does not) of a claim made of parts: every part must hold, so the
    claim's p is the largest part p (intersection-union test); "does not hold" needs one part significantly
    opposite, Bonferroni over the k parts (k · the smallest opposite p), so it is controlled at α too."""
    if not parts:
        raise ValueError("a claim needs at least one test")
    return max(t.p_value for t in parts), min(1.0, len(parts) * min(t.p_opposite for t in parts))


CLAIM_RULE = ("a claim holds when every part holds (its p is the largest part p); it does not hold when a part is "
              "significantly opposite after Bonferroni over the parts; inconclusive otherwise")


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): sorted ascending, p_(i)·(m − i + 1), made
    monotone and capped at 1. Rejecting where the adjusted p < α controls the family-wise error at α."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def decide(p_holds: float, p_not: float, in_regime: bool, alpha: float = ALPHA) -> Verdict:
    """The verdict from (Holm-adjusted) p-values and the regime check: not in regime whenever the claim's
    precondition is not met (never "does not hold"); else holds when p_holds < α, does not hold when
    p_not < α, inconclusive otherwise."""
    if not in_regime:
        return "not in regime"
    if p_holds < alpha:
        return "holds"
    if p_not < alpha:
        return "does not hold"
    return "inconclusive"


def explain(test: Test) -> str:
    """One sentence: the effect with its bounds, p and p_floor, and when undecided the smallest detectable effect."""
    if test.n == 0:
        return f"{test.what}: no usable values, nothing to test"
    fmt = lambda v: f"{v:+.3g}" if math.isfinite(v) else ("−∞" if v < 0 else "+∞")  # noqa: E731
    if math.isnan(test.bounds[0]):
        spread = f"needs {fmt(test.critical[0])} to hold, {fmt(test.critical[1])} to fail"
    else:
        spread = f"{test.bounds_kind} [{fmt(test.bounds[0])}, {fmt(test.bounds[1])}]"
    p = f"p {'<' if test.p_is_bound else '='} {test.p_value:.3g}"
    text = f"{test.what}: {test.effect:+.4g} ({spread}), n = {test.n}, {p} (floor {test.p_floor:.3g})"
    if verdict(test) == "does not hold":
        text += f"; the opposite direction is significant (p = {test.p_opposite:.3g})"
    if verdict(test) == "inconclusive":
        if math.isinf(test.min_detectable):
            text += f"; with n = {test.n} this test cannot reach p < {test.alpha:g} at all"
        else:
            text += (f"; the smallest effect this test detects (power {POWER:g}, α = {test.alpha:g}) is "
                     f"{test.min_detectable:.3g}")
    return text
