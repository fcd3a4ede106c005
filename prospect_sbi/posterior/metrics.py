"""Accuracy and calibration on held-out simulations: R^2, bias, scatter, expected coverage."""

from __future__ import annotations

__all__ = ["coverage", "coverage_from_ranks", "coverage_noise", "regression_metrics", "sbc_ranks"]

import functools

import numpy as np

from ..numeric import check_count

#: Credibility levels at which coverage is measured.
LEVELS = np.linspace(0.02, 0.98, 49)


def coverage(draws: np.ndarray, truth: np.ndarray, levels: np.ndarray = LEVELS) -> np.ndarray:
    """Measure the expected coverage of central credible intervals, per parameter and level.

    For each object, ``r`` is the fraction of draws below the true value, with ties (a truth
    on a bound, e.g. ``log_ssfr100`` at its floor) split at random as in :func:`sbc_ranks`;
    the truth lies in the central interval of credibility ``a`` when ``|r - 1/2| <= a / 2``.
    A calibrated posterior has coverage ``a`` at every level ``a``.

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)
        Posterior draws of B objects.
    truth : numpy.ndarray, (B, D)
        True values.
    levels : numpy.ndarray, (K,)
        Credibility levels.

    Returns
    -------
    numpy.ndarray, (D, K)
        Fraction of objects whose truth lies in each interval.
    """
    return coverage_from_ranks(_ranks(draws, truth), levels)


def coverage_noise(
    n_objects: int,
    n_draws: int = 1000,
    n_labels: int = 1,
    levels: np.ndarray = LEVELS,
    quantile: float = 0.95,
    trials: int = 200,
    seed: int = 0,
) -> float:
    """Largest coverage error that a perfectly calibrated posterior shows by chance.

    The coverage error of a test set (largest ``|coverage - level|`` over ``levels`` and
    labels) is an estimate: with ``B`` objects, each level's coverage has a binomial scatter
    of ``sqrt(a (1 - a) / B)``, and the largest over 49 levels and several labels is about
    2-3 times that. This draws ``trials`` test sets of exact ranks (uniform in ``0..n_draws``,
    the labels independent, which bounds correlated labels from above) and returns the
    ``quantile`` of their coverage error: a measured error below it is consistent with
    perfect calibration.

    Parameters
    ----------
    n_objects : int
        Test objects.
    n_draws : int
        Posterior draws per object.
    n_labels : int
        Labels the largest error is taken over.
    levels : numpy.ndarray, (K,)
        Credibility levels, as in :func:`coverage`.
    quantile : float
        Quantile of the chance coverage errors returned.
    trials : int
        Simulated test sets.
    seed : int

    Returns
    -------
    float

    Raises
    ------
    ValueError
        ``n_objects``, ``n_draws``, ``n_labels`` or ``trials`` not an integer >= 1.

    Examples
    --------
    >>> round(coverage_noise(14000, 1000, n_labels=11), 3)  # doctest: +SKIP
    0.014
    """
    errors = _chance_errors(
        check_count("n_objects", n_objects),
        check_count("n_draws", n_draws),
        check_count("n_labels", n_labels),
        tuple(np.asarray(levels, float)),
        check_count("trials", trials),
        int(seed),
    )
    return float(np.quantile(errors, quantile))


@functools.lru_cache(maxsize=64)  # reports ask again for every table they render
def _chance_errors(
    n_objects: int, n_draws: int, n_labels: int, levels: tuple, trials: int, seed: int
) -> np.ndarray:
    rng, levels = np.random.default_rng(seed), np.asarray(levels)
    errors = np.empty(trials)
    for t in range(trials):
        rank = rng.integers(0, n_draws + 1, (n_objects, n_labels)) / n_draws
        errors[t] = np.abs(coverage_from_ranks(rank, levels) - levels).max()
    return errors


def _ranks(draws: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return sbc_ranks(draws, truth) / draws.shape[1]  # (B, D), in [0, 1]


def sbc_ranks(
    draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Simulation-based-calibration rank of each true value among its posterior draws.

    The rank is the number of draws below the truth; ties (draws equal to a truth that sits
    on a bound) are split at random so that a calibrated posterior gives uniform ranks.

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)
        Posterior draws.
    truth : numpy.ndarray, (B, D)
        True values.
    rng : numpy.random.Generator, optional
        Breaks ties (default: seeded with 0).

    Returns
    -------
    numpy.ndarray, int64, (B, D)
        Ranks in ``0 .. n``.

    References
    ----------
    Talts et al. 2018, "Validating Bayesian inference algorithms with simulation-based
    calibration", arXiv:1804.06788.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    truth = np.asarray(truth)[:, None, :]
    below = (draws < truth).sum(1)
    ties = (draws == truth).sum(1)
    return below + rng.integers(0, ties + 1)


def coverage_from_ranks(rank: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Coverage of central intervals at ``levels`` (K,) from normalised ranks (B, D) -> (D, K).

    The share of truths whose rank lies within ``level / 2`` of the median, per target.
    """
    return (np.abs(rank - 0.5)[..., None] <= np.asarray(levels) / 2).mean(0)


def regression_metrics(estimate: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """R^2, bias (median residual) and scatter (1.4826 MAD) of point estimates, per column.

    Parameters
    ----------
    estimate, truth : numpy.ndarray, (B, D)

    Returns
    -------
    dict of numpy.ndarray, (D,)
        ``r2``, ``bias``, ``scatter``.
    """
    resid = np.asarray(estimate) - np.asarray(truth)
    total = ((truth - truth.mean(0)) ** 2).sum(0)
    r2 = 1.0 - (resid**2).sum(0) / np.where(total > 0, total, np.nan)
    bias = np.median(resid, 0)
    scatter = 1.4826 * np.median(np.abs(resid - bias), 0)
    return {"r2": r2, "bias": bias, "scatter": scatter}
