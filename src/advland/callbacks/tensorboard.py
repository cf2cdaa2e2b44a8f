"""TensorBoard logging of a run (config ``log.tensorboard=true``), a Trainer callback.

Every number an epoch adds to metrics.jsonl is written as a scalar under ``RUN/tensorboard/`` at
step = epoch: the training and validation numbers, and whatever landscape tracking measured
(a list such as ``hessian_top_eigs`` becomes ``hessian_top_eigs/0``, ``/1``, ...; the points of
tracked 1-D curves are left to the curve files). ``seconds`` is only known once an epoch is over,
so it is written with the next epoch (the last one at the end). At the end the test numbers of
summary.json become scalars at the last epoch, and every figure of the run (``*.png`` in the run
directory and in ``landscape/``) an image. On resume, events after the resumed epoch are purged.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any

import matplotlib.image

from ..errors import AdvlandError
from .base import Callback

SKIPPED_PREFIXES = ("curve_clean_loss", "curve_adv_loss")  # the points of tracked curves (saved as files)


def _scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a record as TensorBoard tags (lists indexed); the epoch itself is the step."""
    out: dict[str, float] = {}
    for key, value in record.items():
        if key == "epoch" or key.startswith(SKIPPED_PREFIXES) or isinstance(value, bool):
            continue
        if isinstance(value, Real) and math.isfinite(value):
            out[key] = float(value)
        elif isinstance(value, (list, tuple)) and all(isinstance(v, Real) and not isinstance(v, bool) for v in value):
            out |= {f"{key}/{i}": float(v) for i, v in enumerate(value) if math.isfinite(v)}
    return out


class TensorBoardLogger(Callback):
    """Writes a run's per-epoch numbers, test numbers and figures to ``RUN/tensorboard/``."""

    def __init__(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise AdvlandError("log.tensorboard=true needs the tensorboard package: "
                               "pip install 'advland[tensorboard]' (or set log.tensorboard=false)") from None
        self._writer_class = SummaryWriter
        self._writer: Any = None

    def _open(self, trainer: Any) -> Any:
        if self._writer is None:
            resumed = trainer.state.epoch if trainer.config.resume else None
            self._writer = self._writer_class(str(trainer.run.path / "tensorboard"),
                                              purge_step=None if resumed is None else resumed + 1)
        return self._writer

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        writer = self._open(trainer)
        for tag, value in _scalars(record).items():
            writer.add_scalar(tag, value, epoch)
        history = trainer.state.history
        if history and "seconds" in history[-1]:
            writer.add_scalar("seconds", history[-1]["seconds"], history[-1]["epoch"])
        writer.flush()

    def on_train_end(self, trainer: Any, summary: dict[str, Any]) -> None:
        writer = self._open(trainer)
        history = trainer.state.history
        step = history[-1]["epoch"] if history else 0
        if history and "seconds" in history[-1]:
            writer.add_scalar("seconds", history[-1]["seconds"], step)
        for tag, value in _scalars(summary).items():
            writer.add_scalar(f"test/{tag}", value, step)
        run = trainer.run.path
        for png in sorted([*run.glob("*.png"), *(run / "landscape").glob("*.png")]):
            image = matplotlib.image.imread(str(png))[..., :3]
            writer.add_image(str(png.relative_to(run).with_suffix("")), image, step, dataformats="HWC")
        writer.close()
        self._writer = None
