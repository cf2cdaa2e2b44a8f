"""Attack radii in the units people write: ``8/255`` as well as ``0.0314``, and radii that cannot be meant refused.

Inputs are in [0, 1] (normalization lives inside the model), so a radius is in pixel units of that box.
Papers write L-inf radii as fractions of 255 (``8/255``); a number such as ``8`` there is almost always
``8/255`` typed without its denominator. Under L-inf, a radius of 0.5 or more lets the attacker move
every input to the same mid-gray image (every pixel 0.5), so every model is at chance or below; a
radius of 1 or more is the whole [0, 1] box. Under L2 the same happens at ``sqrt(d)/2`` and under L1 at
``d/2`` for inputs of ``d`` values. Such radii are refused in one line with the likely meaning, unless
the caller says it means them (``allow_large``: the config key ``threat.allow_large_eps``, the flag
``--allow-large-eps``).
"""

from __future__ import annotations

import math
import re
from typing import Optional, Union

from .errors import AdvlandError

_FRACTION = re.compile(r"^\s*([0-9.eE+-]+)\s*/\s*([0-9.eE+-]+)\s*$")


class RadiusError(AdvlandError):
    """A radius that is not a number or cannot be meant (one line, with the likely meaning)."""


def parse_radius(value: Union[str, float, int, None], what: str = "eps") -> Optional[float]:
    """A radius given as a number or as a fraction ``A/B`` (e.g. ``8/255``) as a float; None stays None."""
    if value is None or isinstance(value, bool):
        if isinstance(value, bool):
            raise RadiusError(f"{what} must be a number such as 0.03 or 8/255, got {value!r}")
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        match = _FRACTION.match(text)
        try:
            number = float(match.group(1)) / float(match.group(2)) if match else float(text)
        except (ValueError, ZeroDivisionError):
            raise RadiusError(f"{what} must be a number such as 0.03 or a fraction such as 8/255, got {text!r}") from None
    if not math.isfinite(number) or number < 0:
        raise RadiusError(f"{what} must be a finite number >= 0, got {value!r}")
    return number


def largest_meaningful(norm: str, dim: Optional[int] = None) -> Optional[float]:
    """The radius from which every input can reach the mid-gray image (0.5 everywhere): 0.5 under L-inf,
    sqrt(d)/2 under L2 and d/2 under L1 (None when d is unknown)."""
    if norm == "linf":
        return 0.5
    if dim is None:
        return None
    return math.sqrt(dim) / 2 if norm == "l2" else dim / 2


def check_radius(norm: str, eps: float, *, allow_large: bool = False, dim: Optional[int] = None,
                 what: str = "eps", allow_hint: str = "threat.allow_large_eps=true") -> float:
    """``eps`` if it is a radius one can mean under ``norm`` for inputs of ``dim`` values; otherwise a
    one-line :class:`RadiusError` saying what the radius covers and what was probably meant."""
    limit = largest_meaningful(norm, dim)
    if allow_large or limit is None or eps < limit:
        return eps
    if norm == "linf" and eps >= 1:
        guess = f"; did you mean {eps:g}/255 = {eps / 255:.4f}?" if eps <= 255 else ""
        covers = f"{eps:g} means the whole [0, 1] box (inputs are in [0, 1]){guess}"
    else:
        covers = (f"{eps:g} lets the attacker move every input to the same mid-gray image "
                  f"(the limit under {norm} is {limit:.4g}), so every model is at chance")
    raise RadiusError(f"{what} {covers} (to mean it, give {allow_hint})")
