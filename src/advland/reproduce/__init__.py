"""``advland reproduce``: run the experiments behind the papers' findings, measure them and write a report.

Quick use::

    from advland.reproduce import reproduce
    findings = reproduce("all", "reproduce/digits_quick", budget="quick")
"""

from __future__ import annotations

import time
from pathlib import Path

from ..errors import AdvlandError
from . import kanai2021, liu2020, wu2020
from ..provenance import provenance
from .common import Finding, Log, finalize, make_suite
from .report import write_report

SUITES = {"liu2020": liu2020.run, "kanai2021": kanai2021.run, "wu2020": wu2020.run}


def reproduce(paper: str, out: str | Path, *, budget: str = "quick", data: str = "digits", device: str = "cpu",
              log: Log = lambda _: None, progress: bool = False) -> list[Finding]:
    """Run the suite of ``paper`` (liu2020, kanai2021, wu2020 or all) and write the report into ``out``.

    Runs live under ``out/runs``; finished ones are reused and interrupted ones resumed on a re-launch.
    """
    if paper != "all" and paper not in SUITES:
        raise AdvlandError(f"unknown paper {paper!r}; choose one of: {', '.join(SUITES)}, all")
    suite = make_suite(Path(out), budget, data, device, log, progress)
    start = time.perf_counter()
    findings = finalize([f for name, run in SUITES.items() if paper in (name, "all") for f in run(suite)])
    meta = {"papers": paper, "data": data, "budget": budget, "device": device,
            "seconds": time.perf_counter() - start, "smoke_test": suite.profile.smoke_test,
            "data_settings": suite.describe(), "provenance": provenance(device), "stale_runs": suite.stale_runs()}
    for path in write_report(suite.out, findings, meta):
        log(f"wrote {path}")
    return findings


__all__ = ["SUITES", "Finding", "reproduce"]
