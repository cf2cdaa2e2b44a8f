"""The fault corpus (issue 11): every everyday mistake or fault gives a one-line error (exit status 2,
no traceback) or a right result, and what was on disk before stays intact and loadable."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from advland.cli import main
from advland.config import load_config
from advland.recipes import path as recipe_path
from advland.load import load
from advland.run import Run
from advland.train import Trainer

FAST = ["data.batch_size=256", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2", "eval.test_n=60"]


def _config(tmp_path, *extra):
    return load_config("digits/at", [f"out_dir={tmp_path}", "epochs=2", *FAST, *extra])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch PGD-AT run on digits (a few seconds); tests work on copies of it."""
    out = tmp_path_factory.mktemp("faults")
    Trainer(_config(out, "name=base"), progress=False).fit()
    return out / "base"


@pytest.fixture
def run_copy(finished_run, tmp_path):
    copy = tmp_path / "base"
    shutil.copytree(finished_run, copy)
    return copy


def _one_line_error(capsys, *fragments):
    """Assert stderr is one 'error: ...' line without a traceback and contains every fragment."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _strict_json(text):
    """Parse JSON refusing the NaN/Infinity tokens that strict parsers reject."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def _files(run_dir):
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- 4. corrupt or truncated files

@pytest.mark.parametrize("which", ["best", "last"])
def test_damaged_weights_are_one_line_in_eval_and_analyses(run_copy, capsys, which):
    path = run_copy / "checkpoints" / f"{which}.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["eval", str(run_copy), "--which", which, "--attacks", "pgd", "--n", "10", "--no-sanity",
                 "--no-progress"]) == 2
    _one_line_error(capsys, f"{which}.safetensors is damaged or truncated")
    assert main(["hessian", str(run_copy), "--which", which, "--n", "8", "--top-k", "1"]) == 2
    _one_line_error(capsys, f"{which}.safetensors is damaged")
    other = "last" if which == "best" else "best"
    assert isinstance(load(run_copy, other), torch.nn.Module)  # the other checkpoint still loads


def test_damaged_state_is_one_line_at_resume_and_nothing_is_lost(run_copy, capsys):
    state = run_copy / "checkpoints" / "state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    before = _files(run_copy)
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 2
    _one_line_error(capsys, "state.pt is damaged or truncated", "overwrite=true")
    assert _files(run_copy) == before
    assert isinstance(load(run_copy, "last"), torch.nn.Module)


def test_state_of_another_model_is_one_line_at_resume(run_copy, capsys):
    state = run_copy / "checkpoints" / "state.pt"
    saved = torch.load(state, weights_only=True)
    saved["model"] = {k: torch.zeros(3) for k in saved["model"]}
    torch.save(saved, state)
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 2
    _one_line_error(capsys, "state.pt do not fit the model")


def test_resuming_a_moved_run_directory_continues_that_directory(finished_run, run_copy, capsys):
    """Found on the way: `advland train RUN --resume` used the out_dir/name written in RUN/config.yaml,
    so a moved (or copied) run resumed, and rewrote, the original."""
    original = _files(finished_run)
    (run_copy / "summary.json").unlink()
    assert main(["train", str(run_copy), "--resume", "--no-progress"]) == 0
    assert (run_copy / "summary.json").exists() and _files(finished_run) == original


def test_damaged_metrics_is_one_line(run_copy):
    (run_copy / "metrics.jsonl").write_text('{"epoch": 1, "train_lo')
    with pytest.raises(Exception, match="metrics.jsonl is damaged .line 1"):
        Run(run_copy).metrics()


# ---------------------------------------------------------------- 2. strict JSON

def test_every_json_file_of_a_run_is_strict(finished_run):
    for path in finished_run.rglob("*.json*"):
        for line in (path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]):
            _strict_json(line)


def test_json_writers_turn_non_finite_numbers_into_null(tmp_path):
    from advland.jsonio import dumps
    from advland.reproduce.common import Finding
    from advland.reproduce.report import write_report
    from advland.stats import paired_test
    from advland.sweep import write_table

    data = {"a": float("nan"), "b": [float("inf"), 1.5, (float("-inf"),)], "c": {"d": 2}}
    assert _strict_json(dumps(data)) == {"a": None, "b": [None, 1.5, [None]], "c": {"d": 2}}
    run = Run(tmp_path / "r")
    run.write_metrics([{"epoch": 1, "val_robust_acc": float("nan")}])
    assert run.metrics() == [{"epoch": 1, "val_robust_acc": None}]
    _strict_json(run.write_json("summary.json", {"x": float("nan")}).read_text())
    test = paired_test([0.01, 0.02, 0.03], "x").as_dict() | {"p_value": float("nan")}
    finding = Finding(key="a", paper="p", claim="c", measured={"x": float("nan")}, settings={},
                      regime={"condition": "c", "measured": {"x": float("nan")}, "met": True},
                      p={"holds": float("nan"), "does_not_hold": 1.0}, verdict="inconclusive", reason="r", test=test)
    meta = {"papers": "p", "data": "digits", "budget": "tiny", "device": "cpu", "seconds": 1.0}
    paths = write_report(tmp_path / "rep", [finding], meta)
    written = _strict_json(paths[0].read_text())["findings"][0]
    assert written["measured"]["x"] is None and written["test"]["p_value"] is None
    table = write_table([{"run": "r", "test_robust_acc": float("nan")}], tmp_path / "results.csv")
    assert table.read_text().splitlines()[1] == "r,"


# ---------------------------------------------------------------- 1. non-finite loss

def test_exploding_learning_rate_stops_with_one_line(tmp_path, capsys):
    argv = ["train", "digits/at", "optimizer.lr=1e9", "epochs=3", f"out_dir={tmp_path}", "name=nan",
            *FAST, "--no-progress"]
    assert main(argv) == 2
    _one_line_error(capsys, "training diverged", "at epoch 1, batch", "optimizer.lr=1e+09", "lower the learning rate")
    run = tmp_path / "nan"
    assert not (run / "checkpoints" / "state.pt").exists() and not (run / "metrics.jsonl").exists()
    assert (run / "config.yaml").exists() and (run / "checkpoints" / "init.safetensors").exists()


class PoisonDataAtEpoch:
    """Makes every training input NaN after epoch ``epoch`` (the next epoch's first loss is NaN)."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, trainer, epoch, record):
        if epoch == self.epoch:
            trainer.data.x_train[:] = float("nan")


def test_nan_epoch_is_never_saved_and_the_run_resumes_bit_exactly(tmp_path):
    from advland.divergence import TrainingDiverged

    whole = Trainer(_config(tmp_path, "name=whole"), progress=False)
    whole.fit()
    broken = Trainer(_config(tmp_path, "name=cut"), callbacks=[PoisonDataAtEpoch(1)], progress=False)
    with pytest.raises(TrainingDiverged, match=r"not finite at epoch 2, batch 1 of \d+ .* keeps epoch 1"):
        broken.fit()
    run = Run(tmp_path / "cut")
    assert [r["epoch"] for r in run.metrics()] == [1]
    assert run.load_state()["epoch"] == 1
    resumed = Trainer(_config(tmp_path, "name=cut", "resume=true"), progress=False)
    resumed.fit()
    for (name, a), (_, b) in zip(whole.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), name


def test_a_diverged_run_can_be_concluded_with_its_best_saved_epoch(tmp_path):
    """reproduce's learning-rate sweeps: divergence is an outcome; the run is tested as it stood before it."""
    from advland.divergence import TrainingDiverged

    trainer = Trainer(_config(tmp_path, "name=cut"), callbacks=[PoisonDataAtEpoch(1)], progress=False)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    summary = trainer.conclude_diverged(str(error.value))
    assert summary["diverged"].startswith("training diverged") and summary["epochs"] == 1
    assert summary["best_epoch"] == 1 and math.isfinite(summary["test_robust_acc"])
    assert Run(tmp_path / "cut").summary() == summary
    assert all(torch.isfinite(p).all() for p in load(tmp_path / "cut", "best").parameters())

    first = Trainer(_config(tmp_path, "name=none"), progress=False)
    first.data.x_train[:] = float("nan")  # the first epoch diverges: only the initial weights exist
    with pytest.raises(TrainingDiverged) as error:
        first.fit()
    summary = first.conclude_diverged(str(error.value))
    assert summary["epochs"] == 0 and "has no finished epoch" in summary["diverged"]
    init = load(tmp_path / "none", "init").state_dict()
    assert all(torch.equal(init[k], v) for k, v in load(tmp_path / "none", "best").state_dict().items())


class OverflowOnLastStep(Trainer):
    """A training step whose update overflows the weights on the last minibatch of epoch 2 (finite loss)."""

    def train_step(self, x, y, threat, epoch=0):
        step = super().train_step(x, y, threat, epoch)
        if epoch == 1 and self.watch.steps == len(list(self.batches(epoch))) - 1:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("inf"))
        return step


def test_non_finite_weights_after_an_epoch_are_not_saved(tmp_path):
    from advland.divergence import TrainingDiverged

    trainer = OverflowOnLastStep(_config(tmp_path, "name=inf"), progress=False)
    with pytest.raises(TrainingDiverged, match="weights are not finite after epoch 2"):
        trainer.fit()
    state = Run(tmp_path / "inf").load_state()
    assert state["epoch"] == 1 and all(torch.isfinite(t).all() for t in state["model"].values())


# ---------------------------------------------------------------- 3. resume with a changed config

def test_resume_with_a_changed_config_is_refused_and_changes_nothing(tmp_path, capsys):
    base = ["train", "digits/at", f"out_dir={tmp_path}", "name=r", *FAST, "--no-progress"]
    assert main(base + ["epochs=2"]) == 0
    capsys.readouterr()
    before = _files(tmp_path / "r")
    assert main(base + ["epochs=4", "optimizer.lr=0.5", "--resume"]) == 2
    _one_line_error(capsys, "cannot resume", "epochs 2 -> 4", "optimizer.lr 0.05 -> 0.5", "--extend")
    assert main(base + ["epochs=4", "optimizer.lr=0.5", "--resume", "--extend"]) == 2
    _one_line_error(capsys, "optimizer.lr 0.05 -> 0.5", "only lets epochs grow")
    assert _files(tmp_path / "r") == before
    assert main(base + ["epochs=3", "--resume", "--extend"]) == 0
    summary = _strict_json(capsys.readouterr().out)
    assert summary["epochs"] == 3
    assert summary["extensions"][0] | {"note": ""} == {"at_epoch": 2, "epochs_before": 2, "epochs_after": 3, "note": ""}
    assert load_config(tmp_path / "r").epochs == 3
    assert [r["epoch"] for r in Run(tmp_path / "r").metrics()] == [1, 2, 3]


def test_extend_needs_resume(capsys):
    assert main(["train", "--extend"]) == 2
    _one_line_error(capsys, "use it with --resume")


def test_sweep_refuses_a_base_changed_under_its_runs(tmp_path):
    import yaml

    from advland.errors import AdvlandError
    from advland.sweep import expand, load_sweep, sweep

    base = tmp_path / "base.yaml"
    shutil.copy(recipe_path("digits/at"), base)
    spec_path = tmp_path / "sweep.yaml"
    spec_path.write_text(yaml.safe_dump({"base": "base.yaml", "out_dir": str(tmp_path / "out"), "grid": {"seed": [0]},
                                         "overrides": {"epochs": 1, "data.batch_size": 256, "threat.steps": 1}}))
    trial = expand(load_sweep(spec_path))[0]
    Trainer(load_config(base, trial.overrides), progress=False).fit()  # the sweep's run, finished
    base.write_text(base.read_text().replace("lr: 0.05", "lr: 0.2"))
    with pytest.raises(AdvlandError, match=r"run .*seed-0 was trained under another config .*optimizer.lr 0.05 -> 0.2"):
        sweep(spec_path, progress=False)


# ---------------------------------------------------------------- 5, 6. checkpoint selection

def test_without_validation_the_last_epoch_is_selected(tmp_path, capsys):
    summary = Trainer(_config(tmp_path, "name=noval", "data.val_fraction=0", "epochs=3"), progress=False).fit()
    run = Run(tmp_path / "noval")
    assert summary["selected_on"] == "last_epoch" and summary["best_epoch"] == 3
    assert summary["test_clean_acc"] == summary["last_test_clean_acc"]
    assert (run.checkpoint_dir / "best.safetensors").read_bytes() == (run.checkpoint_dir / "last.safetensors").read_bytes()
    for line in run.metrics_path.read_text().splitlines():
        assert _strict_json(line)["val_robust_acc"] is None  # null: no validation split
    assert summary["best_score"] is None or summary["best_score"] != summary["best_score"]


def test_clean_training_is_selected_on_clean_validation_accuracy(tmp_path):
    summary = Trainer(_config(tmp_path, "name=clean", "objective=clean", "epochs=3"), progress=False).fit()
    records = Run(tmp_path / "clean").metrics()
    assert summary["selected_on"] == "val_clean_acc"
    best = max(records, key=lambda r: r["val_clean_acc"])  # first maximum, as the trainer keeps the first
    assert summary["best_epoch"] == best["epoch"] and summary["best_score"] == best["val_clean_acc"]


def test_adversarial_training_is_selected_on_robust_validation_accuracy(finished_run):
    summary = Run(finished_run).summary()
    records = Run(finished_run).metrics()
    assert summary["selected_on"] == "val_robust_acc"
    assert summary["best_epoch"] == max(records, key=lambda r: r["val_robust_acc"])["epoch"]


# ---------------------------------------------------------------- 7. attacks that never move

def test_a_threat_that_cannot_move_is_rejected_and_with_eps_from_zero_uses_the_default_step():
    from advland.errors import AdvlandError
    from advland.threat import ThreatModel

    with pytest.raises(AdvlandError, match="never moves"):
        ThreatModel("linf", 0.1, 0.0, 10)
    assert ThreatModel("linf", 0.0, 0.0, 10).active is False  # eps 0: no attack, allowed
    moved = ThreatModel("linf", 0.0, 0.0, 10).with_eps(0.1)
    assert moved.step_size == pytest.approx(2.5 * 0.1 / 10)
    assert ThreatModel("l2", 0.5, 0.1, 10).with_eps(1.0).step_size == pytest.approx(0.2)


def test_analysing_a_clean_run_at_an_eps_attacks_with_a_real_step(tmp_path, capsys):
    from advland.cli import _threat_options

    Trainer(_config(tmp_path, "name=c0", "objective=clean", "threat.eps=0", "threat.step_size=null", "epochs=1"),
            progress=False).fit()
    config = Run(tmp_path / "c0").config()
    assert _threat_options(config, None, 0.1, None, None).step_size == pytest.approx(2.5 * 0.1 / config.threat.steps)
    assert main(["gradients", str(tmp_path / "c0"), "--n", "8"]) == 2
    _one_line_error(capsys, "trained with eps 0", "--eps-linf")


# ---------------------------------------------------------------- 8. user modules keep their own modes

def _bn_mlp():
    """A user model on digits (1x8x8 inputs) with BatchNorm and dropout."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32),
                               torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10))


def test_trainer_keeps_each_modules_own_training_flag(tmp_path):
    model = _bn_mlp()
    frozen = [model[2], model[4]]  # the user freezes BatchNorm and turns dropout off
    for m in frozen:
        m.eval()
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append([m.training for m in frozen])
                                    if module.training else None)
    Trainer(_config(tmp_path, "name=frozen", "epochs=2"), model=model, progress=False).fit()
    assert seen and not any(any(flags) for flags in seen)  # never switched back to train mode while training
    assert model[1].training is not None and not any(m.training for m in frozen)


# ---------------------------------------------------------------- 9. probes of different seeds never overlap

class Recording:
    """A dense symmetric operator that records every vector it is applied to."""

    def __init__(self, size):
        self.matrix = torch.eye(size, dtype=torch.float64)
        self.shape, self.dtype, self.device = (size, size), torch.float64, torch.device("cpu")
        self.inputs = []

    def __matmul__(self, v):
        self.inputs.extend(v.T if v.dim() == 2 else [v])
        return self.matrix @ v


@pytest.mark.parametrize("estimator", ["hutchinson", "slq"])
def test_probes_of_nearby_seeds_share_nothing(estimator):
    from advland.landscape import hutchinson, slq

    probes = {}
    for seed in (0, 1):
        op = Recording(64)
        if estimator == "hutchinson":
            hutchinson(op, 20, block=5, seed=seed)
        else:
            slq(op, 4, 3, seed=seed)
            op.inputs = op.inputs[::3]  # each run's start vector (then Lanczos vectors)
        probes[seed] = torch.stack(op.inputs)
    for a in probes[0]:
        assert not any(torch.equal(a, b) for b in probes[1])


# ---------------------------------------------------------------- 10. flatness perturbs what Stutz et al. do

def test_flatness_leaves_normalization_layers_and_biases_alone_by_default():
    from advland.landscape import average_flatness
    from advland.landscape.flatness import perturbed_parameters
    from advland.threat import ThreatModel

    model = _bn_mlp().eval()
    assert perturbed_parameters(model) == ["1.weight", "5.weight"]  # not the BatchNorm (2.*), not the biases
    assert perturbed_parameters(model, "all") == [n for n, _ in model.named_parameters()]
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    threat = ThreatModel("linf", 0.1, 0.05, 2)
    assert average_flatness(model, x, y, threat, n_samples=1).perturbed == "weights"
    assert average_flatness(model, x, y, threat, n_samples=1, perturb="all").perturbed == "all"


# ---------------------------------------------------------------- 11. evaluation PGD counts every iterate

class Band(torch.nn.Module):
    """Scalar input; class 1 wins only inside the band |x - 0.6| < 0.1, class 0 is the label."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        g = 1 - 100 * (x.reshape(len(x), -1)[:, :1] - 0.6) ** 2 + self.dummy
        return torch.cat([torch.zeros_like(g), g], dim=1)


def test_an_example_fooled_by_an_earlier_iterate_counts_as_broken():
    from advland.attacks import pgd, pgd_correct
    from advland.threat import ThreatModel

    model, x, y = Band(), torch.tensor([[0.3]]), torch.tensor([0])
    threat = ThreatModel("linf", 0.5, 0.25, 2)  # iterates 0.3 (correct), 0.55 (fooled), last 0.8 (correct)
    last = pgd(model, x, y, threat, start="none")
    assert last.item() == pytest.approx(0.8) and model(last).argmax(1).item() == 0
    assert pgd_correct(model, x, y, threat, start="none").tolist() == [False]
    assert pgd_correct(model, x, y, ThreatModel("linf", 0.05, 0.025, 2), start="none").tolist() == [True]


# ---------------------------------------------------------------- 12. AutoAttack

def _tiny_classifier(classes):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, classes)).eval()
    x = torch.rand(12, 8)
    return model, x, model(x).argmax(1).detach()


def test_autoattack_custom_subset_runs_on_a_tiny_model():
    from advland.evaluate import autoattack_correct, correct_under_attack, eval_threat

    model, x, y = _tiny_classifier(10)
    mask, warnings = autoattack_correct(model, x, y, "linf", 0.1, batch_size=12, attacks=["apgd-ce"])
    assert mask.dtype == torch.bool and mask.shape == (12,) and warnings == []
    pgd_mask = correct_under_attack(model, x, y, eval_threat("linf", 0.1, 20))
    assert mask.float().mean() <= pgd_mask.float().mean() + 0.25  # APGD-100 x 5 is not much weaker than PGD-20


def test_autoattack_on_two_classes_says_apgd_t_cannot_run_and_runs_the_rest():
    from advland.evaluate import autoattack_correct

    model, x, y = _tiny_classifier(2)
    mask, warnings = autoattack_correct(model, x, y, "linf", 0.1, batch_size=12, attacks=["apgd-ce", "apgd-t"])
    assert warnings == ["APGD-T cannot run with 2 classes (its targeted DLR loss needs at least 4); ran APGD-CE"]
    assert mask.shape == (12,)


@pytest.mark.slow
def test_standard_autoattack_through_the_cli_on_synthetic(tmp_path, capsys):
    argv = ["train", "data.name=synthetic", "model.name=mlp", "epochs=1", f"out_dir={tmp_path}", "name=syn", *FAST,
            "threat.eps=0.1", "--no-progress"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "syn"), "--attacks", "pgd,autoattack", "--n", "20", "--no-sanity",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert out.count("warning: autoattack: APGD-T cannot run with 2 classes") == 1 and "autoattack" in out
    saved = _strict_json(next((tmp_path / "syn").glob("eval_linf_0.1_best.json")).read_text())
    assert saved["accuracy"]["autoattack"] <= saved["accuracy"]["clean"]


@pytest.mark.slow
def test_standard_autoattack_on_ten_classes():
    from advland.evaluate import autoattack_correct

    model, x, y = _tiny_classifier(10)
    mask, warnings = autoattack_correct(model, x, y, "linf", 0.1, batch_size=12)
    assert mask.shape == (12,) and not any("cannot run" in w for w in warnings)


# ---------------------------------------------------------------- 13. sweep paths

def test_sweep_base_resolves_against_the_sweep_files_folder(tmp_path, monkeypatch):
    from advland.sweep import expand, load_sweep

    (tmp_path / "sweeps").mkdir()
    shutil.copy(recipe_path("digits/at"), tmp_path / "at.yaml")
    (tmp_path / "sweeps" / "s.yaml").write_text("base: ../at.yaml\ngrid: {seed: [0, 1]}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_sweep(tmp_path / "sweeps" / "s.yaml")
    assert len(expand(spec)) == 2 and spec.base == str(tmp_path / "sweeps" / "../at.yaml")
    assert len(expand(load_sweep("sweeps/digits_lr"))) == 8  # the shipped sweep runs from any directory
