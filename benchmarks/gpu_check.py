"""The measured steps of benchmarks/gpu_check.sh: PreActResNet-18 PGD-10 AT speed per precision, surfaces, Hessian.

    python benchmarks/gpu_check.py speed --device cuda --model preact_resnet18 --batch 128 --iterations 20
    python benchmarks/gpu_check.py landscape --device cuda --model preact_resnet18 --n 512 --clean-steps 21 --adv-steps 9

``speed`` trains on CIFAR-shaped uniform noise through ``Trainer.train_step`` (the real loop: attack,
step, per-step statistics) at fp32, bf16 and bf16+compile, compile paid before timing, and prints
seconds per 50 000-example epoch. ``landscape`` times a clean and an adversarial 2-D surface and the
top-5 Hessian eigenvalues (adversarial loss) of a freshly initialized model of the same architecture.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from advland import landscape as L
from advland.build import DataSplits, build_model
from advland.config import load_config
from advland.run import Run
from advland.threat import ThreatModel
from advland.train import EpochMeter, Trainer

EPS = 8 / 255
EPOCH = 50_000


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _data(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def speed(args: argparse.Namespace) -> None:
    x, y = _data(args.batch * args.iterations, torch.Generator().manual_seed(0))
    splits = DataSplits(x, y, x[:0], y[:0], x[:0], y[:0])
    for label, extra in (("fp32", []), ("bf16", ["precision=bf16"]), ("bf16+compile", ["precision=bf16", "compile=true"])):
        with tempfile.TemporaryDirectory() as tmp:
            config = load_config(None, ["data.name=cifar10", f"model.name={args.model}", f"data.batch_size={args.batch}",
                                        f"threat.eps={EPS}", "threat.steps=10", f"threat.step_size={EPS / 4}",
                                        f"device={args.device}", f"out_dir={tmp}", "name=speed", *extra])
            trainer = Trainer(config, data=splits, run=Run(Path(tmp) / "speed"), progress=False)
            batches = list(trainer.batches(0))
            trainer.accel.warm_up(*trainer.examples(batches[0]), trainer.config.threat.bn_mode)
            meter = EpochMeter(trainer.device)

            def step(idx: torch.Tensor) -> None:
                trainer.step(*trainer.batch(idx), trainer.threat, meter)

            step(batches[0])  # untimed: kernel selection, lazy initialization
            _synchronize(trainer.device)
            start = time.perf_counter()
            for idx in batches:
                step(idx)
            meter.totals()  # the loop's one read per epoch
            _synchronize(trainer.device)
            per_example = (time.perf_counter() - start) / (len(batches) * args.batch)
            compiled = trainer.accel.compile_seconds
            note = f", compile {compiled:.0f} s not counted" if compiled is not None else ""
            print(f"speed {args.model} PGD-10 AT {label}: {per_example * EPOCH:.1f} s per 50000-example epoch "
                  f"(batch {args.batch}, {len(batches)} iterations timed{note})", flush=True)


def landscape(args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_model(load_config(None, ["data.name=cifar10", f"model.name={args.model}"])).to(device).eval()
    x, y = _data(args.n, torch.Generator().manual_seed(1))
    threat = ThreatModel(eps=EPS, step_size=EPS / 4, steps=args.attack_steps)
    for label, steps, metrics, attack in (("clean", args.clean_steps, ["clean_loss", "clean_acc"], None),
                                          ("adversarial", args.adv_steps, ["adv_loss", "adv_acc"], threat)):
        _synchronize(device)
        start = time.perf_counter()
        result = L.surface(model, x, y, steps=steps, metrics=metrics, threat=attack)
        _synchronize(device)
        print(f"landscape {label} {steps}x{steps} surface on {args.n} examples: {time.perf_counter() - start:.1f} s "
              f"(layout {result.info['layout']}, {result.info['workers']} workers)", flush=True)
    start = time.perf_counter()
    eigen = L.lanczos(L.hessian(model, x, y, threat=threat), k=5, max_steps=args.lanczos_steps)
    _synchronize(device)
    values = ", ".join(f"{v:.4g}" for v in eigen.values.tolist())
    print(f"hessian top-5 eigenvalues (adversarial loss): {values}; {time.perf_counter() - start:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["speed", "landscape"])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="preact_resnet18")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--clean-steps", type=int, default=21)
    parser.add_argument("--adv-steps", type=int, default=9)
    parser.add_argument("--attack-steps", type=int, default=10)
    parser.add_argument("--lanczos-steps", type=int, default=30)
    args = parser.parse_args()
    speed(args) if args.what == "speed" else landscape(args)


if __name__ == "__main__":
    main()
