"""Compare two evaluations example by example: ``advland compare RUN_A RUN_B``.

Two accuracies measured on the same test examples are paired: what matters is on how many examples
one model is right and the other wrong. The comparison reports, for every accuracy both evaluations
hold (clean, each attack, the worst case), both accuracies with their exact intervals, the paired
difference with its 95 % interval and the exact McNemar p-value (:mod:`advland.binomial`).

A pairing is only meaningful between evaluations of the same examples under the same attack, so a
pair whose example fingerprints, threat model (norm, eps) or attack settings (steps, restarts,
AutoAttack version and budget) differ is refused in one line saying what differs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from .binomial import clopper_pearson, format_accuracy, paired_comparison
from .errors import AdvlandError
from .evaluate import mask_from_text

_SAME_ATTACK = ("steps", "restarts", "autoattack")


def read_eval(target: str | Path, name: Optional[str] = None) -> tuple[Path, dict[str, Any]]:
    """An eval JSON: the file itself, or in a run directory the one named ``name`` (or its only one, or
    its newest ``eval_*.json`` when ``name`` is None)."""
    target = Path(target)
    if target.is_dir():
        if name is not None:
            path = target / name
        else:
            found = sorted(target.glob("eval_*.json"), key=lambda p: p.stat().st_mtime)
            if not found:
                raise AdvlandError(f"{target} holds no evaluation (eval_*.json); run advland eval {target} first")
            path = found[-1]
    else:
        path = target
    if not path.is_file():
        raise AdvlandError(f"no evaluation at {path}; give an eval_*.json file or a run directory advland eval wrote into")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise AdvlandError(f"{path} is not valid JSON ({error.msg}); run advland eval again") from None
    if not isinstance(data, dict) or "per_example" not in data or "examples_sha256" not in data:
        raise AdvlandError(f"{path} holds no per-example results (written by an older advland); "
                           f"run advland eval again to compare it")
    return path, data


def _difference(a: dict[str, Any], b: dict[str, Any]) -> Optional[str]:
    """What makes two evaluations unpairable, or None."""
    if a["examples_sha256"] != b["examples_sha256"]:
        return f"they were not evaluated on the same examples ({a['n']} vs {b['n']} examples, different fingerprints)"
    if (a["norm"], a["eps"]) != (b["norm"], b["eps"]):
        return f"they were not evaluated under the same threat model ({a['norm']} eps={a['eps']:g} vs " \
               f"{b['norm']} eps={b['eps']:g})"
    sa, sb = a.get("settings", {}), b.get("settings", {})
    for key in _SAME_ATTACK:
        if sa.get(key) != sb.get(key):
            return f"they were not evaluated with the same attack ({key}: {sa.get(key)} vs {sb.get(key)})"
    return None


def compare_evals(a: dict[str, Any], b: dict[str, Any], names: Optional[list[str]] = None) -> list[dict[str, Any]]:
    """One row per accuracy both evaluations hold (or per name in ``names``): accuracies, intervals,
    paired difference with its interval, discordant counts and the exact McNemar p-value."""
    problem = _difference(a, b)
    if problem is not None:
        raise AdvlandError(f"cannot compare these evaluations: {problem}; evaluate both runs with the same "
                           f"--split, --n, --norm, --eps and attack options")
    common = [k for k in a["per_example"] if k in b["per_example"]]
    if names:
        missing = [k for k in names if k not in common]
        if missing:
            raise AdvlandError(f"{missing[0]!r} is not in both evaluations; they share {', '.join(common)}")
        common = names
    rows = []
    for name in common:
        mask_a, mask_b = mask_from_text(a["per_example"][name]), mask_from_text(b["per_example"][name])
        paired = paired_comparison(mask_a, mask_b)
        rows.append({"accuracy": name, **paired.as_dict(),
                     "acc_a_ci": list(clopper_pearson(sum(mask_a), paired.n)),
                     "acc_b_ci": list(clopper_pearson(sum(mask_b), paired.n))})
    return rows


def format_rows(rows: list[dict[str, Any]]) -> list[str]:
    """The comparison as a terminal table (percent)."""
    lines = [f"  {'':<12} {'A':>26} {'B':>26} {'A - B':>26}  McNemar p  (A only / B only)"]
    for r in rows:
        low, high = r["difference_ci"]
        diff = f"{100 * r['difference']:+6.2f} [{100 * low:+.2f}, {100 * high:+.2f}]"
        lines.append(f"  {r['accuracy']:<12} {format_accuracy(r['acc_a'], r['acc_a_ci']):>26} "
                     f"{format_accuracy(r['acc_b'], r['acc_b_ci']):>26} {diff:>26}  {r['mcnemar_exact_p']:9.3g}  "
                     f"({r['a_only']} / {r['b_only']})")
    return lines
