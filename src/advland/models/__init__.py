"""Model registry and the built-in nets; ``create_model(name, input_shape=..., num_classes=...)``.

Built-in models: mlp, cnn_small, lenet, preact_resnet18, resnet18, wrn (wrn34_10, wrn28_10), vgg16;
preact_resnet18 and the wide ResNets take ``activation`` (relu, silu/swish: :mod:`.activation`).
"""

from . import cnn_small, lenet, mlp, preact_resnet, resnet, vgg, wrn  # noqa: F401  (registers the models)
from .normalize import Normalize
from .registry import ModelError, create_model, list_models, register_model

__all__ = ["ModelError", "Normalize", "create_model", "list_models", "register_model"]
