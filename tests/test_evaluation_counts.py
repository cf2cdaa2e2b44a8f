"""Evaluation PGD counts an example broken when any iterate of any restart fools the model."""

from __future__ import annotations

import pytest
import torch



class Band(torch.nn.Module):
    """Scalar input; class 1 wins only inside the band |x - 0.6| < 0.1, class 0 is the label."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        g = 1 - 100 * (x.reshape(len(x), -1)[:, :1] - 0.6) ** 2 + self.dummy
        return torch.cat([torch.zeros_like(g), g], dim=1)


def test_an_example_fooled_by_an_earlier_iterate_counts_as_broken():
    from advland.attacks import pgd, pgd_correct
    from advland.threat import ThreatModel

    model, x, y = Band(), torch.tensor([[0.3]]), torch.tensor([0])
    threat = ThreatModel("linf", 0.5, 0.25, 2)  # iterates 0.3 (correct), 0.55 (fooled), last 0.8 (correct)
    last = pgd(model, x, y, threat, start="none")
    assert last.item() == pytest.approx(0.8) and model(last).argmax(1).item() == 0
    assert pgd_correct(model, x, y, threat, start="none").tolist() == [False]
    assert pgd_correct(model, x, y, ThreatModel("linf", 0.05, 0.025, 2), start="none").tolist() == [True]
