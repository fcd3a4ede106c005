"""Prospector's cosmology (WMAP9) as fast tables: age of the universe, luminosity distance."""

from __future__ import annotations

__all__ = ["age_of_universe", "luminosity_distance"]

from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline

_ZMAX = 30.0
_NODES = 401


@lru_cache(maxsize=1)
def _tables() -> tuple[CubicSpline, CubicSpline]:
    from prospect.sources.constants import cosmo

    # Both functions are smooth in ln(1 + z); a cubic spline through 401 nodes is good to
    # ~1e-9 (tests/test_transforms.py checks 1e-6) and takes a fraction of a second to build.
    x = np.linspace(0.0, np.log1p(_ZMAX), _NODES)
    z = np.expm1(x)
    age = np.log(cosmo.age(z).to("Gyr").value)
    dist = cosmo.luminosity_distance(z[1:]).to("Mpc").value
    hubble_distance = 299792.458 / cosmo.H0.value  # the z -> 0 limit of d_L / z
    ratio = np.concatenate([[np.log(hubble_distance)], np.log(dist / z[1:])])
    return CubicSpline(x, age), CubicSpline(x, ratio)


def _check(zred: np.ndarray) -> np.ndarray:
    zred = np.asarray(zred, dtype=float)
    if np.any(~np.isfinite(zred)) or np.any(zred < 0) or np.any(zred > _ZMAX):
        bad = zred[~((zred >= 0) & (zred <= _ZMAX))].flat[0]
        raise ValueError(f"zred={bad} is outside the supported range [0, {_ZMAX:g}]")
    return zred


def _spline(which: int, zred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the checked ``zred`` and table ``which`` (0: ln age, 1: ln(d_L / z)) there."""
    zred = _check(zred)
    return zred, _tables()[which](np.log1p(zred))


def age_of_universe(zred: np.ndarray) -> np.ndarray:
    """Age of the universe at ``zred``, Gyr, in Prospector's cosmology (WMAP9).

    Parameters
    ----------
    zred : array_like
        Redshifts in [0, 30].

    Returns
    -------
    ndarray
        Same shape as ``zred``.
    """
    return np.exp(_spline(0, zred)[1])


def luminosity_distance(zred: np.ndarray) -> np.ndarray:
    """Luminosity distance, Mpc, in Prospector's cosmology (WMAP9); 0 at z = 0.

    Parameters
    ----------
    zred : array_like
        Redshifts in [0, 30], as for :func:`age_of_universe`.

    Returns
    -------
    ndarray
        Same shape as ``zred``.
    """
    # d_L / z is smooth and finite at z -> 0 (it tends to c / H0), so interpolate that.
    zred, log_ratio = _spline(1, zred)
    return zred * np.exp(log_ratio)
