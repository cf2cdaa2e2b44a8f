"""End to end on a tiny run: landscape tracking during training, and the analysis commands."""

from __future__ import annotations

import json

import pytest

from advland.cli import main
from advland.config import load_config
from advland.train import train

TRACKED = ["grad_norm", "hessian_top_eigs", "scatter_cos_delta", "scatter_cos_sign_delta", "scatter_cos_grad",
           "scatter_cos_grad_per_example", "grad_lipschitz", "flatness_avg", "curve_clean_loss", "curve_adv_loss", "curve_sharpness"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    config = load_config(None, [
        "data.name=digits", "data.batch_size=128", "data.val_fraction=0.8", "model.name=mlp",
        "model.kwargs={hidden: [16]}", "threat.eps=0.1", "threat.steps=2", "epochs=2", "eval.steps=2",
        "eval.test_n=20", "eval.val_steps=1", "track.n=32", "track.grad_norm=true", "track.hessian_every=1", "track.hessian_top_k=2",
        "track.scattering_every=2", "track.lipschitz_every=2", "track.flatness_every=2",
        "track.curve_every=2", "track.curve_steps=5",
        f"out_dir={out}", "name=tiny", "device=cpu",
    ])
    train(config, progress=False)
    return out / "tiny"


def test_tracking_lands_in_metrics_and_a_plot(run_dir) -> None:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert len(records[0]["hessian_top_eigs"]) == 2 and "grad_norm" in records[0]
    assert "flatness_avg" not in records[0] and set(TRACKED) <= set(records[1])
    assert (run_dir / "landscape" / "tracked.png").stat().st_size > 0
    curve = records[1]["curve_adv_loss"]
    assert len(curve) == 5 and records[1]["curve_sharpness"] == pytest.approx((curve[0] + curve[-1]) / 2 - curve[2])
    saved = json.loads((run_dir / "landscape" / "curve_epoch2.json").read_text())
    assert saved["values"]["adv_loss"] == curve and (run_dir / "landscape" / "tracked_curves.png").stat().st_size > 0
    assert (run_dir / "checkpoints" / "init.safetensors").exists()


def test_tracking_is_off_by_default_and_validated() -> None:
    config = load_config(None, [])
    assert not config.track.enabled
    with pytest.raises(Exception, match="track.hessian_every"):
        load_config(None, ["track.hessian_every=-1"])


def run_cli(*args: str) -> int:
    return main([*args])


def test_landscape_commands(run_dir, capsys) -> None:
    run = str(run_dir)
    assert run_cli("landscape", run, "--dims", "1", "--steps", "3", "--n", "16", "--metric", "clean_loss,adv_acc",
                   "--range", "-0.5:0.5", "--no-progress") == 0
    assert run_cli("landscape", run, "--dims", "2", "--steps", "3", "--n", "16", "--format", "npz",
                   "--no-progress") == 0
    assert run_cli("landscape", run, "--dims", "1", "--steps", "3", "--n", "16", "--metric", "adv_loss",
                   "--directions", "hessian", "--no-progress") == 0
    assert run_cli("interpolate", run, "--steps", "3", "--n", "16", "--no-progress") == 0
    assert run_cli("interpolate", run, run, "--steps", "3", "--n", "16", "--bn", "recompute", "--no-progress") == 0
    assert run_cli("hessian", run, "--top-k", "2", "--trace", "--probes", "4", "--density", "--density-probes", "2",
                   "--density-steps", "5", "--blocks", "--n", "16") == 0
    assert run_cli("gradients", run, "--n", "16", "--directions", "1") == 0
    assert run_cli("flatness", run, "--n", "16", "--samples", "2") == 0
    out = capsys.readouterr().out
    assert "top-2 eigenvalues" in out and "Lipschitz" in out and "worst case" in out
    files = {p.name for p in (run_dir / "landscape").iterdir()}
    assert {"surface_1d_clean_loss_adv_acc_test.json", "surface_1d_clean_loss_adv_acc_test.png",
            "surface_2d_clean_loss_test.npz", "surface_2d_clean_loss_test_clean_loss_contour.png",
            "interpolation_init_to_last_test.json", "hessian_adv_train.json", "hessian_adv_density.png",
            "gradients_train.json", "flatness_test.json"} <= files
    assert "surface_2d_clean_loss_test.json" not in files
    along = json.loads((run_dir / "landscape" / "surface_1d_adv_loss_test_hessian.json").read_text())
    assert along["info"]["directions"][0]["kind"] == "hessian" and along["info"]["directions"][0]["loss"] == "adv"
    hessian = json.loads((run_dir / "landscape" / "hessian_adv_train.json").read_text())
    assert len(hessian["top_eigenvalues"]) == 2 and "trace" in hessian and hessian["blocks"]


@pytest.mark.parametrize(("args", "message"), [
    (["landscape", "{run}", "--range", "1:-1"], "--range needs lo < hi"),
    (["landscape", "{run}", "--range", "a:b"], "--range must look like"),
    (["landscape", "{run}", "--metric", "adv_los"], "unknown metric 'adv_los'"),
    (["landscape", "{run}", "--directions", "pca"], "--directions must be random or hessian"),
    (["landscape", "{missing}"], "no run directory"),
    (["hessian", "{run}", "--loss", "train"], "--loss must be clean or adv"),
    (["interpolate", "{run}", "--bn", "freeze"], "--bn must be"),
    (["interpolate", "{bare}"], "has no initial checkpoint"),
])
def test_user_errors_are_one_line(run_dir, tmp_path, capsys, args, message) -> None:
    (tmp_path / "bare").mkdir()
    args = [a.format(run=run_dir, missing=tmp_path / "nope", bare=tmp_path / "bare") for a in args]
    assert run_cli(*args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err



def test_older_flag_spellings_still_work_with_a_notice(run_dir, capsys) -> None:
    # --norm is the attack norm in every command; landscape's direction normalization is --direction-norm
    assert run_cli("landscape", str(run_dir), "--dims", "1", "--steps", "3", "--n", "8", "--norm", "layer",
                   "--threat-norm", "linf", "--split", "val", "--no-progress") == 0
    err = capsys.readouterr().err
    assert "--norm layer is now --direction-norm layer" in err and "--threat-norm is now --norm" in err
    saved = json.loads((run_dir / "landscape" / "surface_1d_clean_loss_val.json").read_text())
    assert saved["info"]["directions"][0]["norm"] == "layer"
