"""Star-formation histories as exact mass fractions in SSP age bins (FSPS sfh=0, 1, 3, 4)."""

from __future__ import annotations

__all__ = ["SUPPORTED_SFH", "cumulative_mass", "bin_masses", "split_young_old"]

from collections.abc import Mapping

import numpy as np
from scipy.special import gammainc

#: FSPS ``sfh`` codes implemented here.
SUPPORTED_SFH = {0: "SSP", 1: "tau", 3: "step (agebins)", 4: "delayed-tau"}


def cumulative_mass(age: np.ndarray, sfh: int, params: Mapping[str, np.ndarray]) -> np.ndarray:
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
        Batched parameters: ``tage`` and ``tau`` (B,), Gyr, for sfh 0, 1, 4; ``agebins``
        (B, nbin, 2), log10 yr, and ``mass`` (B, nbin), Msun formed per bin, for sfh 3.

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
        # Mass formed from t=0 (start) to t is P(shape, t/tau); an age a was formed at tage - a.
        total = gammainc(shape, tage / tau)
        before = gammainc(shape, np.clip(tage - age, 0.0, None) / tau)
        return np.clip((total - before) / total, 0.0, 1.0)
    if sfh == 3:
        bins = 10 ** np.asarray(params["agebins"], dtype=float)  # (B, nbin, 2)
        mass = np.asarray(params["mass"], dtype=float)  # (B, nbin)
        lo, hi = bins[..., 0][:, None, :], bins[..., 1][:, None, :]
        # Constant SFR inside each bin: the formed fraction grows linearly in age across it.
        frac = np.clip((age[..., None] - lo) / (hi - lo), 0.0, 1.0)
        return (frac * mass[:, None, :]).sum(-1) / mass.sum(-1)[:, None]
    raise ValueError(f"sfh={sfh} is not supported by BC03MilesBasis; use one of {SUPPORTED_SFH}")


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
