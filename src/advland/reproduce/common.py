"""What every reproduction suite shares: findings, regimes and verdicts, budget profiles, and a run cache.

A suite trains runs through :meth:`Suite.run` (a finished run is reused, an interrupted one resumed), measures
each finding with its regime check and returns :class:`Finding` objects; :func:`finalize` adjusts their p-values
within the report and decides every verdict with :mod:`advland.stats`; :mod:`.report` writes them.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import stats
from ..build import load_split
from ..config import Config, load_config
from ..errors import AdvlandError
from ..evaluate import autoattack_correct, correct_under_attack, eval_threat
from ..jsonio import dumps
from ..load import load
from ..provenance import code_version, provenance
from ..run import Run, atomic_write_text
from ..stats import Test, Verdict
from ..threat import ThreatModel
from ..divergence import TrainingDiverged
from ..train import Trainer

Log = Callable[[str], None]
PROVENANCE = "provenance.json"
"""The file in a run directory that says which code trained it (written by the suites)."""
CHANCE = 0.1
"""Chance accuracy of every dataset the suites support (10 classes)."""


@dataclass
class Regime:
    """What a paper's claim presupposes, as a measurable precondition, checked on the suite's own runs."""

    condition: str
    measured: dict[str, Any]
    met: bool


@dataclass
class Finding:
    """One finding as measured: the claim, its regime, the numbers, the settings, the test and its verdict."""

    key: str
    """The finding's letter, e.g. "a" (liu2020 a–f, kanai2021 g–h, wu2020 i–j)."""
    paper: str
    claim: str
    measured: dict[str, Any]
    settings: dict[str, Any]
    regime: dict[str, Any]
    """:class:`Regime` as a dict: condition, measured, met. Not met: the verdict is "not in regime"."""
    test: dict[str, Any]
    """The test behind the verdict (:meth:`advland.stats.Test.as_dict`): name, n, effect, bounds, p_value,
    p_floor, values, ...; a claim of several parts has ``parts`` (one such object each) and the ``rule``."""
    p: dict[str, float]
    """The claim's p-values: ``holds`` and ``does_not_hold`` raw, and Holm-adjusted within the report
    (``holds_holm``, ``does_not_hold_holm``: these decide)."""
    reason: str
    verdict: Verdict = "inconclusive"
    figures: list[str] = field(default_factory=list)
    """PNG file names, relative to the report's figures/ folder."""
    paper_numbers: dict[str, Any] | None = None
    """The paper's own numbers at GPU scale, where known."""
    smoke_test: bool = False
    """Measured on a smoke-test budget (quick, tiny): the verdict says nothing about the paper's claim."""
    runs: dict[str, list[str]] = field(default_factory=dict)
    """Runs entering this finding that diverged or collapsed (named; they count with their saved numbers)."""


def finding(key: str, paper: str, claim: str, measured: dict[str, Any], settings: dict[str, Any], parts: list[Test],
            regime: Regime, *, note: str = "", figures: list[str] | None = None,
            paper_numbers: dict[str, Any] | None = None, supplementary: list[Test] | None = None,
            runs: dict[str, list[str]] | None = None, smoke_test: bool = False) -> Finding:
    """A finding with its test record and raw p-values; :func:`finalize` adjusts them within the report and
    decides the verdict. ``supplementary`` tests are reported beside the verdict, never part of it."""
    p_holds, p_not = stats.claim_p(parts)
    if len(parts) == 1:
        record = parts[0].as_dict()
        reason = stats.explain(parts[0])
    else:
        record = {"name": f"{len(parts)} parts, combined", "rule": stats.CLAIM_RULE, "alpha": parts[0].alpha,
                  "parts": [t.as_dict() for t in parts]}
        reason = "; ".join(f"{stats.explain(t)} [{stats.verdict(t)} on its own]" for t in parts)
    if supplementary:
        record["supplementary"] = [t.as_dict() for t in supplementary]
        reason += "; not judged: " + "; ".join(stats.explain(t) for t in supplementary)
    named = {k: v for k, v in (runs or {}).items() if v}
    if named:
        reason += "; " + "; ".join(f"{kind} runs counted with their saved numbers: {', '.join(v)}"
                                   for kind, v in named.items())
    return Finding(key, paper, claim, measured, settings, dataclasses.asdict(regime), record,
                   {"holds": p_holds, "does_not_hold": p_not}, reason + (f"; {note}" if note else ""),
                   figures=figures or [], paper_numbers=paper_numbers, smoke_test=smoke_test, runs=named)


def finalize(findings: list[Finding], alpha: float = stats.ALPHA) -> list[Finding]:
    """Holm-adjust the findings' p-values within the report (the family: the findings whose regime is met, one
    family for "holds" and one for "does not hold") and decide each verdict (:func:`advland.stats.decide`)."""
    judged = [f for f in findings if f.regime["met"]]
    for kind in ("holds", "does_not_hold"):
        for f, adjusted in zip(judged, stats.holm([f.p[kind] for f in judged])):
            f.p[f"{kind}_holm"] = adjusted
    for f in findings:
        f.verdict = stats.decide(f.p.get("holds_holm", 1.0), f.p.get("does_not_hold_holm", 1.0), f.regime["met"], alpha)
        if f.regime["met"]:
            f.reason += (f"; Holm-adjusted over the {len(judged)} findings judged in this report: p(holds) = "
                         f"{f.p['holds_holm']:.3g}, p(does not hold) = {f.p['does_not_hold_holm']:.3g}")
        else:
            f.reason = f"not in regime ({f.regime['condition']}; measured {_brief(f.regime['measured'])}); " + f.reason
    return findings


def _brief(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} = {v:.3g}" if isinstance(v, float) else f"{k} = {v}" for k, v in values.items())


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (NaN for a single value: no spread is measured); NaNs are dropped
    (descriptive only: verdicts come from advland.stats)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


@dataclass(frozen=True)
class Profile:
    """A compute budget: seeds, epochs, attack steps and analysis sizes."""

    name: str
    seeds: tuple[int, ...]
    epochs: int
    steps: int
    """PGD steps during training (step 2.5·ε/steps)."""
    analysis_n: int
    """Training examples the landscape analyses use."""
    analysis_steps: int
    """PGD steps of the analyses' attacks (step ε/4)."""
    eval_steps: int
    """PGD steps of the final test evaluation."""
    test_n: int | None
    lrs: tuple[float, ...]
    """The absolute learning rates of the PAS-vs-AT comparison (liu2020 f), one grid for both arms."""
    lanczos_cap: int
    """Most Lanczos steps (HVPs) for the top Hessian eigenvalues; Lanczos stops earlier once converged."""
    landscape_points: int
    extra: tuple[str, ...] = ()
    """Further config overrides (e.g. a tiny batch and validation split)."""
    eps_points: int = 4
    """How many of the dataset's ε-sweep values to train (the smallest and the largest are always kept)."""
    smoke_test: bool = True
    """Too small to decide anything: a check that every suite runs; its verdicts are labelled as such."""
    aa_n: int = 500
    """Test examples on which the judged checkpoints of accuracy claims are attacked with AutoAttack."""
    tuning_trials: int = 4
    """Settings each arm of (h) tries on validation (the same number for both arms)."""


PROFILES: dict[str, Profile] = {
    "tiny": Profile("tiny", (0, 1), 1, 1, 32, 1, 1, 20, (0.02, 0.2), 8, 5,
                    ("data.batch_size=256", "data.val_fraction=0.03", "data.eval_batch_size=512"), 2, aa_n=20,
                    tuning_trials=2),
    "quick": Profile("quick", (0, 1), 4, 2, 128, 3, 5, 200, (0.03, 0.3), 40, 5, ("data.batch_size=128",),
                     aa_n=100, tuning_trials=2),
    "full": Profile("full", tuple(range(8)), 20, 5, 512, 10, 20, None, (0.01, 0.03, 0.1, 0.3), 100, 9,
                    smoke_test=False),
}
"""Full: 8 seeds wherever seeds are compared: the exact sign-flip test's smallest p is then 1/256, which leaves
room for the Holm adjustment over a report's findings (with 5 seeds the floor is 1/32 and no adjusted p can
reach 0.05; with 3 no p can)."""


@dataclass(frozen=True)
class DataSettings:
    """Per-dataset recipe: the base config overrides, the training ε and learning rate, and the ε sweep."""

    name: str
    base: tuple[str, ...]
    eps: float
    lr: float
    eps_sweep: tuple[float, ...]
    epochs: dict[str, int] = field(default_factory=dict)
    """Epochs per profile where the dataset needs its own (CIFAR-10: the papers' 200)."""
    budgets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Further overrides per profile (a training subset, a smaller test set) where the dataset needs its own."""
    pas_eps: float | None = None
    """The ε of (f): large enough that AT gets stuck on the initial plateau at some learning rate (liu2020's
    regime; chosen by a pilot); None: the dataset's ε."""
    overfit: tuple[str, ...] = ()
    """wu2020's regime: overrides under which AT robust-overfits (a small training subset, a wide model, training
    long past the learning-rate decay); applied to every run of (i) and (j)."""
    overfit_epochs: dict[str, int] = field(default_factory=dict)
    """Epochs of the wu2020 runs per profile (default: twice the suite's)."""
    overfit_objectives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Further overrides of the robust-overfitting recipe for one objective (e.g. a smaller learning rate where
    it diverges at AT's)."""


DATASETS: dict[str, DataSettings] = {
    "digits": DataSettings("digits", ("data.name=digits", "data.batch_size=64", "model.name=cnn_small"),
                           0.2, 0.05, (0.0, 0.1, 0.2, 0.3), pas_eps=0.3,
                           overfit=("data.train_n=300", "optimizer.weight_decay=0"),
                           overfit_epochs={"full": 100, "quick": 6, "tiny": 2}),
    # MNIST-1D signals have std 0.0996 in [0, 1]: ε = 0.1 (one std) left every AT model at chance for 20 epochs;
    # ε = 0.02 gives cnn_small 85 % clean / 56 % PGD-10 (the MLP reaches only 65 % clean without attack)
    "mnist1d": DataSettings("mnist1d", ("data.name=mnist1d", "data.batch_size=64", "model.name=cnn_small"),
                            0.02, 0.05, (0.0, 0.01, 0.02, 0.03), pas_eps=0.05,
                            overfit=("data.train_n=1000", "optimizer.weight_decay=0"),
                            overfit_epochs={"full": 100, "quick": 6, "tiny": 2}),
    # Fashion-MNIST (the official files): an MLP (256, 256) on a 3000-example training subset, chosen to fit
    # every finding with 5 seeds in about an hour on 2 CPU cores (docs/findings.md: the cost measured per pass)
    "fashion_mnist": DataSettings("fashion_mnist", ("data.name=fashion_mnist", "data.batch_size=128", "model.name=mlp",
                                                    "data.val_fraction=0.02"),
                                  0.1, 0.05, (0.0, 0.05, 0.1, 0.15), {"full": 10, "quick": 3},
                                  budgets={"full": ("data.train_n=3000", "eval.test_n=2000"),
                                           "quick": ("data.train_n=1000",), "tiny": ("data.train_n=1400",)},
                                  # pilot (docs/findings.md): at ε = 0.2 AT (SGD, cyclic cosine lr, 10 epochs) stays below
                                  # 50 % training accuracy at lr 0.01 and leaves the plateau at lr 0.3
                                  pas_eps=0.2,
                                  # pilot (docs/findings.md): a (1024, 1024) MLP on 250 examples without weight decay fits
                                  # the training adversarial examples (train PGD accuracy 0.93 after the decay) while
                                  # validation PGD accuracy falls from 0.53 (epoch 17) to 0.49
                                  overfit=("data.train_n=250", "data.batch_size=64", "model.kwargs={hidden: [1024, 1024]}",
                                           "optimizer.weight_decay=0", "optimizer.lr=0.1", "data.val_fraction=0.005"),
                                  # 150 epochs, not 100: at 100 AT's best - last was 2.9 points (8 seeds), under the 3 the
                                  # regime asks; longer training before the decay deepens the fall (docs/findings.md)
                                  overfit_epochs={"full": 150, "quick": 6, "tiny": 2},
                                  # at lr 0.1 TRADES diverged (a non-finite loss before the decay) in 8 of 8 seeds and
                                  # MART in 6 of 8; at 0.05 the pilot seeds that had diverged first trained to the end
                                  overfit_objectives={"trades": ("optimizer.lr=0.05",), "mart": ("optimizer.lr=0.05",)}),
    "mnist": DataSettings("mnist", ("data.name=mnist", "data.root=data", "data.batch_size=128", "model.name=lenet"),
                          0.3, 0.01, (0.0, 0.1, 0.2, 0.3)),
    "cifar10": DataSettings("cifar10", ("data.name=cifar10", "data.root=data", "data.batch_size=128",
                                        "data.augment=crop_flip", "data.val_fraction=0.02",
                                        "model.name=preact_resnet18", "threat.bn_mode=train"),
                            8 / 255, 0.1, (0.0, 2 / 255, 4 / 255, 8 / 255), {"full": 200, "quick": 30},
                            overfit_epochs={"full": 200, "quick": 30}),
}


@dataclass
class Suite:
    """Everything a suite needs: where to write, what budget, which data, and the run cache."""

    out: Path
    profile: Profile
    data: DataSettings
    device: str
    log: Log
    progress: bool = False
    """Show the trainer's progress bars."""
    _splits: dict[str, Any] = field(default_factory=dict, repr=False)
    """Loaded data splits by data settings and seed."""

    @property
    def epochs(self) -> int:
        return self.data.epochs.get(self.profile.name, self.profile.epochs)

    @property
    def eps_sweep(self) -> tuple[float, ...]:
        """The ε values of liu2020's sweep under this budget."""
        values = self.data.eps_sweep
        return values if len(values) <= self.profile.eps_points else (*values[: self.profile.eps_points - 1], values[-1])

    def describe(self) -> dict[str, Any]:
        """What the report states about the training recipe of this dataset and budget."""
        p = self.profile
        effective = dict(o.split("=", 1) for o in [*self.data.base, *p.extra, *self.data.budgets.get(p.name, ())])
        return {"overrides": [f"{k}={v}" for k, v in effective.items()], "eps": self.data.eps,  # the last of a key wins
                "lr": self.data.lr, "epochs": self.epochs, "train_pgd_steps": p.steps, "eval_pgd_steps": p.eval_steps,
                "analysis_examples": p.analysis_n, "analysis_pgd_steps": p.analysis_steps, "seeds": list(p.seeds),
                "test_examples": p.test_n or int(effective.get("eval.test_n", 0)) or "all"}

    @property
    def figures(self) -> Path:
        path = self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def overrides(self, extra: list[str]) -> list[str]:
        """The full override list of a run: dataset recipe, budget, then the run's own keys."""
        d, p = self.data, self.profile
        base = [*d.base, f"threat.eps={d.eps}", f"threat.steps={p.steps}", f"threat.step_size={2.5 * d.eps / p.steps}",
                "objective.name=at", "optimizer.name=sgd", f"optimizer.lr={d.lr}", "schedule.lr=piecewise",
                f"epochs={self.epochs}", f"eval.steps={p.eval_steps}", f"device={self.device}",
                f"out_dir={self.out / 'runs'}", *p.extra, *d.budgets.get(p.name, ())]
        if p.test_n:
            base.append(f"eval.test_n={p.test_n}")
        return base + extra

    def run(self, name: str, extra: list[str]) -> Run:
        """The run ``name`` trained with ``extra`` overrides: reused if finished, resumed if interrupted.
        Suites launched side by side on one report directory share runs: a run being trained by another
        process is waited for (a lock file per run), then reused."""
        (self.out / "runs").mkdir(parents=True, exist_ok=True)
        with _run_lock(self.out / "runs" / f".{name}.lock"):
            return self._run_unlocked(name, extra)

    def _run_unlocked(self, name: str, extra: list[str]) -> Run:
        run = Run(self.out / "runs" / name)
        config = load_config(None, self.overrides([*extra, f"name={name}"]))
        same = run.config_path.exists() and _settings(run.config()) == _settings(config)
        if same and run.summary_path.exists():
            self.log(f"  reuse  {name}")
            return run
        state = ["resume=true"] if same and run.state_path.exists() else ["overwrite=true"]
        self.log(f"  {'resume' if state[0] == 'resume=true' else 'train '} {name}")
        start = time.perf_counter()
        trainer = Trainer(load_config(None, self.overrides([*extra, f"name={name}", *state])), progress=self.progress)
        try:
            trainer.fit()
        except TrainingDiverged as error:  # an outcome of the comparison (e.g. too large a learning rate)
            trainer.conclude_diverged(str(error))
            self.log(f"  diverged {name}: {error}; its best saved epoch is tested")
        self.log(f"  done   {name} in {time.perf_counter() - start:.0f} s")
        atomic_write_text(run.path / PROVENANCE, dumps(provenance(self.device), indent=2) + "\n")
        return run

    def stale_runs(self) -> list[str]:
        """The runs of this report trained by other code than the running one (another source hash, or no
        record): they are reused, and the report names them."""
        current = code_version()["source_hash"]
        stale = []
        for path in sorted((self.out / "runs").glob("*/config.yaml")):
            record = path.parent / PROVENANCE
            kept = json.loads(record.read_text()) if record.exists() else {}
            if kept.get("source_hash") != current:
                stale.append(path.parent.name)
        return stale

    def health(self, runs: dict[str, Run]) -> dict[str, list[str]]:
        """Which of ``runs`` (label -> run) diverged (a non-finite loss; concluded with their best saved epoch)
        and which collapsed (test robust accuracy, or clean accuracy without attack, at most chance + 2 points)."""
        out: dict[str, list[str]] = {"diverged": [], "collapsed": []}
        for label, run in runs.items():
            summary = run.summary()
            if summary.get("diverged"):
                out["diverged"].append(label)
            acc = summary.get("last_test_robust_acc") if summary.get("eps") else summary.get("last_test_clean_acc")
            if acc is not None and acc <= CHANCE + 0.02:
                out["collapsed"].append(label)
        return out

    def judged_accuracy(self, run: Run, which: str) -> dict[str, float]:
        """Test robust accuracy of a judged checkpoint: AutoAttack (APGD-CE and APGD-T, the official code) and
        the evaluation PGD (every iterate counted), on the first ``aa_n`` test examples; kept in runs/."""
        config = run.config()
        settings = {"run": _settings(config), "which": which, "n": self.profile.aa_n, "pgd_steps": self.profile.eval_steps,
                    "weights": (run.path / "checkpoints" / f"{which}.safetensors").stat().st_mtime_ns}

        def compute() -> dict[str, float]:
            x, y = self.analysis_data(config, "test")
            x, y = x[: self.profile.aa_n], y[: self.profile.aa_n]
            model = self.model(run, which)
            threat = eval_threat(config.threat.norm, config.threat.eps, self.profile.eval_steps)
            torch.manual_seed(0)
            pgd = correct_under_attack(model, x, y, threat).float().mean().item()
            aa, _ = autoattack_correct(model, x, y, config.threat.norm, config.threat.eps, attacks=["apgd-ce", "apgd-t"])
            return {"autoattack": aa.float().mean().item(), "pgd": pgd, "n": len(y)}

        return self.cached(f"{run.path.name}.judged_{which}", settings, compute)

    def cached(self, name: str, settings: dict[str, Any], compute: Callable[[], Any]) -> Any:
        """The JSON value ``compute()`` returns, kept in ``runs/<name>.json`` with its ``settings`` and reused
        while they are the same (a relaunched suite does not redo a measurement that needs no trained run)."""
        path = self.out / "runs" / f"{name}.json"
        settings = json.loads(json.dumps(settings, allow_nan=False))  # as they read back: tuples become lists
        if path.exists():
            kept = json.loads(path.read_text())
            if kept.get("settings") == settings:
                self.log(f"  reuse  {name}")
                return kept["value"]
        value = compute()
        try:
            text = json.dumps({"settings": settings, "value": value}, allow_nan=False)
        except ValueError:  # a non-finite value is not kept (strict JSON): it is measured again next time
            return value
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, text)
        return value

    def at_run(self, seed: int, eps: float | None = None, lr: float | None = None) -> Run:
        """The canonical PGD-AT run (shared by the suites): dataset recipe at ε and learning rate."""
        eps = self.data.eps if eps is None else eps
        lr = self.data.lr if lr is None else lr
        extra = [f"threat.eps={eps}", f"optimizer.lr={lr}", f"seed={seed}", "track.clean_grad_norm=true",
                 f"track.n={self.profile.analysis_n}"]
        extra.append(f"threat.step_size={2.5 * eps / self.profile.steps}" if eps > 0 else "objective.name=clean")
        return self.run(f"at_eps{eps:.4g}_lr{lr:.4g}_s{seed}", extra)

    def threat(self, eps: float | None = None, norm: str = "linf") -> ThreatModel | None:
        """The analyses' attack: PGD with ``analysis_steps`` steps of ε/4 (None at ε = 0)."""
        eps = self.data.eps if eps is None else eps
        if eps == 0:
            return None
        return eval_threat(norm, eps, self.profile.analysis_steps)

    def analysis_data(self, config: Config, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``analysis_n`` examples of the training split of the run with ``config`` (its own seed's
        carve and training subset, so never its validation examples), or the first test examples the run is tested on
        (the budget's ``test_n``, else the run's ``eval.test_n``, else all)."""
        key = f"{config.data.model_dump_json()} seed={config.seed} {split}"
        if key not in self._splits:
            self._splits[key] = load_split(config, "train" if split == "train" else "test")
        x, y = self._splits[key]
        n = self.profile.analysis_n if split == "train" else self.profile.test_n or config.eval.test_n
        return x[:n], y[:n]

    def model(self, run: Run, which: str = "last") -> torch.nn.Module:
        return load(run.path, which, device=self.device if self.device != "auto" else "cpu")

    def robust_acc(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None) -> float:
        """Accuracy under the analyses' PGD at ε (clean accuracy at ε = 0)."""
        threat = self.threat(eps) or ThreatModel(norm="linf", eps=0.0, step_size=1.0, steps=0)
        torch.manual_seed(0)
        return correct_under_attack(model, x, y, threat).float().mean().item()


@contextmanager
def _run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (blocking while another process holds it); released on exit, also
    when the process dies."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _settings(config: Config) -> dict[str, Any]:
    """What decides a run's result: the config without the resume/overwrite flags."""
    return config.model_dump(exclude={"resume", "overwrite"})


def make_suite(out: Path, budget: str, dataset: str, device: str, log: Log, progress: bool = False) -> Suite:
    """A :class:`Suite` for a budget name and dataset name, with one-line errors for bad names."""
    if budget not in PROFILES:
        raise AdvlandError(f"unknown budget {budget!r}; choose one of: {', '.join(PROFILES)}")
    if dataset not in DATASETS:
        raise AdvlandError(f"reproduce supports --data {', '.join(DATASETS)} (got {dataset!r})")
    out.mkdir(parents=True, exist_ok=True)
    return Suite(out, PROFILES[budget], DATASETS[dataset], device, log, progress)


def epochs_to_reach(accuracies: list[float], threshold: float, chance: float) -> tuple[float, bool]:
    """Epochs (linearly interpolated, starting from ``chance`` at epoch 0) until accuracy first reaches
    ``threshold``, and whether the run is censored: one that never reaches it gets the censoring bound
    len(accuracies) (its true value is larger) and True."""
    previous = chance
    for epoch, acc in enumerate(accuracies, 1):
        if acc >= threshold:
            return epoch - 1 + (threshold - previous) / max(acc - previous, 1e-12), False
        previous = acc
    return float(len(accuracies)), True
