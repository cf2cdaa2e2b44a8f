"""advland: adversarial training and the analysis of its loss landscape.

Quick use from Python::

    import advland
    model = advland.load("runs/at")                 # trained nn.Module, inputs in [0, 1]
    x, y = advland.data.load("digits", "test")      # tensors
    advland.landscape.surface(model, x, y)           # loss landscapes, Hessian, gradients, flatness
"""

from . import data, landscape
from .attacks import pgd
from .config import Config, load_config
from .errors import AdvlandError
from .evaluate import evaluate
from .objectives import create_objective
from .run import Run, load
from .threat import ThreatModel, fgsm_rs
from .train import Trainer, train

__all__ = [
    "AdvlandError", "Config", "Run", "ThreatModel", "Trainer", "create_objective", "data", "evaluate",
    "fgsm_rs", "landscape", "load", "load_config", "pgd", "train",
]
__version__ = "0.1.0"
