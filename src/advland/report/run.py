"""``advland report RUN``: RUN/report.html from what the run saved (it computes nothing).

Sections: the headline (clean, PGD and AutoAttack accuracy with their exact 95 % intervals and n, the
selected epoch and why, the sanity verdicts); the summary; training curves and the per-epoch table (tracked landscape
quantities included); every evaluation (``eval_*.json``: accuracies, warnings, sanity checks); every
analysis under ``landscape/``: surfaces (a rotatable 3-D surface and a contour per metric, or a
curve), interpolations, Hessian spectra and densities, gradient statistics, flatness, and the curves
tracked during training; the full config, folded, at the end. Each figure comes with its numbers as a table.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .. import jsonio
from ..errors import AdvlandError
from ..plots import interactive
from ..run import Run, atomic_write_text
from .headline import accuracy_rows, best_evaluations, sanity_verdicts, selection
from .page import Page

_CURVES = {"loss": ["train_loss"], "accuracy": ["train_clean_acc", "train_robust_acc", "val_clean_acc", "val_robust_acc"],
           "schedules": ["lr", "eps"]}


def _flat(data: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as (dotted key, value) rows."""
    if isinstance(data, dict):
        return [row for k, v in data.items() for row in _flat(v, f"{prefix}{k}.")]
    return [(prefix.rstrip("."), data)]


def _key_values(page: Page, data: dict[str, Any]) -> None:
    page.table(["quantity", "value"], _flat(data))


def _training(page: Page, records: list[dict[str, Any]]) -> None:
    page.heading("Training")
    epochs = [r["epoch"] for r in records]
    for title, keys in _CURVES.items():
        present = {k: [r.get(k) for r in records] for k in keys if any(k in r for r in records)}
        if present:
            page.figure(interactive.lines(epochs, present, title=title, xlabel="epoch", ylabel=title))
    tracked: dict[str, list] = {}
    for r in records:
        for key, value in r.items():
            if key in ("epoch", "seconds", "grad_evals") or any(key in keys for keys in _CURVES.values()):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                tracked.setdefault(key, [None] * len(records))[epochs.index(r["epoch"])] = value
            elif isinstance(value, list) and key == "hessian_top_eigs":
                for i, v in enumerate(value):
                    tracked.setdefault(f"{key}[{i}]", [None] * len(records))[epochs.index(r["epoch"])] = v
    for key, values in tracked.items():
        page.figure(interactive.lines(epochs, {key: values}, title=f"{key} (tracked)", xlabel="epoch", ylabel=key))
    columns = list(dict.fromkeys(k for r in records for k, v in r.items() if not isinstance(v, (list, dict))))
    page.table(columns, [[r.get(c) for c in columns] for r in records])


def _evaluation(page: Page, name: str, data: dict[str, Any]) -> None:
    page.heading(f"Evaluation {name}", 3)
    page.text(f"{data.get('norm')} eps={data.get('eps')}, {data.get('n')} {data.get('split', 'test')} examples, "
              f"checkpoint {data.get('checkpoint')}")
    intervals = data.get("interval_95", {})
    page.table(["attack", "accuracy", "95 % interval (exact)"],
               [[k, v, intervals.get(k, "")] for k, v in (data.get("accuracy") or {}).items()])
    for warning in data.get("warnings", []):
        page.text(f"warning: {warning}")
    checks = data.get("sanity_checks", [])
    if checks:
        page.table(["sanity check", "passed", "detail"], [[c["name"], c["passed"], c["detail"]] for c in checks],
                   failed=[not c["passed"] for c in checks])


def _surface(page: Page, name: str, data: dict[str, Any]) -> None:
    coords, values = data["coords"], data["values"]
    page.heading(name, 3)
    for metric, z in values.items():
        if len(coords) == 2:
            page.figure(interactive.surface3d(coords[0], coords[1], z, title=f"{metric}: surface", zlabel=metric))
            page.figure(interactive.contour(coords[0], coords[1], z, title=f"{metric}: contour", zlabel=metric))
            page.table(["α \\ β", *(f"{b:.3g}" for b in coords[1])], [[a, *row] for a, row in zip(coords[0], z)])
        else:
            page.figure(interactive.lines(coords[0], {metric: z}, title=metric, xlabel="α", ylabel=metric))
    if len(coords) == 1:
        page.table(["α", *values], [[a, *(values[m][i] for m in values)] for i, a in enumerate(coords[0])])
    _key_values(page, {"info": data.get("info", {})})


def _interpolation(page: Page, name: str, data: dict[str, Any]) -> None:
    page.heading(name, 3)
    t, values = data["coords"][0], data["values"]
    info = data.get("info", {})
    page.figure(interactive.lines(t, values, title=f"{info.get('a', 'A')} → {info.get('b', 'B')}", xlabel="t",
                                  ylabel="value"))
    page.table(["t", *values], [[x, *(values[m][i] for m in values)] for i, x in enumerate(t)])


def _hessian(page: Page, name: str, data: dict[str, Any]) -> None:
    page.heading(name, 3)
    eigs = data.get("top_eigenvalues", [])
    page.figure(interactive.bars([f"λ{i + 1}" for i in range(len(eigs))], eigs, title="top Hessian eigenvalues",
                                 ylabel="eigenvalue"))
    density = data.get("density")
    if density:
        page.figure(interactive.lines(density["grid"], {"density": density["density"]}, title="spectral density (SLQ)",
                                      xlabel="eigenvalue", ylabel="density"))
    if data.get("blocks"):
        page.figure(interactive.bars(list(data["blocks"]), list(data["blocks"].values()),
                                     title="top eigenvalue per block", ylabel="eigenvalue"))
    _key_values(page, {k: v for k, v in data.items() if k != "density"}
                | ({"density": {k: v for k, v in density.items() if k in ("trace_estimate",)}} if density else {}))


def _gradients(page: Page, name: str, data: dict[str, Any]) -> None:
    page.heading(name, 3)
    norms = [k for k in ("linf", "l2") if k in data]
    page.figure(interactive.bars(["clean", *norms], [data["clean_grad_norm"], *(data[k]["grad_norm"] for k in norms)],
                                 title="gradient norm of the loss", ylabel="‖∇L‖"))
    _key_values(page, data)


def _flatness(page: Page, name: str, data: dict[str, Any]) -> None:
    page.heading(name, 3)
    page.figure(interactive.bars(["average case", "worst case"], [data["average"]["value"], data["worst"]["value"]],
                                 title="flatness of the robust loss (increase over θ)", ylabel="Δ robust loss"))
    _key_values(page, data)


def _tracked_curves(page: Page, files: list[Path]) -> None:
    page.heading("1-D curves tracked during training", 3)
    curves = {int(re.sub(r"\D", "", f.stem)): json.loads(f.read_text()) for f in files}
    for metric in next(iter(curves.values()))["values"]:
        series = {f"epoch {e}": c["values"][metric] for e, c in sorted(curves.items())}
        x = next(iter(curves.values()))["coords"][0]
        page.figure(interactive.lines(x, series, title=f"{metric} by epoch", xlabel="α", ylabel=metric))
        page.table(["α", *series], [[a, *(s[i] for s in series.values())] for i, a in enumerate(x)])


_ANALYSES = {"surface": _surface, "interpolation": _interpolation, "hessian": _hessian, "gradients": _gradients,
             "flatness": _flatness}


def build_run_page(path: str | Path) -> Page:
    """The report page of a run directory."""
    run = Run(path)
    if not run.config_path.is_file():
        raise AdvlandError(f"{run.path} is not a run directory (no config.yaml); give the folder advland train wrote")
    page = Page(f"advland run {run.path.name}")
    saved = run.analyses()
    evals = [path for kind, path in saved if kind == "eval"]
    _headline(page, run.summary(), best_evaluations(evals, lambda f: json.loads(f.read_text())))
    if run.summary():
        page.heading("Summary")
        _key_values(page, run.summary())
    records = run.metrics()
    if records:
        _training(page, records)
    if evals:
        page.heading("Evaluation")
        for file in evals:
            _evaluation(page, file.stem, json.loads(file.read_text()))
    analyses = [(kind, path) for kind, path in saved if kind not in ("eval", "curve")]
    tracked = [path for kind, path in saved if kind == "curve"]
    if analyses or tracked:
        page.heading("Analyses")
    for kind, file in analyses:
        data = json.loads(file.read_text())
        if kind is None:
            page.heading(file.stem, 3).code(jsonio.dumps(data, indent=1))
        else:
            _ANALYSES[kind](page, file.stem, data)
    if tracked:
        _tracked_curves(page, tracked)
    page.heading("Config").folded("config.yaml (the resolved configuration)", run.config_path.read_text())
    return page


def _headline(page: Page, summary: dict[str, Any], evaluations: dict[str, dict[str, Any]]) -> None:
    page.heading("Headline")
    page.text(selection(summary))
    rows = accuracy_rows(summary, evaluations)
    if rows:
        page.table(["measured in", "accuracy", "%", "95 % interval (exact)", "n"], rows)
    else:
        page.text("no accuracy measured yet: run advland eval on this run")
    verdicts = sanity_verdicts(evaluations)
    for line in verdicts:
        page.text(line)
    if evaluations and not verdicts:
        page.text("no sanity checks ran (advland eval --sanity runs them)")


def write_run_report(path: str | Path) -> Path:
    """Write RUN/report.html (one file, works offline) and return its path."""
    out = Path(path) / "report.html"
    atomic_write_text(out, build_run_page(path).render())
    return out
