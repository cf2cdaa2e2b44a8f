"""Strict JSON: every JSON file advland writes parses with any JSON parser.

Python's ``json`` writes the non-standard tokens ``NaN``, ``Infinity`` and ``-Infinity`` for floats
that are not finite; strict parsers (browsers, ``jq``, most languages) reject them. advland writes
such a value as ``null``, which in its files means "not defined for this run": e.g. the validation
accuracies of a run without a validation split, or a standard error from fewer than two samples.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_or_null(data: Any) -> Any:
    """``data`` with every non-finite float (at any depth of dicts, lists and tuples) replaced by None,
    tuples as lists and dict keys as strings."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {str(key): finite_or_null(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_null(value) for value in data]
    return data


def dumps(data: Any, **kwargs: Any) -> str:
    """``json.dumps`` that writes non-finite floats as null and never emits NaN/Infinity tokens."""
    return json.dumps(finite_or_null(data), allow_nan=False, **kwargs)
