"""``advland eval`` as a library call: evaluate a run's (or imported file's) model, check it, save the JSON.

The eval JSON (``RUN/eval_<norm>_<eps>_<checkpoint>.json``) holds every accuracy with its exact 95 %
interval and n, the settings of every attack, each example's correctness per attack and the
fingerprint of the examples (for :mod:`advland.compare`), whether the model is randomized, and the
sanity checks (AutoAttack's own checks always; advland's when asked).

Under ``torchrun --nproc_per_node=N -m advland eval RUN`` the attacks' batches are shared out over the N
processes and their per-example results gathered (:func:`advland.evaluate.sharded`); rank 0 runs the
sanity checks, writes the JSON and prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from . import data as datasets
from . import distributed
from .accel import evaluation_model
from .binomial import format_accuracy
from .build import resolve_device
from .conventions import check_outputs
from .evaluate import EvalReport, evaluate
from .errors import AdvlandError
from .load import ModelSource, Target, load_ensemble, resolve_target
from .radius import check_radius
from .sanity import Check, autoattack_checks, run_sanity_checks


@dataclass
class EvalRequest:
    """What to evaluate and how (the flags of ``advland eval``); None means the run's own value."""

    attacks: list[str] = field(default_factory=lambda: ["pgd", "cw", "autoattack"])
    norm: Optional[str] = None
    eps: Optional[float] = None
    allow_large_eps: bool = False
    aa_version: str = "auto"
    aa_attacks: Optional[list[str]] = None
    aa_settings: dict[str, Any] = field(default_factory=dict)
    steps: int = 20
    n: Optional[int] = None
    batch_size: Optional[int] = None
    split: str = "test"
    seed: int = 0
    sanity: bool = True
    ensemble: bool = False

    def check(self, which: str) -> None:
        """One-line errors for a request that cannot run (named by the flags of ``advland eval``)."""
        if self.norm is not None and self.norm not in ("linf", "l2", "l1"):
            raise AdvlandError(f"--norm must be linf, l2 or l1, got {self.norm!r}")
        if which not in ("best", "last", "ema", "ema_best") or self.split not in ("test", "val"):
            raise AdvlandError("--which must be best, last, ema or ema_best, and --split test or val")
        if self.steps < 1 or (self.n is not None and self.n < 1) or (self.batch_size is not None and self.batch_size < 1):
            raise AdvlandError("--steps, --n and --batch-size must be >= 1")
        if self.eps is not None and self.norm is not None:
            check_radius(self.norm, self.eps, allow_large=self.allow_large_eps, what="--eps",
                         allow_hint="--allow-large-eps")


@dataclass
class EvalResult:
    report: EvalReport
    checks: list[Check]
    label: str
    split: str
    path: Optional[Path]

    def lines(self) -> list[str]:
        """The terminal table: every accuracy with its interval, the warnings, the checks, where it was saved."""
        r = self.report
        out = [f"{r.norm} eps={r.eps:g}, {r.n} {self.split} examples, checkpoint {self.label}"
               + (", randomized model" if r.randomized else "")]
        out.append(f"  {'':<12} {'accuracy':>8}  95 % interval (exact)")
        intervals = r.intervals
        for name, acc in r.accuracy.items():
            out.append(f"  {name:<12} {format_accuracy(acc, intervals.get(name))}")
        out += [f"  warning: {w}" for w in r.warnings]
        out += [f"  sanity {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}" for c in self.checks]
        out.append(f"saved {self.path}")
        return out


def evaluate_run(target: str | Path, request: EvalRequest, *, which: str = "best", source: ModelSource | None = None,
                 progress: bool = True, log: Callable[[str], None] = lambda _: None) -> EvalResult:
    """``advland eval`` as one call: check ``request``, open ``target`` (a run directory, a checkpoint, or a weights
    file imported as a run under the request's norm and eps), evaluate it with its checks and save the eval JSON."""
    request.check(which)
    threat = {"norm": request.norm, "eps": request.eps, "allow_large_eps": request.allow_large_eps or None}
    opened = resolve_target(target, which, source, threat, threat_hint="--norm and --eps", log=log)
    return run_evaluation(opened, request, progress=progress)


def run_evaluation(target: Target, request: EvalRequest, *, progress: bool = True) -> EvalResult:
    """Evaluate ``target`` as ``request`` says and write its eval JSON into the run directory."""
    run, config = target.run, target.config
    device = resolve_device(config.device)
    distributed.init(device)  # under torchrun: join the group; the attacks' batches are split over it
    device = distributed.device_for(device)
    if request.ensemble:
        model, stem = load_ensemble(run.path, device=device), "ensemble"
        label = "ensemble of " + ", ".join(path.name for path in run.snapshot_paths())
    else:
        model, stem, label = target.model(device), target.checkpoint.stem, str(target.checkpoint)
    model = evaluation_model(model, device, config.eval.precision)  # fp32 unless the run's eval.precision says otherwise
    x, y = target.data(request.split)
    if request.n is not None:
        x, y = x[:request.n], y[:request.n]
    norm = request.norm or config.threat.norm
    eps = config.threat.eps if request.eps is None else request.eps
    check_radius(norm, eps, allow_large=request.allow_large_eps or config.threat.allow_large_eps,
                 dim=x[0].numel(), what="--eps", allow_hint="--allow-large-eps")
    num_classes = datasets.info(config.data.name).num_classes
    check_outputs(model, x[:2], num_classes)
    batch_size = request.batch_size or config.data.eval_batch_size
    report = evaluate(model, x, y, norm=norm, eps=eps, attacks=request.attacks, steps=request.steps,
                      batch_size=batch_size, seed=request.seed, progress=progress and distributed.is_main(),
                      aa_version=request.aa_version,
                      aa_attacks=request.aa_attacks, aa_settings=request.aa_settings)
    if not distributed.is_main():
        distributed.barrier()  # rank 0 checks and writes
        return EvalResult(report, [], label, request.split, None)
    ran_aa = "autoattack" in report.correct
    version = report.settings.get("autoattack", {}).get("version", "standard")
    warnings = report.warnings if ran_aa else None
    if request.sanity:
        checks = run_sanity_checks(model, x, y, norm=norm, eps=eps, num_classes=num_classes,
                                   autoattack_warnings=warnings, aa_version=version, batch_size=batch_size)
    else:
        checks = autoattack_checks(model, x, y, num_classes=num_classes, autoattack_warnings=warnings,
                                   aa_version=version, batch_size=batch_size)
    out = report.as_dict() | {"checkpoint": label, "split": request.split, "processes": distributed.world_size(),
                              "sanity_checks": [c.as_dict() for c in checks]}
    (path,) = run.save_analysis("eval", f"{report.norm}_{report.eps:g}_{stem}", out)
    distributed.barrier()
    return EvalResult(report, checks, label, request.split, path)
