"""Recipes ship inside the package, are found by name from any directory and are listed one a line."""

from pathlib import Path

import pytest

from advland import catalog, recipes
from advland.cli import main
from advland.config import ConfigError, load_config
from advland.sweep import expand, load_sweep


def test_recipes_live_in_the_package_and_are_named_group_slash_name():
    names = recipes.names()
    assert {"digits/at", "digits/trades", "cifar10/preactresnet18_at", "sweeps/digits_lr"} <= set(names)
    assert recipes.path("digits/at") == Path(recipes.__file__).parent / "digits" / "at.yaml"
    assert recipes.path("digits/at.yaml") == recipes.path("digits/at")


def test_a_recipe_name_works_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config("digits/at", ["epochs=3"])
    assert (config.name, config.epochs, config.model.name) == ("at", 3, "cnn_small")


def test_a_path_to_a_yaml_file_is_taken_before_a_recipe(tmp_path, monkeypatch):
    (tmp_path / "digits").mkdir()
    (tmp_path / "digits" / "at").write_text("epochs: 7\n")
    monkeypatch.chdir(tmp_path)
    assert load_config("digits/at").epochs == 7


def test_a_bad_name_lists_close_matches_in_one_line():
    with pytest.raises(ConfigError) as info:
        load_config("digits/trade")
    message = str(info.value)
    assert "\n" not in message and "close matches: digits/trades" in message and "advland recipes" in message


def test_sweeps_name_recipes_as_their_base(tmp_path, monkeypatch):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"base: digits/at\nout_dir: {tmp_path / 'out'}\ngrid: {{seed: [0, 1]}}\n")
    monkeypatch.chdir(tmp_path)
    trials = expand(load_sweep(spec))
    assert len(trials) == 2
    assert load_sweep("sweeps/digits_lr").base == "digits/at"


def test_advland_recipes_lists_every_recipe_with_data_model_method_and_time(capsys):
    assert main(["recipes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:5] == ["recipe", "data", "model", "method", "time"]
    listed = {line.split()[0]: line for line in lines[1:-1]}
    assert set(listed) == set(recipes.names())
    assert listed["digits/at"].split()[1:4] == ["digits", "cnn_small", "at"] and "2 CPU cores" in listed["digits/at"]
    assert "GPU" in listed["cifar10/preactresnet18_at"].split()
    assert "sweep: 8 runs of digits/at" in listed["sweeps/digits_lr"]


def test_a_recipe_added_as_a_file_is_listed_without_code_changes(tmp_path, monkeypatch):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "mlp.yaml").write_text("description: a toy\ndata: {name: synthetic}\nmodel: {name: mlp}\n")
    monkeypatch.setattr(recipes, "_root", lambda: tmp_path)
    (row,) = catalog.listing()
    assert (row.name, row.data, row.model, row.expected_time, row.description) == (
        "toy/mlp", "synthetic", "mlp", "not measured", "a toy")


def test_advland_recipes_name_prints_the_yaml(capsys):
    assert main(["recipes", "digits/at"]) == 0
    assert capsys.readouterr().out == recipes.path("digits/at").read_text()
