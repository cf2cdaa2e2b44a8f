"""The report of a reproduction: findings.json, report.md and a self-contained report.html (figures inlined;
the same page machinery as ``advland report``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..jsonio import dumps
from ..report.page import Page
from ..run import atomic_write_text
from .common import Finding


def _fmt(value: Any) -> str:
    """Numbers to 4 significant digits, (mean, std) tuples as mean ± std, nested dicts inline."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{value[0]:.4g} ± {value[1]:.2g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


SMOKE = "smoke test"
"""The label of every verdict measured on a smoke-test budget."""


def verdict_label(f: Finding) -> str:
    """The verdict as shown: prefixed "smoke test:" on a smoke-test budget."""
    return f"{SMOKE}: {f.verdict}" if f.smoke_test else f.verdict


def _parts(test: dict[str, Any]) -> list[dict[str, Any]]:
    return test.get("parts", [test])


def _num(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _p(t: dict[str, Any]) -> str:
    return f"p {'<' if t.get('p_is_bound') else '='} {_num(t['p_value'], '.3g')}"


def _spread(t: dict[str, Any]) -> str:
    """The bounds of a paired test, or what a rank test needs to hold."""
    low, high = t.get("bounds", [None, None])
    if str(t.get("bounds_kind", "")).startswith("none"):
        need = (t.get("critical") or [None])[0]
        return f"needs ≥ {_num(need, '+.3g')}" if need is not None else "no ρ reaches p < α at this n"
    if low is None and high is None:
        return "no bound at this n"
    return f"[{_num(low, '+.3g')}, {_num(high, '+.3g')}]"


def summarize_test(test: dict[str, Any]) -> str:
    """effect [bounds], p of each part of a test object, e.g. "+0.031 [+0.004, +0.058], p = 0.0039"."""
    return "; ".join(f"{_num(t['effect'], '+.3g')} {_spread(t)}, {_p(t)}" for t in _parts(test))


def describe_test(test: dict[str, Any]) -> list[str]:
    """One list item per part: what is tested, by which test, n, effect with its bounds, p, its floor and α."""
    lines = [f"- {t['what']}: {t['name']}, n = {t['n']}, effect {_num(t['effect'], '+.4g')} ({t.get('bounds_kind', '')} "
             f"{_spread(t)}), {_p(t)} (smallest attainable {_num(t.get('p_floor'), '.3g')}), α = {t['alpha']:g}, "
             f"smallest detectable effect {_num(t.get('min_detectable'), '.3g')}" for t in _parts(test)]
    if "rule" in test:
        lines.append(f"- combined: {test['rule']}")
    lines += [f"- not judged: {t['what']}: effect {_num(t['effect'], '+.4g')} {_spread(t)}, {_p(t)}"
              for t in test.get("supplementary", [])]
    return lines


def _regime(f: Finding) -> str:
    return f"{'met' if f.regime['met'] else '**not met**'}: {f.regime['condition']} (measured: {_fmt(f.regime['measured'])})"


def _holm(f: Finding) -> str:
    if "holds_holm" not in f.p:
        return "not judged (regime)"
    return f"{f.p['holds']:.3g} → {f.p['holds_holm']:.3g}"


def markdown(findings: list[Finding], meta: dict[str, Any]) -> str:
    """The report as markdown: a summary table, then one section per finding with its regime, test, numbers, figures."""
    lines = [f"# advland reproduce: {meta['papers']}", "",
             f"data `{meta['data']}`, budget `{meta['budget']}`, device `{meta['device']}`, "
             f"wall time {meta['seconds']:.0f} s", ""]
    if meta.get("smoke_test"):
        lines += [f"**This is a {SMOKE}** (budget `{meta['budget']}`): it checks that every suite runs end to end. "
                  "Its verdicts are labelled and say nothing about the papers' claims.", ""]
    if meta.get("provenance"):
        lines += [f"Provenance: {_fmt(meta['provenance'])}", ""]
    if meta.get("stale_runs"):
        lines += [f"**Runs trained by other code than this report's** (reused as they are): "
                  f"{', '.join(meta['stale_runs'])}", ""]
    if meta.get("data_settings"):
        lines += [f"Dataset settings: {_fmt(meta['data_settings'])}", ""]
    lines += ["Each verdict is a stated test in the direction the paper claims, judged only where the finding's regime "
              "(what the paper's claim presupposes) is met; the p-values of the findings judged here are Holm-adjusted "
              "within the report (raw → adjusted), and the adjusted one decides at α = 0.05.", "",
              "| finding | paper | claim | regime | effect [bounds], p | p(holds) raw → Holm | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| ({f.key}) | {f.paper} | {f.claim} | {'met' if f.regime['met'] else 'not met'} | "
              f"{summarize_test(f.test)} | {_holm(f)} | **{verdict_label(f)}** |" for f in findings]
    for f in findings:
        lines += ["", f"## ({f.key}) {f.paper}: {f.claim}", "", f"**Verdict: {verdict_label(f)}.** {f.reason}", "",
                  f"Regime: {_regime(f)}", "", "Test:", "", *describe_test(f.test), "", "Measured:", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in f.measured.items()]
        lines += ["", "Settings:", ""] + [f"- {k}: {_fmt(v)}" for k, v in f.settings.items()]
        if f.paper_numbers:
            lines += ["", "The paper's numbers (for comparison at GPU scale):", ""]
            lines += [f"- {k}: {_fmt(v)}" for k, v in f.paper_numbers.items()]
        lines += [""] + [f"![{name}](figures/{name})" for name in f.figures]
    return "\n".join(lines) + "\n"


def to_html(md: str, figures: Path) -> str:
    """The markdown as one self-contained HTML page (rendered by markdown-it-py, figures inlined)."""
    return Page("advland reproduce", heading=False).markdown(md, images=figures).render()


def write_report(out: Path, findings: list[Finding], meta: dict[str, Any]) -> list[Path]:
    """Write findings.json, report.md and report.html into ``out``; return their paths."""
    md = markdown(findings, meta)
    data = {"meta": meta, "smoke_test": bool(meta.get("smoke_test")),
            "findings": [dataclasses.asdict(f) for f in findings]}
    paths = [out / "findings.json", out / "report.md", out / "report.html"]
    atomic_write_text(paths[0], dumps(data, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], to_html(md, out / "figures"))
    return paths
