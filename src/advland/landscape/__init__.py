"""Loss-landscape analyses on any ``nn.Module`` and data: numbers first, figures from them.

Quick use (docs/landscape.md has the whole API)::

    from advland import landscape as L
    s = L.surface(model, x, y, dims=2, metrics=["adv_loss"], threat=threat)   # Li et al. surfaces
    H = L.hessian(model, x, y, threat=threat)                                 # operator: H @ v
    top = L.lanczos(H, k=5).values                                            # estimators on it
    L.gradient_lipschitz(model, x, y, threat), L.average_flatness(model, x, y, threat)
"""

from .directions import (
    DirectionSpec,
    hessian_directions,
    normalize_direction,
    random_direction,
    random_directions,
)
from .flat_model import FlatModel
from .flatness import Flatness, average_flatness, worst_flatness
from .gradients import (
    Lipschitz,
    Scattering,
    gradient_lipschitz,
    gradient_norm,
    gradient_scattering,
    lipschitz_ratios,
)
from .hessian import HessianOperator, blocks, hessian
from .points import METRICS, evaluate_points
from .spectral import (
    Eigen,
    SpectralDensity,
    TraceEstimate,
    hutchinson,
    hutchpp,
    lanczos,
    power_iteration,
    slq,
)
from .spectrum import hessian_spectrum
from .surface import (
    Landscape,
    evaluate_grid,
    interpolate,
    recompute_bn_statistics,
    surface,
)

__all__ = [
    "METRICS", "DirectionSpec", "Eigen", "FlatModel", "Flatness", "HessianOperator", "Landscape", "Lipschitz",
    "Scattering", "SpectralDensity", "TraceEstimate", "average_flatness", "blocks", "evaluate_grid", "evaluate_points",
    "gradient_lipschitz", "gradient_norm", "gradient_scattering", "hessian", "hessian_directions", "hessian_spectrum", "hutchinson", "hutchpp",
    "interpolate", "lanczos", "lipschitz_ratios", "normalize_direction", "power_iteration", "random_direction",
    "random_directions", "recompute_bn_statistics", "slq", "surface", "worst_flatness",
]
