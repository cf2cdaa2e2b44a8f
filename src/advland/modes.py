"""Each module's own training-mode flag, as the model was handed to the trainer.

The flags are restored at the start of every epoch, so a user's frozen BatchNorm or eval-mode dropout
stays as the user set it: a root in train mode keeps its modules' flags; a root in eval mode means
"all in train mode". Wrappers of the training forward (compile, precision) are in train mode.
"""

from __future__ import annotations

from torch import nn


class TrainingModes:
    """The training flags of every module of ``forward`` (which wraps ``model``), taken now."""

    def __init__(self, model: nn.Module, forward: nn.Module):
        own = {module: module.training or not model.training for module in model.modules()}
        self.flags = [(module, own.get(module, True)) for module in forward.modules()]

    def restore(self) -> None:
        for module, flag in self.flags:
            module.training = flag
