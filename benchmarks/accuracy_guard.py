"""Accuracy guard of reduced-precision training: a recipe at precision=bf16 against fp32, several seeds,
test AutoAttack measured in fp32 on the best checkpoint of every run.

Each (precision, seed) run trains in its own process with one intra-op thread, ``--parallel`` at a
time. Printed: per run the test clean / PGD-20 / AutoAttack accuracy and the training seconds, then per
precision the mean AutoAttack accuracy and the bf16 − fp32 difference in points (the guard: within 1.5).

    PYTHONPATH=src python benchmarks/accuracy_guard.py [--recipe digits/at] [--seeds 0 1 2] [--epochs 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from advland import jsonio


def one_run(recipe: str, precision: str, seed: int, epochs: int | None, out: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from advland import data as datasets
    from advland.config import load_config
    from advland.evaluate import evaluate
    from advland.load import load
    from advland.train import train

    extra = [f"precision={precision}", f"seed={seed}", f"out_dir={out}", f"name={precision}_s{seed}", "overwrite=true"]
    config = load_config(recipe, extra + ([f"epochs={epochs}"] if epochs else []))
    summary = train(config, progress=False)
    x, y = datasets.load(config.data.name, "test", config.data.root, val_fraction=config.data.val_fraction,
                         seed=config.seed)
    model = load(Path(out) / config.name, "best")  # fp32, as every evaluation
    report = evaluate(model, x, y, norm=config.threat.norm, eps=config.threat.eps, attacks=["pgd", "autoattack"],
                      seed=seed, progress=False)
    return {"precision": precision, "seed": seed, "epochs": config.epochs, "train_seconds": summary["train_seconds"],
            **{k: v for k, v in report.accuracy.items() if k != "worst_case"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="digits/at")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="runs/accuracy_guard")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = "1"
    jobs = [(p, s) for s in args.seeds for p in ("fp32", "bf16")]
    with ProcessPoolExecutor(args.parallel) as pool:
        futures = [pool.submit(one_run, args.recipe, p, s, args.epochs, args.out) for p, s in jobs]
        rows = []
        for future in futures:
            rows.append(future.result())
            print(jsonio.dumps(rows[-1]), flush=True)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "guard.json").write_text(jsonio.dumps(rows, indent=1) + "\n")
    means = {p: statistics.mean(r["autoattack"] for r in rows if r["precision"] == p) for p in ("fp32", "bf16")}
    seconds = {p: statistics.mean(r["train_seconds"] for r in rows if r["precision"] == p) for p in ("fp32", "bf16")}
    for p in ("fp32", "bf16"):
        print(f"{p}: mean test AutoAttack {100 * means[p]:.2f} %, mean training {seconds[p]:.0f} s")
    diff = 100 * (means["bf16"] - means["fp32"])
    print(f"bf16 - fp32: {diff:+.2f} points ({'within' if abs(diff) <= 1.5 else 'OUTSIDE'} the 1.5-point guard)")


if __name__ == "__main__":
    main()
