"""Typed, validated run configuration (pydantic), YAML files and ``key=value`` overrides.

A bad key, type or value is rejected with one line naming the key and what is allowed::

    config error: optimizer.name: Input should be 'sgd' or 'adam' (got 'sgx')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from . import recipes
from .errors import ConfigError
from .radius import RadiusError, check_radius, parse_radius
from .threat import default_step_size


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(Section):
    name: Literal["digits", "mnist1d", "synthetic", "mnist", "fashion_mnist", "cifar10", "cifar100", "svhn"] = "digits"
    root: Optional[str] = None
    """Folder holding the standard dataset files (mnist, fashion_mnist, cifar10/100, svhn); when unset,
    the documented default folders are searched (``advland.data.DEFAULT_ROOTS``)."""
    train_n: Optional[int] = Field(None, gt=0)
    """Train on a seeded random subset of this many training examples (disjoint from validation); all when unset."""
    val_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    """Fraction of the training data held out for validation (checkpoint selection)."""
    batch_size: int = Field(128, gt=0)
    """The global batch: under torchrun each of the N processes takes batch_size / N of it."""
    eval_batch_size: int = Field(500, gt=0)
    augment: Literal["none", "crop_flip"] = "none"
    """Training augmentation: crop_flip = random crop (zero padding 4) + horizontal flip, for images."""
    on_device: Union[bool, Literal["auto"]] = "auto"
    """Keep the training set on the training device (batches indexed and augmented there): auto = on a GPU
    when it takes at most a quarter of the free GPU memory; a no-op on CPU."""
    extra: Optional[str] = None
    """Extra training examples mixed into every training batch (never into validation or test): an uncompressed
    .npz with images x or image (uint8, or floats in [0, 1]) and labels y or label, or a directory with x.npy and
    y.npy; memory-mapped, so it may be larger than memory (:mod:`advland.data.extra`)."""
    extra_fraction: float = Field(0.7, gt=0.0, lt=1.0)
    """Share of every training batch drawn from ``extra``: floor(batch_size * extra_fraction) examples
    (0.7: Wang et al. 2023's share of generated data)."""


class NormalizeConfig(Section):
    mean: list[float]
    std: list[float]


class ModelConfig(Section):
    name: str = "cnn_small"
    """A registered model (``advland.models.list_models()``) or ``package.module:factory``."""
    kwargs: dict[str, Any] = {}
    """Extra keyword arguments of the model factory (e.g. width, hidden)."""
    normalize: Union[Literal["data", "none"], NormalizeConfig] = "data"
    """Input normalization put inside the model (so eps stays in pixel units): the dataset's mean/std,
    none (the model takes [0, 1] inputs), or {mean: [...], std: [...]} (one entry, or one per channel)."""
    output_index: Optional[Union[int, str]] = None
    """For a model returning a tuple, list or dict (logits and features, auxiliary heads): the element
    holding the logits (an index, or a key). Unset: the model returns the logits tensor itself."""


class ThreatConfig(Section):
    norm: Literal["linf", "l2", "l1"] = "linf"
    eps: float = Field(0.2, ge=0.0)
    """Radius in pixel units of inputs in [0, 1]; a number or a fraction such as 8/255. An L-inf radius
    of 0.5 or more (every input can reach the same mid-gray image; 1 is the whole box) is refused
    unless ``allow_large_eps`` is true."""
    step_size: Optional[float] = Field(None, gt=0.0)
    """PGD step alpha in pixel units (a number or a fraction such as 2/255); default 2.5 * eps / steps (Madry et al.)."""
    allow_large_eps: bool = False
    """Accept an L-inf eps of 0.5 or more (one that makes every model chance-level), for those who mean it."""
    steps: int = Field(10, ge=0)
    restarts: int = Field(1, ge=1)
    bn_mode: Literal["eval", "train"] = "eval"
    """Mode of the model while crafting training attacks (liu2020: eval; AWP code: train)."""

    @field_validator("eps", "step_size", mode="before")
    @classmethod
    def _fraction(cls, value: Any, info: Any) -> Any:
        """``8/255`` as 0.0314 (the form papers write radii in)."""
        if not isinstance(value, str):
            return value  # numbers are checked by the field (>= 0)
        try:
            return parse_radius(value, f"threat.{info.field_name}")
        except RadiusError:
            raise ValueError("must be a finite number >= 0 such as 0.03, or a fraction such as 8/255") from None

    @model_validator(mode="after")
    def _plausible(self) -> "ThreatConfig":
        try:
            check_radius(self.norm, self.eps, allow_large=self.allow_large_eps, what="threat.eps")
        except RadiusError as error:
            raise ConfigError(f"config error: {error}") from None
        return self

    def resolved_step_size(self) -> float:
        """The given step size, or Madry et al.'s 2.5 * eps / steps (0 only when eps is 0: no attack)."""
        if self.step_size is not None:
            return self.step_size
        return default_step_size(self.eps, self.steps)


class ObjectiveConfig(Section):
    name: Literal["clean", "at", "trades", "mart"] = "at"
    beta: float = Field(6.0, ge=0.0)
    """TRADES weight of the KL term."""
    lam: float = Field(6.0, ge=0.0)
    """MART weight of the weighted KL term."""
    start: Optional[Literal["uniform", "gaussian", "none"]] = None
    """Where the training attack starts; default: the method's own (AT and MART uniform in the ball, TRADES
    x + 0.001·N(0, I)). The official MART code starts at x + 0.001·N(0, I): ``objective.start=gaussian``."""
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    """Label smoothing s of the loss's cross-entropy terms (AT's CE, TRADES' clean CE, the CE part of MART's
    BCE; clean training's CE): targets (1 - s)·onehot + s/K, as torch's cross_entropy(label_smoothing=s)."""
    smooth_attack: bool = False
    """Let the CE training attack of at and mart maximize the smoothed loss too (default: the unsmoothed CE,
    the worst case of the model's prediction that evaluation measures). TRADES' KL attack has no labels."""


class OptimizerConfig(Section):
    name: Literal["sgd", "adam", "entropy_sgd"] = "sgd"
    lr: float = Field(0.1, gt=0.0)
    """Learning rate; for entropy_sgd the outer one (the step of x towards the inner average mu)."""
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    weight_decay: float = Field(5e-4, ge=0.0)
    nesterov: bool = False
    L: int = Field(20, ge=1)
    """entropy_sgd: inner SGLD steps (fresh minibatches) per outer step; an epoch has n_batches // L outer steps."""
    gamma0: float = Field(1e-4, ge=0.0)
    """entropy_sgd: initial scoping coupling gamma (Chaudhari et al. use 3e-2 on CIFAR)."""
    gamma1: float = Field(1e-3, ge=0.0)
    """entropy_sgd: scoping growth, gamma_t = gamma0 * (1 + gamma1)^t, t counting outer steps."""
    noise: float = Field(1e-4, ge=0.0)
    """entropy_sgd: SGLD noise scale; an inner step adds sqrt(inner_lr) * noise * N(0, I)."""
    alpha: float = Field(0.75, gt=0.0, le=1.0)
    """entropy_sgd: weight of the newest inner iterate in the running average mu."""
    inner_lr: float = Field(0.1, gt=0.0)
    """entropy_sgd: inner (SGLD) step size."""
    outer_gamma: bool = False
    """entropy_sgd: scale the outer step by gamma_t as Algorithm 1 writes it (practical codes do not)."""
    legacy: bool = False
    """entropy_sgd: reproduce the official PyTorch code (frozen scoping and lr, reversed alpha, extra gradient)."""


class ScheduleConfig(Section):
    lr: Literal["piecewise", "cosine", "one_cycle", "constant", "cyclic_cosine", "cyclic_piecewise"] = "piecewise"
    """piecewise: x0.1 at 50 %, x0.01 at 75 %; cyclic_*: cosine or piecewise restarted at every cycle boundary."""
    eps: Literal["constant", "linear_warmup", "cosine_ramp", "linear_ramp", "pas"] = "constant"
    """*_ramp: liu2020's eps from 0 to eps_max_factor * threat.eps within every cycle, clipped at threat.eps;
    pas: cosine_ramp with the learning-rate schedule restarted at every cycle (periodic adversarial scheduling)."""
    eps_warmup_epochs: float = Field(0.0, ge=0.0)
    eps_max_factor: float = Field(2.0, ge=1.0)
    """The ramps' eps_max as a multiple of the target eps (2: the target is reached at mid-cycle)."""
    cycles: Optional[list[int]] = None
    """Epochs at which cycles end, e.g. [100, 150, 200]; default one cycle over all epochs. A last
    cycle up to ``epochs`` is added when the list stops short of it."""
    snapshots: bool = False
    """Save checkpoints/snapshot_<epoch>.safetensors at every cycle end and test their ensemble."""
    per: Literal["iteration", "epoch"] = "iteration"
    """Whether schedules are evaluated at every iteration or once at the start of each epoch."""


class PerturbConfig(Section):
    name: Literal["none", "awp", "sam", "asam"] = "none"
    """Adversarial weight perturbation before every update: awp (per-layer radius gamma * ||w_l||),
    sam (global radius rho), asam (SAM rescaled by |w| + eta)."""
    gamma: Optional[float] = Field(None, ge=0.0)
    """awp: relative radius; default 0.01 with the at objective, 0.005 with trades and mart (wu2020)."""
    rho: Optional[float] = Field(None, ge=0.0)
    """sam / asam: radius; default 0.05 for sam, 0.5 for asam (their papers' CIFAR-10 values)."""
    eta: float = Field(0.01, ge=0.0)
    """asam: offset of the rescaling T = |w| + eta."""
    per_filter: bool = False
    """awp: radius gamma * ||w|| per output filter instead of per layer."""
    steps: int = Field(1, ge=1)
    """Normalized ascent steps (1: the official AWP and SAM codes)."""
    warmup_epochs: int = Field(0, ge=0)
    """Epochs trained without the perturbation first (wu2020: 0 for AT on CIFAR-10, 10 for TRADES)."""

    def resolved_gamma(self, objective: str) -> float:
        if self.gamma is not None:
            return self.gamma
        return 0.01 if objective in ("at", "clean") else 0.005

    def resolved_rho(self) -> float:
        if self.rho is not None:
            return self.rho
        return 0.5 if self.name == "asam" else 0.05


class EvalConfig(Section):
    steps: int = Field(20, ge=1)
    """PGD/CW steps of the final test evaluation (step eps/4, random start)."""
    restarts: int = Field(1, ge=1)
    val_steps: Optional[int] = Field(None, ge=1)
    """PGD steps of the per-epoch validation attack; default: the training threat's steps."""
    test_n: Optional[int] = Field(None, gt=0)
    """Evaluate on the first test_n test examples only (default: all)."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """Precision of validation and the test evaluation (and of ``advland eval`` on this run): fp32 unless
    asked, so that reported robustness is never measured in reduced precision."""


class TrackConfig(Section):
    """Loss-landscape quantities measured during training, on the first ``n`` training examples,
    with the training threat model at its target eps; they land in metrics.jsonl and in
    RUN/landscape/tracked.png. Every ``*_every`` is in epochs; 0 turns the quantity off."""

    n: int = Field(512, gt=0)
    grad_norm: bool = False
    """‖∇L_eps‖₂ of the adversarial loss after every epoch (liu2020: non-vanishing gradients)."""
    hessian_every: int = Field(0, ge=0)
    """Top eigenvalues of the Hessian of the adversarial loss (x' crafted once, eval mode)."""
    hessian_top_k: int = Field(1, ge=1)
    scattering_every: int = Field(0, ge=0)
    """Gradient scattering between θ and θ + 0.01·‖θ‖·u (cosines of δ, sign δ and ∇L_eps)."""
    lipschitz_every: int = Field(0, ge=0)
    """Gradient Lipschitz estimate with ‖Δ‖ = 0.01·‖θ‖, attack re-run (kanai2021)."""
    flatness_every: int = Field(0, ge=0)
    """Average-case flatness of the robust loss (Stutz et al. 2021, xi = 0.5, 5 samples)."""
    curve_every: int = Field(0, ge=0)
    """A 1-D curve of the clean and the adversarial loss over [-1, 1] along one filter-normalized random
    direction (the same Gaussian draw every time, normalized to the current weights), attack re-run at
    every point; saved as RUN/landscape/curve_epoch{E}.json/.npz and overlaid by epoch in tracked_curves.png."""
    curve_steps: int = Field(11, ge=3)
    clean_grad_norm: bool = False
    """‖∇L_0(θ)‖₂ of the clean loss after every epoch (whether training has come near a minimum)."""
    gap_every: int = Field(0, ge=0)
    """The robust generalization gap: accuracy under the evaluation PGD (``eval.steps`` steps of ε/4, every
    iterate counted) on the first ``gap_n`` training examples and on the first ``gap_n`` test examples, and
    their difference (robust-overfitting curves; test numbers are recorded, never used to select anything)."""
    gap_n: int = Field(500, gt=0)

    @property
    def enabled(self) -> bool:
        """Whether anything is tracked."""
        every = (self.hessian_every, self.scattering_every, self.lipschitz_every, self.flatness_every, self.curve_every,
                 self.gap_every)
        return self.grad_norm or self.clean_grad_norm or any(e > 0 for e in every)


class EMAConfig(Section):
    """An exponential moving average of the weights (:mod:`advland.ema`), validated every epoch beside
    the trained weights; off unless ``decay`` is set."""

    decay: Optional[float] = Field(None, ge=0.0, lt=1.0)
    """Target decay of the average (e.g. 0.999 or 0.995); unset: no EMA."""
    warmup: bool = True
    """Ramp the decay as min(decay, (1 + t) / (10 + t)) over the first updates t (Wang et al. 2023)."""
    every: int = Field(1, ge=1)
    """Average after every k-th optimizer step."""
    start_epochs: float = Field(0.0, ge=0.0)
    """Epochs during which the average only copies the trained weights; the warm-up counts from there
    (Wang et al. 2023: 2.5 % of training)."""
    buffers: Literal["copy", "average"] = "copy"
    """BatchNorm running statistics of the average: copied from the trained model at every update, or averaged."""
    select: Literal["either", "raw", "ema"] = "either"
    """Which weights the checkpoint ``best`` may be: the better on validation of the two every epoch, or only
    the trained (raw) or only the averaged (ema) ones."""

    @property
    def enabled(self) -> bool:
        return self.decay is not None


class LogConfig(Section):
    """Where a run is logged besides its own files."""

    tensorboard: bool = False
    """Write every per-epoch number of metrics.jsonl, the test numbers and the run's figures to RUN/tensorboard/
    (needs ``pip install 'advland[tensorboard]'``)."""


class DistributedConfig(Section):
    """Data-parallel training under ``torchrun`` (ignored on one process; see docs/scaling.md)."""

    sync_bn: bool = False
    """Convert BatchNorm to SyncBatchNorm so that batch statistics are computed over the global batch."""
    find_unused_parameters: bool = False
    """Passed to DistributedDataParallel (for user models with parameters a forward may skip)."""


class Config(Section):
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    threat: ThreatConfig = ThreatConfig()
    objective: ObjectiveConfig = ObjectiveConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    perturb: PerturbConfig = PerturbConfig()
    eval: EvalConfig = EvalConfig()
    track: TrackConfig = TrackConfig()
    ema: EMAConfig = EMAConfig()
    log: LogConfig = LogConfig()
    distributed: DistributedConfig = DistributedConfig()
    epochs: int = Field(30, gt=0)
    seed: int = 0
    deterministic: bool = True
    device: Literal["cpu", "cuda", "auto"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Training precision: bf16/fp16 run the training forward and backward and the training attack under
    autocast (BatchNorm statistics and losses in fp32; fp16 with a gradient scaler). See advland.accel."""
    compile: bool = False
    """Compile the model with torch.compile for training (the attack loop stays eager; the last partial
    training batch is dropped so that shapes stay fixed; compile time is logged, not counted in epochs)."""
    channels_last: Union[bool, Literal["auto"]] = "auto"
    """Channels-last memory format of 4-D inputs in training: auto = on for CUDA, off on CPU."""
    out_dir: str = "runs"
    name: Optional[str] = None
    """Run directory name under out_dir; default: the config file's stem, or 'default'."""
    resume: bool = False
    overwrite: bool = False
    """Start afresh in an existing run directory (its contents are replaced)."""
    description: Optional[str] = None
    """One line saying what this recipe trains (listed by ``advland recipes``)."""
    expected_time: Optional[str] = None
    """Wall time of the whole ``advland train`` as measured, e.g. "1.5 min on 2 CPU cores", or "GPU"."""

    @model_validator(mode="after")
    def _check_combinations(self) -> "Config":
        cycles = self.schedule.cycles
        if cycles is not None and (not cycles or cycles[0] <= 0 or cycles[-1] > self.epochs
                                   or any(b <= a for a, b in zip(cycles, cycles[1:]))):
            raise ConfigError(f"config error: schedule.cycles must be strictly increasing epochs in 1..{self.epochs} "
                              f"(got {cycles})")
        if self.precision == "fp16" and self.optimizer.name == "entropy_sgd":
            raise ConfigError("config error: precision=fp16 cannot be combined with optimizer.name=entropy_sgd "
                              "(its closure steps bypass the gradient scaler); use precision=bf16 or fp32")
        if not self.ema.enabled and self.ema.select != "either":
            raise ConfigError(f"config error: ema.select={self.ema.select} needs an EMA: set ema.decay (e.g. 0.999)")
        if self.objective.smooth_attack and self.objective.name not in ("at", "mart"):
            raise ConfigError(f"config error: objective.smooth_attack applies to the CE attacks of at and mart; "
                              f"{self.objective.name}'s training attack has no labels to smooth: set it to false")
        if self.perturb.name != "none" and self.optimizer.name == "entropy_sgd":
            raise ConfigError("config error: perturb and optimizer.name=entropy_sgd cannot be combined; "
                              "set perturb=none or choose optimizer.name=sgd")
        return self

    def cycle_boundaries(self) -> list[int]:
        """The epochs at which cycles end, the last one being ``epochs``."""
        cycles = list(self.schedule.cycles or [])
        return cycles if cycles and cycles[-1] == self.epochs else [*cycles, self.epochs]


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        elif not isinstance(child, dict):
            raise ConfigError(f"config error: cannot set {dotted!r}: {key!r} is not a section")
        node = child
    last = keys[-1]
    if isinstance(node.get(last), dict) and not isinstance(value, dict):
        node[last]["name"] = value  # `perturb=awp` picks the section's variant by name
    elif _is_section(keys) and not isinstance(value, dict):
        node[last] = {"name": value}
    else:
        node[last] = value


def _is_section(keys: list[str]) -> bool:
    model: type[BaseModel] = Config
    for key in keys:
        field = model.model_fields.get(key)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return False
        model = field.annotation
    return True


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """Turn ``["optimizer.lr=0.05", "threat.norm=l2"]`` into a nested dict (values parsed as YAML)."""
    tree: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"config error: override {item!r} must look like key=value, e.g. optimizer.lr=0.05")
        key, raw = item.split("=", 1)
        _set_path(tree, key.strip(), yaml.safe_load(raw) if raw.strip() else None)
    return tree


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for key in loc[:-1]:
        annotation = model.model_fields[key].annotation if key in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _format_error(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = tuple(first["loc"])
    key = ".".join(str(part) for part in loc)
    if first["type"] == "extra_forbidden":
        allowed = ", ".join(_allowed_keys(loc))
        return f"config error: unknown key {key!r}; allowed here: {allowed}"
    return f"config error: {key}: {first['msg']} (got {first.get('input')!r})"


def build_config(tree: dict[str, Any]) -> Config:
    """Validate a nested dict into a :class:`Config`, raising a one-line :class:`ConfigError`."""
    try:
        return Config.model_validate(tree)
    except ValidationError as error:
        raise ConfigError(_format_error(error)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML config (a path, or the name of a shipped recipe such as ``digits/at``; the defaults when
    path is None) and apply ``key=value`` overrides.

    ``path`` may be a run directory: its config.yaml, with ``out_dir`` and ``name`` locating that
    directory (so that ``advland train RUN --resume`` continues RUN even after it was moved).
    """
    tree: dict[str, Any] = {}
    run_dir = None
    if path is not None:
        path = recipes.resolve(path)
        if path.is_dir():
            run_dir, path = path, path / "config.yaml"
        if not path.is_file():
            raise ConfigError(f"config error: no config file at {path}; give a YAML file or a recipe such as digits/at")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"config error: {path} is not valid YAML ({str(error).splitlines()[0]})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config error: {path} must hold a mapping of keys to values")
        tree = loaded
        if run_dir is not None:  # a run directory is that run, wherever it was moved to
            tree["out_dir"], tree["name"] = str(run_dir.resolve().parent), run_dir.resolve().name
        elif tree.get("name") is None and path.name != "config.yaml":
            tree["name"] = path.stem
    tree = _merge(tree, parse_overrides(overrides or []))
    return build_config(tree)


def dump_config(config: Config) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
