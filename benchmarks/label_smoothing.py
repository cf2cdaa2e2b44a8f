"""AT against AT + label smoothing on the same seeds, compared with advland.stats' paired tests.

Every seed trains both arms from the same initialization and data order (``seed`` drives both); the
recipe is digits/at by default, and the smoothed arm adds ``objective.label_smoothing`` (the attack
still maximizes the unsmoothed CE). For each of the test clean and PGD-20 accuracies at the selected
(best on validation) and at the last epoch it reports each arm's mean over seeds with its t 95 % CI
(seed to seed variation) and the exact Clopper–Pearson interval of the accuracy pooled over the seeds'
test predictions (test-sampling uncertainty only), and the paired difference (smoothed − plain) with its
t CI and the exact sign-flip test's one-sided p in both directions. The per-seed numbers and the tests
are written as strict JSON; ``--from`` prints the table again from such a file without training.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/label_smoothing.py [--seeds 5] [--smoothing 0.1] \
        [--config digits/at] [--out docs/results/label_smoothing_digits.json] [--from FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import advland
from advland import jsonio, stats
from advland.binomial import clopper_pearson, count
from advland.run import atomic_write_text

METRICS = ("test_clean_acc", "test_robust_acc", "last_test_clean_acc", "last_test_robust_acc")


def train_arm(config: str, overrides: list[str], out: Path, name: str) -> dict:
    summary = advland.train(advland.load_config(config, [*overrides, f"out_dir={out}", f"name={name}"]), progress=False)
    return {k: summary[k] for k in (*METRICS, "best_epoch", "n_test", "train_seconds")}


def compare(runs: dict[str, list[dict]], smoothing: float) -> dict[str, dict]:
    """Per metric: each arm's mean and CI over seeds, and the paired test of smoothed − plain."""
    table = {}
    for metric in METRICS:
        row = {}
        for arm in ("at", "at_ls"):
            values = [r[metric] for r in runs[arm]]
            total = sum(r["n_test"] for r in runs[arm])
            pooled = sum(count(r[metric], r["n_test"]) for r in runs[arm])
            row |= {f"{arm}_mean": sum(values) / len(values), f"{arm}_ci95": stats.mean_ci(values),
                    f"{arm}_pooled_cp95": clopper_pearson(pooled, total)}
        differences = [s[metric] - p[metric] for s, p in zip(runs["at_ls"], runs["at"])]
        test = stats.paired_test(differences, f"{metric}: AT + label smoothing {smoothing} minus AT")
        table[metric] = row | {"test": test.as_dict(), "verdict_ls_better": stats.verdict(test)}
    return table


def show(table: dict[str, dict]) -> None:
    print(f"{'metric':<22} {'AT mean [t CI] (pooled CP)':>40} {'AT + LS mean [t CI] (pooled CP)':>40} "
          f"{'LS - AT [95 % CI]':>24} {'p LS better':>12} {'p LS worse':>11}")
    for metric, row in table.items():
        t = row["test"]
        cells = []
        for arm in ("at", "at_ls"):
            low, high = row[f"{arm}_ci95"]
            cp_low, cp_high = row[f"{arm}_pooled_cp95"]
            cells.append(f"{100 * row[f'{arm}_mean']:.2f} [{100 * low:.2f}, {100 * high:.2f}] "
                         f"({100 * cp_low:.2f}, {100 * cp_high:.2f})")
        print(f"{metric:<22} {cells[0]:>40} {cells[1]:>40} {100 * t['effect']:+.2f} "
              f"[{100 * t['ci95'][0]:+.2f}, {100 * t['ci95'][1]:+.2f}] {t['p_value']:>12.3f} {t['p_opposite']:>11.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="digits/at")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--out", default="label_smoothing.json", help="where the JSON results go")
    parser.add_argument("--from", dest="source", help="print the table of a results file written before, no training")
    args = parser.parse_args()
    if args.source:
        saved = json.loads(Path(args.source).read_text())
        print(f"{saved['config']}, {saved['seeds']} seeds, label smoothing {saved['smoothing']} (from {args.source})")
        show(compare(saved["runs"], saved["smoothing"]))
        return
    runs: dict[str, list[dict]] = {"at": [], "at_ls": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for arm, extra in (("at", []), ("at_ls", [f"objective.label_smoothing={args.smoothing}"])):
                runs[arm].append(train_arm(args.config, [f"seed={seed}", *extra], Path(tmp), f"{arm}_{seed}"))
                print(f"seed {seed} {arm:<6} " + "  ".join(f"{k} {runs[arm][-1][k]:.4f}" for k in METRICS), flush=True)
    table = compare(runs, args.smoothing)
    print(f"\n{args.config}, {args.seeds} seeds, label smoothing {args.smoothing} ({time.perf_counter() - start:.0f} s)")
    show(table)
    atomic_write_text(Path(args.out), jsonio.dumps({"config": args.config, "seeds": args.seeds, "smoothing": args.smoothing,
                                            "runs": runs, "comparison": table}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
