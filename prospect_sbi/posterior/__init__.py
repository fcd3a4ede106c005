"""Amortised posterior estimation: encode observations, train, sample, summarise, save.

:func:`train` fits a lampe NPE (a zuko flow conditioned on an embedding of the observation) on
a training set written by :func:`prospect_sbi.simulate`, with a noise model applied on the fly,
and returns an :class:`AmortizedPosterior`. That samples thousands of objects at once and
saves to one safetensors file with a JSON header (nothing is pickled).
"""

from . import (
    bounds,
    checks,
    encoding,
    estimator,
    metrics,
    network,
    plausibility,
    recalibration,
    training,
)
from .bounds import *  # noqa: F403
from .checks import *  # noqa: F403
from .encoding import *  # noqa: F403
from .estimator import *  # noqa: F403
from .metrics import *  # noqa: F403
from .network import *  # noqa: F403
from .plausibility import *  # noqa: F403
from .recalibration import *  # noqa: F403
from .training import *  # noqa: F403

__all__ = [
    *training.__all__,
    *estimator.__all__,
    *network.__all__,
    *bounds.__all__,
    *encoding.__all__,
    *checks.__all__,
    *plausibility.__all__,
    *metrics.__all__,
    *recalibration.__all__,
]
