"""Maps of stellar-population properties from pixel fits: surface densities, ages, dust."""

from __future__ import annotations

__all__ = ["MAP_QUANTITIES", "PixelMaps", "make_maps", "pixel_area_kpc2"]

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import save_figure
from ..constants import ARCSEC_PER_RAD
from ..cosmology import luminosity_distance
from .fit import PixelFit
from .images import PixelImages
from .io import write_maps, write_table
from .select import SNR_BANDS, snr_map

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior


#: map name -> (estimator label, unit, per unit area). Surface densities are per kpc^2 of the
#: galaxy (proper area at its redshift).
MAP_QUANTITIES: dict[str, tuple[str, str, bool]] = {
    "log_sigma_mstar": ("log_mstar", "log10(Msun/kpc2)", True),
    "log_sigma_sfr": ("log_sfr100", "log10(Msun/yr/kpc2)", True),
    "log_ssfr": ("log_ssfr100", "log10(1/yr)", False),
    "mwa": ("mwa", "Gyr", False),
    "logzsol": ("logzsol", "log10(Z/Zsun)", False),
    "dust2": ("dust2", "optical depth (V)", False),
}


def pixel_area_kpc2(pixel_scale: float, zred: Any) -> np.ndarray:
    """Proper area of a square pixel of side ``pixel_scale`` arcsec at ``zred``, kpc^2.

    Uses the angular-diameter distance ``D_L / (1 + z)^2`` of Prospector's cosmology (WMAP9),
    the one the estimator's luminosity distances come from.

    Parameters
    ----------
    pixel_scale : float
        Arcsec.
    zred : float or array_like
        Redshift(s) > 0.

    Returns
    -------
    numpy.ndarray
        Same shape as ``zred``.
    """
    zred = np.asarray(zred, dtype=float)
    d_a_kpc = luminosity_distance(zred) * 1e3 / (1.0 + zred) ** 2
    return (float(pixel_scale) / ARCSEC_PER_RAD * d_a_kpc) ** 2


@dataclass
class PixelMaps:
    """Named (ny, nx) maps with their units, the grid's WCS and provenance.

    Attributes
    ----------
    maps : dict of str -> numpy.ndarray (ny, nx)
        ``<quantity>_p50``, ``_p16``, ``_p84`` for :data:`MAP_QUANTITIES`, plus ``snr``,
        ``mask``, ``n_bands`` and, with a predictive check, ``chi2_red`` and ``ood``.
    units : dict of str -> str
    wcs : astropy.wcs.WCS or None
    header : dict
        Provenance for the primary FITS header.
    fit : PixelFit or None
        The pixel fit the maps were made from (for the per-pixel table of :meth:`write`).
    zred_draws : dict of int -> numpy.ndarray (n,)
        Per segment, the draws of the galaxy's redshift posterior (``zred="infer"`` or a
        redshift checked with ``photoz=``), written as the ``ZRED_DRAWS`` table extension.
    """

    maps: dict[str, np.ndarray]
    units: dict[str, str]
    wcs: Any
    header: dict = field(default_factory=dict)
    fit: PixelFit | None = field(default=None, repr=False)
    zred_draws: dict[int, np.ndarray] = field(default_factory=dict, repr=False)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.maps[name]

    def __contains__(self, name: str) -> bool:
        return name in self.maps

    def write(
        self,
        fits_path: str | os.PathLike | None = None,
        *,
        png_path: str | os.PathLike | None = None,
        table_path: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> None:
        """Put the maps on disk, each file atomically: FITS, then table, then PNG.

        Parameters
        ----------
        fits_path : path-like, optional
            One multi-extension FITS file: one named image HDU per map, each with the
            images' WCS and its unit (BUNIT), provenance in the primary header
            (:func:`~prospect_sbi.pixels.write_maps`; read back with
            :func:`~prospect_sbi.pixels.read_maps`).
        png_path : path-like, optional
            A panel of the median maps (:func:`~prospect_sbi.plotting.maps.plot_maps`).
        table_path : path-like, optional
            The per-pixel summaries of :attr:`fit` (``.fits``, ``.ecsv`` or ``.csv``).
        overwrite : bool
            Replace existing files (otherwise FileExistsError).

        Raises
        ------
        ValueError
            ``table_path`` for maps made without their fit.
        """
        if table_path is not None and self.fit is None:
            raise ValueError(
                "these maps hold no pixel fit, so no per-pixel table: make them "
                "with make_maps to write table_path="
            )
        if fits_path is not None:
            write_maps(fits_path, self, overwrite=overwrite)
        if table_path is not None:
            write_table(table_path, self.fit.table(), overwrite=overwrite)
        if png_path is not None:
            from ..plotting.maps import plot_maps

            save_figure(plot_maps(self), png_path, dpi=110, overwrite=overwrite)


def _provenance(post: AmortizedPosterior, fit: PixelFit, images: PixelImages) -> dict:
    from .._version import __version__

    train = post.training or {}
    head = {
        "PSBIVER": (__version__, "prospect-sbi version"),
        "MODELHSH": (post.model_hash, "hash of the estimator's Prospector model"),
        "ZMODE": (post.redshift, "redshift known or inferred"),
        "NBANDS": (len(post.filters), "bands of the estimator"),
        "FLOW": (str(post.header.get("network", {}).get("flow", "?")), "flow of the estimator"),
        "TRAINSET": (Path(str(train.get("trainingset", "?"))).name[-40:], "training set"),
        "NTRAIN": (int(train.get("n_train", -1)), "training rows"),
        "BESTEP": (int(train.get("best_epoch", -1)), "best epoch"),
        "NOISE": (str(post.header.get("noise", {}).get("kind", "?")), "training noise model"),
        "NDRAWS": (fit.meta["n_draws"], "posterior draws per pixel"),
        "SEED": (fit.meta["seed"], "seed of the draws"),
        "NPIX": (len(fit), "pixels fitted"),
        "PPC": (fit.meta["ppc"][:40], "predictive check"),
    }
    if images.pixel_scale is not None:
        head["PIXSCALE"] = (images.pixel_scale, "arcsec per pixel")
    if images.zred is not None and np.ndim(images.zred) == 0:
        head["ZRED"] = (float(images.zred), "redshift of the galaxy")
    given = fit.meta.get("zred_given")
    if given is not None:
        head["ZGIVEN"] = (given, "redshift given as: value, table or infer")
    if len(fit.redshift) == 1:  # one galaxy: its posterior in the header
        head |= next(iter(fit.redshift.values())).header()
    elif fit.redshift:
        multi = sum(zp.multimodal for zp in fit.redshift.values())
        head["ZMULTI"] = (multi > 0, f"{multi} segments with a multi-modal photo-z")
        short = sum(zp.unconverged for zp in fit.redshift.values())
        head["ZUNCONV"] = (short > 0, f"{short} segments' exact photo-z not vouched for")
    if fit.zred_ruled_out:
        head["ZRULED"] = (any(fit.zred_ruled_out.values()), "given z ruled out by the photo-z")
    zeropoints = images.meta.get("zeropoints")
    head["ZEROPTS"] = (zeropoints is not None, "fluxes multiplied by zero points ZPFnnn")
    for i, band in enumerate(post.filters):
        head[f"FILT{i + 1:03d}"] = (band, "estimator band (sedpy)")
        if zeropoints is not None:
            head[f"ZPF{i + 1:03d}"] = (zeropoints[band], f"zero-point factor of FILT{i + 1:03d}")
    return head


def make_maps(
    estimator: AmortizedPosterior | str | os.PathLike,
    fit: PixelFit,
    images: PixelImages,
    *,
    snr_bands: tuple[str, ...] = SNR_BANDS,
) -> PixelMaps:
    """Map the properties fitted in each pixel (median, 16th and 84th percentiles).

    Writes nothing: put the maps on disk with :meth:`PixelMaps.write`.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator of ``fit`` (for provenance), a file of it or a pretrained name.
    fit : PixelFit
        From :func:`fit_pixels` on ``images``.
    images : PixelImages
        For the pixel scale, redshift, S/N map and WCS.
    snr_bands : tuple of str
        Bands of the S/N map.

    Returns
    -------
    PixelMaps
        Holding ``fit`` for the per-pixel table of :meth:`PixelMaps.write`.

    Raises
    ------
    ValueError
        ``fit`` of another grid, surface densities without a pixel scale or redshift.
    """
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    if tuple(fit.shape) != tuple(images.shape):
        raise ValueError(f"the fit is of a {fit.shape} grid; the images are {images.shape}")
    if images.pixel_scale is None:
        raise ValueError(
            "the images have no pixel scale (no WCS): pass pixel_scale= to "
            "load_cube for surface densities"
        )
    zred = fit.zred if fit.zred is not None else fit.values("zred")
    log_area = np.log10(pixel_area_kpc2(images.pixel_scale, zred))
    maps: dict[str, np.ndarray] = {}
    units: dict[str, str] = {}
    for name, (label, unit, density) in MAP_QUANTITIES.items():
        if label not in fit.labels:
            warnings.warn(f"the estimator has no {label!r}: no {name} map", stacklevel=2)
            continue
        for q in (50, 16, 84):
            vals = fit.values(label, q).astype(float) - (log_area if density else 0.0)
            maps[f"{name}_p{q}"] = fit.image(vals).astype(np.float32)
            units[f"{name}_p{q}"] = unit
    mask = fit.image(np.ones(len(fit), np.int16), fill=0).astype(np.int16)
    maps["snr"] = snr_map(images.matched(post.filters), snr_bands).astype(np.float32)
    units["snr"] = "mean S/N over " + ",".join(snr_bands)
    maps["mask"], units["mask"] = mask, "1: fitted"
    maps["n_bands"] = fit.image(fit.n_valid.astype(np.int16), fill=0).astype(np.int16)
    units["n_bands"] = "bands with data"
    if fit.chi2_red is not None:
        maps["chi2_red"] = fit.image(fit.chi2_red).astype(np.float32)
        units["chi2_red"] = "reduced chi2 of the posterior-median photometry"
        maps["ood"] = fit.image(fit.ood.astype(np.int16), fill=0).astype(np.int16)
        units["ood"] = "1: out of distribution"
    draws = {g: zp.draws for g, zp in fit.redshift.items()}
    return PixelMaps(maps, units, images.wcs, _provenance(post, fit, images), fit, draws)
