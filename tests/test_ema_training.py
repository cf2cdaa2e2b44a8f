"""Training with an EMA of the weights: validation of both, selection on validation only, the test of both,
exact resume, loading the averaged weights."""

from __future__ import annotations

import pytest
import torch

import advland
from advland.cli import main
from advland.callbacks.base import Callback
from advland.callbacks.ema import WeightAveraging
from advland.config import load_config
from advland.run import Run, load_weights
from advland.train import Trainer
from test_train import Crash, CrashAtEpoch

FAST = ["epochs=2", "data.train_n=512", "data.batch_size=128", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2",
        "eval.test_n=100"]
EMA = ["ema.decay=0.9"]


def _config(tmp_path, *extra):
    return load_config("digits/at", [f"out_dir={tmp_path}", *FAST, *extra])


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ema")
    summary = Trainer(_config(out, "name=ema", *EMA), progress=False).fit()
    return Run(out / "ema"), summary


def test_both_weights_are_validated_every_epoch_and_tested_at_the_end(ema_run):
    run, summary = ema_run
    records = run.metrics()
    for record in records:
        assert {"val_clean_acc", "val_robust_acc", "val_clean_acc_ema", "val_robust_acc_ema", "ema_decay"} <= set(record)
    # 512 examples in batches of 128: 4 steps an epoch; the last update of epoch e is t = 4e - 1: d = 4e / (4e + 9)
    assert [r["ema_decay"] for r in records] == pytest.approx([4 / 13, 8 / 17])
    for key in ("test_clean_acc", "test_robust_acc", "last_test_clean_acc", "last_test_robust_acc",
                "ema_test_clean_acc", "ema_test_robust_acc"):
        assert 0.0 <= summary[key] <= 1.0, key
    assert summary["best_weights"] in ("raw", "ema")
    assert (run.path / "checkpoints" / "ema.safetensors").exists()


def test_best_is_the_best_of_both_on_validation(ema_run):
    """The selection reads only the validation numbers of metrics.jsonl: the highest of raw and EMA over all
    epochs (the first on ties, raw before EMA within an epoch)."""
    run, summary = ema_run
    scored = [(r[f"val_robust_acc{suffix}"], -r["epoch"], -i, which, r["epoch"])
              for r in run.metrics() for i, (suffix, which) in enumerate((("", "raw"), ("_ema", "ema")))]
    score, _, _, which, epoch = max(scored)
    assert (summary["best_score"], summary["best_weights"], summary["best_epoch"]) == (score, which, epoch)
    if epoch == summary["epochs"]:
        other = "ema" if which == "ema" else "last"
        best, kept = load_weights(run.weights_path("best")), load_weights(run.weights_path(other))
        assert all(torch.equal(best[k], kept[k]) for k in best)


class RecordAverages(Callback):
    """Keeps a copy of the EMA's weights at the end of every epoch."""

    def __init__(self):
        self.kept = {}

    def on_epoch_done(self, trainer, epoch, record):
        averaging = next(c for c in trainer.callbacks if isinstance(c, WeightAveraging))
        self.kept[epoch] = {k: v.clone() for k, v in averaging.ema.model.state_dict().items()}


def test_ema_best_is_the_average_at_its_own_validation_peak(tmp_path):
    """ema_best holds the average of the first epoch with the highest EMA validation score, whichever weights
    best holds; it is tested at the end and loads like the other checkpoints."""
    recorder = RecordAverages()
    summary = Trainer(_config(tmp_path, "name=peak", *EMA, "epochs=3", "ema.select=raw"), callbacks=[recorder],
                      progress=False).fit()
    run = Run(tmp_path / "peak")
    scores = [r["val_robust_acc_ema"] for r in run.metrics()]
    peak = scores.index(max(scores)) + 1
    kept = load_weights(run.weights_path("ema_best"))
    assert all(torch.equal(kept[k], recorder.kept[peak][k]) for k in kept)
    assert summary["best_weights"] == "raw" and 0.0 <= summary["ema_best_test_robust_acc"] <= 1.0
    loaded = advland.load(run.path, which="ema_best")
    assert all(torch.equal(loaded.state_dict()[k], kept[k]) for k in kept)


@pytest.mark.parametrize("select", [pytest.param("raw", marks=pytest.mark.slow), "ema"])
def test_select_restricts_best_to_one_kind(tmp_path, select):
    summary = Trainer(_config(tmp_path, f"name={select}", *EMA, f"ema.select={select}"), progress=False).fit()
    assert summary["best_weights"] == select
    records = Run(tmp_path / select).metrics()
    key = "val_robust_acc" + ("_ema" if select == "ema" else "")
    assert summary["best_score"] == max(r[key] for r in records)


def test_without_a_validation_split_best_is_the_last_of_the_selected_kind(tmp_path):
    summary = Trainer(_config(tmp_path, "name=noval", *EMA, "ema.select=ema", "data.val_fraction=0", "epochs=1",
                              "eval.test_n=20"), progress=False).fit()
    run = Run(tmp_path / "noval")
    assert (summary["selected_on"], summary["best_weights"]) == ("last_epoch", "ema")
    best, averaged = load_weights(run.weights_path("best")), load_weights(run.weights_path("ema"))
    assert all(torch.equal(best[k], averaged[k]) for k in best)
    assert summary["ema_test_robust_acc"] == summary["test_robust_acc"]


@pytest.mark.slow
def test_the_trained_weights_follow_the_same_trajectory_with_or_without_ema(tmp_path, ema_run):
    """The EMA's validation draws its attack starts from its own generator: the raw run is unchanged."""
    run, _ = ema_run
    Trainer(_config(tmp_path, "name=plain"), progress=False).fit()
    plain = load_weights(tmp_path / "plain" / "checkpoints" / "last.safetensors")
    averaged = load_weights(run.weights_path("last"))
    assert all(torch.equal(plain[k], averaged[k]) for k in plain)
    keys = ("train_loss", "val_robust_acc", "val_clean_acc")
    rows = lambda r: [[x[k] for k in keys] for x in r.metrics()]  # noqa: E731
    assert rows(Run(tmp_path / "plain")) == rows(run)


def test_resume_with_ema_is_bit_exact(tmp_path, ema_run):
    whole, _ = ema_run
    interrupted = Trainer(_config(tmp_path, "name=cut", *EMA), callbacks=[CrashAtEpoch(2)], progress=False)
    with pytest.raises(Crash):
        interrupted.fit()
    Trainer(_config(tmp_path, "name=cut", *EMA, "resume=true"), progress=False).fit()
    cut = Run(tmp_path / "cut")
    for which in ("ema", "ema_best", "last", "best"):
        a, b = load_weights(whole.weights_path(which)), load_weights(cut.weights_path(which))
        assert all(torch.equal(a[k], b[k]) for k in a), which
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]  # noqa: E731
    assert strip(cut.metrics()) == strip(whole.metrics())
    drop = ("train_seconds",)
    assert {k: v for k, v in cut.summary().items() if k not in drop} == \
        {k: v for k, v in whole.summary().items() if k not in drop}


def test_the_averaged_weights_load_and_evaluate(ema_run, capsys):
    run, _ = ema_run
    averaged = advland.load(run.path, which="ema")
    expected = load_weights(run.weights_path("ema"))
    assert all(torch.equal(averaged.state_dict()[k], expected[k]) for k in expected)
    assert main(["eval", str(run.path), "--which", "ema", "--attacks", "pgd", "--n", "20", "--no-sanity"]) == 0
    assert "ema" in capsys.readouterr().out


def test_which_ema_of_a_run_without_ema_is_one_line(tmp_path, capsys):
    Trainer(_config(tmp_path, "name=plain", "epochs=1", "eval.test_n=10"), progress=False).fit()
    assert main(["eval", str(tmp_path / "plain"), "--which", "ema"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "ema.decay" in err


def test_a_diverged_ema_run_is_concluded_with_the_average_of_its_last_good_epoch(tmp_path):
    """The average took the diverged epoch's non-finite steps; concluding restores the saved one and tests it."""
    from advland.divergence import TrainingDiverged
    from test_divergence import PoisonDataAtEpoch

    trainer = Trainer(_config(tmp_path, "name=cut", *EMA), callbacks=[PoisonDataAtEpoch(1)], progress=False)
    with pytest.raises(TrainingDiverged) as error:
        trainer.fit()
    summary = trainer.conclude_diverged(str(error.value))
    averaged = load_weights(Run(tmp_path / "cut").weights_path("ema"))
    assert all(torch.isfinite(t).all() for t in averaged.values())
    assert summary["epochs"] == 1 and 0.0 <= summary["ema_test_robust_acc"] <= 1.0


def test_a_state_saved_without_the_ema_peak_resumes(tmp_path):
    """A training state written before the EMA kept its validation peak resumes; ema_best starts there."""
    interrupted = Trainer(_config(tmp_path, "name=old", *EMA), callbacks=[CrashAtEpoch(2)], progress=False)
    with pytest.raises(Crash):
        interrupted.fit()
    run = Run(tmp_path / "old")
    state = run.load_state()
    for kept in state["callbacks"].values():
        kept.pop("best_score", None)
    run.save_state(state)
    run.weights_path("ema_best").unlink()
    summary = Trainer(_config(tmp_path, "name=old", *EMA, "resume=true"), progress=False).fit()
    assert run.weights_path("ema_best").exists() and 0.0 <= summary["ema_best_test_robust_acc"] <= 1.0
