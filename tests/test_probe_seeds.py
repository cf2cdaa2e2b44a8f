"""Random probes of estimators called with nearby seeds share nothing (independent seed streams)."""

from __future__ import annotations

import pytest
import torch



class Recording:
    """A dense symmetric operator that records every vector it is applied to."""

    def __init__(self, size):
        self.matrix = torch.eye(size, dtype=torch.float64)
        self.shape, self.dtype, self.device = (size, size), torch.float64, torch.device("cpu")
        self.inputs = []

    def __matmul__(self, v):
        self.inputs.extend(v.T if v.dim() == 2 else [v])
        return self.matrix @ v


@pytest.mark.parametrize("estimator", ["hutchinson", "slq"])
def test_probes_of_nearby_seeds_share_nothing(estimator):
    from advland.landscape import hutchinson, slq

    probes = {}
    for seed in (0, 1):
        op = Recording(64)
        if estimator == "hutchinson":
            hutchinson(op, 20, block=5, seed=seed)
        else:
            slq(op, 4, 3, seed=seed)
            op.inputs = op.inputs[::3]  # each run's start vector (then Lanczos vectors)
        probes[seed] = torch.stack(op.inputs)
    for a in probes[0]:
        assert not any(torch.equal(a, b) for b in probes[1])
