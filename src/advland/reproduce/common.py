"""What every reproduction suite shares: findings and verdicts, budget profiles, and a run cache.

A suite trains runs through :class:`RunCache` (a finished run is reused, an interrupted one resumed),
measures each finding of SPEC §9 and returns :class:`Finding` objects; :mod:`.report` writes them.
Verdicts never come from one seed: a difference counts only when it exceeds the spread across seeds.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from scipy.stats import spearmanr

from ..config import Config, load_config
from ..errors import AdvlandError
from ..evaluate import correct_under_attack
from ..run import Run, load
from ..threat import ThreatModel
from ..train import train

Verdict = Literal["holds", "does not hold", "inconclusive"]
Log = Callable[[str], None]


@dataclass
class Finding:
    """One finding of SPEC §9 as measured: the claim, the numbers, the settings and the verdict."""

    key: str
    """SPEC §9 letter, e.g. "a"."""
    paper: str
    claim: str
    measured: dict[str, Any]
    settings: dict[str, Any]
    verdict: Verdict
    reason: str
    figures: list[str] = field(default_factory=list)
    """PNG file names, relative to the report's figures/ folder."""
    paper_numbers: dict[str, Any] | None = None
    """The paper's own numbers at GPU scale (SPEC §8), where known."""


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are dropped."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def spread_verdict(differences: list[float], what: str) -> tuple[Verdict, str]:
    """Verdict on per-seed differences d_s, positive meaning "as the paper claims".

    holds: mean > 0 and |mean| > std across seeds; does not hold: mean < 0 and |mean| > std;
    inconclusive otherwise, or with fewer than two seeds.
    """
    mean, std = mean_std(differences)
    summary = f"{what}: mean {mean:+.4g} over {len(differences)} seeds, spread (std) {std:.3g}"
    if len(differences) < 2 or math.isnan(mean):
        return "inconclusive", f"{summary}; fewer than two seeds, no spread to compare with"
    if abs(mean) <= std or mean == 0:
        return "inconclusive", f"{summary}; the difference does not exceed the spread"
    return ("holds", summary) if mean > 0 else ("does not hold", f"{summary}; the opposite of the claim")


def combine(verdicts: list[tuple[Verdict, str]]) -> tuple[Verdict, str]:
    """All parts hold → holds; any part contradicts → does not hold; otherwise inconclusive."""
    names = [v for v, _ in verdicts]
    verdict: Verdict = ("does not hold" if "does not hold" in names
                        else "holds" if all(v == "holds" for v in names) else "inconclusive")
    return verdict, "; ".join(f"{reason} [{v}]" for v, reason in verdicts)


def rank_correlation(x: list[float], y: list[float]) -> float:
    """Spearman's rank correlation (NaN with fewer than three points or constant inputs)."""
    if len(x) < 3:
        return math.nan
    return float(spearmanr(x, y).statistic)


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
    lanczos_steps: int
    landscape_points: int
    extra: tuple[str, ...] = ()
    """Further config overrides (e.g. a tiny batch and validation split)."""


    eps_points: int = 4
    """How many of the dataset's ε-sweep values to train (the smallest and the largest are always kept)."""


PROFILES: dict[str, Profile] = {
    "tiny": Profile("tiny", (0, 1), 1, 1, 32, 1, 1, 20, (0.2, 1.0), 3, 5,
                    ("data.batch_size=256", "data.val_fraction=0.03", "data.eval_batch_size=512"), 2),
    "quick": Profile("quick", (0, 1), 4, 2, 128, 3, 5, 200, (0.2, 1.0, 2.0, 6.0), 6, 5, ("data.batch_size=128",)),
    "full": Profile("full", (0, 1, 2), 20, 5, 512, 10, 20, None, (0.2, 1.0, 2.0, 6.0), 20, 9),
}


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


DATASETS: dict[str, DataSettings] = {
    "digits": DataSettings("digits", ("data.name=digits", "data.batch_size=64", "model.name=cnn_small"),
                           0.2, 0.05, (0.0, 0.1, 0.2, 0.3)),
    # MNIST-1D signals have std 0.0996 in [0, 1]: ε = 0.1 (one std) left every AT model at chance for 20 epochs;
    # ε = 0.02 gives cnn_small 85 % clean / 56 % PGD-10 (the MLP reaches only 65 % clean without attack)
    "mnist1d": DataSettings("mnist1d", ("data.name=mnist1d", "data.batch_size=64", "model.name=cnn_small"),
                            0.02, 0.05, (0.0, 0.01, 0.02, 0.03)),
    "mnist": DataSettings("mnist", ("data.name=mnist", "data.root=data", "data.batch_size=128", "model.name=lenet"),
                          0.3, 0.01, (0.0, 0.1, 0.2, 0.3)),
    "cifar10": DataSettings("cifar10", ("data.name=cifar10", "data.root=data", "data.batch_size=128",
                                        "data.augment=crop_flip", "data.val_fraction=0.02",
                                        "model.name=preact_resnet18", "threat.bn_mode=train"),
                            8 / 255, 0.1, (0.0, 2 / 255, 4 / 255, 8 / 255), {"full": 200, "quick": 30}),
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

    @property
    def epochs(self) -> int:
        return self.data.epochs.get(self.profile.name, self.profile.epochs)

    @property
    def eps_sweep(self) -> tuple[float, ...]:
        """The ε values of liu2020's sweep under this budget."""
        values = self.data.eps_sweep
        return values if len(values) <= self.profile.eps_points else (*values[: self.profile.eps_points - 1], values[-1])

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
                f"out_dir={self.out / 'runs'}", *p.extra]
        if p.test_n:
            base.append(f"eval.test_n={p.test_n}")
        return base + extra

    def run(self, name: str, extra: list[str]) -> Run:
        """The run ``name`` trained with ``extra`` overrides: reused if finished, resumed if interrupted."""
        run = Run(self.out / "runs" / name)
        config = load_config(None, self.overrides([*extra, f"name={name}"]))
        same = run.config_path.exists() and _settings(run.config()) == _settings(config)
        if same and run.summary_path.exists():
            self.log(f"  reuse  {name}")
            return run
        state = ["resume=true"] if same and run.state_path.exists() else ["overwrite=true"]
        self.log(f"  {'resume' if state[0] == 'resume=true' else 'train '} {name}")
        start = time.perf_counter()
        train(load_config(None, self.overrides([*extra, f"name={name}", *state])), progress=self.progress)
        self.log(f"  done   {name} in {time.perf_counter() - start:.0f} s")
        return run

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

    def analysis_data(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The first ``analysis_n`` examples of a split (train by default), for landscape analyses."""
        from ..build import build_data

        config = load_config(None, self.overrides([]))
        data = build_data(config)
        x, y = (data.x_train, data.y_train) if split == "train" else (data.x_test, data.y_test)
        n = self.profile.analysis_n if split == "train" else self.profile.test_n
        return x[:n], y[:n]

    def model(self, run: Run, which: str = "last") -> torch.nn.Module:
        return load(run.path, which, device=self.device if self.device != "auto" else "cpu")

    def robust_acc(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None) -> float:
        """Accuracy under the analyses' PGD at ε (clean accuracy at ε = 0)."""
        threat = self.threat(eps) or ThreatModel(norm="linf", eps=0.0, step_size=1.0, steps=0)
        torch.manual_seed(0)
        return correct_under_attack(model, x, y, threat).float().mean().item()


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


def epochs_to_reach(accuracies: list[float], threshold: float, chance: float) -> float:
    """Epochs (linearly interpolated, starting from ``chance`` at epoch 0) until accuracy first reaches
    ``threshold``; len(accuracies) + 1 if it never does (censored)."""
    previous = chance
    for epoch, acc in enumerate(accuracies, 1):
        if acc >= threshold:
            return epoch - 1 + (threshold - previous) / max(acc - previous, 1e-12)
        previous = acc
    return float(len(accuracies) + 1)
