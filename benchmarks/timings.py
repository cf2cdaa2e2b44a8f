"""The two timings docs/landscape.md promises, on a digits AT model (512 training examples):

* a 21x21 adversarial-loss surface, PGD-10 re-run at every one of the 441 points;
* the top-5 eigenvalues of the Hessian of the adversarial loss (x' crafted once, Lanczos, tol 1e-3).

Wall-clock and process CPU time (user + system) are printed: on a shared machine the wall time
depends on the other load; the CPU time is what the job itself consumed.

    PYTHONPATH=src python benchmarks/timings.py [--run runs/at] [--only hessian|surface]
"""

from __future__ import annotations

import resource
import sys
import time

from common import environment, load_problem

from advland.landscape import hessian, lanczos, surface


def timed(label: str, work):
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    result = work()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(f"  {label:<44} wall {time.perf_counter() - start:7.1f} s   CPU {cpu:7.1f} s", flush=True)
    return result


def main() -> None:
    run = sys.argv[sys.argv.index("--run") + 1] if "--run" in sys.argv else "runs/at"
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    model, x, y, threat = load_problem(run, 512)
    print(environment())
    print(f"digits AT model, {len(y)} training examples, threat {threat}")
    if only in (None, "hessian"):
        eig = timed("top-5 Hessian eigenvalues, adversarial loss",
                    lambda: lanczos(hessian(model, x, y, threat=threat), k=5, tol=1e-3))
        print(f"    eigenvalues {[round(v, 4) for v in eig.values.tolist()]}, {eig.n_products} HVPs")
    if only in (None, "surface"):
        s = timed("21x21 adversarial-loss surface, PGD-10", lambda: surface(
            model, x, y, dims=2, steps=21, metrics=["adv_loss"], threat=threat))
        print(f"    adv_loss at θ {s.values['adv_loss'][10, 10]:.4f}, max {s.values['adv_loss'].max():.4f}, "
              f"layout {s.info['layout']}")


if __name__ == "__main__":
    main()
