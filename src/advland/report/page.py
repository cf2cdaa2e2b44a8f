"""One self-contained HTML page: every figure, script and image inside the file, nothing fetched."""

from __future__ import annotations

import base64
import html
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markdown_it import MarkdownIt
from plotly.offline import get_plotlyjs

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.fail{color:#b00;font-weight:bold}
pre{background:#f6f6f6;padding:.8em;overflow:auto}.figure{margin:1em 0}img{max-width:720px}"""


def cell(value: Any) -> str:
    """A table cell: numbers to 4 significant digits, None (a value that could not be measured) as n/a."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(cell(v) for v in value)
    return str(value)


class Page:
    """An HTML page built in order; :meth:`render` returns the whole file."""

    def __init__(self, title: str, heading: bool = True) -> None:
        self.title, self.show_title = title, heading
        self.parts: list[str] = []
        self.figures = 0

    def heading(self, text: str, level: int = 2) -> "Page":
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def text(self, text: str) -> "Page":
        self.parts.append(f"<p>{html.escape(text)}</p>")
        return self

    def code(self, text: str) -> "Page":
        self.parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def folded(self, title: str, text: str) -> "Page":
        """Preformatted text folded under a title (opened by a click)."""
        self.parts.append(f"<details><summary>{html.escape(title)}</summary><pre>{html.escape(text)}</pre></details>")
        return self

    def markdown(self, text: str, images: Path | None = None) -> "Page":
        """Markdown rendered by markdown-it-py (CommonMark with tables); ``![..](figures/x.png)`` images found
        in ``images`` are inlined."""
        rendered = MarkdownIt("commonmark", {"html": False}).enable("table").render(text)
        if images is not None:
            rendered = re.sub(r'src="([^"]+\.png)"', lambda m: f'src="{self._png_uri(images / Path(m.group(1)).name)}"',
                              rendered)
        self.parts.append(rendered)
        return self

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], failed: Sequence[bool] = ()) -> "Page":
        """A table; rows flagged in ``failed`` are marked."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
        body = []
        for i, row in enumerate(rows):
            css = ' class="fail"' if i < len(failed) and failed[i] else ""
            body.append(f"<tr{css}>" + "".join(f"<td>{html.escape(cell(v))}</td>" for v in row) + "</tr>")
        self.parts.append(f"<table><tr>{head}</tr>{''.join(body)}</table>")
        return self

    def figure(self, fig: Any) -> "Page":
        """A plotly figure (interactive; plotly.js is inlined once in :meth:`render`)."""
        self.figures += 1
        div = fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"figure-{self.figures}",
                          config={"displaylogo": False, "responsive": True})
        self.parts.append(f'<div class="figure">{div}</div>')
        return self

    def image(self, png: Path, alt: str = "") -> "Page":
        self.parts.append(f'<div class="figure"><img alt="{html.escape(alt or png.name)}" src="{self._png_uri(png)}"></div>')
        return self

    @staticmethod
    def _png_uri(png: Path) -> str:
        if not png.is_file():
            return html.escape(png.name)
        return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()

    def render(self) -> str:
        script = ""
        if self.figures:
            script = f"<script>{get_plotlyjs()}</script>"
        return (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(self.title)}</title>"
                f"<style>{_STYLE}</style>{script}</head><body>"
                + (f"<h1>{html.escape(self.title)}</h1>\n" if self.show_title else "\n")
                + "\n".join(self.parts) + "\n</body></html>\n")
