"""HTML reports that work offline in one file: :class:`Page` assembles headings, markdown (rendered by
markdown-it-py), tables, plotly figures (plotly.js inlined once) and PNG images (inlined as data URIs);
:func:`write_run_report` builds the report of a run directory from what it saved. The reproduce report
(``advland.reproduce.report``) is a page of the same kind."""

from .page import Page
from .run import write_run_report

__all__ = ["Page", "write_run_report"]
