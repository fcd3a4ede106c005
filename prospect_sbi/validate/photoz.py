"""Photometric-redshift statistics: sigma_NMAD, outlier fraction and bias, by redshift bin.

The numbers photo-z papers quote, for any point estimate ``z_phot`` (here the posterior
median of ``zred``) against true or spectroscopic redshifts, with
``dz = (z_phot - z_true) / (1 + z_true)``: ``sigma_NMAD = 1.48 median(|dz - median(dz)|)``,
the outlier fraction ``|dz| > 0.15`` and the bias ``median(dz)``.
"""

from __future__ import annotations

__all__ = ["OUTLIER_DZ", "Z_BINS", "photoz_stats", "photoz_table"]

from collections.abc import Mapping, Sequence

import numpy as np
from astropy.table import Table

#: |dz| beyond which a photometric redshift is an outlier.
OUTLIER_DZ = 0.15
#: True-redshift bins of :func:`photoz_table` (the last one includes its upper edge).
Z_BINS: tuple[tuple[float, float], ...] = ((0, 1), (1, 3), (3, 6), (6, 10), (10, 20))


def photoz_stats(z_phot: np.ndarray, z_true: np.ndarray) -> dict[str, float]:
    """sigma_NMAD, outlier fraction and bias of photometric redshifts.

    Parameters
    ----------
    z_phot, z_true : numpy.ndarray, (B,)
        Point estimates and true (or spectroscopic) redshifts.

    Returns
    -------
    dict
        ``n``; ``sigma_nmad`` = 1.48 median(|dz - median(dz)|), ``outlier_frac``
        (|dz| > :data:`OUTLIER_DZ`) and ``bias`` = median(dz); NaN for no object.

    Raises
    ------
    ValueError
        Arrays of different shapes, or not 1-d.

    Examples
    --------
    >>> s = photoz_stats(np.array([1.0, 2.06, 0.5]), np.array([1.0, 2.0, 1.0]))
    >>> s["n"], round(s["outlier_frac"], 3), round(s["bias"], 3)
    (3, 0.333, 0.0)
    """
    z_phot, z_true = np.asarray(z_phot, float), np.asarray(z_true, float)
    if z_phot.shape != z_true.shape or z_phot.ndim != 1:
        raise ValueError(f"z_phot {z_phot.shape} and z_true {z_true.shape}: expected (B,) both")
    if len(z_phot) == 0:
        return {"n": 0, "sigma_nmad": np.nan, "outlier_frac": np.nan, "bias": np.nan}
    dz = (z_phot - z_true) / (1 + z_true)
    bias = float(np.median(dz))
    return {
        "n": len(dz),
        "sigma_nmad": float(1.48 * np.median(np.abs(dz - bias))),
        "outlier_frac": float(np.mean(np.abs(dz) > OUTLIER_DZ)),
        "bias": bias,
    }


def photoz_table(
    z_phot: np.ndarray,
    z_true: np.ndarray,
    rank: np.ndarray | None = None,
    *,
    bins: Sequence[tuple[float, float]] = Z_BINS,
    subsets: Mapping[str, np.ndarray] | None = None,
) -> Table:
    """:func:`photoz_stats` over all objects and by true-redshift bin, per subset.

    Parameters
    ----------
    z_phot, z_true : numpy.ndarray, (B,)
        Point estimates and true redshifts.
    rank : numpy.ndarray, (B,), optional
        Normalised SBC rank of each true redshift among its posterior draws, in [0, 1]
        (:func:`~prospect_sbi.posterior.metrics.sbc_ranks` over the number of draws): adds
        the coverage of the central 68% and 95% intervals.
    bins : sequence of (low, high)
        Redshift bins, ``low <= z < high`` (the last one ``<= high``).
    subsets : mapping of str to numpy.ndarray of bool (B,), optional
        Named selections, each tabulated whole and by bin (default ``{"all": all}``).

    Returns
    -------
    astropy.table.Table
        One row per subset and bin (``z_bin`` ``"all"`` first): ``subset``, ``z_bin``,
        ``n``, ``sigma_nmad``, ``outlier_frac``, ``bias`` (NaN for an empty bin), and with
        ``rank`` ``coverage_68``, ``coverage_95``.
    """
    z_phot, z_true = np.asarray(z_phot, float), np.asarray(z_true, float)
    subsets = {"all": np.ones(len(z_true), bool)} if subsets is None else dict(subsets)
    top = max(hi for _, hi in bins)
    rows = []
    for name, keep in subsets.items():
        keep = np.asarray(keep, bool)
        if keep.shape != z_true.shape:
            raise ValueError(f"subset {name!r} has shape {keep.shape}; expected {z_true.shape}")
        cells = [("all", keep)]
        for lo, hi in bins:
            inside = (z_true >= lo) & ((z_true < hi) | ((hi == top) & (z_true == hi)))
            cells.append((f"{lo:g}-{hi:g}", keep & inside))
        for label, sel in cells:
            row = {"subset": name, "z_bin": label} | photoz_stats(z_phot[sel], z_true[sel])
            if rank is not None:
                centred = np.abs(np.asarray(rank, float)[sel] - 0.5)
                for level in (68, 95):
                    row[f"coverage_{level}"] = (
                        float(np.mean(centred <= level / 200)) if sel.any() else np.nan
                    )
            rows.append(row)
    return Table(rows=rows)
