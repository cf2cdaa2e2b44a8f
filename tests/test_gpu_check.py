"""benchmarks/gpu_check.sh in its CPU dry-run mode: every step of the GPU check runs end to end at tiny sizes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_step():
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for line in ("== 1. tests marked cuda", "PGD-10 AT fp32:", "PGD-10 AT bf16:", "PGD-10 AT bf16+compile:",
                 "landscape clean 3x3", "landscape adversarial 2x2", "hessian top-5 eigenvalues", "gpu_check done"):
        assert line in done.stdout, line
