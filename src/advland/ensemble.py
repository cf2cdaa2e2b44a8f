"""Snapshot ensembles (liu2020): the models saved at cycle ends, averaged in probability space.

The ensemble is an ordinary ``nn.Module`` whose output is log(mean_k softmax(f_k(x))): its argmax is
the ensemble's prediction, and cross-entropy on it is -log of the mean probability of the true class,
so every attack (PGD, CW, AutoAttack) attacks the averaged prediction without special casing.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .run import load_weights


class SnapshotEnsemble(nn.Module):
    """Mean softmax of ``members``; forward returns its logarithm (shape (N, classes))."""

    def __init__(self, members: Sequence[nn.Module]):
        super().__init__()
        if not members:
            raise ValueError("a snapshot ensemble needs at least one member")
        self.members = nn.ModuleList(members)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        log_probs = torch.stack([F.log_softmax(member(x), dim=1) for member in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))

    @classmethod
    def of(cls, model: nn.Module, paths: Sequence[str | Path]) -> "SnapshotEnsemble":
        """The ensemble of the weight files ``paths``, each loaded into a copy of ``model`` (any model, a
        user's too), in eval mode."""
        members = []
        for path in paths:
            member = copy.deepcopy(model)
            member.load_state_dict(load_weights(path))
            members.append(member)
        return cls(members).eval()
