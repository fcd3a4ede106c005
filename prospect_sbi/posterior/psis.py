"""Pareto k-hat of importance weights (PSIS, Vehtari et al. 2024), for many objects at once.

The shape ``k`` of a generalised Pareto distribution fitted to the largest importance ratios
says whether an importance-sampling estimate can be trusted: below 0.7 its error falls as
more draws are added, above it the variance is (nearly) infinite and a few draws decide the
answer. The estimator is ArviZ's (``arviz.psislw``, the Zhang & Stephens 2009 empirical-Bayes
fit with the weakly informative prior of Vehtari et al.), vectorised over a leading batch
axis so that every object of a chunk is fitted in one pass (``tests/test_refine.py`` checks
it against ArviZ). ArviZ itself is not a dependency: it loops in Python over objects and
brings xarray and pandas along.

References
----------
Vehtari, Simpson, Gelman, Yao & Gabry 2024, "Pareto smoothed importance sampling", JMLR 25(72).
Zhang & Stephens 2009, Technometrics 51, 316.
"""

from __future__ import annotations

__all__ = ["KHAT_MAX", "pareto_khat"]

import numpy as np

#: Above this k-hat the importance weights cannot be trusted (Vehtari et al. 2024).
KHAT_MAX = 0.7
_CUTOFF_MIN = float(np.log(np.finfo(float).tiny))
_PRIOR_BS, _PRIOR_K = 3.0, 10.0


def pareto_khat(log_w: np.ndarray) -> np.ndarray:
    """Pareto k-hat of the importance weights of each row.

    Parameters
    ----------
    log_w : numpy.ndarray, (*, N)
        Log importance weights (unnormalised; ``-inf`` for a zero weight) of N draws.

    Returns
    -------
    numpy.ndarray, float64, (*)
        k-hat per row; ``inf`` where five or fewer weights lie in the tail (too few draws
        carry weight to fit one).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> good = -0.5 * rng.standard_normal((1, 4000)) ** 2  # bounded weights
    >>> bad = 3.0 * rng.standard_normal((1, 4000))  # log-normal weights, heavy tail
    >>> bool(pareto_khat(good)[0] < 0.5), bool(pareto_khat(bad)[0] > 0.7)
    (True, True)
    """
    x = np.asarray(log_w, dtype=float)
    shape, n = x.shape[:-1], x.shape[-1]
    x = x.reshape(-1, n)
    out = np.full(len(x), np.inf)
    if n < 5 or not len(x):
        return out.reshape(shape)
    tail = int(np.ceil(min(n / 5.0, 3 * np.sqrt(n))))
    with np.errstate(invalid="ignore"):
        x = np.sort(x - np.max(x, axis=1, keepdims=True), axis=1)
    cut = np.maximum(x[:, n - tail - 1], _CUTOFF_MIN)
    above = (x > cut[:, None]).sum(1)
    even = np.flatnonzero(above == tail)  # the usual case: the top ``tail`` draws, no ties
    if tail > 4 and len(even):
        t = np.exp(x[even, n - tail :]) - np.exp(cut[even, None])
        out[even] = _gpd_shape(t)
    for row in np.flatnonzero((above != tail) & (above > 4)):
        t = np.exp(x[row, n - above[row] :]) - np.exp(cut[row])
        out[row] = _gpd_shape(t[None])[0]
    return out.reshape(shape)


def _gpd_shape(t: np.ndarray) -> np.ndarray:
    """Shape ``k`` of a generalised Pareto fitted to each row of sorted exceedances (R, M)."""
    r, m = t.shape
    m_est = 30 + int(m**0.5)
    b = 1 - np.sqrt(m_est / (np.arange(1, m_est + 1, dtype=float) - 0.5))
    b = b[None, :] / (_PRIOR_BS * t[:, int(m / 4 + 0.5) - 1, None]) + 1 / t[:, -1, None]
    # A weight whose exp overflows is 1 / inf = 0, the limit ArviZ's weight cut keeps.
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        k = np.log1p(-b[:, :, None] * t[:, None, :]).mean(-1)  # (R, m_est)
        scale = m * (np.log(-(b / k)) - k - 1)
        w = 1 / np.exp(scale[:, None, :] - scale[:, :, None]).sum(-1)
    w = np.where(w >= 10 * np.finfo(float).eps, w, 0.0)
    b_post = (b * w).sum(1) / w.sum(1)
    k_post = np.log1p(-b_post[:, None] * t).mean(1)
    return (m * k_post + _PRIOR_K * 0.5) / (m + _PRIOR_K)
