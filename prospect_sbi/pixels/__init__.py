"""Resolved maps from multi-band pixels: images -> selection -> per-pixel posteriors -> maps.

Load images (:func:`load_fits`, :func:`load_cube`, :func:`load_images`; maggies per pixel),
choose pixels (:func:`select_pixels`), fit them with an amortised posterior
(:func:`fit_pixels`, chunked, optionally on dask), and turn the fit into maps
(:func:`make_maps`), which :meth:`PixelMaps.write` puts on disk as one FITS file, a PNG and a
table; :func:`outshining` compares the pixel-summed and integrated masses. :func:`map_galaxy`
is the one map call: all of it for one galaxy as one resumable unit; :func:`map_field`
for every galaxy of a field (mosaics, a segmentation map, a redshift catalogue), and
:func:`make_test_field` writes a realistic field to test it on.
"""

from . import field, fit, galaxy, images, io, maps, mockfield, resolved, select
from .field import *  # noqa: F403
from .fit import *  # noqa: F403
from .galaxy import *  # noqa: F403
from .images import *  # noqa: F403
from .io import *  # noqa: F403
from .maps import *  # noqa: F403
from .mockfield import *  # noqa: F403
from .resolved import *  # noqa: F403
from .select import *  # noqa: F403

__all__ = [
    *images.__all__,
    *select.__all__,
    *fit.__all__,
    *maps.__all__,
    *io.__all__,
    *resolved.__all__,
    *galaxy.__all__,
    *field.__all__,
    *mockfield.__all__,
]
