"""The recipes shipped inside the package: ``recipes/<group>/<name>.yaml``, named ``<group>/<name>``.

``advland train digits/at`` and ``load_config("digits/at")`` find a recipe by name from any directory
(an existing path to a YAML file is always taken first). Every recipe says what it is in two
top-level keys that the config accepts: ``description`` (one line) and ``expected_time`` (the wall
time of the whole ``advland train`` on 2 CPU cores as measured, or ``GPU``). Sweeps live in the
group ``sweeps`` and may name a recipe as their ``base``. What ``advland recipes`` prints about them
(data, model, method, time) is :mod:`advland.catalog`.
"""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

from ..errors import ConfigError


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


def text(name: str) -> str:
    """The YAML text of a recipe (to copy and edit)."""
    return path(name).read_text()


__all__ = ["RecipeError", "names", "path", "resolve", "text"]
