"""The recipes shipped inside the package: ``recipes/<group>/<name>.yaml``, named ``<group>/<name>``.

``advland train digits/at`` and ``load_config("digits/at")`` find a recipe by name from any directory
(an existing path to a YAML file is always taken first). Every recipe says what it is in two
top-level keys that the config accepts: ``description`` (one line) and ``expected_time`` (the wall
time of the whole ``advland train`` on 2 CPU cores as measured, or ``GPU``). Sweeps live in the
group ``sweeps`` and may name a recipe as their ``base``.
"""

from __future__ import annotations

import difflib
from dataclasses import astuple, dataclass
from importlib import resources
from pathlib import Path
from typing import Optional

from ..config import ConfigError


class RecipeError(ConfigError):
    """Neither a file nor a shipped recipe."""


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def names() -> list[str]:
    """Every shipped recipe as ``group/name``, sorted (sweeps included)."""
    root = _root()
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.glob("*/*.yaml"))


def path(name: str) -> Path:
    """The YAML file of recipe ``name`` (``digits/at``; a trailing ``.yaml`` is accepted).

    Raises:
        RecipeError: one line naming the closest shipped recipes.
    """
    key = name.removesuffix(".yaml").strip("/")
    file = _root() / f"{key}.yaml"
    if "/" in key and file.is_file():
        return file
    known = names()
    close = difflib.get_close_matches(key, known, n=4, cutoff=0.5) or [k for k in known if key and key in k][:4]
    hint = f"close matches: {', '.join(close)}" if close else f"shipped: {', '.join(known[:6])}, ..."
    raise RecipeError(f"config error: no config file or recipe named {name!r}; {hint} (advland recipes lists them all)")


def resolve(target: str | Path) -> Path:
    """An existing file or directory as it is, else the recipe of that name."""
    candidate = Path(target)
    return candidate if candidate.exists() else path(str(target))


@dataclass(frozen=True)
class Recipe:
    """What ``advland recipes`` prints about one recipe."""

    name: str
    data: str
    model: str
    method: str
    expected_time: str
    description: str


def _method(config) -> str:
    parts = [config.objective.name]
    if config.perturb.name != "none":
        parts.append(config.perturb.name)
    if config.optimizer.name != "sgd":
        parts.append(config.optimizer.name)
    if config.schedule.eps != "constant":
        parts.append(f"eps {config.schedule.eps}")
    return "+".join(parts) + f" ({config.threat.norm} {config.threat.eps:.4g})"


def _time(expected: Optional[str], device: str) -> str:
    if expected:
        return expected
    return "GPU" if device == "cuda" else "not measured"


def describe(name: str) -> Recipe:
    """The listing line of one recipe (a sweep is described by its base recipe and grid size)."""
    from ..config import load_config

    file = path(name)
    if name.startswith("sweeps/"):
        from ..sweep import load_sweep

        spec = load_sweep(file)
        base = load_config(resolve(spec.base)) if spec.base else load_config()
        runs = 1
        for values in spec.grid.values():
            runs *= len(values)
        return Recipe(name, base.data.name, base.model.name, f"sweep: {runs} runs of {spec.base or 'defaults'}",
                      _time(spec.expected_time, base.device), spec.description or "")
    config = load_config(file)
    return Recipe(name, config.data.name, config.model.name, _method(config),
                  _time(config.expected_time, config.device), config.description or "")


def listing() -> list[Recipe]:
    """Every shipped recipe, described."""
    return [describe(name) for name in names()]


def table(rows: list[Recipe]) -> list[str]:
    """The rows as aligned text lines under a header line."""
    cells = [astuple(row) for row in [Recipe("recipe", "data", "model", "method", "time", "description"), *rows]]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(cells[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(cell, widths)), cell[-1]]).rstrip() for cell in cells]


def text(name: str) -> str:
    """The YAML text of a recipe (to copy and edit)."""
    return path(name).read_text()


__all__ = ["Recipe", "RecipeError", "describe", "listing", "names", "path", "resolve", "table", "text"]
