"""Physical quantities derived from the SFH parameters: stellar mass, SFRs, ages.

These are the targets an astronomer reads off a fit (and the ones the amortised posterior
learns jointly with the free parameters), so they are computed exactly from the same
star-formation history the SPS integrates, not by sampling it.
"""

from __future__ import annotations

__all__ = ["DERIVED", "STEP_DERIVED", "derived_quantities", "LOG_SSFR_FLOOR"]

from collections.abc import Mapping

import numpy as np
from scipy.special import gammainc, gammaincinv

from .sources.sfh import burst_fraction, cumulative_mass, sfh_inputs

#: Derived quantities stored for every SFH, with their units.
DERIVED = {
    "log_mstar": "log10 surviving stellar mass, Msun",
    "log_sfr10": "log10 SFR averaged over the last 10 Myr, Msun/yr",
    "log_sfr100": "log10 SFR averaged over the last 100 Myr, Msun/yr",
    "log_ssfr100": "log10 SFR100 / surviving stellar mass, 1/yr",
    "mwa": "mass-weighted age of the mass formed, Gyr",
}
#: Lookback times (Gyr) at which 25, 50, 75% of the mass had formed (sfh 1, 3, 4).
STEP_DERIVED = {
    f"t{q}": f"lookback time when {q}% of the mass had formed, Gyr" for q in (25, 50, 75)
}
#: Halvings of [0, tage] that place a mass quantile of a tau SFH with a burst (2^-40 of tage).
_BISECTIONS = 40
#: Specific SFRs below this (log10, 1/yr) are set to it, so quiescent galaxies have finite logs.
LOG_SSFR_FLOOR = -14.0


def derived_quantities(params: Mapping[str, np.ndarray], mfrac: np.ndarray) -> dict:
    """Compute the derived quantities of a batch of parameter vectors.

    Parameters
    ----------
    params : mapping
        Batched FSPS parameters (batch on axis 0): ``sfh``; ``mass`` (B,) or, for ``sfh=3``,
        (B, nbin) Msun formed; ``tage``, ``tau`` (B,) Gyr for ``sfh`` 0, 1, 4, and FSPS's
        burst ``fburst``, ``tburst`` (Gyr) for ``sfh`` 1, 4 when given; ``agebins``
        (B, nbin, 2) log10 yr for ``sfh=3``.
    mfrac : ndarray, (B,)
        Surviving / formed mass, from the SPS.

    Returns
    -------
    dict of ndarray, (B,)
        :data:`DERIVED` and, for ``sfh`` 1, 3 and 4, :data:`STEP_DERIVED`. Log SFRs are
        floored at ``LOG_SSFR_FLOOR`` + log_mstar.
    """
    sfh = int(np.asarray(params["sfh"]).flat[0])
    mass = np.asarray(params["mass"], dtype=float)
    formed = mass.sum(-1) if mass.ndim > 1 else mass
    n = len(formed)
    sfh_params = sfh_inputs(params, n)
    out = {"log_mstar": np.log10(formed * np.asarray(mfrac, dtype=float))}
    floor = out["log_mstar"] + LOG_SSFR_FLOOR
    for label, window in (("log_sfr10", 1e7), ("log_sfr100", 1e8)):
        recent = cumulative_mass(np.full((n, 1), window), sfh, sfh_params)[:, 0]
        with np.errstate(divide="ignore"):
            out[label] = np.maximum(np.log10(formed * recent / window), floor)
    out["log_ssfr100"] = out["log_sfr100"] - out["log_mstar"]
    if sfh == 3:
        out["mwa"], quantile = _step_ages(sfh_params)
    elif sfh in (1, 4):
        out["mwa"], quantile = _tau_ages(sfh_params, sfh)
    else:
        out["mwa"], quantile = sfh_params["tage"].copy(), None
    if quantile is not None:
        out.update({f"t{q}": quantile(q / 100) for q in (25, 50, 75)})
    return out


def _step_ages(p: Mapping) -> tuple:
    edges = 10 ** np.asarray(p["agebins"], dtype=float)  # (B, nbin, 2), yr
    mass = np.asarray(p["mass"], dtype=float)
    frac = mass / mass.sum(-1, keepdims=True)
    # Constant SFR in a bin: its mass has the mean age of the bin's two edges.
    mwa = (frac * edges.mean(-1)).sum(-1) / 1e9
    knots = np.concatenate([edges[:, :1, 0], edges[:, :, 1]], axis=1)  # (B, nbin + 1)
    cum = np.concatenate([np.zeros((len(frac), 1)), np.cumsum(frac, axis=1)], axis=1)

    def quantile(q: float) -> np.ndarray:
        # q of the mass formed before lookback a  <=>  a fraction 1 - q is younger than a.
        target = 1.0 - q
        k = np.argmax(cum[:, 1:] >= target - 1e-12, axis=1)
        rows = np.arange(len(k))
        lo, hi = cum[rows, k], cum[rows, k + 1]
        t = np.clip((target - lo) / np.where(hi > lo, hi - lo, 1.0), 0.0, 1.0)
        return (knots[rows, k] + t * (knots[rows, k + 1] - knots[rows, k])) / 1e9

    return mwa, quantile


def _tau_ages(p: Mapping, sfh: int) -> tuple:
    tage, tau = p["tage"], p["tau"]
    shape = 2.0 if sfh == 4 else 1.0
    x = tage / tau
    # SFR ~ t^(shape-1) exp(-t/tau) since t = 0: the mean formation time is
    # tau * shape * P(shape + 1, x) / P(shape, x), with P the regularised gamma function.
    total = gammainc(shape, x)
    mwa = tage - tau * shape * gammainc(shape + 1, x) / total
    fburst = burst_fraction(p)
    if fburst is None:

        def quantile(q: float) -> np.ndarray:
            return tage - tau * gammaincinv(shape, q * total)

        return mwa, quantile

    # FSPS's burst: fburst of the mass, all of age tage - tburst
    mwa = (1.0 - fburst) * mwa + fburst * (tage - p["tburst"])

    def quantile(q: float) -> np.ndarray:
        # the lookback age (Gyr) with a fraction 1 - q of the mass younger, by bisection:
        # the cumulative mass is monotonic and jumps by fburst at the burst
        lo, hi = np.zeros_like(tage), tage.copy()
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            younger = cumulative_mass(mid[:, None] * 1e9, sfh, p)[:, 0]
            below = younger < 1.0 - q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return 0.5 * (lo + hi)

    return mwa, quantile
