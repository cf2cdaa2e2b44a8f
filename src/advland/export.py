"""``advland export RUN --format robustbench --out DIR``: a run in the form RobustBench's model zoo expects.

Writes ``DIR/<name>.pt``, a ``{"state_dict": ...}`` of the model *with its normalization inside* (it
takes inputs in [0, 1], as RobustBench evaluates), saved with ``torch.save`` and loadable with
``torch.load(weights_only=True)``; and ``DIR/<name>.json``, the model-info file with RobustBench's
fields (``dataset``, ``eps`` written as a fraction of 255 when it is one, ``clean_acc`` and
``autoattack_acc`` in percent with two decimals, ``architecture``, ``number_forward_passes``,
``additional_data``, ...), the AutoAttack version and number of test examples behind the numbers,
their exact 95 % intervals, and advland's provenance (version, commit, seed, run, eval file).

The accuracies come from the run's evaluation (``advland eval``): one that ran AutoAttack is required.
"""

from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any, Optional

import torch

from .errors import AdvlandError
from .load import resolve_target
from .run import Run, atomic_write, atomic_write_text
from .jsonio import dumps
from .version import __version__

FORMATS = ("robustbench",)
_THREAT = {"linf": "Linf", "l2": "L2", "l1": "L1"}


def eps_text(eps: float) -> str:
    """``8/255`` for a radius that is a whole number of 255ths, else the number itself."""
    steps = Fraction(eps * 255).limit_denominator(1000)
    return f"{steps.numerator}/255" if steps.denominator == 1 and abs(float(steps) / 255 - eps) < 1e-9 else f"{eps:g}"


def source_commit() -> Optional[str]:
    """The git commit of advland's source tree, or None when it is not a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    return commit if out.returncode == 0 and commit else None


def _autoattack_eval(run: Run, name: Optional[str]) -> tuple[Path, dict[str, Any]]:
    """The eval JSON the export's numbers come from: ``name``, or the newest with AutoAttack on the best weights."""
    if name is not None:
        candidates = [run.path / name]
    else:
        candidates = sorted(run.path.glob("eval_*_best.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for path in candidates:
        if path.is_file():
            data = json.loads(path.read_text())
            if "autoattack" in data.get("accuracy", {}):
                return path, data
    raise AdvlandError(f"{run.path} has no evaluation with AutoAttack of its best weights; run "
                       f"advland eval {run.path} (its clean and AutoAttack accuracies go into the model info)")


def model_info(run: Run, config: Any, evaluation: dict[str, Any], eval_path: Path, name: str) -> dict[str, Any]:
    """RobustBench's model-info fields, plus how the numbers were measured and advland's provenance."""
    accuracy, intervals = evaluation["accuracy"], evaluation.get("interval_95", {})
    kwargs = ", ".join(f"{k}={v}" for k, v in config.model.kwargs.items())
    aa = evaluation.get("settings", {}).get("autoattack", {})
    extra = getattr(config.data, "extra", None)
    return {
        "name": name,
        "link": "",
        "authors": "",
        "venue": "",
        "dataset": config.data.name,
        "threat_model": _THREAT[evaluation["norm"]],
        "eps": eps_text(evaluation["eps"]),
        "clean_acc": f"{100 * accuracy['clean']:.2f}",
        "autoattack_acc": f"{100 * accuracy['autoattack']:.2f}",
        "reported": "",
        "architecture": config.model.name + (f"({kwargs})" if kwargs else ""),
        "number_forward_passes": 1,
        "additional_data": bool(extra),
        "unreliable": bool(evaluation.get("randomized", False)),
        "footnote": "",
        "autoattack_version": aa.get("version", "standard"),
        "n_test_examples": evaluation["n"],
        "clean_acc_ci95": [round(100 * v, 2) for v in intervals.get("clean", [])],
        "autoattack_acc_ci95": [round(100 * v, 2) for v in intervals.get("autoattack", [])],
        "advland": {"version": __version__, "commit": source_commit(), "seed": config.seed, "run": str(run.path),
                    "evaluation": str(eval_path), "split": evaluation.get("split", "test"),
                    "inputs": "[0, 1], normalization inside the model",
                    "normalize": config.model.normalize if isinstance(config.model.normalize, str)
                    else config.model.normalize.model_dump()},
    }


def export(target: str | Path, out: str | Path, *, fmt: str = "robustbench", name: Optional[str] = None,
           eval_file: Optional[str] = None) -> list[Path]:
    """Write the run's best weights and model info in ``fmt`` under ``out``; return the paths written."""
    if fmt not in FORMATS:
        raise AdvlandError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    opened = resolve_target(target, "best")
    run, config = opened.run, opened.config
    eval_path, evaluation = _autoattack_eval(run, eval_file)
    name = name or run.path.name
    model = opened.model("cpu")
    state = {"state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}}
    out = Path(out)
    weights, info = out / f"{name}.pt", out / f"{name}.json"
    atomic_write(weights, lambda tmp: torch.save(state, tmp))
    atomic_write_text(info, dumps(model_info(run, config, evaluation, eval_path, name), indent=2) + "\n")
    return [weights, info]
