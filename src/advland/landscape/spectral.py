"""Estimators on a symmetric linear operator: top eigenvalues, trace, spectral density.

Every estimator takes any object with ``shape`` (P, P), ``dtype``, ``device`` and ``A @ v`` for
v of shape (P,) or (P, k): a :class:`~advland.landscape.hessian.HessianOperator`, or a dense
symmetric tensor. Costs are counted in operator products (Hessian-vector products, "HVPs").

* :func:`lanczos`: top-k eigenpairs by Lanczos with full reorthogonalization; stops when every
  Ritz pair (θ, u) has residual ‖A u − θ u‖ ≤ tol·|θ|, which bounds |θ − λ| for some eigenvalue λ.
* :func:`power_iteration`: PyHessian's algorithm (power iteration, deflation by
  orthogonalization against the pairs already found; stops when the estimate changes by less
  than tol, relative), for parity with PyHessian and liu2020.
* :func:`hutchinson` and :func:`hutchpp`: trace estimates (Hutchinson 1989; Meyer et al. 2021).
* :func:`slq`: stochastic Lanczos quadrature (Ghorbani et al. 2019): the spectral density as a
  mixture of point masses, smoothed by a Gaussian kernel.

Random draw k of an estimator called with ``seed`` (probe block, Lanczos start, SLQ probe) comes
from stream k of that seed (:func:`advland.seeds.stream_seed`), so calls with different seeds
never share probes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from .. import distributed as dist
from ..seeds import stream_seed
from .errors import LandscapeError


class LinearOperator(Protocol):
    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def __matmul__(self, v: torch.Tensor) -> torch.Tensor: ...


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _gaussian(op: LinearOperator, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=_generator(seed), dtype=op.dtype).to(op.device)


def _rademacher(op: LinearOperator, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    signs = torch.randint(0, 2, shape, generator=_generator(seed)).to(dtype=op.dtype) * 2 - 1
    return signs.to(op.device)


# ---------------------------------------------------------------- Lanczos

@dataclass
class Eigen:
    """Eigenpairs, largest first. ``values`` (k,) in the loss's units per weight²; ``vectors`` (P, k), unit norm."""

    values: torch.Tensor
    vectors: torch.Tensor
    residuals: torch.Tensor
    """‖A u − λ u‖ of each pair (for Lanczos, the bound β·|s| from the tridiagonal problem)."""
    n_products: int
    converged: bool


def _lanczos_steps(op: LinearOperator, q0: torch.Tensor, steps: int) -> Iterator[tuple[list[float], list[float], torch.Tensor]]:
    """Run Lanczos from q0 (full reorthogonalization); after step j yield (alphas, betas, basis (j, P)).

    ``betas[j - 1]`` is the coupling to the next (not yet computed) basis vector. Stops early on
    an invariant subspace (beta ~ 0).
    """
    basis = torch.empty(steps, q0.numel(), dtype=op.dtype, device=op.device)
    basis[0] = q0 / q0.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for j in range(steps):
        w = op @ basis[j]
        alpha = torch.dot(w, basis[j])
        w = w - alpha * basis[j] - (betas[-1] * basis[j - 1] if j else 0)
        for _ in range(2):  # twice is enough (Parlett's "twice is enough")
            w = w - basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = w.norm()
        alphas.append(alpha.item())
        betas.append(beta.item())
        yield alphas, betas, basis[: j + 1]
        if j + 1 == steps or beta.item() <= 1e-10 * max(abs(a) for a in alphas):
            return
        basis[j + 1] = w / beta


def _tridiagonal_eigh(alphas: list[float], betas: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (ascending) and eigenvectors of the symmetric tridiagonal T in float64."""
    t = np.diag(np.asarray(alphas, dtype=np.float64))
    off = np.asarray(betas[: len(alphas) - 1], dtype=np.float64)
    t += np.diag(off, 1) + np.diag(off, -1)
    return np.linalg.eigh(t)


def lanczos(
    op: LinearOperator, k: int = 1, *, tol: float = 1e-3, max_steps: int | None = None, seed: int = 0
) -> Eigen:
    """The k largest (algebraic) eigenvalues of a symmetric operator, and their eigenvectors.

    Args:
        tol: stop when every one of the k Ritz pairs has relative residual ≤ tol.
        max_steps: at most this many products (default min(P, max(100, 10 k))).
        seed: seed of the random start vector.
    """
    size = op.shape[0]
    if not 1 <= k <= size:
        raise LandscapeError(f"k must be between 1 and {size}, got {k}")
    steps = min(size, max_steps or max(100, 10 * k))
    for alphas, betas, basis in _lanczos_steps(op, _gaussian(op, (size,), stream_seed(seed, 0)), steps):
        if len(alphas) >= k and _ritz_converged(alphas, betas, k, tol):
            break
    theta, s = _tridiagonal_eigh(alphas, betas)
    top = np.argsort(theta)[::-1][:k]
    residuals = np.abs(betas[-1] * s[-1, top])
    vectors = basis.T @ torch.from_numpy(np.ascontiguousarray(s[:, top])).to(basis)
    return Eigen(
        values=torch.from_numpy(theta[top].copy()),
        vectors=vectors / vectors.norm(dim=0, keepdim=True),
        residuals=torch.from_numpy(residuals),
        n_products=len(alphas),
        converged=bool(np.all(residuals <= tol * np.abs(theta[top]))),
    )


def _ritz_converged(alphas: list[float], betas: list[float], k: int, tol: float) -> bool:
    """Whether the k largest Ritz values have relative residual bounds β_j·|s_j| ≤ tol."""
    theta, s = _tridiagonal_eigh(alphas, betas)
    top = np.argsort(theta)[::-1][:k]
    return bool(np.all(np.abs(betas[-1] * s[-1, top]) <= tol * np.abs(theta[top])))


def power_iteration(
    op: LinearOperator, k: int = 1, *, max_iter: int = 100, tol: float = 1e-3, seed: int = 0
) -> Eigen:
    """The k eigenvalues of largest magnitude by PyHessian's power iteration with deflation.

    For each pair: v random; repeat v ← orthonormalize(v against the pairs found), λ = vᵀAv,
    v ← Av/‖Av‖, until |λ − λ_prev| / (|λ_prev| + 1e-6) < tol or ``max_iter`` products.
    """
    values, vectors, residuals = [], [], []
    products = 0
    converged = True
    for i in range(k):
        v = _gaussian(op, (op.shape[0],), stream_seed(seed, i))
        v = v / v.norm()
        previous = None
        for it in range(max_iter):
            for u in vectors:
                v = v - torch.dot(v, u) * u
            v = v / v.norm()
            av = op @ v
            products += 1
            value = torch.dot(av, v).item()
            residual = (av - value * v).norm().item()
            v = av / av.norm()
            done = previous is not None and abs(value - previous) / (abs(previous) + 1e-6) < tol
            previous = value
            if done:
                break
        else:
            converged = False
        values.append(value)
        vectors.append(v)
        residuals.append(residual)
    return Eigen(torch.tensor(values, dtype=torch.float64), torch.stack(vectors, dim=1),
                 torch.tensor(residuals, dtype=torch.float64), products, converged)


# ---------------------------------------------------------------- trace

@dataclass
class TraceEstimate:
    """An estimate of tr(A) (for a Hessian: the sum of its eigenvalues) and its standard error."""

    value: float
    std_error: float
    """Standard error of the estimate (NaN where the estimator gives none)."""
    n_products: int


def _probe_blocks(op: LinearOperator, count: int, block: int, seed: int) -> Iterator[torch.Tensor]:
    for start in range(0, count, block):
        yield _rademacher(op, (op.shape[0], min(block, count - start)), stream_seed(seed, start))


def hutchinson(op: LinearOperator, n_probes: int = 100, *, block: int = 10, seed: int = 0) -> TraceEstimate:
    """Hutchinson's estimate: the mean of zᵀAz over ``n_probes`` Rademacher vectors z (``block`` at a time)."""
    # under torchrun the probe blocks are dealt out by rank and the samples gathered in block order,
    # so the estimate is the one-process estimate (same probes, same seeds)
    blocks = list(enumerate(_probe_blocks(op, n_probes, block, seed)))
    mine = {k: (z * (op @ z)).sum(dim=0).double().cpu() for k, z in dist.shard(blocks)}
    gathered: dict[int, torch.Tensor] = {}
    for part in dist.all_gather_object(mine):
        gathered.update(part)
    samples = torch.cat([gathered[k] for k in range(len(blocks))])
    std = samples.std().item() / math.sqrt(n_probes) if n_probes > 1 else math.nan
    return TraceEstimate(samples.mean().item(), std, n_probes)


def hutchpp(op: LinearOperator, n_products: int = 99, *, seed: int = 0) -> TraceEstimate:
    """Hutch++ (Meyer et al. 2021) with ``n_products`` products: the exact trace on a sketched
    top subspace (n/3 vectors) plus Hutchinson on its complement. Exact when n/3 ≥ rank(A)."""
    if n_products < 3:
        raise LandscapeError("hutchpp needs at least 3 products")
    size = op.shape[0]
    sketch = min(n_products // 3, size)
    n_rest = n_products - 2 * sketch
    q, _ = torch.linalg.qr(op @ _rademacher(op, (size, sketch), stream_seed(seed, 0)))
    top = torch.trace(q.T @ (op @ q)).item()
    g = _rademacher(op, (size, n_rest), stream_seed(seed, 1))
    g = g - q @ (q.T @ g)
    rest = (g * (op @ g)).sum(dim=0).double() if n_rest else torch.zeros(1, dtype=torch.float64)
    std = rest.std().item() / math.sqrt(n_rest) if n_rest > 1 else math.nan
    return TraceEstimate(top + rest.mean().item(), std, 2 * sketch + n_rest)


# ---------------------------------------------------------------- spectral density

@dataclass
class SpectralDensity:
    """Stochastic Lanczos quadrature: per probe r, nodes θ_{r,i} and weights w_{r,i} (Σ_i w_{r,i} = 1).

    The density is φ(t) = (1/R) Σ_r Σ_i w_{r,i} N(t; θ_{r,i}, σ²): a probability density over
    eigenvalues (it integrates to 1), and P·Σ_i w_{r,i} θ_{r,i}^p estimates tr(A^p).
    """

    nodes: np.ndarray
    weights: np.ndarray
    size: int
    n_products: int

    def moment(self, p: int) -> float:
        """(1/R) Σ_r Σ_i w_{r,i} θ_{r,i}^p, an estimate of tr(A^p) / P (exact quadrature for p < 2·steps)."""
        return float(np.mean(np.sum(self.weights * self.nodes**p, axis=1)))

    def trace(self) -> TraceEstimate:
        """tr(A) from the first moment: P·(mean over probes of qᵀAq), with its standard error."""
        per_probe = self.size * np.sum(self.weights * self.nodes, axis=1)
        std = per_probe.std(ddof=1) / math.sqrt(len(per_probe)) if len(per_probe) > 1 else math.nan
        return TraceEstimate(float(per_probe.mean()), float(std), self.n_products)

    def density(self, grid: np.ndarray, sigma: float | None = None) -> np.ndarray:
        """φ on ``grid``; σ defaults to 1 % of the span of the nodes (the kernel width, eigenvalue units)."""
        if sigma is None:
            sigma = 0.01 * max(float(np.ptp(self.nodes)), 1e-12)
        diff = (np.asarray(grid, dtype=np.float64)[:, None] - self.nodes.reshape(-1)[None, :]) / sigma
        kernel = np.exp(-0.5 * diff**2) / (sigma * math.sqrt(2 * math.pi))
        return kernel @ self.weights.reshape(-1) / len(self.nodes)


def slq(op: LinearOperator, n_probes: int = 5, steps: int = 60, *, seed: int = 0) -> SpectralDensity:
    """Spectral density by stochastic Lanczos quadrature: ``n_probes`` Lanczos runs of ``steps`` steps
    from Rademacher start vectors (Ghorbani et al. 2019; PyHessian's ``density``)."""
    steps = min(steps, op.shape[0])
    nodes = np.zeros((n_probes, steps))
    weights = np.zeros((n_probes, steps))
    products = 0
    for r in range(n_probes):
        start = _rademacher(op, (op.shape[0],), stream_seed(seed, r))
        *_, (alphas, betas, _) = _lanczos_steps(op, start, steps)  # all steps; keep the last state
        theta, s = _tridiagonal_eigh(alphas, betas)
        nodes[r, : len(theta)], weights[r, : len(theta)] = theta, s[0] ** 2
        products += len(alphas)
    return SpectralDensity(nodes, weights, op.shape[0], products)
