"""Configs: validation with one-line messages naming the key, YAML loading and overrides."""

import pytest

from advland import recipes
from advland.config import ConfigError, load_config, parse_overrides

CONFIGS = [name for name in recipes.names() if not name.startswith("sweeps/")]
SWEEPS = [name for name in recipes.names() if name.startswith("sweeps/")]


@pytest.mark.parametrize("name", CONFIGS)
def test_every_shipped_config_is_valid(name):
    config = load_config(name)
    assert config.name == name.split("/")[1] and config.description


@pytest.mark.parametrize("name", SWEEPS)
def test_every_shipped_sweep_is_valid(name):
    from advland.sweep import expand, load_sweep

    assert expand(load_sweep(name))


def test_defaults_are_pgd_at_on_digits():
    config = load_config()
    assert (config.data.name, config.objective.name, config.threat.norm) == ("digits", "at", "linf")


def test_overrides_are_parsed_as_yaml():
    config = load_config("digits/at", ["optimizer.lr=0.01", "threat.norm=l2", "model.kwargs={width: 2}"])
    assert config.optimizer.lr == 0.01 and config.threat.norm == "l2" and config.model.kwargs == {"width": 2}
    assert config.name == "at"


def test_section_shorthand_sets_its_name():
    assert parse_overrides(["objective=trades"]) == {"objective": {"name": "trades"}}
    assert load_config(None, ["objective=trades", "objective.beta=3"]).objective.beta == 3


@pytest.mark.parametrize(
    "override, expected",
    [
        (["optimizer.lrr=0.1"], "unknown key 'optimizer.lrr'; allowed here: name, lr"),
        (["optimizer.name=sgx"], "optimizer.name: Input should be 'sgd', 'adam' or 'entropy_sgd'"),
        (["threat.eps=-1"], "threat.eps: Input should be greater than or equal to 0"),
        (["epochs=many"], "epochs: Input should be a valid integer"),
        (["lr"], "must look like key=value"),
    ],
)
def test_bad_configs_give_one_line_errors(override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(None, override)
    message = str(info.value)
    assert expected in message and "\n" not in message


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no config file"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
