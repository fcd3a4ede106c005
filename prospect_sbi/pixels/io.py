"""Atomic writes of map FITS files and per-pixel tables, and reading the maps back.

``write_table`` and ``atomic_path`` are the package's own (``prospect_sbi._io``), public here.
"""

from __future__ import annotations

__all__ = ["atomic_path", "read_maps", "write_maps", "write_table"]

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path, write_table


def write_maps(path: str | os.PathLike, maps: Any, overwrite: bool = False) -> Path:
    """Write :class:`~prospect_sbi.pixels.PixelMaps` as one multi-extension FITS file.

    The primary HDU holds only the provenance; then one image HDU per map, named after it in
    upper case (``LOG_SIGMA_MSTAR_P50``), with the WCS of the images and ``BUNIT``; then, with
    a galaxy redshift posterior, a table ``ZRED_DRAWS`` (columns ``segment``, ``zred``: one
    row per draw).

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for key, (value, comment) in maps.header.items():
        primary.header[key] = (value, comment)
    wcs_header = maps.wcs.to_header() if maps.wcs is not None else None
    hdus = [primary]
    for name, data in maps.maps.items():
        hdu = fits.ImageHDU(np.asarray(data), name=name.upper())
        if wcs_header is not None:
            hdu.header.update(wcs_header)
        hdu.header["BUNIT"] = maps.units.get(name, "")[:68]
        hdus.append(hdu)
    zdraws = getattr(maps, "zred_draws", None) or {}
    if zdraws:
        seg = np.concatenate([np.full(len(d), g, np.int64) for g, d in zdraws.items()])
        z = np.concatenate([np.asarray(d, np.float64) for d in zdraws.values()])
        cols = [fits.Column("segment", "K", array=seg), fits.Column("zred", "D", array=z)]
        hdus.append(fits.BinTableHDU.from_columns(cols, name="ZRED_DRAWS"))
    with atomic_path(path, overwrite) as tmp:
        fits.HDUList(hdus).writeto(tmp)
    return Path(path)


def read_maps(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], Any, dict]:
    """Read a file of :func:`write_maps`: ``(maps, wcs, primary header)``.

    Map names come back in lower case; ``wcs`` is that of the first map (None without one);
    the ``ZRED_DRAWS`` table, when there, comes back as ``maps["zred_draws"]``, a structured
    array (``segment``, ``zred``).
    """
    import warnings

    from astropy.io import fits
    from astropy.wcs import WCS

    maps, wcs = {}, None
    with fits.open(path) as hdul:
        header = dict(hdul[0].header)
        for hdu in hdul[1:]:
            maps[hdu.name.lower()] = np.array(hdu.data)
            if wcs is None and "CTYPE1" in hdu.header:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    wcs = WCS(hdu.header)
    return maps, wcs, header
