"""Tracking landscape quantities during training: a Trainer callback (config section ``track``).

After the epochs the config asks for, the callback measures on the first ``track.n`` training
examples, with the training threat model at its target eps, and adds to the epoch's record
(hence to metrics.jsonl):

* ``grad_norm``: ‖∇L_ε(θ)‖₂;
* ``hessian_top_eigs``: the top ``hessian_top_k`` eigenvalues of the adversarial loss's Hessian;
* ``scatter_cos_delta``, ``scatter_cos_sign_delta``, ``scatter_cos_grad``: gradient scattering;
* ``grad_lipschitz``: the gradient Lipschitz estimate (mean over 3 directions);
* ``flatness_avg``: average-case flatness of the robust loss (ξ = 0.5, 5 samples).

It then redraws RUN/landscape/tracked.png from the history. The measurements draw their random
numbers from their own seeded generators, never from the global RNG, so tracking does not change
the training's random stream and exact resume still holds.
"""

from __future__ import annotations

from typing import Any

from ..config import TrackConfig
from ..plots.landscape import plot_tracked
from .flatness import average_flatness
from .gradients import gradient_lipschitz, gradient_norm, gradient_scattering
from .hessian import hessian
from .spectral import lanczos

TRACKED_KEYS: tuple[str, ...] = (
    "grad_norm", "hessian_top_eigs", "scatter_cos_delta", "scatter_cos_sign_delta", "scatter_cos_grad",
    "grad_lipschitz", "flatness_avg",
)


class LandscapeTracker:
    """Trainer callback measuring what ``config`` (a :class:`TrackConfig`) enables."""

    def __init__(self, config: TrackConfig):
        self.config = config

    def _due(self, every: int, epoch: int) -> bool:
        return every > 0 and epoch % every == 0

    def measure(self, model, x, y, threat, epoch: int) -> dict[str, Any]:
        """The quantities due at ``epoch`` for ``model`` on (x, y) under ``threat``."""
        c, out = self.config, {}
        if c.grad_norm:
            out["grad_norm"] = gradient_norm(model, x, y, threat)
        if self._due(c.hessian_every, epoch):
            out["hessian_top_eigs"] = lanczos(hessian(model, x, y, threat=threat), k=c.hessian_top_k).values.tolist()
        if self._due(c.scattering_every, epoch):
            s = gradient_scattering(model, x, y, threat)
            out |= {"scatter_cos_delta": s.cos_delta, "scatter_cos_sign_delta": s.cos_sign_delta,
                    "scatter_cos_grad": s.cos_grad}
        if self._due(c.lipschitz_every, epoch):
            out["grad_lipschitz"] = gradient_lipschitz(model, x, y, threat).mean
        if self._due(c.flatness_every, epoch):
            out["flatness_avg"] = average_flatness(model, x, y, threat, n_samples=5).value
        return out

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        x, y = trainer.data.x_train[: self.config.n], trainer.data.y_train[: self.config.n]
        measured = self.measure(trainer.model, x, y, trainer.threat, epoch)
        record.update(measured)
        if measured:
            plot_tracked([*trainer.state.history, record], TRACKED_KEYS, trainer.run.path / "landscape" / "tracked.png")
