"""Resolved vs integrated stellar mass ("outshining"): sum of pixels vs fit of the summed light.

Young stars outshine old ones, so a fit to a galaxy's integrated light tends to miss mass
that pixel-by-pixel fits recover (e.g. Sorba & Sawicki 2015; Gimenez-Arteaga et al. 2023).
"""

from __future__ import annotations

__all__ = ["outshining", "summed_photometry"]

import os
from typing import TYPE_CHECKING

import numpy as np
from astropy.table import Table

from ..fitting.redshift import marginal_draws, summed_photometry
from .fit import PixelFit
from .images import PixelImages

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior


def outshining(
    estimator: AmortizedPosterior | str | os.PathLike,
    fit: PixelFit,
    images: PixelImages,
    *,
    n_draws: int = 1000,
    seed: int = 0,
    err_floor: float = 0.0,
) -> Table:
    """Pixel-summed against integrated stellar mass, one row per segment of ``fit``.

    The resolved mass is the sum of the pixels' surviving stellar masses; its draws are
    :attr:`PixelFit.mass_draws` (the sum over pixels of each pixel's k-th draw). The
    integrated mass is the posterior of the same estimator for the summed photometry of the
    same pixels (errors added in quadrature), at the median redshift of the pixels; with
    ``zred="infer"`` marginalised over the galaxy's redshift posterior as the pixels are.

    Warning
    -------
    The integrated photometry is much brighter and has a higher S/N than a pixel; if it lies
    outside the estimator's training fluxes the estimator raises or warns. Pixel-trained
    estimators cover whole galaxies only if their mass prior reaches them (the pretrained
    ones go to 10^12 Msun formed).

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator of ``fit``, a file of it or a pretrained name.
    fit : PixelFit
    images : PixelImages
        The images ``fit`` was made from.
    n_draws : int
        Draws for the integrated posterior.
    seed : int
    err_floor : float
        Fractional error floor added in quadrature to the summed errors, ``err =
        hypot(err, err_floor * |flux|)`` (0.05 is usual for integrated photometry; the
        estimator warns when the summed photometry is more precise than its training noise).

    Returns
    -------
    astropy.table.Table
        Columns ``segment``, ``n_pixels``, ``log_mstar_resolved`` and
        ``log_mstar_integrated`` (medians), each with ``_p16`` and ``_p84``, ``delta``
        (resolved - integrated, dex) and, when the estimator has it, the integrated
        ``log_sfr100_integrated`` with ``_p16`` and ``_p84``.
    """
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    images = images.matched(post.filters)
    ys, xs = fit.index[:, 0], fit.index[:, 1]
    flux, err = images.flux[:, ys, xs].T, images.err[:, ys, xs].T  # (B, F)
    rows = []
    k = post.labels.index("log_mstar")
    sfr = post.labels.index("log_sfr100") if "log_sfr100" in post.labels else None
    for g in sorted(fit.mass_draws):
        sel = fit.groups == g
        resolved = np.log10(fit.mass_draws[g])
        total, sigma = summed_photometry(flux[sel], err[sel], err_floor)
        if fit.meta.get("zred_given") == "infer":  # marginalised over the galaxy's z as pixels
            k = int(fit.meta["n_zred"])
            n = max(k, int(n_draws) // k * k)
            draws = marginal_draws(post, total, sigma, fit.redshift[g].grid(k), n, seed=seed)[0][0]
        else:
            z = None if fit.zred is None else float(np.median(fit.zred[sel]))
            draws = post.sample(total, sigma, int(n_draws), zred=z, seed=seed)
        r16, r50, r84 = np.percentile(resolved, [16, 50, 84])
        i16, i50, i84 = np.percentile(draws[:, k], [16, 50, 84])
        row = [int(g), int(sel.sum()), r50, r16, r84, i50, i16, i84, r50 - i50]
        if sfr is not None:
            s16, s50, s84 = np.percentile(draws[:, sfr], [16, 50, 84])
            row += [s50, s16, s84]
        rows.append(tuple(row))
    names = [
        "segment",
        "n_pixels",
        "log_mstar_resolved",
        "log_mstar_resolved_p16",
        "log_mstar_resolved_p84",
        "log_mstar_integrated",
        "log_mstar_integrated_p16",
        "log_mstar_integrated_p84",
        "delta",
    ]
    if sfr is not None:
        names += [
            "log_sfr100_integrated",
            "log_sfr100_integrated_p16",
            "log_sfr100_integrated_p84",
        ]
    return Table(rows=rows, names=names)
