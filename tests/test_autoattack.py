"""The official AutoAttack runs through advland on tiny models, fitted to the number of classes."""

from __future__ import annotations

import json

import pytest
import torch

from advland.cli import main
from helpers import FAST, strict_json


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
    saved = strict_json(next((tmp_path / "syn").glob("eval_linf_0.1_best.json")).read_text())
    assert saved["accuracy"]["autoattack"] <= saved["accuracy"]["clean"]


@pytest.mark.slow
def test_standard_autoattack_on_ten_classes():
    from advland.evaluate import autoattack_correct

    model, x, y = _tiny_classifier(10)
    mask, warnings = autoattack_correct(model, x, y, "linf", 0.1, batch_size=12)
    assert mask.shape == (12,) and not any("cannot run" in w for w in warnings)
