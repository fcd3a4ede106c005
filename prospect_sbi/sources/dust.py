"""Dust attenuation with FSPS's parameter meanings: dust_type 0, 2, 4, dust1, dust2."""

from __future__ import annotations

__all__ = [
    "SUPPORTED_DUST_TYPES",
    "diffuse_tau",
    "birth_cloud_tau",
    "bump",
    "bump_strength",
    "calzetti",
    "power_law_log_grid",
]

import numpy as np

from ..constants import V_BAND

#: FSPS ``dust_type`` codes implemented here.
SUPPORTED_DUST_TYPES = {0: "power law", 2: "Calzetti et al. 2000", 4: "Kriek & Conroy 2013"}

_BLOCK = 64  # power_law_log_grid builds (lambda / 5500) ** index from blocks of this many pixels


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


def bump(wave: np.ndarray, strength: np.ndarray | float = 1.0) -> np.ndarray:
    """2175 AA bump of Kriek & Conroy (2013), over 4.05 (Calzetti's R_V), added to calzetti.

    Parameters
    ----------
    wave : ndarray
        Rest-frame wavelengths, AA.
    strength : float or ndarray
        Bump strength (:func:`bump_strength`), broadcast against ``wave``.

    Returns
    -------
    ndarray
        ``wave`` and ``strength`` broadcast: the Drude profile (FWHM 350 AA, 1 / 4.05 at its
        peak per unit strength) that the law adds to :func:`calzetti`.
    """
    width2 = (wave * 350.0) ** 2
    return strength * width2 / ((wave**2 - 2175.0**2) ** 2 + width2) / 4.05


def bump_strength(dust_index: np.ndarray) -> np.ndarray:
    """Strength of the 2175 AA bump tied to the slope, 0.85 - 1.9 ``dust_index`` (KC13).

    Computed in the dtype of ``dust_index`` (float32 in, float32 out).
    """
    return 0.85 - 1.9 * dust_index


def power_law_log_grid(
    index: np.ndarray, scale: np.ndarray, ln_first: float, step: float, n: int
) -> np.ndarray:
    """``scale * (lambda / 5500) ** index`` on n pixels of a uniform ln grid, (C, n) float32.

    A geometric sequence in the pixel number: the outer product of per-block and
    within-block factors costs one multiplication per pixel instead of an exp.

    Parameters
    ----------
    index, scale : ndarray, (C,)
        Power-law slopes and the values at 5500 AA.
    ln_first : float
        ln(lambda_0 / 5500) of the first pixel.
    step : float
        Pixel step in ln(lambda).
    n : int
        Number of pixels.
    """
    nblock = -(-n // _BLOCK)
    index = np.asarray(index, dtype=np.float32)[:, None]
    outer = np.exp(index * (ln_first + step * _BLOCK * np.arange(nblock)).astype(np.float32))
    outer *= np.asarray(scale, dtype=np.float32)[:, None]
    inner = np.exp(index * (step * np.arange(_BLOCK)).astype(np.float32))
    return (outer[:, :, None] * inner[:, None, :]).reshape(len(index), -1)[:, :n]


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
        return dust2 * _power(wave, index)
    if dust_type == 2:
        return dust2 * calzetti(wave)
    if dust_type == 4:
        curve = calzetti(wave) + bump(wave, bump_strength(index))
        return dust2 * curve * _power(wave, index)
    raise ValueError(
        f"dust_type={dust_type} is not supported by BC03MilesBasis; use one of "
        f"{SUPPORTED_DUST_TYPES}"
    )


def birth_cloud_tau(wave: np.ndarray, dust1: np.ndarray, dust1_index: np.ndarray) -> np.ndarray:
    """Extra optical depth of stars younger than ``dust_tesc`` (and their nebular emission).

    ``dust1 * (wave / 5500) ** dust1_index`` as in FSPS (Charlot & Fall 2000), (B, L).
    """
    wave = np.asarray(wave, dtype=float)[None, :]
    index = np.asarray(dust1_index, dtype=float)[:, None]
    return np.asarray(dust1, dtype=float)[:, None] * _power(wave, index)


def _power(wave: np.ndarray, index: np.ndarray) -> np.ndarray:
    """``(wave / 5500) ** index`` for wave (1, L) and index (B, 1); one row when all share it."""
    if index.size > 1 and np.all(index == index.flat[0]):
        return (wave / V_BAND) ** index.flat[0]
    return (wave / V_BAND) ** index
