"""Statistics of verdicts (SPEC §9): paired tests, permutation tests, confidence intervals and detectable effects.

Pure functions on lists of floats; ``advland.reproduce`` calls them and nothing else decides a verdict.

* :func:`paired_t`: one-sided paired t-test of the mean difference (t, both one-sided p, 95 % CI).
* :func:`sign_flip`: the sign-flip permutation test of the mean difference, exact (all 2^n flips)
  for n ≤ :data:`EXACT_MAX_N`, seeded Monte Carlo above.
* :func:`spearman_permutation`: Spearman's ρ and its permutation p (exact for n ≤ :data:`EXACT_MAX_PERM`).
* :func:`min_detectable_mean` / :func:`min_detectable_rho`: the smallest effect a test of this n
  and spread detects with power 0.8 at α (stated in "inconclusive" reasons).
* :func:`paired_test`, :func:`rank_test` and :func:`verdict`: the test objects a finding carries and
  the verdict rule: holds when p < α in the claimed direction, does not hold when the opposite
  direction is significant at α, inconclusive otherwise.

One-sided p-values are "greater": the claimed direction is positive (callers orient the differences).
Monte Carlo p-values are (1 + hits) / (1 + resamples), never 0.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import asdict, dataclass
from typing import Literal

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
_TOL = 1e-12
"""Statistics within this (relative) distance of the observed one count as ties (as extreme)."""

Verdict = Literal["holds", "does not hold", "inconclusive"]


def _finite(values: list[float]) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"statistics need finite values, got {values}")
    return array


@dataclass(frozen=True)
class TTest:
    t: float
    """The t statistic mean / (sd / √n); ±inf when every difference is the same non-zero value."""
    p_greater: float
    p_less: float
    mean: float
    ci95: tuple[float, float]


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Two-sided t confidence interval of the mean (NaN bounds with fewer than two values)."""
    d = _finite(values)
    if len(d) < 2:
        return math.nan, math.nan
    half = sps.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))
    return float(d.mean() - half), float(d.mean() + half)


def paired_t(differences: list[float]) -> TTest:
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
    return TTest(t, p_greater, p_less, mean, mean_ci(differences))


def _tail(null: np.ndarray, observed: float) -> tuple[int, int]:
    """How many null statistics are ≥ and ≤ the observed one (ties within a relative tolerance count)."""
    tol = _TOL * max(1.0, abs(observed))
    return int(np.sum(null >= observed - tol)), int(np.sum(null <= observed + tol))


def sign_flip(differences: list[float], *, resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float, bool]:
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


@functools.lru_cache(maxsize=EXACT_MAX_PERM)
def _orderings(n: int) -> np.ndarray:
    """Every ordering of range(n), shape (n!, n)."""
    return np.array(list(itertools.permutations(range(n))))


def _ranks(values: np.ndarray) -> np.ndarray:
    return sps.rankdata(values)  # average ranks for ties


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
    ci95: tuple[float, float]
    """Fisher-z interval of ρ with the Fieller et al. (1957) variance 1.06 / (n − 3) (NaN for n ≤ 3)."""


def spearman_permutation(x: list[float], y: list[float], *, resamples: int = RESAMPLES, seed: int = 0) -> RankTest:
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
        p_greater, p_less, exact = greater / len(null), less / len(null), True
    else:
        rng = np.random.default_rng(seed)
        null = _pearson(rx, ry[rng.permuted(np.tile(np.arange(n), (resamples, 1)), axis=1)])
        greater, less = _tail(null, rho)
        p_greater, p_less, exact = (1 + greater) / (1 + resamples), (1 + less) / (1 + resamples), False
    if n > 3 and abs(rho) < 1:
        half = sps.norm.ppf(0.975) * math.sqrt(1.06 / (n - 3))
        ci = (math.tanh(math.atanh(rho) - half), math.tanh(math.atanh(rho) + half))
    else:
        ci = (math.nan, math.nan) if n <= 3 else (rho, rho)
    return RankTest(rho, p_greater, p_less, exact, ci)


@functools.lru_cache(maxsize=64)
def _noncentrality(n: int, alpha: float, power: float) -> float:
    """The non-centrality δ at which a one-sided t-test of n values rejects with probability ``power``."""
    df, critical = n - 1, sps.t.ppf(1 - alpha, n - 1)
    return brentq(lambda delta: float(sps.nct.sf(critical, df, delta)) - power, 0.0, 100.0)


def min_detectable_mean(n: int, sd: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true mean difference a one-sided one-sample t-test of n differences with standard
    deviation ``sd`` detects with probability ``power`` at level α (non-central t); inf when n < 2,
    or when the exact sign-flip test of n ≤ EXACT_MAX_N cannot reach p < α at all (2^-n ≥ α)."""
    if n < 2 or (n <= EXACT_MAX_N and 2.0**-n >= alpha) or not math.isfinite(sd):
        return math.inf
    noncentrality = _noncentrality(n, alpha, power)
    return noncentrality * sd / math.sqrt(n)


def min_detectable_rho(n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true Spearman ρ detected with probability ``power`` at level α (one-sided), by the
    Fisher-z approximation with variance 1.06 / (n − 3); inf for n ≤ 3."""
    if n <= 3:
        return math.inf
    z = (sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * math.sqrt(1.06 / (n - 3))
    return math.tanh(z)


@dataclass(frozen=True)
class Test:
    """The test behind one verdict (or one part of it), as findings.json carries it."""

    name: str
    n: int
    effect: float
    """In the claimed direction: the mean paired difference (finding's units) or Spearman's ρ."""
    ci95: tuple[float, float]
    p_value: float
    """One-sided p in the claimed direction."""
    p_opposite: float
    """One-sided p in the opposite direction."""
    alpha: float
    min_detectable: float
    """The smallest effect (same units as ``effect``) this test detects with power 0.8 at α (inf: none)."""
    what: str
    """What ``effect`` measures, e.g. "top eigenvalue at ε = 0.3 minus at ε = 0"."""

    def as_dict(self) -> dict:
        """JSON-ready (tuples as lists, non-finite numbers as None)."""
        def clean(v):
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, tuple):
                return [clean(x) for x in v]
            return v
        return {k: clean(v) for k, v in asdict(self).items()}


def paired_test(differences: list[float], what: str, *, alpha: float = ALPHA, seed: int = 0) -> Test:
    """The test of paired differences d_s (positive = as claimed): the exact sign-flip test for
    n ≤ EXACT_MAX_N, the one-sided paired t-test above; the CI is the t interval in both cases."""
    d = _finite(differences)
    n = len(d)
    if n == 0:  # every pair left out (e.g. unconverged estimates): nothing to test, never a verdict
        return Test("no test (no usable pairs)", 0, math.nan, (math.nan, math.nan), 1.0, 1.0, alpha, math.inf, what)
    sd = float(d.std(ddof=1)) if n > 1 else math.nan
    if n <= EXACT_MAX_N:
        p, q, _ = sign_flip(differences, seed=seed)
        name = "exact sign-flip permutation test of the mean paired difference (one-sided)"
    else:
        t = paired_t(differences)
        p, q = t.p_greater, t.p_less
        name = "paired t-test of the mean difference (one-sided)"
    return Test(name, n, float(d.mean()), mean_ci(differences), p, q, alpha, min_detectable_mean(n, sd, alpha), what)


def rank_test(x: list[float], y: list[float], what: str, *, sign: int = 1, alpha: float = ALPHA,
              seed: int = 0) -> Test:
    """The permutation test of Spearman's ρ(x, y); ``sign`` −1 when the claim is a negative correlation
    (the effect is then −ρ, so that positive is always as claimed)."""
    r = spearman_permutation(x, y, seed=seed)
    p, q = (r.p_greater, r.p_less) if sign > 0 else (r.p_less, r.p_greater)
    low, high = (sign * r.ci95[0], sign * r.ci95[1])
    name = f"{'exact' if r.exact else 'Monte Carlo'} permutation test of Spearman's ρ (one-sided)"
    return Test(name, len(x), sign * r.rho, (min(low, high), max(low, high)), p, q, alpha,
                min_detectable_rho(len(x), alpha), what)


def verdict(test: Test) -> Verdict:
    """holds: p < α as claimed; does not hold: the opposite direction significant at α; inconclusive otherwise."""
    if test.p_value < test.alpha:
        return "holds"
    if test.p_opposite < test.alpha:
        return "does not hold"
    return "inconclusive"


def explain(test: Test) -> str:
    """One sentence: the effect with its CI and p, and for an inconclusive verdict the smallest detectable effect."""
    if test.n == 0:
        return f"{test.what}: no usable values, nothing to test"
    low, high = test.ci95
    ci = f"95 % CI [{low:+.3g}, {high:+.3g}]" if math.isfinite(low) else "no CI (n < 2)"
    text = f"{test.what}: {test.effect:+.4g} ({ci}), n = {test.n}, p = {test.p_value:.3g}"
    if verdict(test) == "does not hold":
        text += f"; the opposite direction is significant (p = {test.p_opposite:.3g})"
    if verdict(test) == "inconclusive":
        if math.isinf(test.min_detectable):
            text += f"; with n = {test.n} this test cannot reach p < {test.alpha:g} at all"
        else:
            text += (f"; the smallest effect this n and spread detect (power {POWER:g}, α = {test.alpha:g}, "
                     f"t-test / Fisher-z approximation) is {test.min_detectable:.3g}")
    return text


def combine(parts: list[Test]) -> Verdict:
    """The combined verdict of a multi-part claim: holds when every part holds; does not hold when any
    part does not hold; inconclusive otherwise (:data:`COMBINE_RULE`)."""
    names = [verdict(t) for t in parts]
    if "does not hold" in names:
        return "does not hold"
    return "holds" if all(v == "holds" for v in names) else "inconclusive"


COMBINE_RULE = ("every part must hold for the claim to hold; any part significantly opposite makes it "
                "not hold; otherwise inconclusive")
