"""The catalog of shipped recipes: what ``advland recipes`` prints about each (data, model, method,
expected time, description), read from the recipes themselves (sweeps by their base recipe and grid)."""

from __future__ import annotations

from dataclasses import astuple, dataclass
from typing import Optional

from . import recipes
from .config import load_config
from .sweep import load_sweep


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
    file = recipes.path(name)
    if name.startswith("sweeps/"):
        spec = load_sweep(file)
        base = load_config(recipes.resolve(spec.base)) if spec.base else load_config()
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
    return [describe(name) for name in recipes.names()]


def table(rows: list[Recipe]) -> list[str]:
    """The rows as aligned text lines under a header line."""
    cells = [astuple(row) for row in [Recipe("recipe", "data", "model", "method", "time", "description"), *rows]]
    widths = [max(len(cell[i]) for cell in cells) for i in range(len(cells[0]) - 1)]
    return ["  ".join([*(c.ljust(w) for c, w in zip(cell, widths)), cell[-1]]).rstrip() for cell in cells]


__all__ = ["Recipe", "describe", "listing", "table"]
