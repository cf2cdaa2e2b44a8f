"""What a resume may change: nothing that would make config.yaml describe weights it did not train.

``advland train ... --resume`` continues a run under the config it is given; the run's own
config.yaml is what ``eval``, the analyses and :func:`advland.load` read afterwards. A resume is
therefore refused when the two differ, with one line listing the changed keys. Not compared: the
keys that locate the run or say how to start it (``out_dir``, ``name``, ``resume``, ``overwrite``).
The one change allowed is a larger ``epochs``, and only with ``extend`` (``--extend``): the
extension is recorded (:func:`extension_record`) because schedules are functions of training
progress *relative to* ``epochs`` (piecewise decays at 50 % and 75 % of it, cosine over it, the
last cycle ending at it): epochs already trained followed the old total's schedule, later epochs
follow the new total's, so an extended run is not the run it would have been had it been
started with the new ``epochs``.
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .errors import AdvlandError

LOCATION_KEYS = frozenset({"out_dir", "name", "resume", "overwrite"})


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def config_changes(saved: Config, given: Config) -> dict[str, tuple[Any, Any]]:
    """Keys (dotted) whose value differs between the run's config and the given one: key -> (saved, given)."""
    old, new = _flat(saved.model_dump(mode="json")), _flat(given.model_dump(mode="json"))
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in LOCATION_KEYS]
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}


def describe_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changes.items())


def check_resume(run, config: Config, extend: bool = False) -> Config:
    """Refuse (one line) to resume ``run`` under a config that differs from its config.yaml, except a
    larger ``epochs`` when ``extend`` is given; return the run's config."""
    saved = run.config()
    changes = config_changes(saved, config)
    epochs = changes.get("epochs")
    if extend and epochs is not None and epochs[1] > epochs[0]:
        del changes["epochs"]
    if not changes:
        return saved
    hint = ("--extend only lets epochs grow" if extend else
            "pass --extend to train it for more epochs (only epochs may change)")
    raise AdvlandError(f"cannot resume {run.path} under a changed config ({describe_changes(changes)}): its "
                       f"config.yaml would no longer describe its weights; resume with the run's own config "
                       f"(advland train {run.path} --resume), {hint}, or start a new run with name=...")


def extension_record(at_epoch: int, old_epochs: int, new_epochs: int) -> dict[str, Any]:
    """The entry an extended resume adds to the run (state.pt, summary.json ``extensions``)."""
    return {"at_epoch": at_epoch, "epochs_before": old_epochs, "epochs_after": new_epochs,
            "note": f"epochs 1-{at_epoch} followed the schedules of epochs={old_epochs}, later epochs those of "
                    f"epochs={new_epochs} (schedules are relative to epochs)"}
