"""21x21 clean-loss surface: advland.landscape.surface against the PyPI package loss-landscapes.

Same model (digits AT CNN), same 512 training examples, filter-normalized random plane, one
process, sides alternated. Both evaluate the loss at 441 weight points (one forward pass each);
advland adds its layout choice (a few timed points) to its time.

It also prints the arithmetic floor: the model's floating-point operations per point (counted by
torch.utils.flop_counter) times 441, at this machine's measured peak rate (the faster of an sgemm
and a channels-last 3x3 convolution, oneDNN's best kernel here). No implementation that does the
same arithmetic can beat the floor, so loss-landscapes' time over the floor is the largest ratio
any fp32 implementation could reach on this machine.

    PYTHONPATH=src python benchmarks/bench_surface.py [--run runs/at]
"""

from __future__ import annotations

import copy

import loss_landscapes
import torch
import torch.nn.functional as F
from common import arguments, best_of, environment, load_problem
from loss_landscapes.metrics import Loss
from torch.utils.flop_counter import FlopCounterMode

from advland.landscape import surface

STEPS = 21


def flops_per_point(model, x, y) -> int:
    """Floating-point operations of one evaluation of the loss (a forward pass on all of ``x``)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        F.cross_entropy(model(x), y)
    return counter.get_total_flops()


def peak_flops() -> float:
    """This machine's best measured fp32 rate (FLOP/s) at torch's thread count, best of 5 runs of two probes."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    image = torch.randn(256, 128, 8, 8).contiguous(memory_format=torch.channels_last)
    kernel = torch.randn(128, 128, 3, 3).contiguous(memory_format=torch.channels_last)
    probes = {2 * 1024**3: lambda: a @ b, 2 * 256 * 128 * 128 * 9 * 64: lambda: F.conv2d(image, kernel, padding=1)}
    rates = []
    for flops, probe in probes.items():
        seconds, _ = best_of(5, {"probe": probe})["probe"]
        rates.append(flops / seconds)
    return max(rates)


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
    flops, peak = flops_per_point(model, x, y), peak_flops()
    floor = STEPS * STEPS * flops / peak
    print(f"  arithmetic floor: {STEPS * STEPS} x {flops / 1e9:.2f} GFLOP at a peak of {peak / 1e9:.0f} GFLOP/s = {floor:.2f} s;"
          f" advland runs at {floor / best['advland'][0]:.0%} of peak,"
          f" and no fp32 implementation can be more than {best['loss-landscapes'][0] / floor:.2f}x faster than loss-landscapes here")


if __name__ == "__main__":
    main()
