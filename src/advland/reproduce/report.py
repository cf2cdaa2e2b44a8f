"""The report of a reproduction: findings.json, report.md and a self-contained report.html (figures inlined)."""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from pathlib import Path
from typing import Any

from ..run import atomic_write_text
from .common import Finding


def _clean(value: Any) -> Any:
    """JSON-ready: tuples to lists, NaN to None."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


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


def markdown(findings: list[Finding], meta: dict[str, Any]) -> str:
    """The report as markdown: a summary table, then one section per finding with numbers and figures."""
    lines = [f"# advland reproduce: {meta['papers']}", "",
             f"data `{meta['data']}`, budget `{meta['budget']}`, device `{meta['device']}`, "
             f"wall time {meta['seconds']:.0f} s", "",
             "| finding | paper | claim | verdict |", "| --- | --- | --- | --- |"]
    lines += [f"| ({f.key}) | {f.paper} | {f.claim} | **{f.verdict}** |" for f in findings]
    for f in findings:
        lines += ["", f"## ({f.key}) {f.paper}: {f.claim}", "", f"**Verdict: {f.verdict}.** {f.reason}", "",
                  "Measured:", ""]
        lines += [f"- {k}: {_fmt(v)}" for k, v in f.measured.items()]
        lines += ["", "Settings:", ""] + [f"- {k}: {_fmt(v)}" for k, v in f.settings.items()]
        if f.paper_numbers:
            lines += ["", "The paper's numbers (for comparison at GPU scale):", ""]
            lines += [f"- {k}: {_fmt(v)}" for k, v in f.paper_numbers.items()]
        lines += [""] + [f"![{name}](figures/{name})" for name in f.figures]
    return "\n".join(lines) + "\n"


def _inline_images(text: str, figures: Path) -> str:
    """Replace every figure reference by a base64 data URI so that the HTML needs no other file."""
    for png in sorted(figures.glob("*.png")):
        data = base64.b64encode(png.read_bytes()).decode()
        text = text.replace(f'src="figures/{png.name}"', f'src="data:image/png;base64,{data}"')
    return text


def to_html(md: str, figures: Path) -> str:
    """A minimal markdown-to-HTML rendering (headings, tables, lists, images) with inlined figures."""
    body, in_list = [], False
    for line in md.splitlines():
        text = html.escape(line).replace("**", "")
        if line.startswith("- ") != in_list:
            body.append("<ul>" if not in_list else "</ul>")
            in_list = not in_list
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{text.lstrip('#').strip()}</h{level}>")
        elif line.startswith("| ---"):
            continue
        elif line.startswith("|"):
            cells = "".join(f"<td>{c.strip()}</td>" for c in text.strip("|").split("|"))
            body.append(f"<tr>{cells}</tr>")
        elif line.startswith("- "):
            body.append(f"<li>{text[2:]}</li>")
        elif line.startswith("!["):
            name = line[line.index("(") + 1: -1]
            body.append(f'<p><img src="{html.escape(name)}" style="max-width:700px"></p>')
        elif line:
            body.append(f"<p>{text}</p>")
    page = "\n".join(body).replace("</p>\n<tr>", "</p>\n<table border=1 cellpadding=4>\n<tr>", 1)
    page = page.replace("</tr>\n<h2>", "</tr>\n</table>\n<h2>", 1)
    return _inline_images(f"<!doctype html><meta charset=utf-8><title>advland reproduce</title>\n<body>{page}</body>",
                          figures)


def write_report(out: Path, findings: list[Finding], meta: dict[str, Any]) -> list[Path]:
    """Write findings.json, report.md and report.html into ``out``; return their paths."""
    md = markdown(findings, meta)
    data = {"meta": meta, "findings": [_clean(dataclasses.asdict(f)) for f in findings]}
    paths = [out / "findings.json", out / "report.md", out / "report.html"]
    atomic_write_text(paths[0], json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths[1], md)
    atomic_write_text(paths[2], to_html(md, out / "figures"))
    return paths
