"""Uncertainty of accuracies measured on n examples: exact binomial intervals and paired comparisons.

* :func:`clopper_pearson`: the exact (Clopper–Pearson) interval of an accuracy k/n; it covers the true
  accuracy with at least the stated probability for every n, unlike the normal approximation.
* :func:`mcnemar_exact`: two models evaluated on the same n examples differ only on the discordant
  examples (one right, the other wrong); under "equally accurate" each discordant example is a fair
  coin, so the exact p-value is a two-sided binomial test of b successes in b + c trials.
* :func:`paired_difference_ci`: the interval of the paired difference of accuracies (Newcombe 1998,
  method 10: Wilson intervals of both accuracies combined with the correlation of the pairs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from scipy import stats as sps

LEVEL = 0.95


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """The exact two-sided interval of the proportion k/n (NaN, NaN for n = 0)."""
    if n == 0:
        return math.nan, math.nan
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return float(ci.low), float(ci.high)


def count(accuracy: float, n: int) -> int:
    """The number of correct examples behind an accuracy measured on n examples."""
    return int(round(accuracy * n))


def accuracy_intervals(accuracy: Mapping[str, float], n: int, level: float = LEVEL) -> dict[str, list[float]]:
    """Each accuracy's exact interval as ``[low, high]``."""
    return {name: list(clopper_pearson(count(acc, n), n, level)) for name, acc in accuracy.items()
            if acc is not None and math.isfinite(acc)}


def with_intervals(record: Mapping[str, Any], n: int, level: float = LEVEL) -> dict[str, Any]:
    """``record`` with ``<key>_ci: [low, high]`` after every ``*_acc`` number measured on n examples."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        out[key] = value
        if key.endswith("_acc") and isinstance(value, float) and math.isfinite(value):
            out[f"{key}_ci"] = list(clopper_pearson(count(value, n), n, level))
    return out


def format_accuracy(accuracy: float, interval: Iterable[float] | None) -> str:
    """``54.20 % [51.05, 57.32]`` (percent, with the interval when there is one)."""
    text = f"{100 * accuracy:6.2f} %"
    if interval is not None:
        low, high = interval
        text += f" [{100 * low:.2f}, {100 * high:.2f}]"
    return text


def mcnemar_exact(b: int, c: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts b (A right, B wrong) and c (A wrong, B right)."""
    if b + c == 0:
        return 1.0
    return float(sps.binomtest(int(b), int(b + c), 0.5).pvalue)


def _wilson(k: int, n: int, level: float) -> tuple[float, float]:
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def paired_difference_ci(both: int, b: int, c: int, neither: int, level: float = LEVEL) -> tuple[float, float]:
    """Interval of acc_A - acc_B from the 2x2 table of a paired evaluation (Newcombe 1998, method 10)."""
    n = both + b + c + neither
    p1, p2 = (both + b) / n, (both + c) / n
    l1, u1 = _wilson(both + b, n, level)
    l2, u2 = _wilson(both + c, n, level)
    margins = (both + b) * (c + neither) * (both + c) * (b + neither)
    phi = (both * neither - b * c) / math.sqrt(margins) if margins > 0 else 0.0
    down = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    up = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    diff = p1 - p2
    return max(diff - down, -1.0), min(diff + up, 1.0)


@dataclass
class PairedComparison:
    """Two models' correctness on the same n examples, tested for a difference."""

    n: int
    acc_a: float
    acc_b: float
    b: int
    """Examples A gets right and B wrong."""
    c: int
    """Examples A gets wrong and B right."""
    p_value: float
    difference_ci: tuple[float, float]

    @property
    def difference(self) -> float:
        return self.acc_a - self.acc_b

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "acc_a": self.acc_a, "acc_b": self.acc_b, "difference": self.difference,
                "difference_ci": list(self.difference_ci), "a_only": self.b, "b_only": self.c,
                "mcnemar_exact_p": self.p_value}


def paired_comparison(a: Iterable[bool], b: Iterable[bool], level: float = LEVEL) -> PairedComparison:
    """Exact McNemar test and interval of the difference for two per-example correctness vectors."""
    pairs = list(zip(a, b, strict=True))
    if not pairs:
        raise ValueError("a paired comparison needs at least one example")
    both = sum(1 for x, y in pairs if x and y)
    only_a = sum(1 for x, y in pairs if x and not y)
    only_b = sum(1 for x, y in pairs if y and not x)
    neither = len(pairs) - both - only_a - only_b
    n = len(pairs)
    return PairedComparison(n, (both + only_a) / n, (both + only_b) / n, only_a, only_b,
                            mcnemar_exact(only_a, only_b), paired_difference_ci(both, only_a, only_b, neither, level))
