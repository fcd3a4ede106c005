"""Dust attenuation with FSPS's parameter meanings: dust_type 0, 2, 4, dust1, dust2."""

from __future__ import annotations

__all__ = ["SUPPORTED_DUST_TYPES", "diffuse_tau", "birth_cloud_tau", "calzetti"]

import numpy as np

#: FSPS ``dust_type`` codes implemented here.
SUPPORTED_DUST_TYPES = {0: "power law", 2: "Calzetti et al. 2000", 4: "Kriek & Conroy 2013"}

_V = 5500.0


def calzetti(wave: np.ndarray) -> np.ndarray:
    """Calzetti et al. (2000) curve normalised to 1 at 5500 AA (A_lambda / A_V), >= 0.

    Parameters
    ----------
    wave : ndarray
        Rest-frame wavelengths, AA.
    """
    x = 1e4 / np.asarray(wave, dtype=float)  # inverse microns
    blue = 2.659 * (-2.156 + 1.509 * x - 0.198 * x**2 + 0.011 * x**3) + 4.05
    red = 2.659 * (-1.857 + 1.040 * x) + 4.05
    k = np.where(wave < 6300.0, blue, red)
    return np.clip(k / 4.05, 0.0, None)


def diffuse_tau(
    wave: np.ndarray, dust_type: int, dust2: np.ndarray, dust_index: np.ndarray
) -> np.ndarray:
    """Optical depth of the diffuse dust, applied to all stars and nebular emission.

    Parameters
    ----------
    wave : ndarray, (L,)
        Rest-frame wavelengths, AA.
    dust_type : int
        0: ``dust2 * (wave / 5500) ** dust_index``; 2: Calzetti et al. (2000) scaled to
        ``dust2`` at 5500 AA; 4: Kriek & Conroy (2013), Calzetti times
        ``(wave / 5500) ** dust_index`` with a 2175 AA bump of strength 0.85 - 1.9 dust_index.
    dust2, dust_index : ndarray, (B,)
        Optical depth at 5500 AA and slope.

    Returns
    -------
    ndarray, (B, L)
    """
    wave = np.asarray(wave, dtype=float)[None, :]
    dust2 = np.asarray(dust2, dtype=float)[:, None]
    index = np.asarray(dust_index, dtype=float)[:, None]
    if dust_type == 0:
        return dust2 * (wave / _V) ** index
    if dust_type == 2:
        return dust2 * calzetti(wave)
    if dust_type == 4:
        bump_strength = 0.85 - 1.9 * index
        width2 = (wave * 350.0) ** 2
        bump = bump_strength * width2 / ((wave**2 - 2175.0**2) ** 2 + width2)
        return dust2 * (calzetti(wave) + bump / 4.05) * (wave / _V) ** index
    raise ValueError(
        f"dust_type={dust_type} is not supported by BC03MilesBasis; use one of "
        f"{SUPPORTED_DUST_TYPES}"
    )


def birth_cloud_tau(wave: np.ndarray, dust1: np.ndarray, dust1_index: np.ndarray) -> np.ndarray:
    """Extra optical depth of stars younger than ``dust_tesc`` (and their nebular emission).

    ``dust1 * (wave / 5500) ** dust1_index`` as in FSPS (Charlot & Fall 2000), (B, L).
    """
    wave = np.asarray(wave, dtype=float)[None, :]
    return (
        np.asarray(dust1, dtype=float)[:, None]
        * (wave / _V) ** np.asarray(dust1_index, dtype=float)[:, None]
    )
