"""Readers of the real JADES data the examples and the quickstart use (``../shared/data``).

The files are not part of the package: a clone of the repository finds them beside it, or
``$PROSPECT_SBI_DATA`` names their folder. See that folder's README for their provenance.
"""

from __future__ import annotations

__all__ = ["CATALOGUE", "CUTOUTS", "find_data_dir", "read_jof_cutouts", "read_specz_catalogue"]

import os
from pathlib import Path

from .catalog import Catalog, read_catalog

#: File names inside the data folder.
CATALOGUE = "jades_specz_catalogue_subset.fits"
CUTOUTS = "jof_psfmatched_cutouts.npz"
#: Pixel side of the JOF cutouts, arcsec.
JOF_PIXEL_SCALE = 0.03


def find_data_dir(explicit: str | os.PathLike | None = None) -> Path | None:
    """Return the JADES data folder: ``explicit``, ``$PROSPECT_SBI_DATA``, or ``../shared/data``.

    ``../shared/data`` is looked for beside the current directory and beside the repository
    the package was installed from. Returns None when none exists (``explicit`` must).

    Raises
    ------
    FileNotFoundError
        ``explicit`` is given, or ``$PROSPECT_SBI_DATA`` is set, but is not a folder.
    """
    if explicit is not None:
        path = Path(explicit)
        if not path.is_dir():
            raise FileNotFoundError(f"data folder {path} does not exist")
        return path
    named = os.environ.get("PROSPECT_SBI_DATA")
    if named and not Path(named).is_dir():  # a typo must not fall back to another folder
        raise FileNotFoundError(f"PROSPECT_SBI_DATA={named} is not a folder")
    candidates = [
        named,
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2] / "shared" / "data",
    ]
    return next((Path(c) for c in candidates if c and Path(c).is_dir()), None)


def read_specz_catalogue(
    data_dir: str | os.PathLike, bands: list[str], err_floor: float = 0.0
) -> Catalog:
    """Read the 99 JADES galaxies with spectroscopic redshifts, in maggies, in ``bands`` order.

    The file's values are Jy although its header says nJy (checked against the F444W range),
    so the unit is forced to Jy. NaN entries are missing bands; every row is kept.
    ``err_floor`` is added in quadrature as a fraction of the flux (:func:`read_catalog`): the
    catalogue's errors reach S/N 3000, far below any pixel noise.
    """
    return read_catalog(
        Path(data_dir) / CATALOGUE,
        bands,
        unit="Jy",
        zred_column="redshift",
        id_column="id",
        err_floor=err_floor,
    )


def read_jof_cutouts(data_dir: str | os.PathLike) -> dict[int, object]:
    """Read the three PSF-matched JOF cutouts as :class:`~prospect_sbi.pixels.PixelImages`.

    14 bands in microJy per pixel, the galaxy's segmentation map and photometric redshift.
    The file has no WCS: a TAN WCS centred on the cutout at the galaxy's RA/Dec with
    0.03"/pixel is attached (approximate).

    Returns
    -------
    dict
        Galaxy id -> PixelImages.
    """
    import numpy as np
    from astropy.wcs import WCS

    from .pixels import load_cube

    data = np.load(Path(data_dir) / CUTOUTS)
    ids = sorted(int(k[2:].split("_")[0]) for k in data.files if k.endswith("_phot_uJy"))
    out = {}
    for gid in ids:
        flux = data[f"id{gid}_phot_uJy"]
        wcs = WCS(naxis=2)
        wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        wcs.wcs.crval = [float(v) for v in data[f"id{gid}_radec"]]
        wcs.wcs.crpix = [(flux.shape[-1] + 1) / 2, (flux.shape[-2] + 1) / 2]
        wcs.wcs.cdelt = [-JOF_PIXEL_SCALE / 3600, JOF_PIXEL_SCALE / 3600]
        out[gid] = load_cube(
            flux,
            data[f"id{gid}_err_uJy"],
            [str(b) for b in data["bands"]],
            "uJy",
            wcs=wcs,
            segmap=data[f"id{gid}_segmap_det"],
            zred=float(data[f"id{gid}_redshift"]),
        )
    return out
