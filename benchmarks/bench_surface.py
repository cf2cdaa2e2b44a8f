"""21x21 clean-loss surface: advland.landscape.surface against the PyPI package loss-landscapes.

Same model (digits AT CNN), same 512 training examples, filter-normalized random plane, one
process, sides alternated. Both evaluate the loss at 441 weight points (one forward pass each);
advland adds its layout choice (a few timed points) to its time.

    PYTHONPATH=src python benchmarks/bench_surface.py [--run runs/at]
"""

from __future__ import annotations

import copy

import loss_landscapes
import torch
from common import arguments, best_of, environment, load_problem
from loss_landscapes.metrics import Loss

from advland.landscape import surface

STEPS = 21


def main() -> None:
    args = arguments(__doc__.splitlines()[0])
    model, x, y, _ = load_problem(args.run, args.n)
    criterion = torch.nn.CrossEntropyLoss()

    def ours():
        return surface(model, x, y, dims=2, steps=STEPS, metrics=["clean_loss"], norm="filter").values["clean_loss"]

    def theirs():
        metric = Loss(criterion, x, y)
        return loss_landscapes.random_plane(copy.deepcopy(model), metric, distance=1, steps=STEPS,
                                            normalization="filter", deepcopy_model=True)

    print(environment())
    print(f"{STEPS}x{STEPS} clean-loss surface, {len(y)} examples, {sum(p.numel() for p in model.parameters())} weights")
    best = best_of(args.repeats, {"advland": ours, "loss-landscapes": theirs})
    for name, (seconds, values) in best.items():
        print(f"  {name:<16} {seconds:7.2f} s   {STEPS * STEPS} points   loss range [{values.min():.3f}, {values.max():.3f}]")
    ratio = best["loss-landscapes"][0] / best["advland"][0]
    print(f"  time ratio loss-landscapes / advland: {ratio:.2f}x   (forward passes: 441 vs 441)")


if __name__ == "__main__":
    main()
