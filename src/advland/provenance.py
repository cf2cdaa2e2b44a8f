"""Where a result comes from: advland's version, the code's commit, torch, the device, the CPU, threads, the date.

Recorded in every reproduce report (``findings.json``'s ``meta``) and in every run a reproduce suite trains
(``RUN/provenance.json``), so that a cached run trained by other code can be named.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

SOURCE = Path(__file__).resolve().parent


def source_hash() -> str:
    """SHA-256 over advland's own Python files (names and contents): the same exactly when the code is the same,
    committed or not, installed from a checkout or a wheel."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE.rglob("*.py")):
        digest.update(str(path.relative_to(SOURCE)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> dict[str, Any]:
    """advland's version, the hash of its source files, and the git commit of its source tree with whether it
    had uncommitted changes (``commit`` None when the package is not a git checkout, e.g. installed from a wheel)."""
    try:
        version = metadata.version("advland")
    except metadata.PackageNotFoundError:
        version = None
    commit = dirty = None
    try:
        top = subprocess.run(["git", "-C", str(SOURCE), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        commit = subprocess.run(["git", "-C", top, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                check=True).stdout.strip()
        status = subprocess.run(["git", "-C", top, "status", "--porcelain", "--untracked-files=no", "--", "src"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        dirty = bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return {"advland": version, "commit": commit, "dirty": dirty, "source_hash": source_hash()}


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(device: str) -> dict[str, Any]:
    """Everything that says where and with what a result was computed (strict-JSON ready)."""
    cuda = device.startswith("cuda") and torch.cuda.is_available()
    return {**code_version(), "torch": torch.__version__, "python": platform.python_version(), "device": device,
            "gpu": torch.cuda.get_device_name() if cuda else None, "cpu": cpu_model(),
            "threads": torch.get_num_threads(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds")}
