"""What one training step reports (:class:`StepResult`) and an epoch's running sums of it (:class:`EpochMeter`),
kept on the device and read once per epoch, so that the step never waits on the host."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .objectives import LossOutput


@dataclass
class StepResult:
    loss: torch.Tensor
    """The step's training loss, detached, on the device (never copied to the host per step)."""
    logits_adv: torch.Tensor
    grad_evals: int
    """Forward-backward passes over the minibatch this step took."""
    perturb_norm: torch.Tensor | None = None
    """||v||_2 of the weight perturbation the step used, if any (on the device)."""
    logits_clean: torch.Tensor | None = None
    """Clean logits the objective computed anyway (TRADES, MART), reused for the training clean accuracy."""

    @classmethod
    def of(cls, out: LossOutput, grad_evals: int, perturb_norm: torch.Tensor | None = None) -> "StepResult":
        """The result of a step whose objective returned ``out`` (detached from the graph)."""
        clean = None if out.logits_clean is None else out.logits_clean.detach()
        return cls(out.loss.detach(), out.logits_adv.detach(), grad_evals, perturb_norm, clean)


class EpochMeter:
    """Running sums of one epoch's training statistics, kept on the device and read once by :meth:`totals`."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss * n, clean, robust, sum of ||v||
        self.n = self.grad_evals = self.perturb_steps = 0

    def add(self, step: StepResult, y: torch.Tensor, clean_logits: torch.Tensor) -> None:
        zero = self.sums.new_zeros(())
        norm = zero if step.perturb_norm is None else step.perturb_norm.double()
        self.sums += torch.stack([step.loss.double() * len(y), (clean_logits.argmax(1) == y).sum().double(),
                                  (step.logits_adv.argmax(1) == y).sum().double(), norm])
        self.n += len(y)
        self.grad_evals += step.grad_evals
        self.perturb_steps += step.perturb_norm is not None

    def totals(self, *extra: torch.Tensor) -> list[float]:
        """(loss * n, clean, robust, sum of ||v||) summed over the epoch, then the entries of ``extra``
        (float64 device tensors read along): the one device-to-host read."""
        return torch.cat([self.sums, *extra]).tolist()
