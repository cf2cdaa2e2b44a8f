"""PGD-10 adversarial-training steps, advland against a plain torchattacks loop, side by side in one process.

Every side trains its own copy of the same initial weights on the same minibatches (PGD-10, L∞,
random start, eval-mode attack, SGD step on CE of the adversarial batch):

* ``torchattacks``: ``torchattacks.PGD`` + the usual three lines of training, fp32 (the reference);
* ``bare``: a hand-written loop, parameters frozen while attacking (input gradients only), fp32:
  what a step costs with no framework around it;
* ``advland fp32``, ``fp32+compile``, ``bf16``, ``bf16+compile``: ``Trainer.train_step`` and the
  per-step statistics (``Trainer.measure``: for AT one extra no-grad clean forward), built from the config
  keys ``precision`` and ``compile``; compile time is paid before timing and printed;
* ``advland fp32 no-measure``: ``train_step`` alone, to price the clean forward of ``Trainer.measure``.

The sides alternate within each round (so load from other processes hits all of them alike); each
round times ``--steps`` steps per side. Printed: per side the median seconds per step, and
the ratio torchattacks / side per round as median [min, max] over the rounds.

    PYTHONPATH=src python benchmarks/bench_train.py --model preact_resnet18 --batch 32
    PYTHONPATH=src python benchmarks/bench_train.py --model cnn_small --data digits --batch 64
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from advland import data as datasets
from advland.build import DataSplits, build_model
from advland.config import load_config
from advland.run import Run
from advland.train import EpochMeter, Trainer

from common import environment

EPS, STEPS = 8 / 255, 10
ALPHA = 2.5 * EPS / STEPS


def problem(name: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` training examples: the real digits, or CIFAR-shaped uniform noise with random labels."""
    if name == "digits":
        x, y = datasets.load("digits", "train", val_fraction=0.0)
        return x[:n], y[:n]
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def torchattacks_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Callable:
    import torchattacks

    attack = torchattacks.PGD(model, eps=EPS, alpha=ALPHA, steps=STEPS, random_start=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        model.train()
        x_adv = attack(x, y)  # torchattacks puts the model in eval mode while attacking
        loss = F.cross_entropy(model(x_adv), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def bare_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> Callable:
    params = list(model.parameters())

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        model.eval()
        for p in params:
            p.requires_grad_(False)
        delta = torch.empty_like(x).uniform_(-EPS, EPS)
        for _ in range(STEPS):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(F.cross_entropy(model((x + delta).clamp(0, 1)), y, reduction="sum"), delta)
            delta = (delta.detach() + ALPHA * grad.sign()).clamp(-EPS, EPS)
        for p in params:
            p.requires_grad_(True)
        model.train()
        loss = F.cross_entropy(model((x + delta).clamp(0, 1)), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def advland_step(trainer: Trainer, measure: bool) -> Callable:
    threat = trainer.threat
    meter = EpochMeter(trainer.device)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        if measure:
            trainer.step(x, y, threat, meter)
        else:
            trainer.train_step(x, y, threat)

    return step


def make_trainer(args, model: torch.nn.Module, x, y, tmp: Path, name: str, extra: list[str]) -> Trainer:
    config = load_config(None, [f"data.name={args.dataset_info}", f"model.name={args.model}", "objective.name=at",
                                f"threat.eps={EPS}", f"threat.steps={STEPS}", f"threat.step_size={ALPHA}",
                                f"data.batch_size={args.batch}", "optimizer.lr=0.01", "device=cpu",
                                f"out_dir={tmp}", f"name={name}", *extra])
    splits = DataSplits(x, y, x[:0], y[:0], x[:0], y[:0])
    trainer = Trainer(config, model=copy.deepcopy(model), data=splits, run=Run(tmp / name), progress=False)
    trainer.accel.warm_up(x[: args.batch], y[: args.batch])
    if trainer.accel.compile_seconds is not None:
        print(f"  {name}: compiled in {trainer.accel.compile_seconds:.1f} s")
    return trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="preact_resnet18")
    parser.add_argument("--data", default="cifar", choices=["cifar", "digits"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2, help="timed steps per side and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--sides", default="all", help="comma-separated subset of the sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.dataset_info = "digits" if args.data == "digits" else "cifar10"
    x, y = problem(args.data, args.batch * args.steps)
    batches = list(zip(x.split(args.batch), y.split(args.batch)))
    torch.manual_seed(0)
    reference = build_model(load_config(None, [f"data.name={args.dataset_info}", f"model.name={args.model}"]))
    print(f"{args.model}, {args.data} batch {args.batch}, PGD-{STEPS}; {environment()}")

    def plain(make) -> Callable:
        model = copy.deepcopy(reference)
        return make(model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))

    with tempfile.TemporaryDirectory() as tmp:
        builders = {
            "torchattacks fp32": lambda: plain(torchattacks_step),
            "bare fp32": lambda: plain(bare_step),
            "advland fp32": lambda: advland_step(make_trainer(args, reference, x, y, Path(tmp), "fp32", []), True),
            "advland fp32 no-measure": lambda: advland_step(
                make_trainer(args, reference, x, y, Path(tmp), "fp32nm", []), False),
            "advland fp32+compile": lambda: advland_step(
                make_trainer(args, reference, x, y, Path(tmp), "fp32c", ["compile=true"]), True),
            "advland bf16": lambda: advland_step(make_trainer(args, reference, x, y, Path(tmp), "bf16",
                                                              ["precision=bf16"]), True),
            "advland bf16+compile": lambda: advland_step(
                make_trainer(args, reference, x, y, Path(tmp), "bf16c", ["precision=bf16", "compile=true"]), True),
        }
        wanted = list(builders) if args.sides == "all" else ["torchattacks fp32", *args.sides.split(",")]
        sides = {name: builders[name]() for name in dict.fromkeys(wanted)}
        for step in sides.values():  # one untimed step each (kernel selection, lazy init)
            step(*batches[0])
        times: dict[str, list[float]] = {name: [] for name in sides}
        for round_ in range(args.rounds):
            for name, step in sides.items():
                start = time.perf_counter()
                for xb, yb in batches:
                    step(xb, yb)
                times[name].append((time.perf_counter() - start) / len(batches))
            print(f"  round {round_ + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    ref = times["torchattacks fp32"]
    print(f"{'side':<26} {'s/step':>8}  speed-up vs torchattacks: median [min, max] over {args.rounds} rounds")
    for name, t in times.items():
        ratios = [r / s for r, s in zip(ref, t)]
        print(f"{name:<26} {statistics.median(t):8.3f}  {statistics.median(ratios):.2f}x "
              f"[{min(ratios):.2f}, {max(ratios):.2f}]")
    if "advland fp32 no-measure" in times and "advland fp32" in times:
        cost = [m / n - 1 for m, n in zip(times["advland fp32"], times["advland fp32 no-measure"])]
        print(f"clean forward of measure (AT): {100 * statistics.median(cost):+.1f} % of a step "
              f"[{100 * min(cost):+.1f}, {100 * max(cost):+.1f}]")


if __name__ == "__main__":
    main()
