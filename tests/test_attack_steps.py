"""An attack that could never move is refused, and one started from eps 0 takes the default step."""

from __future__ import annotations

import pytest

from advland.build import build_threat
from advland.cli import main
from advland.run import Run
from advland.threat import ThreatOverrides
from advland.train import Trainer
from helpers import one_line_error, short_config


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
    Trainer(short_config(tmp_path, "name=c0", "objective=clean", "threat.eps=0", "threat.step_size=null", "epochs=1"),
            progress=False).fit()
    config = Run(tmp_path / "c0").config()
    attack = ThreatOverrides(eps=0.1).apply(build_threat(config))
    assert attack.step_size == pytest.approx(2.5 * 0.1 / config.threat.steps)
    assert main(["gradients", str(tmp_path / "c0"), "--n", "8"]) == 2
    one_line_error(capsys, "trained with eps 0", "--eps-linf")
