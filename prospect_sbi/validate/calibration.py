"""Calibration statistics of posterior draws: SBC ranks and their uniformity, TARP, outliers.

B objects, n draws per object, D parameters throughout. The central-interval coverage curves
are :func:`prospect_sbi.posterior.metrics.coverage`; these functions add the tests that look
at the whole rank distribution (SBC) and at the joint posterior (TARP).
"""

from __future__ import annotations

__all__ = [
    "TARP_LEVELS",
    "outlier_fraction",
    "sbc_bins",
    "sbc_pvalues",
    "sbc_ranks",
    "tarp_coverage",
    "tarp_fractions",
    "tarp_references",
]

import numpy as np
from scipy import stats

from ..posterior.metrics import sbc_ranks

#: Credibility levels of the TARP expected-coverage curve.
TARP_LEVELS = np.linspace(0.0, 1.0, 51)


def sbc_pvalues(ranks: np.ndarray, n_draws: int, bins: int | None = None) -> np.ndarray:
    """Chi-squared p-value of the uniformity of SBC ranks, per parameter.

    Parameters
    ----------
    ranks : numpy.ndarray, (B, D)
        Ranks from :func:`sbc_ranks`, in ``0 .. n_draws``.
    n_draws : int
        Draws behind each rank.
    bins : int, optional
        Histogram bins (default: 20, fewer for small B so that every bin expects >= 5).

    Returns
    -------
    numpy.ndarray, (D,)
        p-values: small when the ranks are not uniform (a biased, over- or under-dispersed
        posterior).
    """
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    bins = sbc_bins(len(ranks), n_draws) if bins is None else int(bins)
    index = np.minimum(ranks * bins // (n_draws + 1), bins - 1)
    counts = np.stack([np.bincount(col, minlength=bins) for col in index.T])  # (D, bins)
    # Expected counts are exact even when n_draws + 1 is not a multiple of bins.
    per_bin = np.bincount(np.arange(n_draws + 1) * bins // (n_draws + 1), minlength=bins)
    expected = len(ranks) * per_bin / (n_draws + 1)
    chi2 = ((counts - expected) ** 2 / expected).sum(1)
    return stats.chi2.sf(chi2, bins - 1)


def sbc_bins(n_objects: int, n_draws: int) -> int:
    """Histogram bins for SBC ranks: 20, fewer when that would leave < 5 objects a bin."""
    return int(max(2, min(20, n_objects // 5, n_draws + 1)))


def tarp_references(
    n_objects: int, n_dims: int, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Draw the reference points of TARP, uniform in the unit box of the normalised parameters.

    Returns
    -------
    numpy.ndarray, (B, D)
    """
    rng = np.random.default_rng(0) if rng is None else rng
    return rng.uniform(size=(n_objects, n_dims))


def tarp_fractions(
    draws: np.ndarray,
    truth: np.ndarray,
    references: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
) -> np.ndarray:
    """Fraction of each object's draws closer to its reference point than the truth is.

    Parameters are normalised to ``(x - low) / (high - low)`` first, so that distances weigh
    every parameter alike; the reference points live in that unit box.

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)
    truth : numpy.ndarray, (B, D)
    references : numpy.ndarray, (B, D)
        From :func:`tarp_references`.
    low, high : numpy.ndarray, (D,)
        Normalisation (e.g. the prior box, or the range of the true values).

    Returns
    -------
    numpy.ndarray, (B,)
        ``f_i`` in [0, 1]: uniform for a calibrated posterior.

    References
    ----------
    Lemos et al. 2023, "Sampling-based accuracy testing of posterior estimators for general
    inference", ICML, arXiv:2302.03026.
    """
    scale = np.where(high > low, high - low, 1.0)
    x = (np.asarray(draws, dtype=float) - low) / scale
    t = (np.asarray(truth, dtype=float) - low) / scale
    d_draws = np.linalg.norm(x - references[:, None, :], axis=-1)  # (B, n)
    d_truth = np.linalg.norm(t - references, axis=-1)  # (B,)
    return (d_draws < d_truth[:, None]).mean(1)


def tarp_coverage(
    fractions: np.ndarray, levels: np.ndarray = TARP_LEVELS
) -> tuple[np.ndarray, float]:
    """TARP expected-coverage curve and its largest distance from the diagonal.

    Parameters
    ----------
    fractions : numpy.ndarray, (B,)
        From :func:`tarp_fractions`.
    levels : numpy.ndarray, (K,)
        Credibility levels.

    Returns
    -------
    ecp : numpy.ndarray, (K,)
        Share of objects with ``f_i < level``: ``ecp == levels`` for a calibrated posterior;
        flatter than the diagonal (above it at low levels, below at high ones) for an
        overconfident or biased posterior, steeper for an underconfident one.
    error : float
        ``max |ecp - levels|``.
    """
    ecp = (np.asarray(fractions)[:, None] < np.asarray(levels)).mean(0)
    ecp[np.asarray(levels) >= 1.0] = 1.0  # f = 1 (every draw closer) is inside the 100% region
    return ecp, float(np.abs(ecp - levels).max())


def outlier_fraction(estimate: np.ndarray, truth: np.ndarray, nsigma: float = 3.0) -> np.ndarray:
    """Share of objects whose residual departs from the median one by more than nsigma NMADs.

    Parameters
    ----------
    estimate, truth : numpy.ndarray, (B, D)
        Point estimates (posterior medians) and true values.
    nsigma : float
        Threshold in units of the normalised median absolute deviation (1.4826 MAD).

    Returns
    -------
    numpy.ndarray, (D,)
    """
    resid = np.asarray(estimate) - np.asarray(truth)
    centred = resid - np.median(resid, 0)
    nmad = 1.4826 * np.median(np.abs(centred), 0)
    return (np.abs(centred) > nsigma * np.where(nmad > 0, nmad, np.inf)).mean(0)
