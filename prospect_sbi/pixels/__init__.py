"""Resolved maps from multi-band pixels: images -> selection -> per-pixel posteriors -> maps.

Load images (:func:`load_fits`, :func:`load_cube`; maggies per pixel), choose pixels
(:func:`select_pixels`), fit them with an amortised posterior (:func:`fit_pixels`, chunked,
optionally on dask), and turn the fit into maps written as one FITS file, a PNG and a table
(:func:`make_maps`); :func:`outshining` compares the pixel-summed and integrated masses.
:func:`map_galaxy` does all of it for one galaxy as one resumable unit.
"""

from . import fit, galaxy, images, io, maps, select
from . import outshining as _outshining
from .fit import *  # noqa: F403
from .galaxy import *  # noqa: F403
from .images import *  # noqa: F403
from .io import *  # noqa: F403
from .maps import *  # noqa: F403
from .outshining import *  # noqa: F403
from .select import *  # noqa: F403

__all__ = [
    *images.__all__,
    *select.__all__,
    *fit.__all__,
    *maps.__all__,
    *io.__all__,
    *_outshining.__all__,
    *galaxy.__all__,
]
