"""Time an epoch of AT against an epoch of AT with an EMA of the weights, interleaved in one process.

The two trainers share the config (the recipe digits/at by default, with any ``key=value`` overrides)
except ``ema.decay``; their epochs alternate, each side first in every other round, so that load from
other processes and the order hit both alike. Two
ratios are reported, median over the rounds: the training epoch alone (the EMA update after every
optimizer step), and training plus the epoch's validation (the EMA's weights are validated too,
which doubles the validation attack's cost). Because epoch times on a shared machine vary by more
than the update costs, the update is also timed alone (the median of 200 calls of
``WeightEMA.step``) and given as a share of the median optimizer step.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/ema_overhead.py [--config digits/at] [--rounds 6] [key=value ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from advland.callbacks import WeightAveraging
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
        for epoch in range(1, args.rounds + 1):  # ABBA: each side goes first in every other round
            names = list(trainers) if epoch % 2 else list(trainers)[::-1]
            for name in names:
                times[name].append(timed_epoch(trainers[name], epoch))
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
    print(update_share(trainers["at_ema"], medians["at"][0]))


def update_share(trainer: Trainer, epoch_seconds: float) -> str:
    """The EMA update timed alone (median of 200 calls) against the median optimizer step of the plain side."""
    ema = next(c for c in trainer.callbacks if isinstance(c, WeightAveraging)).ema
    calls = []
    for _ in range(200):
        start = time.perf_counter()
        ema.step(trainer.model)
        calls.append(time.perf_counter() - start)
    update, step = statistics.median(calls), epoch_seconds / len(list(trainer.batches(0)))
    n = sum(p.numel() for p in trainer.model.parameters())
    return (f"EMA update alone: {1e3 * update:.3f} ms for {n} parameters, {100 * update / step:.2f} % of a "
            f"{1e3 * step:.1f} ms optimizer step")


if __name__ == "__main__":
    main()
