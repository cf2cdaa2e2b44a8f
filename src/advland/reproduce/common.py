"""What every reproduction suite shares: findings and verdicts, budget profiles, and a run cache.

A suite trains runs through :class:`RunCache` (a finished run is reused, an interrupted one resumed),
measures each finding of SPEC §9 and returns :class:`Finding` objects; :mod:`.report` writes them.
Every verdict is the outcome of the tests of :mod:`advland.stats` (SPEC §9, statistics of verdicts).
"""

from __future__ import annotations

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
from ..config import Config, load_config
from ..errors import AdvlandError
from ..evaluate import correct_under_attack
from ..run import Run, atomic_write_text, load
from ..stats import Test, Verdict
from ..threat import ThreatModel
from ..divergence import TrainingDiverged
from ..train import Trainer

Log = Callable[[str], None]


@dataclass
class Finding:
    """One finding of SPEC §9 as measured: the claim, the numbers, the settings, the test and its verdict."""

    key: str
    """SPEC §9 letter, e.g. "a"."""
    paper: str
    claim: str
    measured: dict[str, Any]
    settings: dict[str, Any]
    verdict: Verdict
    reason: str
    test: dict[str, Any]
    """The test behind the verdict (:meth:`advland.stats.Test.as_dict`): name, n, effect, ci95, p_value,
    alpha, ...; a multi-part claim has ``parts`` (one such object each) and the combining ``rule``."""
    figures: list[str] = field(default_factory=list)
    """PNG file names, relative to the report's figures/ folder."""
    paper_numbers: dict[str, Any] | None = None
    """The paper's own numbers at GPU scale (SPEC §8), where known."""
    smoke_test: bool = False
    """Measured on a smoke-test budget (quick, tiny): the verdict says nothing about the paper's claim."""


def judge(parts: list[Test], note: str = "") -> tuple[Verdict, str, dict[str, Any]]:
    """The verdict, the reason (each part's effect, CI and p, then ``note``) and the test object of one claim."""
    if len(parts) == 1:
        verdict, reason, record = stats.verdict(parts[0]), stats.explain(parts[0]), parts[0].as_dict()
    else:
        verdict = stats.combine(parts)
        reason = "; ".join(f"{stats.explain(t)} [{stats.verdict(t)}]" for t in parts)
        reason += f" (combined: {stats.COMBINE_RULE})"
        record = {"name": f"{len(parts)} parts, combined", "rule": stats.COMBINE_RULE, "alpha": parts[0].alpha,
                  "parts": [t.as_dict() for t in parts]}
    return verdict, reason + (f"; {note}" if note else ""), record


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
    """Learning rates of the PAS-vs-AT comparison (liu2020 f), relative to the dataset's own."""
    lanczos_cap: int
    """Most Lanczos steps (HVPs) for the top Hessian eigenvalues; Lanczos stops earlier once converged."""
    landscape_points: int
    extra: tuple[str, ...] = ()
    """Further config overrides (e.g. a tiny batch and validation split)."""
    eps_points: int = 4
    """How many of the dataset's ε-sweep values to train (the smallest and the largest are always kept)."""
    smoke_test: bool = True
    """Too small to decide anything: a check that every suite runs; its verdicts are labelled as such."""


PROFILES: dict[str, Profile] = {
    "tiny": Profile("tiny", (0, 1), 1, 1, 32, 1, 1, 20, (0.2, 1.0), 8, 5,
                    ("data.batch_size=256", "data.val_fraction=0.03", "data.eval_batch_size=512"), 2),
    "quick": Profile("quick", (0, 1), 4, 2, 128, 3, 5, 200, (0.2, 1.0, 2.0, 6.0), 40, 5, ("data.batch_size=128",)),
    "full": Profile("full", (0, 1, 2, 3, 4), 20, 5, 512, 10, 20, None, (0.2, 1.0, 2.0, 6.0), 100, 9,
                    smoke_test=False),
}
"""Full: 5 seeds wherever seeds are compared (3 seeds cannot reach p < 0.05 with the exact sign-flip test)."""


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
    pas: str = "PAS, one long cycle"
    """The PAS variant (f) is judged on: liu2020's own for this kind of data (MNIST: one long cycle, Adam;
    CIFAR-10: cycles with restarts); see liu2020.pas_arms."""
    budgets: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Further overrides per profile (a training subset, a smaller test set) where the dataset needs its own."""


DATASETS: dict[str, DataSettings] = {
    "digits": DataSettings("digits", ("data.name=digits", "data.batch_size=64", "model.name=cnn_small"),
                           0.2, 0.05, (0.0, 0.1, 0.2, 0.3)),
    # MNIST-1D signals have std 0.0996 in [0, 1]: ε = 0.1 (one std) left every AT model at chance for 20 epochs;
    # ε = 0.02 gives cnn_small 85 % clean / 56 % PGD-10 (the MLP reaches only 65 % clean without attack)
    "mnist1d": DataSettings("mnist1d", ("data.name=mnist1d", "data.batch_size=64", "model.name=cnn_small"),
                            0.02, 0.05, (0.0, 0.01, 0.02, 0.03)),
    # Fashion-MNIST (the official files): an MLP (256, 256) on a 3000-example training subset, chosen to fit
    # every finding with 5 seeds in about an hour on 2 CPU cores (docs/findings.md: the cost measured per pass)
    "fashion_mnist": DataSettings("fashion_mnist", ("data.name=fashion_mnist", "data.batch_size=128", "model.name=mlp",
                                                    "data.val_fraction=0.02"),
                                  0.1, 0.05, (0.0, 0.05, 0.1, 0.15), {"full": 10, "quick": 3},
                                  budgets={"full": ("data.train_n=3000", "eval.test_n=2000"),
                                           "quick": ("data.train_n=1000",), "tiny": ("data.train_n=1400",)}),
    "mnist": DataSettings("mnist", ("data.name=mnist", "data.root=data", "data.batch_size=128", "model.name=lenet"),
                          0.3, 0.01, (0.0, 0.1, 0.2, 0.3)),
    "cifar10": DataSettings("cifar10", ("data.name=cifar10", "data.root=data", "data.batch_size=128",
                                        "data.augment=crop_flip", "data.val_fraction=0.02",
                                        "model.name=preact_resnet18", "threat.bn_mode=train"),
                            8 / 255, 0.1, (0.0, 2 / 255, 4 / 255, 8 / 255), {"full": 200, "quick": 30}, "PAS, cycles"),
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
        return run

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
        extra = [f"threat.eps={eps}", f"optimizer.lr={lr}", f"seed={seed}"]
        extra.append(f"threat.step_size={2.5 * eps / self.profile.steps}" if eps > 0 else "objective.name=clean")
        return self.run(f"at_eps{eps:.4g}_lr{lr:.4g}_s{seed}", extra)

    def threat(self, eps: float | None = None, norm: str = "linf") -> ThreatModel | None:
        """The analyses' attack: PGD with ``analysis_steps`` steps of ε/4 (None at ε = 0)."""
        eps = self.data.eps if eps is None else eps
        if eps == 0:
            return None
        return ThreatModel(norm=norm, eps=eps, step_size=eps / 4, steps=self.profile.analysis_steps)

    def analysis_data(self, config: Config, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``analysis_n`` examples of the training split of the run with ``config`` (its own seed's
        carve and training subset, so never its validation examples), or the first ``test_n`` test examples."""
        from ..build import load_split

        key = f"{config.data.model_dump_json()} seed={config.seed} {split}"
        if key not in self._splits:
            self._splits[key] = load_split(config, "train" if split == "train" else "test")
        x, y = self._splits[key]
        n = self.profile.analysis_n if split == "train" else self.profile.test_n
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
