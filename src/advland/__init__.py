"""advland: adversarial training and the analysis of its loss landscape.

Quick use from Python::

    import advland
    model = advland.load("runs/at")                 # trained nn.Module, inputs in [0, 1]
    model = advland.load("w.pt", model="preact_resnet18", data="cifar10", normalize="data")  # any weights
    x, y = advland.data.load("digits", "test")      # tensors
    advland.landscape.surface(model, x, y)           # loss landscapes, Hessian, gradients, flatness
"""

from . import analyses, data, landscape
from .attacks import pgd, pgd_correct
from .config import Config, load_config
from .ensemble import SnapshotEnsemble
from .errors import AdvlandError
from .evaluate import evaluate
from .load import load, load_ensemble, load_model
from .objectives import create_objective
from .optim import EntropySGD
from .perturb import WeightPerturbation
from .run import Run
from .threat import ThreatModel, fgsm_rs
from .train import Trainer, train
from .version import __version__

__all__ = [
    "AdvlandError", "Config", "EntropySGD", "Run", "SnapshotEnsemble", "ThreatModel", "Trainer", "WeightPerturbation",
    "analyses", "create_objective", "data", "evaluate", "fgsm_rs", "landscape", "load", "load_config", "load_ensemble", "load_model", "pgd",
    "train",
]
