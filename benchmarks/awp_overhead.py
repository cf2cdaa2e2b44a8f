"""Time an epoch of AT against an epoch of AT + AWP, interleaved in one process, and print the ratio.

The two trainers share the config (the recipe digits/at by default) except ``perturb``; their epochs
alternate (AT, AWP, AT, AWP, ...) so that load from other processes hits both alike. Only the training
epoch is timed (no validation). The ratio reported is median(AWP epoch) / median(AT epoch); the official
AWP logs show +9 % on a GPU (the AWP paper).

    PYTHONPATH=src python benchmarks/awp_overhead.py [--config digits/at] [--rounds 6]
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


def epoch_seconds(trainer: Trainer, epoch: int) -> float:
    start = time.perf_counter()
    trainer.train_epoch(epoch)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits/at")
    parser.add_argument("--rounds", type=int, default=6, help="timed epochs of each method")
    parser.add_argument("--gamma", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {}
        for name, extra in (("at", ["perturb=none"]), ("at_awp", ["perturb=awp", f"perturb.gamma={args.gamma}"])):
            config = load_config(args.config, [*extra, "perturb.warmup_epochs=0", f"out_dir={tmp}", f"name={name}"])
            trainers[name] = Trainer(config, run=Run(Path(tmp) / name), progress=False)
        for trainer in trainers.values():  # warm-up epoch, not timed
            trainer.train_epoch(0)
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for epoch in range(1, args.rounds + 1):
            for name, trainer in trainers.items():
                times[name].append(epoch_seconds(trainer, epoch))
    at, awp = (statistics.median(times[n]) for n in ("at", "at_awp"))
    print(f"config {args.config}, {torch.get_num_threads()} torch threads, {args.rounds} interleaved epochs each")
    for name, values in times.items():
        print(f"  {name:<7} median {statistics.median(values):.3f} s/epoch  ({', '.join(f'{v:.2f}' for v in values)})")
    print(f"AWP / AT epoch time: {awp / at:.3f}  (+{100 * (awp / at - 1):.1f} %)")


if __name__ == "__main__":
    main()
