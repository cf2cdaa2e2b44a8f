"""Helpers shared by the tests of run files and faults: a short digits run, one-line error checks, strict JSON."""

from __future__ import annotations

import json

import torch

from advland.config import load_config

FAST = ["data.batch_size=256", "threat.steps=2", "threat.step_size=0.1", "eval.steps=2", "eval.test_n=60"]
"""Overrides that make a digits/at run take a few seconds."""


def short_config(tmp_path, *extra):
    """digits/at for 2 epochs with :data:`FAST`, writing under ``tmp_path``."""
    return load_config("digits/at", [f"out_dir={tmp_path}", "epochs=2", *FAST, *extra])


def one_line_error(capsys, *fragments):
    """Assert stderr is one 'error: ...' line without a traceback and contains every fragment."""
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def strict_json(text):
    """Parse JSON refusing the NaN/Infinity tokens that strict parsers reject."""
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")
    return json.loads(text, parse_constant=refuse)


def files_of(run_dir):
    """Every file under ``run_dir`` with its bytes."""
    return {p.relative_to(run_dir): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


def bn_mlp():
    """A user model on digits (1x8x8 inputs) with BatchNorm and dropout."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32),
                               torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(32, 10))
