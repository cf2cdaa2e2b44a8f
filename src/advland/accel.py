"""Precision, compilation and memory format of training: one object built from the config.

:class:`Accel` prepares the model once and hands the trainer three things:

* :meth:`Accel.prepare` returns the *training forward*: a module sharing the model's parameters
  whose forward runs under autocast (``precision`` bf16 or fp16), optionally through
  ``torch.compile`` and in channels-last layout, and returns **fp32 logits**, so that every loss
  and attack objective computed on them (cross-entropy, KL, CW margins) is taken in fp32. The
  trainer and the training attack call this module; neither knows the precision.
* :attr:`Accel.scaler`: a ``torch.amp.GradScaler`` for the weight gradients, enabled for fp16 only
  (disabled it is the identity: ``scale(loss)`` is ``loss``, ``step(opt)`` is ``opt.step()``).
* :attr:`Accel.attack_scale`: the factor the attack multiplies its objective by before
  ``autograd.grad``. Under fp16 the backward pass through the network runs in half precision,
  whose smallest subnormal is 6e-8: the input gradient of a confidently classified example
  flushes to zero and ``sign(0)`` leaves its pixels unmoved (an accidental gradient masking).
  Every ascent step is invariant to a positive rescaling of the gradient (L∞: its sign; L2, L1:
  normalized per example), so the attack scales its (sum-reduced) objective by 2**10 and loses
  nothing. 1 for fp32 and bf16 (bf16 has the exponent range of fp32).

BatchNorm running statistics stay fp32 buffers (autocast runs the convolutions and matrix
products in reduced precision; batch norm takes its reduced-precision input with fp32 statistics).

Compilation covers the model only; the attack loop around it stays eager (``autograd.grad``
through a compiled module, not inside compiled code). Batch shapes are kept fixed by dropping the
last partial training batch (:attr:`Accel.fixed_shapes`). The compile cost is paid in
:meth:`Accel.warm_up` before the first epoch (every graph the training loop runs, see there),
timed, logged once and kept out of the epoch ``seconds``; if compiling fails there (no compiler,
unsupported model), one warning line is logged and the run continues uncompiled.

Validation, the test evaluation, ``advland eval`` and AutoAttack run at ``eval.precision``
(fp32 by default) on the plain model: reported robustness is never measured in reduced precision
unless asked for.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any, ContextManager, Literal

import torch
from torch import nn

from .attacks import frozen

Precision = Literal["fp32", "bf16", "fp16"]
DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
FP16_ATTACK_SCALE = 2.0**10
"""Objective scale of the fp16 attack: per-example logit gradients of CE are at most 1 in size, so
2**10 lifts gradients down to 1e-10 above fp16's subnormal floor with ample room below its maximum."""

log = logging.getLogger("advland")


def autocast(device: torch.device, precision: Precision) -> ContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (no context for fp32)."""
    dtype = DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def attack_scale(precision: Precision) -> float:
    """The factor a training attack multiplies its objective by before taking the input gradient."""
    return FP16_ATTACK_SCALE if precision == "fp16" else 1.0


class MixedPrecision(nn.Module):
    """``model`` called under autocast (and in channels-last layout), returning fp32 logits.

    It holds the module that runs (compiled or not) and shares every parameter with ``model``.
    """

    def __init__(self, model: nn.Module, runner: nn.Module, device: torch.device, precision: Precision,
                 channels_last: bool):
        super().__init__()
        self.model = model
        self._runner = [runner]  # not a submodule: the state dict stays the model's
        self.device, self.precision, self.channels_last = device, precision, channels_last

    @property
    def runner(self) -> nn.Module:
        return self._runner[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            return self.runner(x).float()


class Accel:
    """Precision, compilation and memory format of one training run (see the module docstring).

    Args:
        device: the training device.
        precision: fp32, bf16 or fp16.
        compile: compile the model with ``torch.compile``.
        channels_last: "auto" (on for CUDA, off on CPU, where it measured slower for the small
            models here, docs/performance.md), True or False.
    """

    def __init__(self, device: torch.device, precision: Precision = "fp32", compile: bool = False,
                 channels_last: bool | Literal["auto"] = "auto"):
        self.device, self.precision, self.compile = device, precision, compile
        self.channels_last = device.type == "cuda" if channels_last == "auto" else bool(channels_last)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.attack_scale = attack_scale(precision)
        self.compile_seconds: float | None = None
        self._forward: MixedPrecision | None = None

    @classmethod
    def from_config(cls, config, device: torch.device) -> "Accel":
        return cls(device, config.precision, config.compile, config.channels_last)

    @property
    def fixed_shapes(self) -> bool:
        """Whether training batches must all have the same shape (a compiled model: the last partial one is dropped)."""
        return self.compile

    def prepare(self, model: nn.Module) -> nn.Module:
        """The training forward of ``model`` (moved to channels-last if enabled; compiled if asked)."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        runner = torch.compile(model, dynamic=False) if self.compile else model
        self._forward = MixedPrecision(model, runner, self.device, self.precision, self.channels_last)
        return self._forward

    def warm_up(self, x: torch.Tensor, y: torch.Tensor, attack_mode: str = "eval") -> None:
        """Compile now, on one batch, every graph the training loop runs: the weight update's forward and
        backward (train mode, inputs without gradient), the attack's (in ``attack_mode``, the config's
        ``threat.bn_mode``; gradient to the inputs, parameters frozen) and
        the no-grad eval forward of the per-step statistics; timed and logged once, so that no compilation is
        left for the first epoch to pay. On failure log one warning line and fall back to the plain model.
        The model's state and the RNG are left as they were. A no-op without compilation."""
        forward = self._forward
        if not self.compile or forward is None:
            return
        model = forward.model
        saved = {k: v.clone() for k, v in model.state_dict().items()}
        rng = torch.get_rng_state()
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else None
        flags = {m: m.training for m in model.modules()}
        start = time.perf_counter()
        try:
            params = [p for p in model.parameters() if p.requires_grad]
            model.train(True)  # the weight update
            torch.autograd.grad(nn.functional.cross_entropy(forward(x.detach()), y), params)
            model.train(attack_mode == "train")  # the attack (parameters frozen, as attacks.pgd freezes them)
            inputs = x.detach().clone().requires_grad_(True)
            with frozen(forward):
                torch.autograd.grad(nn.functional.cross_entropy(forward(inputs), y), [inputs])
            model.train(False)
            with torch.no_grad():  # the statistics' clean forward
                forward(x.detach())
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.compile_seconds = time.perf_counter() - start
            log.warning("advland: compiled the model in %.1f s (not counted in epoch seconds)", self.compile_seconds)
        except Exception as error:  # noqa: BLE001 - any compiler failure means: run uncompiled
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log.warning("advland: torch.compile is unavailable here (%s); training uncompiled", first[:200])
            forward._runner[0] = model
            self.compile = False
        finally:
            for module, flag in flags.items():
                module.training = flag
            model.load_state_dict(saved)
            torch.set_rng_state(rng)
            if cuda_rng is not None:
                torch.cuda.set_rng_state_all(cuda_rng)



def evaluation_model(model: nn.Module, device: torch.device, precision: Precision) -> nn.Module:
    """``model`` as evaluations call it at ``eval.precision``: the model itself at fp32, else under autocast
    with fp32 logits (uncompiled, NCHW)."""
    return model if DTYPES[precision] is None else MixedPrecision(model, model, device, precision, False)
