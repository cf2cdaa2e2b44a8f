"""Time an epoch of AT against an epoch of AT with an EMA of the weights, interleaved in one process.

The two trainers share the config (the recipe digits/at by default, with any ``key=value`` overrides)
except ``ema.decay``; their epochs alternate so that load from other processes hits both alike. Two
ratios are reported, median over the rounds: the training epoch alone (the EMA update after every
optimizer step), and training plus the epoch's validation (the EMA's weights are validated too,
which doubles the validation attack's cost).

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/ema_overhead.py [--config digits/at] [--rounds 6] [key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from advland.config import load_config
from advland.run import Run
from advland.train import Trainer


def timed_epoch(trainer: Trainer, epoch: int) -> tuple[float, float]:
    """(seconds of the training epoch, seconds of training + validation with every callback's epoch end)."""
    start = time.perf_counter()
    record = {"epoch": epoch + 1, **trainer.train_epoch(epoch)}
    trained = time.perf_counter() - start
    record |= trainer.validate()
    for callback in trainer.callbacks:
        callback.on_epoch_end(trainer, epoch + 1, record)
    return trained, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits/at")
    parser.add_argument("--rounds", type=int, default=6, help="timed epochs of each side")
    parser.add_argument("--decay", type=float, default=0.999)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of both sides")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, extra in (("at", []), ("at_ema", [f"ema.decay={args.decay}"])):
            config = load_config(args.config, [*args.overrides, *extra, f"out_dir={tmp}", f"name={name}"])
            trainers[name] = Trainer(config, run=Run(Path(tmp) / name), progress=False)
            for callback in trainers[name].callbacks:
                callback.on_fit_start(trainers[name])
        for trainer in trainers.values():  # warm-up epoch, not timed
            timed_epoch(trainer, 0)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in trainers}
        for epoch in range(1, args.rounds + 1):
            for name, trainer in trainers.items():
                times[name].append(timed_epoch(trainer, epoch))
    print(f"config {args.config} {' '.join(args.overrides)}, {torch.get_num_threads()} torch threads, "
          f"{args.rounds} interleaved epochs each, EMA decay {args.decay}")
    medians = {}
    for name, values in times.items():
        medians[name] = [statistics.median(v[i] for v in values) for i in (0, 1)]
        print(f"  {name:<7} median train {medians[name][0]:.3f} s/epoch, train + validation {medians[name][1]:.3f} s "
              f"(train: {', '.join(f'{v[0]:.2f}' for v in values)})")
    for i, what in enumerate(("training epoch", "training + validation")):
        ratio = medians["at_ema"][i] / medians["at"][i]
        print(f"EMA / plain, {what}: {ratio:.3f}  ({100 * (ratio - 1):+.1f} %)")


if __name__ == "__main__":
    main()
