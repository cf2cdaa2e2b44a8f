"""End-to-end: each remedy trains through the Trainer on a tiny digits subset, logs its metrics, and
degenerates to plain training where it should (AWP gamma = 0, SAM rho = 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from advland import data as datasets
from advland import recipes
from advland.build import DataSplits
from advland.cli import main
from advland.config import ConfigError, load_config
from advland.errors import AdvlandError
from advland.run import Run, load_weights
from advland.train import Trainer

BASE = ["model.kwargs={width: 0.25}", "data.batch_size=32", "threat.eps=0.2", "threat.steps=3", "threat.step_size=0.1",
        "optimizer.lr=0.05", "epochs=2", "eval.steps=3", "device=cpu"]
N_BATCHES = 3  # 96 training examples in batches of 32


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """These models are tiny: a second intra-op thread only adds contention on shared CPUs (4x slower there)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny() -> DataSplits:
    x, y = datasets.load("digits", "train", val_fraction=0.1, seed=0)
    x_test, y_test = datasets.load("digits", "test")
    return DataSplits(x[:96], y[:96], x[96:128], y[96:128], x_test[:32], y_test[:32])


def _train(tiny: DataSplits, path: Path, overrides: list[str]) -> tuple[Trainer, dict]:
    config = load_config(None, [*BASE, *overrides, f"out_dir={path.parent}", f"name={path.name}"])
    trainer = Trainer(config, data=tiny, run=Run(path), progress=False)
    return trainer, trainer.fit()


METHODS = {
    "at_pas": ["schedule.eps=pas", "schedule.lr=cyclic_cosine", "schedule.cycles=[1, 2]", "schedule.snapshots=true"],
    "at_awp": ["perturb=awp"],
    "trades_awp": ["objective=trades", "perturb=awp", "perturb.warmup_epochs=1"],
    "mart_awp": ["objective=mart", "perturb=awp"],
    "at_awp_l2": ["threat.norm=l2", "threat.eps=1.0", "threat.step_size=0.5", "perturb=awp", "perturb.per_filter=true"],
    "at_sam": ["perturb=sam"],
    "at_asam": ["perturb=asam"],
    "at_entropysgd": ["optimizer=entropy_sgd", "optimizer.L=2", "optimizer.lr=1.0", "optimizer.inner_lr=0.05"],
    "trades_entropysgd_legacy": ["objective=trades", "optimizer=entropy_sgd", "optimizer.L=2", "optimizer.legacy=true"],
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_each_method_trains_and_logs_its_metrics(tiny: DataSplits, tmp_path: Path, method: str) -> None:
    trainer, summary = _train(tiny, tmp_path / method, METHODS[method])
    records = Run(tmp_path / method).metrics()
    assert len(records) == 2 and summary["epochs"] == 2
    for key in ("lr", "eps", "grad_evals", "train_loss", "val_robust_acc"):
        assert all(key in r for r in records), key
    assert all(0 <= summary[k] <= 1 for k in ("test_clean_acc", "test_robust_acc"))
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    if "perturb" in " ".join(METHODS[method]):
        assert records[-1]["perturb_norm"] > 0
    if "entropy_sgd" in " ".join(METHODS[method]):
        assert records[-1]["entropy_gamma"] > 0


def test_grad_evals_count_attack_loss_and_ascent_passes(tiny: DataSplits, tmp_path: Path) -> None:
    steps = 3
    _, _ = _train(tiny, tmp_path / "at", ["epochs=1"])
    _, _ = _train(tiny, tmp_path / "awp", ["epochs=1", "perturb=awp", "perturb.steps=2"])
    _, _ = _train(tiny, tmp_path / "esgd", ["epochs=1", "optimizer=entropy_sgd", "optimizer.L=2"])
    at, awp, esgd = (Run(tmp_path / n).metrics()[0]["grad_evals"] for n in ("at", "awp", "esgd"))
    assert at == N_BATCHES * (steps + 1)
    assert awp == N_BATCHES * (steps + 1 + 2)
    assert esgd == (N_BATCHES // 2) * 2 * (steps + 1)  # one outer step of L = 2 minibatches; the third is left out


def test_awp_with_gamma_zero_is_plain_at(tiny: DataSplits, tmp_path: Path) -> None:
    plain, _ = _train(tiny, tmp_path / "at", [])
    awp, _ = _train(tiny, tmp_path / "awp", ["perturb=awp", "perturb.gamma=0"])
    for a, b in zip(plain.model.state_dict().values(), awp.model.state_dict().values()):
        assert torch.equal(a, b)


def test_sam_with_rho_zero_is_plain_training(tiny: DataSplits, tmp_path: Path) -> None:
    plain, _ = _train(tiny, tmp_path / "at", ["model.kwargs={width: 0.25, batchnorm: true}"])
    sam, _ = _train(tiny, tmp_path / "sam", ["model.kwargs={width: 0.25, batchnorm: true}", "perturb=sam", "perturb.rho=0"])
    for a, b in zip(plain.model.state_dict().values(), sam.model.state_dict().values()):
        assert torch.equal(a, b)


def test_awp_warmup_epochs_train_unperturbed(tiny: DataSplits, tmp_path: Path) -> None:
    _train(tiny, tmp_path / "run", ["perturb=awp", "perturb.warmup_epochs=1"])
    first, second = Run(tmp_path / "run").metrics()
    assert first["perturb_norm"] == 0 and second["perturb_norm"] > 0
    assert second["grad_evals"] == first["grad_evals"] + N_BATCHES


def test_pas_eps_follows_the_cycles_and_snapshots_form_an_ensemble(tiny: DataSplits, tmp_path: Path) -> None:
    trainer, summary = _train(tiny, tmp_path / "pas", METHODS["at_pas"])
    run = Run(tmp_path / "pas")
    assert [p.name for p in run.snapshot_paths()] == ["snapshot_1.safetensors", "snapshot_2.safetensors"]
    # one-epoch cycles of 3 iterations: eps at r = 0, 1/3, 2/3 of each cycle, the last at the target
    assert [trainer.threat_at(t).eps for t in (1.0, 1 + 1 / 3)] == [0.0, pytest.approx(0.1)]
    assert [r["eps"] for r in run.metrics()] == [0.2, 0.2]
    assert summary["n_snapshots"] == 2 and 0 <= summary["ensemble_test_robust_acc"] <= 1
    assert set(load_weights(run.snapshot_paths()[0])) == set(load_weights(run.weights_path("last")))


def test_eval_ensemble_and_schedule_commands(tiny: DataSplits, tmp_path: Path, capsys) -> None:
    _train(tiny, tmp_path / "pas", METHODS["at_pas"])
    assert main(["eval", str(tmp_path / "pas"), "--ensemble", "--attacks", "pgd", "--steps", "2", "--n", "16",
                 "--no-progress"]) == 0
    assert "ensemble of snapshot_1.safetensors, snapshot_2.safetensors" in capsys.readouterr().out
    assert (tmp_path / "pas" / "eval_linf_0.2_ensemble.json").exists()
    png = tmp_path / "schedule.png"
    assert main(["schedule", *BASE, "epochs=30", "schedule.eps=pas", "schedule.cycles=[10, 20]", "--out", str(png)]) == 0
    out = capsys.readouterr().out
    assert png.exists() and "20-" in out


def test_user_errors_are_one_line(tiny: DataSplits, tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match="cannot be combined"):
        load_config(None, ["perturb=awp", "optimizer=entropy_sgd"])
    with pytest.raises(AdvlandError, match="optimizer.L=5"):
        _train(tiny, tmp_path / "esgd", ["optimizer=entropy_sgd", "optimizer.L=5"])
    _train(tiny, tmp_path / "at", ["epochs=1"])
    assert main(["eval", str(tmp_path / "at"), "--ensemble"]) == 2
    assert main(["schedule", "schedule.cycles=[10, 50]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("error:") and "no snapshots" in err[0]
    assert "schedule.cycles" in err[1] and len(err) == 2


@pytest.mark.parametrize("method", ["at_pas", "at_awp", "at_entropysgd"])
def test_resume_continues_exactly(tiny: DataSplits, tmp_path: Path, monkeypatch, method: str) -> None:
    straight, _ = _train(tiny, tmp_path / "straight", METHODS[method])
    original = Trainer.train_epoch

    def crash_in_second_epoch(self: Trainer, epoch: int):
        if epoch == 1:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny, tmp_path / "resumed", METHODS[method])
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed, _ = _train(tiny, tmp_path / "resumed", [*METHODS[method], "resume=true"])
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


RECIPES = [name for name in recipes.names() if not name.startswith("sweeps/")]


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_is_a_valid_config(name: str) -> None:
    config = load_config(name)
    assert config.cycle_boundaries()[-1] == config.epochs
    if config.optimizer.name == "entropy_sgd":
        assert config.perturb.name == "none"
