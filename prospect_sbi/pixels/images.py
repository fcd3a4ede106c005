"""Multi-band images -> maggies: FITS files or (band, y, x) cubes, units, WCS, pixel scale."""

from __future__ import annotations

__all__ = ["PixelImages", "flux_unit_factor", "load_cube", "load_fits"]

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..filters import resolve_band_names

_JY_PER_MAGGIE = 3631.0
_ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
#: Jy per unit for the flux units of a pixel (not per area).
_PER_PIXEL = {"maggies": _JY_PER_MAGGIE, "maggie": _JY_PER_MAGGIE, "jy": 1.0, "mjy": 1e-3,
              "ujy": 1e-6, "microjy": 1e-6, "njy": 1e-9}  # fmt: skip
#: Jy per steradian for the surface-brightness units.
_PER_SR = {"mjy/sr": 1e6, "jy/sr": 1.0}


def _normalise_unit(unit: str) -> str:
    u = str(unit).strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    u = re.sub(r"(/|per)(pixel|pix)$", "", u)
    return u.replace("steradian", "sr")


def flux_unit_factor(unit: str, pixel_scale: float | None = None,
                     pixel_area_sr: float | None = None) -> float:  # fmt: skip
    """Factor that turns pixel values in ``unit`` into maggies (Jy / 3631) per pixel.

    Parameters
    ----------
    unit : str
        ``"maggies"``, ``"Jy"``, ``"mJy"``, ``"uJy"`` (or ``"microJy"``, ``"µJy"``), ``"nJy"``,
        each optionally ``"... per pixel"`` / ``".../pix"``; or a surface brightness,
        ``"MJy/sr"`` (JWST pipeline images) or ``"Jy/sr"``.
    pixel_scale : float, optional
        Pixel side, arcsec; needed for a surface brightness unless ``pixel_area_sr`` is given.
    pixel_area_sr : float, optional
        Pixel solid angle, steradian (JWST headers' ``PIXAR_SR``); preferred over the scale.

    Returns
    -------
    float
        Multiply the image by it to get maggies per pixel.

    Raises
    ------
    ValueError
        An unknown unit, or a surface brightness without a pixel scale.

    Examples
    --------
    >>> flux_unit_factor("uJy") * 3631e6
    1.0
    >>> round(flux_unit_factor("MJy/sr", pixel_scale=0.03) * 3631, 12)  # Jy per MJy/sr
    2.1154e-08
    """
    u = _normalise_unit(unit)
    if u in _PER_PIXEL:
        return _PER_PIXEL[u] / _JY_PER_MAGGIE
    if u in _PER_SR:
        if pixel_area_sr is None:
            if pixel_scale is None or not pixel_scale > 0:
                raise ValueError(f"unit {unit!r} is per steradian: give the pixel scale "
                                 "(arcsec) or the pixel area (sr)")  # fmt: skip
            pixel_area_sr = (float(pixel_scale) / _ARCSEC_PER_RAD) ** 2
        return _PER_SR[u] * float(pixel_area_sr) / _JY_PER_MAGGIE
    raise ValueError(f"unknown flux unit {unit!r}; use maggies, Jy, mJy, uJy, nJy (per pixel) "
                     "or MJy/sr, Jy/sr")  # fmt: skip


@dataclass
class PixelImages:
    """Fluxes and errors of L bands on one (ny, nx) pixel grid, in maggies per pixel.

    A band with zero, negative or non-finite error in a pixel is missing there: NaN in both
    ``flux`` and ``err`` (never zero flux).

    Attributes
    ----------
    flux, err : numpy.ndarray, (L, ny, nx)
        Flux and 1-sigma error per pixel, maggies.
    bands : list of str
        sedpy names of the L bands, in order.
    wcs : astropy.wcs.WCS or None
        Celestial WCS of the grid.
    pixel_scale : float or None
        Pixel side, arcsec.
    segmap : numpy.ndarray, (ny, nx), int, or None
        Segmentation map (0: background).
    zred : float, numpy.ndarray (ny, nx) or None
        Redshift of the galaxy (or per pixel).
    meta : dict
        Where the data came from (files, units).
    """

    flux: np.ndarray
    err: np.ndarray
    bands: list[str]
    wcs: Any = None
    pixel_scale: float | None = None
    segmap: np.ndarray | None = None
    zred: Any = None
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx)."""
        return tuple(self.flux.shape[1:])

    def matched(self, filters: Sequence[str]) -> PixelImages:
        """Return the images with their bands in the order of ``filters`` (an estimator's).

        Raises
        ------
        ValueError
            Naming a band the images have and ``filters`` lack, or the reverse.
        """
        want = resolve_band_names(filters)
        extra = [b for b in self.bands if b not in want]
        if extra:
            raise ValueError(f"band {extra[0]} of the images is not one the estimator knows "
                             f"({len(want)} bands: {want[0]}..{want[-1]})")  # fmt: skip
        lacking = [b for b in want if b not in self.bands]
        if lacking:
            raise ValueError(f"the images have no {lacking[0]} band, which the estimator "
                             f"needs ({len(lacking)} missing); add it as NaN to mark it "
                             "missing")  # fmt: skip
        order = [self.bands.index(b) for b in want]
        if order == list(range(len(order))):
            return self
        return replace(self, flux=self.flux[order], err=self.err[order], bands=want)

    def pixels(self, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fluxes and errors of the pixels where ``mask`` is True, (B, L) each, row-major."""
        return self.flux[:, mask].T.copy(), self.err[:, mask].T.copy()


def _clean(flux: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mark bands with zero, negative or non-finite error (or flux) as missing: NaN in both."""
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(err) | ~np.isfinite(flux) | (err <= 0)
    flux, err = flux.copy(), err.copy()
    flux[bad] = np.nan
    err[bad] = np.nan
    return flux, err


def _check_segmap(segmap: Any, shape: tuple[int, int]) -> np.ndarray | None:
    if segmap is None:
        return None
    if isinstance(segmap, (str, os.PathLike)):
        from astropy.io import fits

        segmap = fits.getdata(segmap)
    seg = np.asarray(segmap)
    if seg.shape != shape:
        raise ValueError(f"segmap has shape {seg.shape}; the images are {shape}")
    return seg.astype(np.int64)


def load_cube(
    flux: Any,
    err: Any,
    bands: Sequence[str],
    unit: str,
    *,
    pixel_scale: float | None = None,
    wcs: Any = None,
    segmap: Any = None,
    zred: Any = None,
) -> PixelImages:
    """Images from a (band, y, x) flux cube and its error cube.

    Parameters
    ----------
    flux, err : array_like, (L, ny, nx)
        Flux and 1-sigma error per pixel in ``unit``.
    bands : sequence of str
        The L bands (sedpy or short names, e.g. ``"F444W"``).
    unit : str
        See :func:`flux_unit_factor`.
    pixel_scale : float, optional
        Pixel side, arcsec (taken from ``wcs`` when not given); needed for surface densities
        and for MJy/sr.
    wcs : astropy.wcs.WCS, optional
        Celestial WCS of the grid, copied into the map headers.
    segmap : array_like (ny, nx) or path, optional
    zred : float or array_like (ny, nx), optional

    Returns
    -------
    PixelImages

    Raises
    ------
    ValueError
        Shapes that differ, a band count that differs from ``len(bands)``, unknown bands or
        unit.
    """
    flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
    if flux.ndim != 3:
        raise ValueError(f"flux cube has shape {flux.shape}; expected (band, y, x)")
    if err.shape != flux.shape:
        raise ValueError(f"error cube has shape {err.shape}; the flux cube is {flux.shape}")
    names = resolve_band_names(bands)
    if len(names) != len(flux):
        raise ValueError(f"{len(names)} band names for a cube of {len(flux)} bands")
    if len(set(names)) != len(names):
        dup = next(b for b in names if names.count(b) > 1)
        raise ValueError(f"band {dup} appears twice")
    if wcs is not None:
        wcs = wcs.celestial
        if pixel_scale is None:
            pixel_scale = _wcs_scale(wcs)
    factor = flux_unit_factor(unit, pixel_scale)
    flux, err = _clean(flux * factor, err * factor)
    return PixelImages(flux, err, names, wcs, None if pixel_scale is None else float(pixel_scale),
                       _check_segmap(segmap, flux.shape[1:]), zred,
                       {"unit": str(unit), "source": "cube"})  # fmt: skip


def _wcs_scale(wcs: Any) -> float:
    from astropy.wcs.utils import proj_plane_pixel_scales

    scales = proj_plane_pixel_scales(wcs) * 3600.0
    return float(np.sqrt(scales[0] * scales[1]))


def _read(path: Any, ext: Any) -> tuple[np.ndarray, Any, Any]:
    """Read the data, header and the primary header of one image (``path`` or ``(path, ext)``)."""
    from astropy.io import fits

    if isinstance(path, tuple):
        path, ext = path
    with fits.open(path, memmap=False) as hdul:
        if ext is None:
            ext = next((i for i, h in enumerate(hdul) if h.data is not None and h.data.ndim == 2),
                       None)  # fmt: skip
            if ext is None:
                raise ValueError(f"{path}: no 2-d image in any HDU")
        try:
            hdu = hdul[ext]
        except (KeyError, IndexError):
            hint = (": give error images (errors=, --error) or weights (weights=, --weight)"
                    if ext == "ERR" else "")  # fmt: skip
            raise ValueError(f"{path} has no {ext!r} extension{hint}") from None
        if hdu.data is None or hdu.data.ndim != 2:
            raise ValueError(f"{path}[{ext}] is not a 2-d image")
        return np.asarray(hdu.data, dtype=float), hdu.header.copy(), hdul[0].header.copy()


def _header_unit(header: Any, primary: Any, path: Any) -> str:
    for h in (header, primary):
        if h.get("BUNIT"):
            return str(h["BUNIT"])
    raise ValueError(f"{path}: no BUNIT in the header; pass unit= (e.g. 'nJy', 'MJy/sr')")


def _header_wcs(header: Any, path: Any) -> Any:
    from astropy.wcs import WCS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FITS-standard chatter on JWST headers
        wcs = WCS(header).celestial
    if not wcs.has_celestial or wcs.naxis != 2:
        raise ValueError(f"{path}: no celestial WCS in the header; pass wcs= to load_fits")
    return wcs


def _same_grid(a: Any, b: Any, shape: tuple[int, int], what: str) -> None:
    ny, nx = shape
    corners = np.array([[0, 0], [nx - 1, ny - 1]], dtype=float)
    sky = a.all_pix2world(corners, 0)
    back = b.all_world2pix(sky, 0)
    if np.max(np.abs(back - corners)) > 0.1:
        raise ValueError(f"{what} is on a different pixel grid (WCS differs by "
                         f"{np.max(np.abs(back - corners)):.2f} pixels)")  # fmt: skip


def load_fits(
    images: Mapping[str, Any],
    errors: Mapping[str, Any] | None = None,
    *,
    weights: Mapping[str, Any] | None = None,
    unit: str | None = None,
    ext: Any = None,
    wcs: Any = None,
    segmap: Any = None,
    zred: Any = None,
) -> PixelImages:
    """Images from one FITS file per band, with error maps, weight maps or ERR extensions.

    Parameters
    ----------
    images : mapping
        Band name -> path (or ``(path, ext)``) of the science image. Bands in any order;
        :meth:`PixelImages.matched` puts them in an estimator's order.
    errors : mapping, optional
        Band -> 1-sigma error image (same unit as the science image).
    weights : mapping, optional
        Band -> inverse-variance image (1 / unit^2); ``err = 1 / sqrt(weight)``.
    unit : str, optional
        Flux unit of every image; default: each header's ``BUNIT``.
    ext : int or str, optional
        HDU of the science images (default: the first 2-d image). Without ``errors`` or
        ``weights``, the error is read from an ``ERR`` HDU of the same file.
    wcs : astropy.wcs.WCS, optional
        Use this WCS instead of the headers' (for files without one).
    segmap : array_like or path, optional
    zred : float or array_like (ny, nx), optional

    Returns
    -------
    PixelImages

    Raises
    ------
    ValueError
        Error and science images for different bands, different shapes or pixel grids, a
        missing WCS or unit, unknown band names or units.
    """
    bands = list(images)
    if not bands:
        raise ValueError("no images given")
    if errors is not None and weights is not None:
        raise ValueError("give errors or weights, not both")
    noise = errors if errors is not None else weights
    if noise is not None and set(noise) != set(bands):
        odd = sorted(set(noise) ^ set(bands))[0]
        raise ValueError(f"band {odd} has a science image or an error/weight image, not both")
    names = resolve_band_names(bands)
    if len(set(names)) != len(names):  # before reading any file
        i = next(i for i, b in enumerate(names) if names.index(b) < i)
        raise ValueError(f"two images name the same band {names[i]}: "
                         f"{bands[names.index(names[i])]} and {bands[i]}")  # fmt: skip
    flux, err, grid, scale = [], [], None, None
    for band in bands:
        data, header, primary = _read(images[band], ext)
        path = images[band]
        if grid is None:
            grid = data.shape
        elif data.shape != grid:
            raise ValueError(f"image of {band} has shape {data.shape}; {bands[0]}'s is {grid}")
        this_wcs = wcs.celestial if wcs is not None else _header_wcs(header, path)
        if band == bands[0]:
            ref_wcs, scale = this_wcs, _wcs_scale(this_wcs)
        elif wcs is None:
            _same_grid(ref_wcs, this_wcs, grid, f"image of {band}")
        area = header.get("PIXAR_SR", primary.get("PIXAR_SR"))
        factor = flux_unit_factor(unit or _header_unit(header, primary, path), scale, area)
        if noise is None:
            base = path[0] if isinstance(path, tuple) else path
            sigma, _, _ = _read(base, "ERR")
        else:
            sigma, _, _ = _read(noise[band], None)
        if sigma.shape != grid:
            what = "ERR extension" if noise is None else "error/weight image"
            raise ValueError(f"{what} of {band} has shape {sigma.shape}; its science image "
                             f"has {grid}")  # fmt: skip
        if weights is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma = 1.0 / np.sqrt(sigma)
        flux.append(data * factor)
        err.append(sigma * factor)
    f, e = _clean(np.stack(flux), np.stack(err))
    meta = {"unit": unit or "BUNIT", "source": "fits",
            "files": {b: str(images[b]) for b in bands}}  # fmt: skip
    return PixelImages(f, e, names, ref_wcs, scale, _check_segmap(segmap, grid), zred, meta)
