"""The Hessian of the loss in weight space as a linear operator: you multiply vectors with it.

``H = HessianOperator(model, x, y)`` stands for H = ∇²_θ L(θ), L the mean cross-entropy over the
fixed data (x, y) with the model in eval mode; ``H @ v`` is a Hessian-vector product (v of shape
(P,) or (P, k), P the number of weights, in the order of :class:`FlatModel`). Estimators of
eigenvalues, trace and spectral density take any such operator (:mod:`.spectral`), as in
curvlinops. For the Hessian of the adversarial loss, craft x' once at θ and pass it as the data
(:func:`hessian`): the operator then is the Hessian of θ -> mean CE(f_θ(x'), y) with x'
held fixed.

Products are double backward passes. When the data fits in one batch the first-order graph is
built once and every product reuses it (one backward pass each, no forward); otherwise each
product runs forward and backward over every batch. Products are deterministic: the same v
gives bitwise the same H v (checked by :meth:`HessianOperator.check_deterministic`).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import bn_mode
from ..threat import ThreatModel
from .flat_model import FlatModel
from .losses import attack, batches


class HessianOperator:
    """H = ∇²_θ mean_i CE(f_θ(x_i), y_i), a symmetric P x P operator (model in eval mode, data fixed).

    Args:
        model: any module; only read.
        x, y: the data the loss is averaged over (moved to the model's device).
        params: parameter names forming the block whose Hessian this is (default: all); the
            other parameters are held fixed.
        batch_size: examples per forward pass (default: all in one, with the graph cached).

    Attributes:
        shape: (P, P).
        inputs: the (fixed) inputs x the loss is evaluated at.
        n_products: Hessian-vector products computed so far (a (P, k) block counts k).
    """

    def __init__(
        self,
        model: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        params: Iterable[str] | None = None,
        batch_size: int | None = None,
    ):
        self.flat = FlatModel(model, params)
        self.theta = self.flat.vector()
        self.inputs = self.flat.layout(x.to(self.flat.device))
        self.batches = batches(self.inputs, y.to(self.flat.device), batch_size)
        self.n_examples = len(y)
        self.shape = (self.flat.size, self.flat.size)
        self.dtype, self.device = self.theta.dtype, self.theta.device
        self.n_products = 0
        self._cached = self._gradient_graph(*self.batches[0]) if len(self.batches) == 1 else None

    def _gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(θ as a leaf, ∂L_batch/∂θ with its graph), L_batch this batch's share of the mean loss."""
        point = self.theta.clone().requires_grad_(True)
        with bn_mode(self.flat.model, "eval"), torch.enable_grad():
            loss = F.cross_entropy(self.flat.at(point)(x), y, reduction="sum") / self.n_examples
            (grad,) = torch.autograd.grad(loss, point, create_graph=True)
        return point, grad

    def _product(self, point: torch.Tensor, grad: torch.Tensor, v: torch.Tensor, retain: bool) -> torch.Tensor:
        with torch.enable_grad():
            (hv,) = torch.autograd.grad(grad, point, grad_outputs=v, retain_graph=retain)
        return hv

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """H v for one vector v of shape (P,)."""
        if self._cached is not None:
            return self._product(*self._cached, v, retain=True)
        total = torch.zeros_like(v)
        for xb, yb in self.batches:
            total += self._product(*self._gradient_graph(xb, yb), v, retain=False)
        return total

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor:
        """H v for v of shape (P,) or H V for V of shape (P, k), column by column."""
        v = v.to(device=self.device, dtype=self.dtype)
        if v.dim() == 1:
            self.n_products += 1
            return self.matvec(v)
        self.n_products += v.shape[1]
        return torch.stack([self.matvec(column) for column in v.unbind(1)], dim=1)

    def check_deterministic(self, seed: int = 0) -> bool:
        """Whether two products with the same random vector are bitwise equal."""
        v = torch.randn(self.shape[0], generator=torch.Generator().manual_seed(seed), dtype=self.dtype).to(self.device)
        return bool(torch.equal(self @ v, self @ v))


def hessian(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    threat: ThreatModel | None = None,
    params: Iterable[str] | None = None,
    batch_size: int | None = None,
    seed: int = 0,
) -> HessianOperator:
    """The Hessian of the clean loss, or with ``threat`` of the adversarial loss at fixed x'.

    x' is crafted once by PGD at the model's weights (eval mode, random start seeded by ``seed``)
    and then held fixed, so the operator is a plain Hessian of a smooth function of θ.
    """
    if threat is not None and threat.active:
        flat = FlatModel(model)
        x = attack(flat, flat.vector(), x.to(flat.device), y.to(flat.device), threat, batch_size=batch_size, seed=seed)
    return HessianOperator(model, x, y, params=params, batch_size=batch_size)


def blocks(model: nn.Module) -> dict[str, list[str]]:
    """Parameter blocks of the model, one per module that owns parameters, e.g. {"1.features.0": [...weight, ...bias]}."""
    return FlatModel(model).blocks()
