"""The Trainer's callback protocol: every hook the loop calls, in the order it calls them.

A callback subclasses :class:`Callback` and overrides the hooks it needs (the others do nothing)::

    on_fit_start(trainer)                      before the first epoch (after a resume's state is restored)
    on_epoch_start(trainer, epoch, n_steps)    epoch counts from 1; n_steps optimizer steps follow
    on_step_end(trainer)                       after each optimizer step
    on_epoch_end(trainer, epoch, record)       after validation: may add entries to ``record``
                                               (they land in metrics.jsonl)
    on_epoch_done(trainer, epoch, record)      the record is final (with ``seconds``) and the last entry
                                               of ``trainer.state.history``
    on_fit_end(trainer)                        after the last epoch, before the test
    on_train_end(trainer, summary)             once the test numbers are known and summary.json is written

Besides the hooks, a callback may offer weights to the checkpointer's selection of ``best``
(:meth:`Callback.candidates`, e.g. the EMA of the weights) and keep a state in the run's resume file
(:meth:`Callback.state_dict` / :meth:`Callback.load_state_dict`; restored during the checkpointer's
``on_fit_start``, which runs first).

An object that is not a :class:`Callback` but defines some of these methods (an ``on_epoch_end`` alone,
say) is accepted by the Trainer through :func:`as_callback`: the hooks it lacks do nothing.
"""

from __future__ import annotations

from typing import Any

Trainer = Any
"""The :class:`advland.train.Trainer` calling the hook (not imported: the trainer imports its callbacks)."""

HOOKS = ("on_fit_start", "on_epoch_start", "on_step_end", "on_epoch_end", "on_epoch_done", "on_fit_end",
         "on_train_end")


class Callback:
    """A training-loop hook set; every hook does nothing unless overridden."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of ``fit`` (on resume, after the saved state is restored)."""

    def on_epoch_start(self, trainer: Trainer, epoch: int, n_steps: int) -> None:
        """Epoch ``epoch`` (from 1) begins; it takes ``n_steps`` optimizer steps."""

    def on_step_end(self, trainer: Trainer) -> None:
        """An optimizer step finished."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """Training and validation of ``epoch`` are done; entries added to ``record`` land in metrics.jsonl."""

    def on_epoch_done(self, trainer: Trainer, epoch: int, record: dict[str, Any]) -> None:
        """``record`` is final (with ``seconds``) and appended to ``trainer.state.history``."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """The last epoch is done; the test follows."""

    def on_train_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        """summary.json is written with ``summary``."""

    def candidates(self, record: dict[str, Any], criterion: str) -> list[tuple[str, Any, float]]:
        """Weights this callback offers as ``best`` this epoch: (name, module, validation score under ``criterion``)."""
        return []

    def state_dict(self) -> dict[str, Any] | None:
        """What a resume needs to continue this callback exactly (None: nothing)."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Take back what :meth:`state_dict` returned."""


class _Partial(Callback):
    """An object defining only some hooks, completed with the no-op hooks of :class:`Callback`."""

    def __init__(self, hooks: Any):
        self.hooks = hooks
        for name in HOOKS:
            if name in dir(hooks):
                setattr(self, name, getattr(hooks, name))


def as_callback(hooks: Any) -> Callback:
    """``hooks`` as a :class:`Callback`: itself when it is one, else with the hooks it lacks doing nothing."""
    return hooks if isinstance(hooks, Callback) else _Partial(hooks)
