"""A registry of model factories, filled by the ``@register_model`` decorator (as in timm).

A factory is ``fn(*, input_shape, num_classes, **kwargs) -> nn.Module``; ``input_shape`` is per
example, channels first: ``(C, H, W)`` images, ``(C, L)`` 1-D signals, ``(D,)`` vectors. A name
``package.module:factory`` is any importable callable returning an ``nn.Module`` (given
``input_shape``/``num_classes`` only when it accepts them). Models take
inputs in [0, 1]; ``create_model`` puts any mean/std normalization inside the returned model, so
that attack budgets ε are always in pixel units.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Sequence

from torch import nn

from ..errors import AdvlandError
from .normalize import Normalize

Factory = Callable[..., nn.Module]

_REGISTRY: dict[str, Factory] = {}


class ModelError(AdvlandError, ValueError):
    """A model cannot be registered or built as asked (one-line message)."""


def register_model(name: str) -> Callable[[Factory], Factory]:
    """Decorator registering ``fn(*, input_shape, num_classes, **kwargs)`` under ``name``."""

    def decorator(factory: Factory) -> Factory:
        if name in _REGISTRY:
            raise ModelError(f"model {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorator


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_REGISTRY)


def _accepted_kwargs(factory: Factory) -> list[str] | None:
    """Keyword arguments a factory takes, input_shape/num_classes included (None: any)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def resolve_factory(name: str) -> Factory:
    """The registered factory ``name``, or the callable ``package.module:attribute`` imported."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if ":" not in name:
        raise ModelError(f"unknown model {name!r}; available: {', '.join(list_models())}, "
                         f"or package.module:factory for your own")
    module_name, _, attribute = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise ModelError(f"cannot import model factory {name!r} ({type(error).__name__}: {error}); "
                         f"give package.module:callable importable from here") from None
    if not callable(factory):
        raise ModelError(f"{name!r} is not callable; give a function or class returning an nn.Module")
    return factory


def create_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **kwargs: object,
) -> nn.Module:
    """Build the registered model ``name``; with mean/std, return ``Sequential(Normalize, net)``.

    The result always takes inputs in [0, 1]. ``mean``/``std`` have one entry per channel
    (``input_shape[0]``) or a single entry for all.
    """
    factory = resolve_factory(name)
    accepted = _accepted_kwargs(factory)
    if accepted is not None and (unknown := [k for k in kwargs if k not in accepted]):
        own = [k for k in accepted if k not in ("input_shape", "num_classes")]
        raise ModelError(
            f"model {name!r} got unknown argument(s) {', '.join(unknown)}; "
            f"accepted: {', '.join(own) or 'none'}"
        )
    input_shape = tuple(int(s) for s in input_shape)
    normalize = None if mean is None and std is None else _normalize(mean, std, input_shape[0])
    shape = {"input_shape": input_shape, "num_classes": int(num_classes)}
    net = factory(**{k: v for k, v in shape.items() if accepted is None or k in accepted}, **kwargs)
    if not isinstance(net, nn.Module):
        raise ModelError(f"model factory {name!r} returned {type(net).__name__}, not an nn.Module")
    return net if normalize is None else nn.Sequential(normalize, net)


def _normalize(mean: Sequence[float] | None, std: Sequence[float] | None, channels: int) -> Normalize:
    """Check mean/std against the channel count and build the Normalize layer."""
    if mean is None or std is None:
        raise ModelError("give both mean and std, or neither")
    if len(mean) != len(std) or len(mean) not in (1, channels):
        raise ModelError(f"mean/std need 1 or {channels} entries each; got {len(mean)} and {len(std)}")
    try:
        return Normalize(mean, std)
    except ValueError as err:
        raise ModelError(str(err)) from None

def image_shape(input_shape: tuple[int, ...], name: str) -> tuple[int, int, int]:
    """Check that ``input_shape`` is ``(C, H, W)`` with H, W >= 8 and return it."""
    if len(input_shape) != 3 or min(input_shape[1:]) < 8:
        raise ModelError(f"{name} needs input_shape (C, H, W) with H, W >= 8; got {input_shape}")
    c, h, w = input_shape
    return c, h, w
