"""Evaluation conventions checked for the user: radii as people write them, model outputs, inputs, randomized models."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from advland.cli import main
from advland.config import ConfigError, load_config
from advland.conventions import ConventionError, check_inputs, check_outputs, is_randomized, output_kind, select_output
from advland.evaluate import evaluate
from advland.radius import RadiusError, check_radius, parse_radius
from advland.sanity import autoattack_checks, check_logits
from advland.sweep import expand, load_sweep

FAST_AA = {"apgd.n_iter": 5, "apgd.eot_iter": 2}


@pytest.mark.parametrize("text, value", [("8/255", 8 / 255), (" 2 / 255 ", 2 / 255), ("0.03", 0.03), (0.5, 0.5),
                                         ("128/255", 128 / 255)])
def test_radii_parse_as_fractions(text, value):
    assert parse_radius(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["8/0", "abc", "-1", "nan", True])
def test_radii_that_are_not_numbers_are_refused(text):
    with pytest.raises(RadiusError):
        parse_radius(text)


def test_config_keys_take_fractions_and_refuse_whole_box_linf():
    config = load_config(None, ["threat.eps=8/255", "threat.step_size=2/255"])
    assert config.threat.eps == pytest.approx(8 / 255) and config.threat.step_size == pytest.approx(2 / 255)
    with pytest.raises(ConfigError, match=r"8 means the whole \[0, 1\] box.*did you mean 8/255 = 0.0314\?"):
        load_config(None, ["threat.eps=8"])
    with pytest.raises(ConfigError, match="same mid-gray image"):
        load_config(None, ["threat.eps=0.6"])
    assert load_config(None, ["threat.eps=8", "threat.allow_large_eps=true"]).threat.eps == 8
    assert load_config(None, ["threat.norm=l2", "threat.eps=128/255"]).threat.eps == pytest.approx(128 / 255)


def test_l2_radius_is_refused_from_half_the_box_diagonal():
    assert check_radius("l2", 3.9, dim=64) == 3.9
    with pytest.raises(RadiusError, match="limit under l2 is 4"):
        check_radius("l2", 4.0, dim=64)


def test_sweep_files_take_fractions(tmp_path):
    (tmp_path / "s.yaml").write_text(f"base: digits/at\nout_dir: {tmp_path}/out\ngrid:\n  threat.eps: [4/255, 8/255]\n")
    trials = expand(load_sweep(tmp_path / "s.yaml"))
    assert [load_config("digits/at", t.overrides).threat.eps for t in trials] == pytest.approx([4 / 255, 8 / 255])


def test_cli_eps_takes_fractions_and_refuses_8_under_linf(digits_at_run, capsys):
    run = str(digits_at_run[0].run.path)
    assert main(["eval", run, "--norm", "linf", "--eps", "8"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 8/255 = 0.0314?" in err and "--allow-large-eps" in err and err.count("\n") == 1
    assert main(["eval", run, "--eps", "8/255", "--attacks", "pgd", "--n", "8", "--steps", "1", "--no-sanity",
                 "--no-progress"]) == 0
    assert "eps=0.0313725" in capsys.readouterr().out
    assert main(["hessian", run, "--eps", "8/255", "--loss", "clean", "--top-k", "1", "--n", "8"]) == 0


def test_inputs_outside_the_unit_box_are_refused():
    check_inputs(torch.rand(4, 3))
    with pytest.raises(ConventionError, match=r"must be in \[0, 1\].*--normalize"):
        check_inputs(torch.randn(4, 3) * 3)


class TupleNet(nn.Module):
    def __init__(self, features: int = 64, classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(features, 16), nn.ReLU())
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        h = self.body(x)
        return self.head(h), h


def test_a_tuple_output_is_one_line_naming_the_element_and_select_output_fixes_it():
    model, x = TupleNet(), torch.rand(2, 1, 8, 8)
    with pytest.raises(ConventionError, match=r"a tuple of 2 \(\[0\] a tensor of shape \(2, 10\), \[1\] a tensor of "
                                              r"shape \(2, 16\)\).*--output-index 0"):
        check_outputs(model, x, 10)
    assert check_outputs(select_output(model, 0), x, 10).shape == (2, 10)
    with pytest.raises(ConventionError, match="4 scores per input but the data has 10 classes"):
        check_outputs(nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), x, 10)


def test_a_tuple_output_model_file_gives_one_line_then_output_index_works(tmp_path, monkeypatch, capsys):
    (tmp_path / "tuplenets.py").write_text(
        "import torch\nfrom torch import nn\n\nclass Net(nn.Module):\n"
        "    def __init__(self, input_shape, num_classes):\n        super().__init__()\n"
        "        self.fc = nn.Linear(64, num_classes)\n\n    def forward(self, x):\n"
        "        return self.fc(x.flatten(1)), x\n\ndef make(input_shape, num_classes):\n"
        "    return Net(input_shape, num_classes)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import tuplenets

    torch.save(tuplenets.make((1, 8, 8), 10).state_dict(), tmp_path / "tuple.pt")
    argv = ["eval", "tuple.pt", "--model", "tuplenets:make", "--data", "digits", "--norm", "linf", "--eps", "0.1",
            "--attacks", "pgd", "--steps", "1", "--n", "8", "--no-sanity", "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the model returns a tuple of 2" in err and "--output-index 0" in err and err.count("\n") == 1
    assert main([*argv, "--output-index", "0"]) == 0
    hessian = ["hessian", "tuple.pt", "--model", "tuplenets:make", "--data", "digits", "--threat-norm", "linf",
               "--eps", "0.1", "--loss", "clean", "--top-k", "1", "--n", "8"]
    assert main(hessian) == 2 and "--output-index 0" in capsys.readouterr().err
    assert main([*hessian, "--output-index", "0"]) == 0


def test_probability_outputs_are_flagged():
    torch.manual_seed(0)
    x = torch.rand(16, 20)
    y = torch.randint(0, 10, (16,))
    logits = nn.Linear(20, 10)
    softmax = nn.Sequential(logits, nn.Softmax(dim=1))
    assert output_kind(softmax(x)) == "probabilities"
    assert output_kind(nn.Sequential(logits, nn.LogSoftmax(dim=1))(x)) == "log-probabilities"
    assert output_kind(logits(x)) == "logits"
    assert not check_logits(softmax, x).passed and check_logits(logits, x).passed
    checks = {c.name: c for c in autoattack_checks(softmax, x, y, num_classes=10)}
    assert not checks["autoattack_probability_output"].passed
    assert checks["autoattack_randomized"].passed


class DropoutAtTest(nn.Module):
    """Dropout that stays on in eval mode: a randomized defense."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(20, 32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(nn.functional.dropout(torch.relu(self.fc1(x.flatten(1))), 0.5, training=True))


def test_a_randomized_model_is_reported_and_evaluated_with_rand():
    torch.manual_seed(0)
    model, x, y = DropoutAtTest(), torch.rand(12, 20), torch.randint(0, 10, (12,))
    deterministic = nn.Sequential(nn.Linear(20, 10))
    assert is_randomized(model, x) and not is_randomized(deterministic, x)
    report = evaluate(model, x, y, norm="linf", eps=0.1, attacks=["autoattack"], batch_size=12, progress=False,
                      aa_settings=FAST_AA)
    assert report.randomized and report.settings["autoattack"]["version"] == "rand"
    checks = {c.name: c for c in autoattack_checks(model, x, y, num_classes=10, autoattack_warnings=report.warnings,
                                                   aa_version="rand")}
    assert checks["autoattack_randomized"].numbers["flagged"] == 1.0 and checks["autoattack_randomized"].passed
    forced = evaluate(model, x, y, norm="linf", eps=0.1, attacks=["autoattack"], batch_size=12, progress=False,
                      aa_version="custom", aa_attacks=["apgd-ce"], aa_settings=FAST_AA)
    assert forced.settings["autoattack"]["version"] == "custom"
    assert any("randomized" in w and "--aa-version rand" in w for w in forced.warnings)
    plain = evaluate(deterministic, x, y, norm="linf", eps=0.1, attacks=["pgd"], steps=2, progress=False)
    assert not plain.randomized and "autoattack" not in plain.settings


@pytest.mark.parametrize("argv, message", [
    (["--attacks", "pgd,fgsm"], "unknown attack 'fgsm'"),
    (["--aa-version", "fancy"], "AutoAttack version must be one of"),
    (["--aa-version", "custom"], "custom AutoAttack version needs its attacks"),
    (["--aa-version", "custom", "--aa-attacks", "apgd-xx"], "unknown AutoAttack attack 'apgd-xx'"),
    (["--aa-attacks", "apgd-ce"], "only with the custom version"),
    (["--steps", "0"], "--steps, --n and --batch-size must be >= 1"),
    (["--n", "0"], "--steps, --n and --batch-size must be >= 1"),
    (["--batch-size", "0"], "--steps, --n and --batch-size must be >= 1"),
    (["--eps", "-1"], "finite number >= 0"),
])
def test_out_of_range_eval_options_are_one_line(digits_at_run, capsys, argv, message):
    assert main(["eval", str(digits_at_run[0].run.path), "--n", "8", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_analysis_commands_refuse_whole_box_linf_radii(digits_at_run, capsys):
    assert main(["hessian", str(digits_at_run[0].run.path), "--eps", "8", "--n", "8"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 8/255 = 0.0314?" in err and err.count("\n") == 1
