"""The built package, installed non-editable in a fresh virtual environment, works from any directory:
its recipes ship inside it (slow: builds a wheel, ~1-2 min). It passes with the system interpreter and
inside a virtual environment alike."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_recipes_from_anywhere(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")} | {"OMP_NUM_THREADS": "1"}

    def run(*cmd: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", tmp_path / "dist", ROOT)
    (wheel,) = (tmp_path / "dist").glob("advland-*.whl")
    # the dependencies (torch included) come from this interpreter's import path; nothing is downloaded. Inside a
    # virtual environment, --system-site-packages would reach the base interpreter's packages, not this one's,
    # so the new venv is also given this interpreter's path (after its own site-packages, where the wheel goes)
    run(sys.executable, "-m", "venv", "--system-site-packages", tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    own_site = run(bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    outer = [p for p in sys.path if p and Path(p).is_dir()]
    (Path(own_site) / "outer_interpreter.pth").write_text("\n".join(outer) + "\n")
    run(bin_dir / "python", "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--force-reinstall", wheel)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = run(bin_dir / "python", "-c", "import advland; print(advland.__file__)", cwd=elsewhere)
    assert where.startswith(str(tmp_path / "venv")), where
    listing = run(bin_dir / "advland", "recipes", cwd=elsewhere)
    assert "digits/at " in listing and "cifar10/preactresnet18_at " in listing
    run(bin_dir / "advland", "train", "digits/at", "epochs=1", "--no-progress", cwd=elsewhere)
    summary = json.loads((elsewhere / "runs" / "at" / "summary.json").read_text())
    assert 0.0 <= summary["test_robust_acc"] <= 1.0
