"""Star-formation histories as exact mass fractions in SSP age bins (FSPS sfh=0, 1, 3, 4).

Tau and delayed-tau SFHs take FSPS's burst (``fburst``, ``tburst``) as FSPS does.
"""

from __future__ import annotations

__all__ = [
    "MAX_LOG_AGE",
    "SUPPORTED_SFH",
    "bin_masses",
    "burst_fraction",
    "check_agebins",
    "cumulative_mass",
    "gamma_cdf",
    "power_moments",
    "sfh_inputs",
    "split_young_old",
    "step_bin_masses",
    "young_series",
]

import math
from collections.abc import Mapping

import numpy as np
from scipy.special import gammainc

#: FSPS ``sfh`` codes implemented here.
SUPPORTED_SFH = {0: "SSP", 1: "tau", 3: "step (agebins)", 4: "delayed-tau"}

#: Largest step-SFH age edge, log10(yr): 20 Gyr, the oldest ``tage`` accepted too.
MAX_LOG_AGE = math.log10(20e9)


def check_agebins(agebins: object) -> None:
    """Refuse step-SFH age edges that are not Prospector's log10(age / yr) (``agebins``).

    Raises
    ------
    ValueError
        Edges that are not finite or lie outside [0, :data:`MAX_LOG_AGE`] (edges in years,
        say, instead of their logarithm).
    """
    a = np.asarray(agebins, dtype=float)
    if a.size and not (np.all(np.isfinite(a)) and a.min() >= 0 and a.max() <= MAX_LOG_AGE):
        hint = "; years? pass np.log10 of them" if np.nanmax(np.abs(a)) > 100 else ""
        raise ValueError(
            f"agebins are log10(age / yr) edges within [0, {MAX_LOG_AGE:.2f}], as in "
            f"Prospector; these run from {np.nanmin(a):.4g} to {np.nanmax(a):.4g}{hint}"
        )


def cumulative_mass(
    age: np.ndarray, sfh: int, params: Mapping[str, np.ndarray], closed_form: bool = False
) -> np.ndarray:
    """Fraction of the total mass formed that has lookback age below ``age``.

    Integrating this function between SSP age-bin edges gives each SSP its exact share of the
    SFH, so no SFH is ever sampled at the SSP ages (no nearest-age or point-sampling error).

    Parameters
    ----------
    age : ndarray, (K,) or (B, K)
        Lookback ages, yr.
    sfh : int
        FSPS SFH code: 0 (SSP at ``tage``), 1 (tau: exp(-t/tau)), 4 (delayed-tau:
        t exp(-t/tau)), 3 (step SFH given by ``agebins`` and per-bin ``mass``).
    params : mapping
        Batched parameters: ``tage`` and ``tau`` (B,), Gyr, for sfh 0, 1, 4; optionally
        ``fburst`` (B,), the fraction of the mass formed in a burst, and ``tburst`` (B,), Gyr
        after the start (<= ``tage``), for sfh 1, 4; ``agebins`` (B, nbin, 2), log10 yr,
        and ``mass`` (B, nbin), Msun formed per bin, for sfh 3.
    closed_form : bool
        For sfh 1 and 4, take the incomplete gamma function from :func:`gamma_cdf` (closed
        forms, a fraction of the cost, ~1e-13 from scipy's ``gammainc``) instead of scipy.

    Returns
    -------
    ndarray, (B, K)
        Cumulative mass fraction in [0, 1], non-decreasing in ``age``.
    """
    age = np.atleast_2d(np.asarray(age, dtype=float))
    if sfh in (0, 1, 4):
        tage = np.asarray(params["tage"], dtype=float)[:, None] * 1e9
        if sfh == 0:
            return (age > tage).astype(float) + np.zeros_like(tage)
        tau = np.asarray(params["tau"], dtype=float)[:, None] * 1e9
        shape = 2.0 if sfh == 4 else 1.0
        cdf = (lambda x: gamma_cdf(sfh, x)) if closed_form else (lambda x: gammainc(shape, x))
        # Mass formed from t=0 (start) to t is P(shape, t/tau); an age a was formed at tage - a.
        total = cdf(tage / tau)
        before = cdf(np.clip(tage - age, 0.0, None) / tau)
        smooth = np.clip((total - before) / total, 0.0, 1.0)
        fburst = burst_fraction(params)
        if fburst is None:
            return smooth
        # FSPS's burst: fburst of the mass formed at once, at lookback age tage - tburst
        lookback = tage - np.asarray(params["tburst"], dtype=float)[:, None] * 1e9
        return (1.0 - fburst[:, None]) * smooth + fburst[:, None] * (age > lookback)
    if sfh == 3:
        bins = 10 ** np.asarray(params["agebins"], dtype=float)  # (B, nbin, 2)
        mass = np.asarray(params["mass"], dtype=float)  # (B, nbin)
        lo, hi = bins[..., 0][:, None, :], bins[..., 1][:, None, :]
        # Constant SFR inside each bin: the formed fraction grows linearly in age across it.
        frac = np.clip((age[..., None] - lo) / (hi - lo), 0.0, 1.0)
        return (frac * mass[:, None, :]).sum(-1) / mass.sum(-1)[:, None]
    raise ValueError(f"sfh={sfh} is not supported by BC03MilesBasis; use one of {SUPPORTED_SFH}")


def burst_fraction(params: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """FSPS's ``fburst`` (B,) of sfh 1 and 4, or None where no object of the batch has one."""
    fburst = params.get("fburst")
    if fburst is None:
        return None
    fburst = np.asarray(fburst, dtype=float)
    return fburst if np.any(fburst > 0) else None


def sfh_inputs(params: Mapping[str, object], n: int) -> dict[str, np.ndarray | None]:
    """Gather the SFH inputs of :func:`cumulative_mass` from a batch of Prospector parameters.

    Parameters
    ----------
    params : mapping
        Batched parameters after the model's transforms: ``mass`` (B,) or (B, nbin), and
        those of the SFH (scalars and length-1 arrays are shared).
    n : int
        Batch size B.

    Returns
    -------
    dict
        ``mass`` and ``agebins`` as given; ``tage``, ``tau``, ``fburst`` and ``tburst``
        (B,), or None where absent (``tburst`` FSPS's 11 Gyr when only ``fburst`` is given).
    """

    def vector(key: str, default: object = None) -> np.ndarray | None:
        value = params.get(key, default)
        return None if value is None else np.broadcast_to(np.asarray(value, float), (n,))

    fburst = vector("fburst")
    return {
        "mass": np.asarray(params["mass"], dtype=float),
        "agebins": params.get("agebins"),
        "tage": vector("tage"),
        "tau": vector("tau"),
        "fburst": fburst,
        "tburst": vector("tburst", None if fburst is None else 11.0),
    }


def bin_masses(edges: np.ndarray, sfh: int, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """Mass fraction formed in each age bin ``[edges[i], edges[i+1])``, (B, K - 1)."""
    return np.diff(cumulative_mass(edges, sfh, params), axis=-1)


def split_young_old(
    edges: np.ndarray, tesc: np.ndarray, sfh: int, params: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Split SSP bin masses into stars younger and older than ``tesc``.

    The bin that contains ``tesc`` is split exactly, so birth-cloud dust and nebular emission
    see only the mass younger than ``tesc``.

    Parameters
    ----------
    edges : ndarray, (A + 1,)
        SSP age-bin edges, yr.
    tesc : ndarray, (B,)
        Birth-cloud escape age, yr (FSPS ``10**dust_tesc``).
    sfh, params
        As in :func:`cumulative_mass`.

    Returns
    -------
    young, old : ndarray, (B, A)
        Fractions of the total mass formed, per SSP bin.
    """
    total = bin_masses(edges, sfh, params)
    clipped = np.minimum(edges[None, :], np.asarray(tesc, dtype=float)[:, None])
    young = np.diff(cumulative_mass(clipped, sfh, params), axis=-1)
    return young, total - young


def gamma_cdf(sfh: int, x: np.ndarray) -> np.ndarray:
    """Regularised lower incomplete gamma P(a, x) in closed form, a = 1 (sfh 1) or 2 (sfh 4).

    P(1, x) = 1 - e^-x and P(2, x) = 1 - (1 + x) e^-x (a series below x = 0.05, where that
    cancels) cost a fraction of scipy's ``gammainc`` and agree with it to ~1e-13.

    Parameters
    ----------
    sfh : {1, 4}
        FSPS SFH code: tau or delayed-tau.
    x : ndarray
        t / tau, >= 0.

    Returns
    -------
    ndarray
        Same shape as ``x``.
    """
    if sfh == 1:
        return -np.expm1(-x)
    out = 1.0 - (1.0 + x) * np.exp(-x)
    small = x < 0.05
    if small.any():
        xs, series = x[small], 0.0
        for k in range(9, 1, -1):  # sum_k (-1)^k (k - 1) x^k / k!, k = 2..9, by Horner
            series = (series + (-1) ** k * (k - 1) / math.factorial(k)) * xs
        out[small] = series * xs
    return out


def step_bin_masses(
    edges: np.ndarray, lo: np.ndarray, hi: np.ndarray, sfr: np.ndarray
) -> np.ndarray:
    """Mass per SSP age bin (C, A) of constant-SFR pieces [lo, hi) (C, K) at rates ``sfr``.

    Bin a gets ``sum_k sfr_k |[e_a, e_a+1) & [lo_k, hi_k)|``: what :func:`bin_masses` gives
    for sfh 3 (times the total mass). The overlap with [0, t) is whole for bins below the one
    holding t, partial there, and empty above: one scatter per knot and a reverse cumulative
    sum, O(A + K) per object instead of O(A K).

    Parameters
    ----------
    edges : ndarray, (A + 1,)
        SSP age-bin edges, yr.
    lo, hi : ndarray, (C, K)
        Lookback ages where each piece starts and stops, yr.
    sfr : ndarray, (C, K)
        Star-formation rate of each piece, mass per yr.
    """
    c, na = lo.shape[0], len(edges) - 1
    knots = np.concatenate([hi, lo], axis=1)
    rate = np.concatenate([sfr, -sfr], axis=1)
    a = np.clip(np.searchsorted(edges, knots, side="right") - 1, 0, na - 1)
    flat = (np.arange(c)[:, None] * na + a).ravel()
    step = np.bincount(flat, rate.ravel(), c * na).reshape(c, na)
    part = np.bincount(flat, (rate * (knots - edges[a])).ravel(), c * na).reshape(c, na)
    above = np.cumsum(step[:, ::-1], axis=1)[:, ::-1] - step
    return above * np.diff(edges) + part


def young_series(
    sfh: int, params: Mapping[str, np.ndarray], upto: np.ndarray, terms: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Star-formation rate at lookback times t < ``upto`` as a power series in t / upto.

    Per unit mass formed, at lookback time t < tage, the rate is ``A e^(t/tau)`` (sfh 1) or
    ``A (tage - t) e^(t/tau)`` (sfh 4), ``A = (1 - fburst) e^(-tage/tau) / (tau^a P(a,
    tage/tau))``:
    the exponential's series, cut after ``terms`` powers, leaves out at most about
    ``2 r^(terms - 1) / (terms - 1)!`` of the rate's leading term, ``r = upto / tau``. Young
    stars' mass in any age range below ``upto`` is then ``coef @`` the range's
    :func:`power_moments`: a few products per row instead of one per SSP age.

    Parameters
    ----------
    sfh : {1, 4}
    params : mapping
        ``tage`` and ``tau`` (B,), Gyr; optionally ``fburst`` and ``tburst`` (B,), as in
        :func:`cumulative_mass`.
    upto : ndarray, (B,)
        Lookback time, yr, up to which the series is used (the birth-cloud escape age).
    terms : int
    tol : float
        Largest fraction of the leading term left out of a row the series is used for.

    Returns
    -------
    coef : ndarray, (B, terms)
        Mass fraction per yr: ``sfr(t) = sum_k coef[k] (t / upto)^k`` for t < upto.
    exact : ndarray, bool, (B,)
        Rows whose series leaves out at most ``tol``, whose SFH started before ``upto`` and
        whose burst (``fburst`` > 0), if any, is older than ``upto``.
    """
    tage = np.asarray(params["tage"], dtype=float) * 1e9
    tau = np.asarray(params["tau"], dtype=float) * 1e9
    upto = np.asarray(upto, dtype=float)
    r, x0 = upto / tau, tage / tau
    k = np.arange(terms)
    power = r[:, None] ** k / np.array([math.factorial(int(j)) for j in k])  # r^k / k!
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if sfh == 1:
            coef = (np.exp(-x0) / (tau * gamma_cdf(1, x0)))[:, None] * power
        else:
            earlier = np.concatenate([np.zeros((len(r), 1)), power[:, :-1]], axis=1)
            amp = np.exp(-x0) / (tau**2 * gamma_cdf(4, x0))
            coef = amp[:, None] * (tage[:, None] * power - upto[:, None] * earlier)
    left = 2 * r ** (terms - 1) / math.factorial(terms - 1)
    exact = (tage >= upto) & (left <= tol) & np.all(np.isfinite(coef), axis=1)
    fburst = burst_fraction(params)
    if fburst is not None:  # the smooth part's share; a burst younger than upto is no series
        coef = coef * (1.0 - fburst)[:, None]
        exact &= (fburst == 0) | (tage - np.asarray(params["tburst"], dtype=float) * 1e9 >= upto)
    return np.where(exact[:, None], coef, 0.0), exact


def power_moments(edges: np.ndarray, upto: float, terms: int) -> np.ndarray:
    """``int (t / upto)^k dt`` over each bin ``[edges[a], edges[a+1])`` below ``upto``, (K, A).

    Yr; bins (or their parts) past ``upto`` count nothing (:func:`young_series`).
    """
    lo = np.minimum(edges[:-1], upto) / upto
    hi = np.minimum(edges[1:], upto) / upto
    k = np.arange(1, terms + 1)[:, None]
    return upto * (hi[None, :] ** k - lo[None, :] ** k) / k
