"""Robust evaluation: clean accuracy, PGD-20, CW-20, AutoAttack (official code), worst case per example.

Conventions: PGD and CW run ``steps`` iterations of step eps/4 from a random start; AutoAttack is
the official code (the ``pyautoattack`` package) in the version its authors intend: ``standard``
(APGD-CE, APGD-T, FAB-T, Square 5000 queries), ``plus`` (more restarts and attacks), ``rand`` (for
randomized models: APGD-CE and APGD-DLR with an expectation over 20 draws per step) or ``custom`` (a
chosen subset). The default, ``auto``, is ``standard``, or ``rand`` for a model whose outputs differ
between two identical forward passes (:func:`advland.conventions.is_randomized`). The worst case
counts an example as robust only if every attack failed on it.

The attacks run batch by batch, each batch seeded by itself (PGD and CW: ``seed + batch index``;
AutoAttack: ``seed``, one run per batch), so that under ``torchrun`` the batches are shared out over
the processes and the gathered per-example results equal one process's (:func:`sharded`).

Every accuracy comes with its exact 95 % interval (Clopper–Pearson) and the number of examples, and
the report keeps each example's correctness and a fingerprint of the examples, so that two
evaluations can be compared pairwise (:mod:`advland.compare`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Optional

import torch
from pyautoattack import AutoAttack
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .accel import Precision, evaluation_model
from .attacks import AttackLoss, pgd_correct
from .binomial import accuracy_intervals, with_intervals
from .conventions import check_inputs, is_randomized
from .errors import AdvlandError
from .ensemble import SnapshotEnsemble
from .run import Run, load_weights
from .threat import Norm, ThreatModel

ATTACKS: tuple[str, ...] = ("pgd", "cw", "autoattack")
AA_VERSIONS: tuple[str, ...] = ("auto", "standard", "plus", "rand", "custom")
AA_ATTACKS: tuple[str, ...] = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")
AA_COMPONENTS: tuple[str, ...] = ("apgd", "apgd_targeted", "fab", "square")


def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels, computed in batches without gradients, on the model's device."""
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(xb.to(device)).argmax(1).cpu() for xb in x.split(batch_size)])


def correct_under_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    threat: ThreatModel,
    *,
    loss: AttackLoss = "ce",
    batch_size: int = 500,
) -> torch.Tensor:
    """Boolean mask (N,): whether the model classifies each example correctly at every point PGD
    visited (clean input, every iterate of every restart: :func:`advland.attacks.pgd_correct`)."""
    device = next(model.parameters()).device
    masks = []
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        masks.append(pgd_correct(model, xb.to(device), yb.to(device), threat, loss=loss, mode="eval").cpu())
    return torch.cat(masks) if masks else torch.zeros(0, dtype=torch.bool)


def eval_threat(norm: Norm, eps: float, steps: int = 20, restarts: int = 1) -> ThreatModel:
    """The evaluation PGD: ``steps`` iterations of step eps/4 with random start (``restarts`` of them). The one
    place this rule is written (validation, the final test, ``advland eval`` and the reproduce suites use it)."""
    return ThreatModel(norm=norm, eps=eps, step_size=eps / 4, steps=steps, restarts=restarts)


class _AsImage(nn.Module):
    """Present (N, D) or (N, C, L) inputs to AutoAttack as images (N, C, 1, L); Square needs 4-D."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.model, self.shape = model, shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.reshape(x.shape[0], *self.shape))


def _image_view(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 4:
        return x
    if x.dim() == 2:
        return x.reshape(x.shape[0], 1, 1, x.shape[1])
    return x.reshape(x.shape[0], x.shape[1], 1, -1)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _runnable_autoattack(attack, n_classes: int) -> list[str]:
    """Fit the configured AutoAttack to ``n_classes``: targeted attacks get at most n_classes - 1 target
    classes, APGD-T (targeted DLR loss: z_y - z_t over z_pi1 - (z_pi3 + z_pi4) / 2) is dropped below
    4 classes and APGD-DLR below 3, where they are undefined; return one line per change."""
    notes = []
    attack.apgd_targeted.n_target_classes = min(attack.apgd_targeted.n_target_classes, n_classes - 1)
    attack.fab.n_target_classes = min(attack.fab.n_target_classes, n_classes - 1)
    for name, loss, least in (("apgd-t", "targeted DLR loss", 4), ("apgd-dlr", "DLR loss", 3)):
        if name in attack.attacks_to_run and n_classes < least:
            attack.attacks_to_run = [a for a in attack.attacks_to_run if a != name]
            notes.append(f"{name.upper()} cannot run with {n_classes} classes (its {loss} needs at least {least}); "
                         f"ran {', '.join(a.upper() for a in attack.attacks_to_run)}")
    return notes


def _apply_settings(attack, settings: dict[str, Any]) -> None:
    """Set ``{"apgd.n_iter": 10, "square.n_queries": 100}`` on the AutoAttack's component attacks."""
    for key, value in settings.items():
        component, _, name = key.partition(".")
        target = getattr(attack, component, None) if component in AA_COMPONENTS else None
        if target is None or not name or not hasattr(target, name):
            raise AdvlandError(f"AutoAttack setting {key!r} is not one of its attacks' attributes "
                               f"(COMPONENT.NAME with COMPONENT one of {', '.join(AA_COMPONENTS)}, e.g. apgd.n_iter)")
        setattr(target, name, value)


def check_aa_choice(version: str, attacks: Optional[list[str]]) -> None:
    """Refuse an unknown AutoAttack version, unknown attack names, or attacks without ``custom`` (one line)."""
    if version not in AA_VERSIONS:
        raise AdvlandError(f"AutoAttack version must be one of {', '.join(AA_VERSIONS)}, got {version!r}")
    if version == "custom":
        if not attacks:
            raise AdvlandError(f"the custom AutoAttack version needs its attacks (a subset of {', '.join(AA_ATTACKS)})")
        unknown = [a for a in attacks if a not in AA_ATTACKS]
        if unknown:
            raise AdvlandError(f"unknown AutoAttack attack {unknown[0]!r}; choose from {', '.join(AA_ATTACKS)}")
    elif attacks:
        raise AdvlandError(f"AutoAttack attacks are chosen only with the custom version, not {version!r}")


def autoattack_correct(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, norm: Norm, eps: float, *, batch_size: int = 500, seed: int = 0,
    attacks: list[str] | None = None, version: str = "standard", settings: dict[str, Any] | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Run the official AutoAttack (``pyautoattack``); return the per-example robust mask and its warnings.

    Args:
        version: standard, plus, rand, or custom (then ``attacks`` names the subset, as the package
            spells them, e.g. ``["apgd-ce", "square"]``). For backward compatibility, ``attacks``
            given with the default version means custom.
        settings: attributes of the component attacks changed after the version set them, e.g.
            ``{"apgd.n_iter": 10}`` (recorded in the report; the official budgets are the default).
    """
    if norm not in ("linf", "l2", "l1"):
        raise ValueError(f"AutoAttack supports linf, l2 and l1, not {norm}")
    if attacks is not None and version == "standard":
        version = "custom"
    check_aa_choice(version, attacks)
    device = next(model.parameters()).device
    wrapped = _AsImage(model, tuple(x.shape[1:])).eval()
    attack = AutoAttack(wrapped, eps=eps, norm={"linf": "Linf", "l2": "L2", "l1": "L1"}[norm],
                        version=version, attacks=attacks, seed=seed, device=device)
    _apply_settings(attack, settings or {})
    with torch.no_grad():
        n_classes = wrapped(_image_view(x[:1]).to(device)).shape[1]
    notes = _runnable_autoattack(attack, n_classes)
    collector = _Collect()
    logger = logging.getLogger("auto-attack")
    logger.addHandler(collector)
    try:
        x_adv, _ = attack.run_standard_evaluation(_image_view(x).to(device), y.to(device), batch_size=batch_size)
    finally:
        logger.removeHandler(collector)
    with torch.no_grad():
        pred = predict(wrapped, x_adv, batch_size)
    return pred == y.cpu(), notes + collector.messages


def sharded(fn: Callable[[int, torch.Tensor, torch.Tensor], tuple[torch.Tensor, list[str]]], x: torch.Tensor,
            y: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, list[str]]:
    """``fn(i, x_i, y_i)`` on the batches of ``batch_size`` examples, each on one process (batch i on rank
    i mod world size under torchrun; all here otherwise), gathered into one mask in example order and the
    messages of every batch (each once). A batch's result depends only on the batch, so the mask is
    the same for any number of processes."""
    mine = {}
    batches = list(zip(x.split(batch_size), y.split(batch_size)))
    for i in distributed.shard(range(len(batches))):
        mask, messages = fn(i, *batches[i])
        mine[i] = (mask.cpu().tolist(), messages)
    merged = {i: part for gathered in distributed.all_gather_object(mine) for i, part in gathered.items()}
    masks = [torch.tensor(merged[i][0], dtype=torch.bool) for i in range(len(batches))]
    messages = list(dict.fromkeys(m for i in range(len(batches)) for m in merged[i][1]))
    return (torch.cat(masks) if masks else torch.zeros(0, dtype=torch.bool)), messages


def fingerprint(x: torch.Tensor, y: torch.Tensor) -> str:
    """SHA-256 of the examples (inputs as float32 and labels, in order): equal only for the same test set."""
    digest = hashlib.sha256()
    digest.update(str(tuple(x.shape)).encode())
    for xb, yb in zip(x.split(4096), y.split(4096)):
        digest.update(xb.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        digest.update(yb.detach().to("cpu", torch.int64).contiguous().numpy().tobytes())
    return digest.hexdigest()


def mask_text(mask: torch.Tensor) -> str:
    """A per-example correctness mask as a string of 0s and 1s (compact, strict JSON)."""
    return "".join("1" if v else "0" for v in mask.tolist())


def mask_from_text(text: str) -> list[bool]:
    return [c == "1" for c in text]


@dataclass
class EvalReport:
    """Accuracies in [0, 1] on n examples; ``correct`` holds the per-example masks behind them.

    ``settings`` says how each number was measured (attack steps, restarts, seed, AutoAttack version and
    budget): two reports can be compared example by example only when their settings and ``examples``
    (the fingerprint of the inputs and labels) are equal."""

    norm: str
    eps: float
    n: int
    accuracy: dict[str, float] = field(default_factory=dict)
    correct: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    warnings: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    examples: str = ""
    randomized: bool = False

    @property
    def intervals(self) -> dict[str, list[float]]:
        """Each accuracy's exact 95 % interval (Clopper–Pearson) as [low, high]."""
        return accuracy_intervals(self.accuracy, self.n)

    def as_dict(self) -> dict:
        return {"norm": self.norm, "eps": self.eps, "n": self.n, "accuracy": self.accuracy,
                "interval_95": self.intervals, "interval_method": "Clopper-Pearson (exact binomial)",
                "randomized": self.randomized, "settings": self.settings, "warnings": self.warnings,
                "examples_sha256": self.examples, "per_example": {k: mask_text(v) for k, v in self.correct.items()}}


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    norm: Norm,
    eps: float,
    attacks: Iterable[str] = ATTACKS,
    steps: int = 20,
    restarts: int = 1,
    batch_size: int = 500,
    seed: int = 0,
    progress: bool = True,
    aa_version: str = "auto",
    aa_attacks: Optional[list[str]] = None,
    aa_settings: Optional[dict[str, Any]] = None,
) -> EvalReport:
    """Clean accuracy, each attack's robust accuracy, and the per-example worst case over them.

    Args:
        aa_version: auto (standard, or rand for a randomized model), standard, plus, rand or custom.
        aa_attacks: the attacks of the custom version.
        aa_settings: component-attack attributes changed from the version's budget (``{"apgd.n_iter": 10}``).
    """
    attacks = list(attacks)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise AdvlandError(f"unknown attack {unknown[0] if unknown else ''!r}; choose a comma-separated subset of "
                           f"{', '.join(ATTACKS)}")
    check_aa_choice(aa_version, aa_attacks)
    check_inputs(x)
    model.eval()
    randomized = is_randomized(model, x[:batch_size]) if len(x) else False
    version = aa_version if aa_version != "auto" else ("rand" if randomized else "standard")
    settings: dict[str, Any] = {"steps": steps, "restarts": restarts, "seed": seed, "attacks": attacks}
    if "autoattack" in attacks:
        settings["autoattack"] = {"version": version, "attacks": aa_attacks, "settings": aa_settings or {}}
    report = EvalReport(norm=norm, eps=eps, n=len(y), settings=settings, examples=fingerprint(x, y),
                        randomized=randomized)
    if randomized and "autoattack" in attacks and version != "rand":
        report.warnings.append(f"the model is randomized (two identical forward passes differ) and AutoAttack ran its "
                               f"{version} version, which overstates the robustness of randomized models; "
                               f"use --aa-version rand (expectation over the randomness)")
    clean = predict(model, x, batch_size) == y
    report.correct["clean"] = clean
    threat = eval_threat(norm, eps, steps, restarts)
    bar = tqdm(attacks, desc="evaluate", disable=not progress, leave=False)
    for name in bar:
        bar.set_postfix_str(name)
        if name in ("pgd", "cw"):
            def attack(i: int, xb: torch.Tensor, yb: torch.Tensor, loss: AttackLoss = "ce" if name == "pgd" else "cw"):
                torch.manual_seed(seed + i)  # each batch its own seed: any sharding draws the same random starts
                return correct_under_attack(model, xb, yb, threat, loss=loss, batch_size=batch_size), []

            report.correct[f"{name}{steps}"], _ = sharded(attack, x, y, batch_size)
        else:
            def attack(i: int, xb: torch.Tensor, yb: torch.Tensor):
                return autoattack_correct(model, xb, yb, norm, eps, batch_size=batch_size, seed=seed,
                                          attacks=aa_attacks, version=version, settings=aa_settings)

            report.correct["autoattack"], messages = sharded(attack, x, y, batch_size)
            report.warnings.extend(f"autoattack: {m}" for m in messages)
    worst = clean.clone()
    for mask in report.correct.values():
        worst &= mask
    report.correct["worst_case"] = worst
    report.accuracy = {k: v.sum().item() / len(v) if len(v) else math.nan for k, v in report.correct.items()}
    return report


def accuracies(model: nn.Module, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *, device: torch.device,
               precision: Precision = "fp32", batch_size: int = 500) -> tuple[float, float]:
    """Clean and PGD accuracy (every iterate counted) of ``model`` at ``precision``; under torchrun each process
    attacks its shard and the counts are summed (NaN for no examples)."""
    model = evaluation_model(model, device, precision)
    x, y = distributed.shard(x), distributed.shard(y)
    clean = robust = 0.0
    if len(y):
        clean = (predict(model, x, batch_size) == y).sum().item()
        robust = correct_under_attack(model, x, y, threat, batch_size=batch_size).sum().item()
    clean, robust, n = distributed.sum_floats(clean, robust, len(y))
    return (clean / n, robust / n) if n else (math.nan, math.nan)


def test_run(model: nn.Module, run: Run, x: torch.Tensor, y: torch.Tensor, threat: ThreatModel, *,
             device: torch.device, precision: Precision = "fp32", batch_size: int = 500,
             seed: int = 0) -> dict[str, float]:
    """The test of a finished training: clean and PGD accuracy of the run's ``best`` weights, of ``model``'s own
    (last) weights, of the EMA of the weights when the run kept one (the last average and the one at its own
    validation peak), and of the snapshot ensemble when the run has snapshots (``test_*``, ``last_test_*``,
    ``ema_test_*``, ``ema_best_test_*``, ``n_snapshots`` and ``ensemble_test_*``), each
    ``*_acc`` followed by its Clopper–Pearson 95 % interval ``*_acc_ci``. Each model's attack starts from
    ``torch.manual_seed(seed)``; ``model`` ends with its own weights."""

    def tested(net: nn.Module, prefix: str) -> dict[str, float]:
        net.eval()
        torch.manual_seed(seed)
        clean, robust = accuracies(net, x, y, threat, device=device, precision=precision, batch_size=batch_size)
        return {f"{prefix}test_clean_acc": clean, f"{prefix}test_robust_acc": robust}

    last = {k: v.clone() for k, v in model.state_dict().items()}
    best = load_weights(run.weights_path("best"))
    model.load_state_dict(best)
    summary = tested(model, "")
    model.load_state_dict(last)
    # the last epoch was the best: the same seeded test would repeat itself. Rank 0 decides for every process
    # (BatchNorm buffers differ between DDP processes, and the test's collectives need them all).
    if distributed.broadcast_object(_same_weights(best, last)):
        summary.update({f"last_{k}": v for k, v in list(summary.items())})
    else:
        summary.update(tested(model, "last_"))
    for which in ("ema", "ema_best"):  # the last average, and the average at its own validation peak
        if not run.weights_path(which).exists():
            continue
        averaged = load_weights(run.weights_path(which))
        if distributed.broadcast_object(_same_weights(best, averaged)):  # the average is what best holds
            summary.update({f"{which}_{k}": summary[k] for k in ("test_clean_acc", "test_robust_acc")})
        else:
            model.load_state_dict(averaged)
            summary.update(tested(model, f"{which}_"))
            model.load_state_dict(last)
    snapshots = run.snapshot_paths()
    if snapshots:
        summary["n_snapshots"] = len(snapshots)
        summary.update(tested(SnapshotEnsemble.of(model, snapshots), "ensemble_"))
    return with_intervals(summary, len(y))  # every test accuracy with its exact 95 % interval (n_test examples)


def _same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same tensors (same keys, equal values)."""
    return a.keys() == b.keys() and all(torch.equal(a[k].to(b[k].device), b[k]) for k in a)
