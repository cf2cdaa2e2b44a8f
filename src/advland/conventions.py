"""The conventions a model must follow for its robustness numbers to mean anything, checked, not assumed.

* Inputs are in [0, 1] (pixel units; normalization lives inside the model), so that eps is in the
  units papers use. :func:`check_inputs` refuses anything else in one line.
* The model returns one logits tensor of shape (N, classes). A tuple, a list or a dict (models that
  also return features or auxiliary heads), or another shape, is refused in one line naming what was
  found and the fix (``--output-index`` picks an element; :func:`select_output` does it in Python).
* Outputs that are probabilities (every row in [0, 1] summing to 1) or log-probabilities make
  gradient attacks weak (softmax saturates), so a robust accuracy measured on them overstates
  robustness: :func:`output_kind` says which they look like, for the sanity checks.
* A model whose outputs differ between two identical forward passes in eval mode is randomized
  (dropout or noise at test time): :func:`is_randomized`; its robust accuracy needs an attack that
  takes the expectation over the randomness (AutoAttack's ``rand`` version).
"""

from __future__ import annotations

from typing import Any, Union

import torch
from torch import nn

from .errors import AdvlandError

RANDOMIZED_TOLERANCE = 1e-4
"""Largest L2 distance of two passes' unit-normalized outputs of one example still taken as equal
(AutoAttack's own check uses the same)."""


class ConventionError(AdvlandError):
    """A model or its inputs break a convention robustness evaluation relies on (one line, with the fix)."""


class _Pick:
    """A forward hook replacing a tuple, list or dict output by its element ``index``."""

    def __init__(self, index: Union[int, str]):
        self.index = index

    def __call__(self, module: nn.Module, inputs: Any, output: Any) -> Any:
        return output[self.index] if isinstance(output, (tuple, list, dict)) else output


def select_output(model: nn.Module, index: Union[int, str, None]) -> nn.Module:
    """Make ``model`` return the element ``index`` of its tuple, list or dict output (the logits); its
    parameters and state dict keys are unchanged. ``None`` leaves it as it is."""
    if index is not None:
        model.register_forward_hook(_Pick(index))
    return model


def parse_output_index(text: str | None) -> Union[int, str, None]:
    """``--output-index 0`` as 0 (a tuple's element), anything else as a dict key."""
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def check_inputs(x: torch.Tensor, what: str = "inputs") -> None:
    """Refuse inputs outside [0, 1] (attack radii are in pixel units of that box)."""
    if x.numel() == 0:
        return
    low, high = x.min().item(), x.max().item()
    if low < 0 or high > 1:
        raise ConventionError(f"{what} must be in [0, 1] (pixel units; found values in [{low:.3g}, {high:.3g}]); "
                              f"give unnormalized data and put the normalization inside the model (--normalize)")


def _describe(output: Any) -> str:
    if isinstance(output, torch.Tensor):
        return f"a tensor of shape {tuple(output.shape)}"
    if isinstance(output, (tuple, list)):
        parts = ", ".join(f"[{i}] {_describe(o)}" for i, o in enumerate(output[:4]))
        return f"a {type(output).__name__} of {len(output)} ({parts})"
    if isinstance(output, dict):
        return f"a dict with keys {', '.join(map(str, list(output)[:6]))}"
    return f"a {type(output).__name__}"


def check_outputs(model: nn.Module, x: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """The model's output on a small batch ``x`` if it is an (N, classes) logits tensor; otherwise a one-line
    :class:`ConventionError` naming what was found and how to fix it."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    with torch.no_grad():
        output = model(x.to(device))
    if isinstance(output, (tuple, list, dict)):
        tensors = (list(output.items()) if isinstance(output, dict) else list(enumerate(output)))
        likely = [k for k, o in tensors if isinstance(o, torch.Tensor) and o.dim() == 2 and o.shape[0] == len(x)
                  and (num_classes is None or o.shape[1] == num_classes)]
        pick = f"--output-index {likely[0]}" if likely else "--output-index N (the element holding the logits)"
        raise ConventionError(f"the model returns {_describe(output)}, not one logits tensor (N, classes); "
                              f"pick the logits with {pick}, or wrap the model so that it returns them")
    if not isinstance(output, torch.Tensor):
        raise ConventionError(f"the model returns {_describe(output)}, not a logits tensor (N, classes); "
                              f"wrap it so that forward returns the logits")
    if output.dim() != 2 or output.shape[0] != len(x):
        raise ConventionError(f"the model returns {_describe(output)} for {len(x)} inputs, not logits (N, classes); "
                              f"flatten or select its output so that forward returns ({len(x)}, classes)")
    if num_classes is not None and output.shape[1] != num_classes:
        raise ConventionError(f"the model returns {output.shape[1]} scores per input but the data has {num_classes} "
                              f"classes; check --model, --model-kwargs and --data")
    return output


def output_kind(output: torch.Tensor, tolerance: float = 1e-5) -> str:
    """``probabilities`` (rows in [0, 1] summing to 1), ``log-probabilities`` (rows whose exp sums to 1)
    or ``logits``."""
    output = output.detach().double()
    if output.min() > -tolerance and output.max() < 1 + tolerance and ((output.sum(1) - 1).abs() < tolerance).all():
        return "probabilities"
    if output.max() <= tolerance and ((output.exp().sum(1) - 1).abs() < 1e-4).all():
        return "log-probabilities"
    return "logits"


def is_randomized(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether two identical forward passes of ``x`` in eval mode give different outputs."""
    device = next(iter(model.parameters()), torch.empty(0)).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            first, second = model(x.to(device)), model(x.to(device))
    finally:
        model.train(was_training)
    unit = [o.double().reshape(len(x), -1) for o in (first, second)]
    unit = [o / (o.norm(dim=1, keepdim=True) + 1e-10) for o in unit]
    return bool((unit[0] - unit[1]).norm(dim=1).max().item() > RANDOMIZED_TOLERANCE)
