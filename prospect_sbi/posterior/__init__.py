"""Amortised posterior estimation: encode observations, train, sample, refine, summarise, save.

:func:`train` fits a lampe NPE (a zuko flow conditioned on an embedding of the observation) on
a training set written by :func:`prospect_sbi.simulate`, with a noise model applied on the fly,
and returns an :class:`AmortizedPosterior`. That samples thousands of objects at once and
saves to one safetensors file with a JSON header (nothing is pickled).
"""

from . import (
    bounds,
    checks,
    draws,
    encoding,
    estimator,
    files,
    heldout,
    importance,
    layers,
    metrics,
    network,
    observations,
    plausibility,
    psis,
    recalibration,
    refine,
    target,
    training,
    zguide,
)
from .bounds import *  # noqa: F403
from .checks import *  # noqa: F403
from .draws import *  # noqa: F403
from .encoding import *  # noqa: F403
from .estimator import *  # noqa: F403
from .files import *  # noqa: F403
from .heldout import *  # noqa: F403
from .importance import *  # noqa: F403
from .layers import *  # noqa: F403
from .metrics import *  # noqa: F403
from .network import *  # noqa: F403
from .observations import *  # noqa: F403
from .plausibility import *  # noqa: F403
from .psis import *  # noqa: F403
from .recalibration import *  # noqa: F403
from .refine import *  # noqa: F403
from .target import *  # noqa: F403
from .training import *  # noqa: F403
from .zguide import *  # noqa: F403

__all__ = [
    *training.__all__,
    *estimator.__all__,
    *[name for name in files.__all__ if name not in estimator.__all__],
    *draws.__all__,
    *network.__all__,
    *layers.__all__,
    *bounds.__all__,
    *encoding.__all__,
    *checks.__all__,
    *plausibility.__all__,
    *metrics.__all__,
    *heldout.__all__,
    *recalibration.__all__,
    *observations.__all__,
    *importance.__all__,
    *psis.__all__,
    *refine.__all__,
    *target.__all__,
    *zguide.__all__,
]
