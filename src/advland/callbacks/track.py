"""Tracking landscape quantities during training: a Trainer callback (config section ``track``).

After the epochs the config asks for, the callback measures on the first ``track.n`` training
examples, with the training threat model at its target eps, and adds to the epoch's record
(hence to metrics.jsonl):

* ``grad_norm``: ‖∇L_ε(θ)‖₂;
* ``hessian_top_eigs``: the top ``hessian_top_k`` eigenvalues of the adversarial loss's Hessian;
* ``scatter_cos_delta``, ``scatter_cos_sign_delta``, ``scatter_cos_grad``, ``scatter_cos_grad_per_example``:
  gradient scattering;
* ``clean_grad_norm``: ‖∇L_0(θ)‖₂ of the clean loss;
* ``gap_train_robust_acc``, ``gap_test_robust_acc``, ``robust_gap``: accuracy under the evaluation PGD
  (``eval.steps`` steps of ε/4, every iterate counted) on the first ``gap_n`` training and test examples,
  and train minus test (the robust generalization gap, per epoch; never used to select a checkpoint);
* ``grad_lipschitz``: the gradient Lipschitz estimate (mean over 3 directions);
* ``flatness_avg``: average-case flatness of the robust loss (ξ = 0.5, 5 samples);
* ``curve_clean_loss``, ``curve_adv_loss``: the losses on a 1-D curve through θ (``curve_steps`` points
  over [-1, 1] along a filter-normalized random direction), and ``curve_sharpness``: the adversarial
  loss (the clean one in clean training) at the two ends, averaged, minus at θ. Each curve is also
  saved as RUN/landscape/curve_epoch{E}.

It then redraws RUN/landscape/tracked.png from the history (and tracked_curves.png, the curves by
epoch). The measurements draw their random numbers from their own seeded generators, never from the
global RNG, so tracking does not change the training's random stream and exact resume still holds.
"""

from __future__ import annotations

from typing import Any

from ..attacks import pgd_correct
from ..config import TrackConfig
from ..evaluate import eval_threat
from ..plots.landscape import plot_curves_by_epoch, plot_tracked
from ..landscape.flatness import average_flatness
from ..landscape.gradients import gradient_lipschitz, gradient_norm, gradient_scattering
from ..landscape.hessian import hessian
from ..landscape.losses import generator
from ..landscape.spectral import lanczos
from ..landscape.surface import Landscape, surface
from .base import Callback

TRACKED_KEYS: tuple[str, ...] = (
    "grad_norm", "clean_grad_norm", "robust_gap", "hessian_top_eigs", "scatter_cos_delta", "scatter_cos_sign_delta", "scatter_cos_grad",
    "scatter_cos_grad_per_example", "grad_lipschitz", "flatness_avg", "curve_sharpness",
)
CURVE_METRICS = ("clean_loss", "adv_loss")


class LandscapeTracker(Callback):
    """Trainer callback measuring what ``config`` (a :class:`TrackConfig`) enables."""

    def __init__(self, config: TrackConfig, eval_steps: int = 20):
        self.config = config
        self.eval_steps = eval_steps

    def _due(self, every: int, epoch: int) -> bool:
        return every > 0 and epoch % every == 0

    def measure(self, model, x, y, threat, epoch: int) -> dict[str, Any]:
        """The quantities due at ``epoch`` for ``model`` on (x, y) under ``threat``."""
        c, out = self.config, {}
        if c.grad_norm:
            out["grad_norm"] = gradient_norm(model, x, y, threat)
        if c.clean_grad_norm:
            out["clean_grad_norm"] = gradient_norm(model, x, y, None)
        if self._due(c.hessian_every, epoch):
            out["hessian_top_eigs"] = lanczos(hessian(model, x, y, threat=threat), k=c.hessian_top_k).values.tolist()
        if self._due(c.scattering_every, epoch):
            s = gradient_scattering(model, x, y, threat)
            out |= {"scatter_cos_delta": s.cos_delta, "scatter_cos_sign_delta": s.cos_sign_delta,
                    "scatter_cos_grad": s.cos_grad, "scatter_cos_grad_per_example": s.cos_grad_per_example}
        if self._due(c.lipschitz_every, epoch):
            out["grad_lipschitz"] = gradient_lipschitz(model, x, y, threat).mean
        if self._due(c.flatness_every, epoch):
            out["flatness_avg"] = average_flatness(model, x, y, threat, n_samples=5).value
        return out

    def curve(self, model, x, y, threat, epoch: int) -> Landscape | None:
        """The 1-D curve due at ``epoch`` (clean loss only when ``threat`` is None or inactive), or None."""
        if not self._due(self.config.curve_every, epoch):
            return None
        metrics = CURVE_METRICS if threat is not None and threat.active else CURVE_METRICS[:1]
        return surface(model, x, y, dims=1, steps=self.config.curve_steps, threat=threat, metrics=metrics)

    def gap(self, model, data, threat, epoch: int) -> dict[str, float]:
        """Robust accuracy under the evaluation PGD on the first ``gap_n`` training and test examples, if due."""
        if not self._due(self.config.gap_every, epoch) or threat is None or not threat.active:
            return {}
        attack, n = eval_threat(threat.norm, threat.eps, self.eval_steps), self.config.gap_n
        device = next(model.parameters()).device
        acc = {}  # random starts from a generator of their own: the training's random stream is left as it was
        for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
            mask = pgd_correct(model, x[:n].to(device), y[:n].to(device), attack, generator=generator(epoch, device))
            acc[split] = mask.float().mean().item()
        return {"gap_train_robust_acc": acc["train"], "gap_test_robust_acc": acc["test"],
                "robust_gap": acc["train"] - acc["test"]}

    def on_epoch_end(self, trainer: Any, epoch: int, record: dict[str, Any]) -> None:
        x, y = trainer.data.x_train[: self.config.n], trainer.data.y_train[: self.config.n]
        measured = self.measure(trainer.model, x, y, trainer.threat, epoch)
        measured |= self.gap(trainer.model, trainer.data, trainer.threat, epoch)
        curve = self.curve(trainer.model, x, y, trainer.threat, epoch)
        folder = trainer.run.path / "landscape"
        if curve is not None:
            loss = curve.values.get("adv_loss", curve.values["clean_loss"])
            measured |= {f"curve_{m}": v.tolist() for m, v in curve.values.items()}
            measured["curve_sharpness"] = float((loss[0] + loss[-1]) / 2 - loss[len(loss) // 2])
            trainer.run.save_analysis("curve", str(epoch), curve, ("json", "npz"))
        record.update(measured)
        records = [*trainer.state.history, record]
        if measured:
            plot_tracked(records, TRACKED_KEYS, folder / "tracked.png")
        if curve is not None:
            plot_curves_by_epoch(records, list(curve.values), folder / "tracked_curves.png")
