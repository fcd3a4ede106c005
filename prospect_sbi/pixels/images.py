"""Multi-band images -> maggies: FITS files or (band, y, x) cubes, units, WCS, pixel scale."""

from __future__ import annotations

__all__ = [
    "PixelImages",
    "flux_unit_factor",
    "load_cube",
    "load_cube_file",
    "load_fits",
    "load_images",
    "read_array",
]

import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..constants import ARCSEC_PER_RAD, JY_PER_MAGGIE
from ..filters import resolve_band_names

#: Jy per unit for the flux units of a pixel (not per area).
_PER_PIXEL = {
    "maggies": JY_PER_MAGGIE,
    "maggie": JY_PER_MAGGIE,
    "jy": 1.0,
    "mjy": 1e-3,
    "ujy": 1e-6,
    "microjy": 1e-6,
    "njy": 1e-9,
}
#: Jy per steradian for the surface-brightness units.
_PER_SR = {"mjy/sr": 1e6, "jy/sr": 1.0}


def _normalise_unit(unit: str) -> str:
    u = str(unit).strip().lower().replace("µ", "u").replace("μ", "u").replace(" ", "")
    u = re.sub(r"(/|per)(pixel|pix)$", "", u)
    return u.replace("steradian", "sr")


def flux_unit_factor(
    unit: str, pixel_scale: float | None = None, pixel_area_sr: float | None = None
) -> float:
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
    >>> round(flux_unit_factor("uJy") * 3631e6, 12)
    1.0
    >>> round(flux_unit_factor("MJy/sr", pixel_scale=0.03) * 3631, 12)  # Jy per MJy/sr
    2.1154e-08
    """
    u = _normalise_unit(unit)
    if u in _PER_PIXEL:
        return _PER_PIXEL[u] / JY_PER_MAGGIE
    if u in _PER_SR:
        if pixel_area_sr is None:
            if pixel_scale is None or not pixel_scale > 0:
                raise ValueError(
                    f"unit {unit!r} is per steradian: give the pixel scale "
                    "(arcsec) or the pixel area (sr)"
                )
            pixel_area_sr = (float(pixel_scale) / ARCSEC_PER_RAD) ** 2
        return _PER_SR[u] * float(pixel_area_sr) / JY_PER_MAGGIE
    raise ValueError(
        f"unknown flux unit {unit!r}; use maggies, Jy, mJy, uJy, nJy (per pixel) or MJy/sr, Jy/sr"
    )


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

    def matched(self, filters: Sequence[str], drop_unknown: bool = False) -> PixelImages:
        """Return the images with their bands in the order of ``filters`` (an estimator's).

        Parameters
        ----------
        filters : sequence of str
            The estimator's bands.
        drop_unknown : bool
            Leave out image bands not among ``filters``, with one warning naming them all;
            by default they are refused. Bands of ``filters`` the images lack are always
            refused: the estimator needs every band it was trained on, so add each as a NaN
            plane (flux and error) to mark it missing.

        Raises
        ------
        ValueError
            Naming every band the images have and ``filters`` lack (without
            ``drop_unknown``), or every band ``filters`` has and the images lack.

        Warns
        -----
        UserWarning
            With ``drop_unknown``: the bands left out.
        """
        want = resolve_band_names(filters)
        extra = [b for b in self.bands if b not in want]
        if extra and not drop_unknown:
            raise ValueError(
                f"{len(extra)} band(s) of the images are not among the "
                f"estimator's {len(want)}: {', '.join(extra)}; leave them out with "
                "drop_unknown=True (--drop-unknown-bands)"
            )
        lacking = [b for b in want if b not in self.bands]
        if lacking:
            raise ValueError(
                f"the images lack {len(lacking)} band(s) the estimator needs: "
                f"{', '.join(lacking)}; add each as a NaN plane (flux and error) "
                "to mark it missing"
            )
        if extra:
            warnings.warn(
                f"left out {len(extra)} band(s) the estimator does not know: {', '.join(extra)}",
                UserWarning,
                stacklevel=2,
            )
        order = [self.bands.index(b) for b in want]
        if order == list(range(len(self.bands))):
            return self
        return replace(self, flux=self.flux[order], err=self.err[order], bands=want)

    def with_err_floor(self, frac: float) -> PixelImages:
        """Return the images with a fractional error floor, ``err = hypot(err, frac * |flux|)``.

        Raises
        ------
        ValueError
            ``frac`` negative or not finite.
        """
        frac = float(frac)
        if not (np.isfinite(frac) and frac >= 0):
            raise ValueError(f"err_floor must be a fraction >= 0 of the flux; got {frac}")
        if frac == 0:
            return self
        return replace(self, err=np.hypot(self.err, frac * np.abs(self.flux)))

    def with_zeropoints(self, zeropoints: Any) -> PixelImages:
        """Return the images with each band's flux and error multiplied by its zero point.

        Parameters
        ----------
        zeropoints : ZeroPoints or path-like
            :class:`~prospect_sbi.fitting.ZeroPoints` (or its file), matched to the bands by
            name; recorded in ``meta["zeropoints"]`` (band -> factor).

        Raises
        ------
        ValueError
            A band of the images the zero points have no factor for; a file that is not one
            of zero points; images corrected already (twice would square the factors).
        """
        from ..fitting.zeropoints import ZeroPoints

        zp = ZeroPoints.resolve(zeropoints)
        factor = zp.factors_for(self.bands)[:, None, None]
        if "zeropoints" in self.meta:
            raise ValueError("the images are corrected by zero points already")
        zeropoints = dict(zip(self.bands, factor.ravel().tolist(), strict=True))
        meta = {**self.meta, "zeropoints": zeropoints}
        return replace(self, flux=self.flux * factor, err=self.err * factor, meta=meta)

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
        segmap, _, _ = read_array(segmap, "segmap", ndim=2)
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
        Bands in the order of ``bands``; ``meta`` ``{"unit": unit, "source": "cube"}``.

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
    return PixelImages(
        flux,
        err,
        names,
        wcs,
        None if pixel_scale is None else float(pixel_scale),
        _check_segmap(segmap, flux.shape[1:]),
        zred,
        {"unit": str(unit), "source": "cube"},
    )


def _split(spec: str | os.PathLike) -> tuple[str, str | None]:
    """``"cube.npz:flux"`` -> ``("cube.npz", "flux")``; any other path -> ``(path, None)``."""
    text = os.fspath(spec)
    head, sep, name = text.rpartition(":")
    if sep and head.lower().endswith(".npz") and name:
        return head, name
    return text, None


def read_array(
    spec: str | os.PathLike, default: str = "flux", ndim: int = 3
) -> tuple[np.ndarray, Any, list[str] | None]:
    """Read an ``ndim``-d array (a cube or a map) from FITS, ``.npy`` or ``.npz``.

    Parameters
    ----------
    spec : path-like
        A FITS file (its first HDU holding an ``ndim``-d array), an ``.npy`` file, or an
        ``.npz`` file: its array ``default``, its only array, or the array named after a
        colon (``"cutouts.npz:id36_phot_uJy"``).
    default : str
        Name of the array read from an ``.npz`` file of several (``"flux"``, ``"err"``).
    ndim : int
        Dimensions expected (3: (band, y, x); 2: (y, x)).

    Returns
    -------
    data : numpy.ndarray, float (or the file's integers for a map)
    header : astropy.io.fits.Header or None
        The HDU's header (None for NumPy files: no unit, no WCS).
    bands : list of str or None
        An ``.npz`` file's ``bands`` array, if it has one.

    Raises
    ------
    ValueError
        No such file, no array of ``ndim`` dimensions, an ``.npz`` file without the array
        asked for (naming those it has).
    """
    path, name = _split(spec)
    if not os.path.isfile(path):
        raise ValueError(f"no file at {path}")
    suffix = os.path.splitext(path)[1].lower()
    header, bands = None, None
    if suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    elif suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            arrays = [k for k in f.files if k != "bands"]
            key = name or (default if default in f.files else None)
            if key is None and len(arrays) == 1:
                key = arrays[0]
            if key not in f.files:
                raise ValueError(
                    f"{path} has no array {key or default!r} (it has "
                    f"{', '.join(f.files)}): name it {path}:NAME"
                )
            data = f[key]
            if "bands" in f.files:
                bands = [str(b) for b in f["bands"]]
    else:
        from astropy.io import fits

        with fits.open(path, memmap=False) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim == ndim), None)
            if hdu is None:
                raise ValueError(f"{path} has no {_SHAPES[ndim]} in any HDU")
            data, header = np.asarray(hdu.data), hdu.header.copy()
    if data.ndim != ndim:
        raise ValueError(f"{spec} holds an array of shape {data.shape}; expected {_SHAPES[ndim]}")
    return (data.astype(float) if ndim == 3 else data), header, bands


_SHAPES = {3: "(band, y, x) cube", 2: "(y, x) map"}


def load_cube_file(
    cube: str | os.PathLike,
    err_cube: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    unit: str | None = None,
    *,
    pixel_scale: float | None = None,
    segmap: Any = None,
    zred: Any = None,
) -> PixelImages:
    """Images from a flux cube file and its error cube: FITS, ``.npy`` or ``.npz``.

    Parameters
    ----------
    cube, err_cube : path-like
        See :func:`read_array`; the error cube defaults to the ``err`` array of an ``.npz``
        flux cube.
    bands : sequence of str, optional
        Bands of the planes, in order (default: an ``.npz`` file's ``bands`` array).
    unit : str, optional
        Flux unit (default: the FITS header's ``BUNIT``; required for NumPy files).
    pixel_scale : float, optional
        Pixel side, arcsec (default: from a FITS header's WCS).
    segmap, zred
        See :func:`load_cube`.

    Returns
    -------
    PixelImages
        With the WCS of a FITS cube's header, if it has one.

    Raises
    ------
    ValueError
        What :func:`read_array` and :func:`load_cube` raise; no error cube, no bands, no unit.
    """
    flux, header, file_bands = read_array(cube, "flux")
    if err_cube is None:
        path, name = _split(cube)
        if not path.lower().endswith(".npz") or name == "err":
            raise ValueError(f"{cube} holds no error cube: give err_cube= (--err-cube)")
        err_cube = f"{path}:err"
    err, _, _ = read_array(err_cube, "err")
    bands = bands or file_bands
    if not bands:
        raise ValueError(f"{cube}: name the bands of its planes, in order (bands=, --bands)")
    if unit is None:
        unit = None if header is None else header.get("BUNIT")
        if unit is None:
            what = "no BUNIT" if header is not None else "no header to read the unit from"
            raise ValueError(
                f"{cube} has {what}: give the flux unit, unit= (--unit), e.g. nJy, uJy, MJy/sr"
            )
    wcs = None
    if header is not None and "CTYPE1" in header:
        from astropy.wcs import WCS

        wcs = WCS(header).celestial
    return load_cube(
        flux, err, bands, unit, pixel_scale=pixel_scale, wcs=wcs, segmap=segmap, zred=zred
    )


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
            ext = next(
                (i for i, h in enumerate(hdul) if h.data is not None and h.data.ndim == 2), None
            )
            if ext is None:
                raise ValueError(f"{path}: no 2-d image in any HDU")
        try:
            hdu = hdul[ext]
        except (KeyError, IndexError):
            hint = (
                ": give error images (errors=, --error) or weights (weights=, --weight)"
                if ext == "ERR"
                else ""
            )
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
        raise ValueError(
            f"{what} is on a different pixel grid (WCS differs by "
            f"{np.max(np.abs(back - corners)):.2f} pixels)"
        )


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
    segmap, zred
        See :func:`load_cube`.

    Returns
    -------
    PixelImages
        Bands in the order of ``images``; the WCS and pixel scale of the first image.

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
        raise ValueError(
            f"two images name the same band {names[i]}: "
            f"{bands[names.index(names[i])]} and {bands[i]}"
        )
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
            raise ValueError(
                f"{what} of {band} has shape {sigma.shape}; its science image has {grid}"
            )
        if weights is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                sigma = 1.0 / np.sqrt(sigma)
        flux.append(data * factor)
        err.append(sigma * factor)
    f, e = _clean(np.stack(flux), np.stack(err))
    meta = {"unit": unit or "BUNIT", "source": "fits", "files": {b: str(images[b]) for b in bands}}
    return PixelImages(f, e, names, ref_wcs, scale, _check_segmap(segmap, grid), zred, meta)


def load_images(
    images: Mapping[str, Any] | None = None,
    errors: Mapping[str, Any] | None = None,
    *,
    weights: Mapping[str, Any] | None = None,
    cube: str | os.PathLike | None = None,
    err_cube: str | os.PathLike | None = None,
    bands: Sequence[str] | None = None,
    unit: str | None = None,
    pixel_scale: float | None = None,
    segmap: Any = None,
    zred: Any = None,
) -> PixelImages:
    """Load images from one FITS file per band (:func:`load_fits`) or a cube file.

    The cube file is read by :func:`load_cube_file`.

    What ``prospect-sbi map`` reads: give ``images`` (with ``errors`` or ``weights``, or
    neither for ERR extensions) or ``cube`` (with ``err_cube`` and ``bands`` as that
    function needs them), not both.

    Parameters
    ----------
    images, errors, weights
        Band -> path mappings of :func:`load_fits`.
    cube, err_cube, bands
        Of :func:`load_cube_file`.
    unit : str, optional
        Flux unit (default: the headers' ``BUNIT``).
    pixel_scale : float, optional
        Pixel side, arcsec; replaces the WCS's.
    segmap, zred
        See :func:`load_cube`.

    Returns
    -------
    PixelImages
        That of :func:`load_fits` or :func:`load_cube_file`.

    Raises
    ------
    ValueError
        Both or neither of ``images`` and ``cube``; what the two loaders raise.
    """
    if cube:
        if images:
            raise ValueError("give --cube or --image, not both (cube= or images=)")
        return load_cube_file(
            cube, err_cube, bands, unit, pixel_scale=pixel_scale, segmap=segmap, zred=zred
        )
    if not images:
        raise ValueError("give the images: --image BAND=PATH ... or --cube (images= or cube=)")
    loaded = load_fits(
        images, errors or None, weights=weights or None, unit=unit, segmap=segmap, zred=zred
    )
    if pixel_scale is not None:
        loaded = replace(loaded, pixel_scale=float(pixel_scale))
    return loaded
