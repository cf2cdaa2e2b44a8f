"""The flags several ``advland`` commands share, declared once, and the objects they become.

* the model-source flags (``--model``, ``--model-kwargs``, ``--data``, ``--data-root``, ``--normalize``,
  ``--output-index``) become one :class:`advland.load.ModelSource` argument named ``source``;
* the attack flags of the analyses (``--norm``, ``--eps``, ``--attack-steps``, ``--step-size``) become one
  :class:`advland.threat.ThreatOverrides` argument named ``threat``; ``--threat-norm`` is the older spelling
  of ``--norm``, accepted with a one-line notice.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from typing import Any, Callable, Optional

import typer

from .errors import AdvlandError
from .load import ModelSource, parse_model_kwargs
from .radius import parse_radius
from .threat import ThreatOverrides

TARGET_HELP = ("A run directory, a checkpoint inside one, or a weights file advland did not write (.pt/.pth/"
                ".safetensors; give --model and --data, and the attack norm and eps).")
EXAMPLES = typer.Option(512, "--n", "--examples", help="Use the first n examples of the split (--examples: the same, "
                        "for torchrun, which takes --n as its own).")
WHICH = typer.Option("best", help="Checkpoint: best, last, init, ema (the EMA of the weights) or ema_best (the EMA at its validation peak).")
STACK = typer.Option(None, help="Points evaluated at once by vmap (default: as many as fit on a GPU, 1 on CPU, where "
                     "it measured slower).")


def split_option(default: str) -> Any:
    """``--split``: the split an analysis runs on."""
    return typer.Option(default, "--split", help="Split the analysis runs on: train, test or val.")


_MODEL_SOURCE_OPTIONS: dict[str, Any] = {
    "model": typer.Option(None, help="A registered model or package.module:factory (required for a "
                          "weights file; replaces a run's model)."),
    "model_kwargs": typer.Option(None, help="JSON object of the model factory's keyword arguments."),
    "data": typer.Option(None, help="Dataset the model was trained on (required for a weights file)."),
    "data_root": typer.Option(None, help="Folder holding the dataset's files."),
    "normalize": typer.Option(None, help="Input normalization put in front of the model, so that eps "
                              "stays in pixel units: none (default for a weights file), data, MEAN,STD or m1..mC,s1..sC."),
    "output_index": typer.Option(None, help="For a model returning a tuple, list or dict: the "
                                 "element (index or key) holding the logits."),
}
_THREAT_OPTIONS: dict[str, Any] = {  # name: (type, option)
    "norm": (str, typer.Option(None, "--norm", help="Attack norm: linf, l2 or l1 (default: the run's).")),
    "eps": (float, typer.Option(None, parser=parse_radius, help="Attack radius, e.g. 0.03 or 8/255 (default: the run's).")),
    "attack_steps": (int, typer.Option(None, help="PGD steps (default: the run's).")),
    "step_size": (float, typer.Option(None, parser=parse_radius, help="PGD step size (default: the run's, scaled with eps).")),
    "threat_norm": (str, typer.Option(None, hidden=True, help="Older spelling of --norm.")),
}


def notice(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _model_source(flags: dict[str, Any]) -> ModelSource:
    return ModelSource(**flags | {"model_kwargs": parse_model_kwargs(flags["model_kwargs"])})


DIRECTION_NORMS = ("filter", "layer", "none")
"""Values of landscape's --direction-norm, which older versions spelled --norm."""


@dataclass(frozen=True)
class AttackFlags(ThreatOverrides):
    """The attack flags, and a direction normalization given in the older spelling (``--norm filter``)."""

    direction_norm: Optional[str] = None


def _threat_overrides(flags: dict[str, Any]) -> AttackFlags:
    norm, direction = flags["norm"], None
    if norm in DIRECTION_NORMS:
        norm, direction = None, norm
        notice(f"--norm {direction} is now --direction-norm {direction} (--norm is the attack norm)")
    if flags["threat_norm"] is not None:
        notice("--threat-norm is now --norm (the attack norm, in every command); the old spelling goes away")
        if norm is not None:
            raise AdvlandError("give the attack norm once, with --norm (--threat-norm is its older spelling)")
        norm = flags["threat_norm"]
    return AttackFlags(norm, flags["eps"], flags["attack_steps"], flags["step_size"], direction)


def _takes(name: str, options: dict[str, Any], build: Callable[[dict[str, Any]], Any]):
    """Give a command the flags ``options`` (name: option, or name: (type, option); str by default); the command
    receives ``build(their values)`` as its argument ``name``."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = [p.replace(annotation=eval(p.annotation, command.__globals__) if isinstance(p.annotation, str) else p.annotation)
               for p in inspect.signature(command).parameters.values() if p.name != name]
        typed = {key: option if isinstance(option, tuple) else (str, option) for key, option in options.items()}
        added = [inspect.Parameter(key, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=Optional[kind])
                 for key, (kind, option) in typed.items()]

        @functools.wraps(command)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            return command(*args, **{name: build({key: kwargs.pop(key) for key in options})}, **kwargs)

        wrapper.__signature__ = inspect.Signature([*own, *added])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in [*own, *added]}
        del wrapper.__wrapped__  # typer reads the signature above, not the command's
        return wrapper

    return decorate


takes_model_source = _takes("source", _MODEL_SOURCE_OPTIONS, _model_source)
takes_threat = _takes("threat", _THREAT_OPTIONS, _threat_overrides)


def analysis_command(command: Callable[..., None]) -> Callable[..., None]:
    """An analysis command: it takes the model-source flags and the attack flags."""
    return takes_model_source(takes_threat(command))
