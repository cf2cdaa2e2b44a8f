"""AT against AT + label smoothing on the same seeds, compared with advland.stats' paired tests.

Every seed trains both arms from the same initialization and data order (``seed`` drives both); the
recipe is digits/at by default, and the smoothed arm adds ``objective.label_smoothing`` (the attack
still maximizes the unsmoothed CE). For each of the test clean and PGD-20 accuracies at the selected
(best on validation) and at the last epoch it reports each arm's mean over seeds with its t 95 % CI,
and the paired difference (smoothed − plain) with its CI and the exact sign-flip test's one-sided p in
both directions. The per-seed numbers and the tests are written as strict JSON.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/label_smoothing.py [--seeds 5] [--smoothing 0.1] \
        [--config digits/at] [--out docs/results/label_smoothing_digits.json]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import advland
from advland import jsonio, stats
from advland.run import atomic_write_text

METRICS = ("test_clean_acc", "test_robust_acc", "last_test_clean_acc", "last_test_robust_acc")


def train_arm(config: str, overrides: list[str], out: Path, name: str) -> dict:
    summary = advland.train(advland.load_config(config, [*overrides, f"out_dir={out}", f"name={name}"]), progress=False)
    return {k: summary[k] for k in (*METRICS, "best_epoch", "n_test", "train_seconds")}


def compare(runs: dict[str, list[dict]], smoothing: float) -> dict[str, dict]:
    """Per metric: each arm's mean and CI over seeds, and the paired test of smoothed − plain."""
    table = {}
    for metric in METRICS:
        plain = [r[metric] for r in runs["at"]]
        smooth = [r[metric] for r in runs["at_ls"]]
        test = stats.paired_test([s - p for s, p in zip(smooth, plain)],
                                 f"{metric}: AT + label smoothing {smoothing} minus AT")
        table[metric] = {"at_mean": sum(plain) / len(plain), "at_ci95": stats.mean_ci(plain),
                         "at_ls_mean": sum(smooth) / len(smooth), "at_ls_ci95": stats.mean_ci(smooth),
                         "test": test.as_dict(), "verdict_ls_better": stats.verdict(test)}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits/at")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--out", default="label_smoothing.json", help="where the JSON results go")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {"at": [], "at_ls": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for arm, extra in (("at", []), ("at_ls", [f"objective.label_smoothing={args.smoothing}"])):
                runs[arm].append(train_arm(args.config, [f"seed={seed}", *extra], Path(tmp), f"{arm}_{seed}"))
                print(f"seed {seed} {arm:<6} " + "  ".join(f"{k} {runs[arm][-1][k]:.4f}" for k in METRICS), flush=True)
    table = compare(runs, args.smoothing)
    print(f"\n{args.config}, {args.seeds} seeds, label smoothing {args.smoothing} ({time.perf_counter() - start:.0f} s)")
    print(f"{'metric':<22} {'AT':>22} {'AT + LS':>22} {'difference [95 % CI]':>28} {'p (LS better)':>14} {'p (LS worse)':>13}")
    for metric, row in table.items():
        t = row["test"]
        print(f"{metric:<22} {row['at_mean']:.4f} [{row['at_ci95'][0]:.4f}, {row['at_ci95'][1]:.4f}] "
              f"{row['at_ls_mean']:.4f} [{row['at_ls_ci95'][0]:.4f}, {row['at_ls_ci95'][1]:.4f}] "
              f"{t['effect']:+.4f} [{t['ci95'][0]:+.4f}, {t['ci95'][1]:+.4f}] {t['p_value']:>14.3f} {t['p_opposite']:>13.3f}")
    atomic_write_text(Path(args.out), jsonio.dumps({"config": args.config, "seeds": args.seeds, "smoothing": args.smoothing,
                                            "runs": runs, "comparison": table}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
