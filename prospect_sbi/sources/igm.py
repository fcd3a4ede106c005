"""IGM transmission of Madau (1995) and Inoue et al. (2014), vectorised over redshift."""

from __future__ import annotations

__all__ = ["IGM_MODELS", "igm_edges", "igm_transmission"]

import functools

import numpy as np

from ..constants import LYMAN_ALPHA, LYMAN_LIMIT

#: Names accepted by :func:`igm_transmission` and ``BC03MilesBasis(igm=...)``.
IGM_MODELS = ("madau1995", "inoue2014")

_LYLIM_MADAU = LYMAN_LIMIT
_LYLIM_INOUE = 911.8  # Inoue et al. (2014)'s Lyman limit

# Madau (1995) Lyman-series line-blanketing coefficients, extended to 17 lines as in FSPS.
_MADAU_WAVE = np.array(
    [
        1215.67,
        1025.72,
        972.537,
        949.743,
        937.803,
        930.748,
        926.226,
        923.150,
        920.963,
        919.352,
        918.129,
        917.181,
        916.429,
        915.824,
        915.329,
        914.919,
        914.576,
    ]
)
_MADAU_COEF = np.array(
    [
        0.0036,
        0.0017,
        0.0011846,
        0.0009410,
        0.0007960,
        0.0006967,
        0.0006236,
        0.0005665,
        0.0005200,
        0.0004817,
        0.0004487,
        0.0004200,
        0.0003947,
        0.000372,
        0.000352,
        0.0003334,
        0.00031644,
    ]
)


def igm_transmission(
    wave: np.ndarray, zred: np.ndarray, model: str = "madau1995", factor: np.ndarray | float = 1.0
) -> np.ndarray:
    """IGM transmission exp(-factor * tau) for sources at redshift ``zred``.

    Parameters
    ----------
    wave : ndarray, (L,)
        Rest-frame wavelengths, AA.
    zred : ndarray, (B,)
        Source redshifts.
    model : {"madau1995", "inoue2014"}
        Madau (1995) as implemented in FSPS (``add_igm_absorption``), or Inoue et al. (2014).
    factor : float or ndarray, (B,)
        Scale of the optical depth (FSPS ``igm_factor``).

    Returns
    -------
    ndarray, (B, L)
        Transmission in [0, 1]; exactly 1 redward of Lyman-alpha.
    """
    wave = np.asarray(wave, dtype=float)
    zred = np.atleast_1d(np.asarray(zred, dtype=float))
    factor = np.broadcast_to(np.asarray(factor, dtype=float), zred.shape)
    trans = np.ones((len(zred), len(wave)))
    blue = wave < LYMAN_ALPHA
    if not blue.any():
        return trans
    lam = wave[blue][None, :]
    z1 = 1.0 + zred[:, None]
    if model == "madau1995":
        tau = _madau_tau_capped(lam, z1)
    elif model == "inoue2014":
        tau = _inoue_tau(lam, z1)
    else:
        raise ValueError(f"unknown IGM model {model!r}; use one of {IGM_MODELS}")
    trans[:, blue] = np.exp(-factor[:, None] * tau)
    return trans


def igm_edges(model: str = "madau1995") -> np.ndarray:
    """Rest wavelengths (AA) where the IGM transmission of ``model`` jumps.

    The Lyman-series lines of the model (Lyman-alpha first) and its Lyman limit, (E,).
    """
    if model == "madau1995":
        return np.append(_MADAU_WAVE, _LYLIM_MADAU)
    return np.append(_inoue_table()[:, 1], _LYLIM_INOUE)


def _madau_tau(lam: np.ndarray, z1: np.ndarray) -> np.ndarray:
    """Madau (1995) optical depth at rest wavelengths ``lam`` (AA) of sources at ``1 + z = z1``.

    Every term is a power of ``lam z1``, so tau is ``z1^3.46 P(lam) + z1^1.68 Q(lam)``: the
    powers of ``lam`` and of ``z1`` are taken apart and combined by two products (the Lyman
    series lines, the metal blanketing of Lyman-alpha, and the Lyman continuum of
    ``xc = lam z1 / 912``, expanded).
    """
    lam = np.asarray(lam, dtype=float)
    z1 = np.asarray(z1, dtype=float)
    steep = np.zeros(lam.shape)  # P, the z1^3.46 terms
    for lyw, coef in zip(_MADAU_WAVE, _MADAU_COEF, strict=True):
        steep += np.where(lam < lyw, coef * (lam / lyw) ** 3.46, 0.0)
    lya = _MADAU_WAVE[0]
    flat = np.where(lam < lya, 0.0017 * (lam / lya) ** 1.68, 0.0)  # Q, the z1^1.68 terms
    x = lam / _LYLIM_MADAU  # xc / z1
    lyc = lam < _LYLIM_MADAU
    steep += np.where(lyc, 0.25 * x**3 * (1.0 - x**0.46), 0.0)
    flat += np.where(
        lyc,
        9.4 * x**1.5 * (1.0 - x**0.18) - 0.7 * x**3 * (x**-1.32 - 1.0) - 0.023 * (1.0 - x**1.68),
        0.0,
    )
    return z1**3.46 * steep + z1**1.68 * flat


def _madau_tau_capped(lam: np.ndarray, z1: np.ndarray) -> np.ndarray:
    # The LyC fit turns over at short wavelengths; FSPS holds tau at its maximum blueward of
    # the peak. The peak comes from a fixed table in z so the answer does not depend on ``lam``.
    z_grid, peak_wave, peak_tau = _madau_peak_table()
    zs = z1[:, 0] - 1.0
    cut = np.interp(zs, z_grid, peak_wave)[:, None]
    cap = np.interp(zs, z_grid, peak_tau)[:, None]
    return np.where(lam < cut, cap, _madau_tau(lam, z1))


@functools.lru_cache(maxsize=1)
def _madau_peak_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rest wavelength and value of the maximum Madau tau on a z grid (0 to 30, step 0.01)."""
    z_grid = np.arange(0.0, 30.005, 0.01)
    ref = np.geomspace(1.0, _LYLIM_MADAU, 1500)[None, :]
    tau = np.concatenate([_madau_tau(ref, 1.0 + z[:, None]) for z in np.array_split(z_grid, 30)])
    peak = tau.argmax(axis=-1)
    return z_grid, ref[0, peak], tau.max(axis=-1)


@functools.lru_cache(maxsize=1)
def _inoue_table() -> np.ndarray:
    from .grids import inoue_coefficients

    return inoue_coefficients()


def _inoue_tau(lam: np.ndarray, z1: np.ndarray) -> np.ndarray:
    coefs = _inoue_table()
    lobs = lam * z1
    zs = z1 - 1.0
    tau = np.zeros(np.broadcast_shapes(lam.shape, z1.shape))
    # Lyman series, Lyman-alpha forest (LAF) and damped Lyman-alpha systems (DLA): Eqs. 21-22.
    for _, lj, a1, a2, a3, d1, d2 in coefs:
        x = lobs / lj
        on = (lobs > lj) & (lobs < lj * z1)
        laf = np.where(
            lobs < 2.2 * lj, a1 * x**1.2, np.where(lobs < 5.7 * lj, a2 * x**3.7, a3 * x**5.5)
        )
        dla = np.where(lobs < 3.0 * lj, d1 * x**2.0, d2 * x**3.0)
        tau += np.where(on, laf + dla, 0.0)
    # Lyman continuum, Eqs. 25-29.
    x = lobs / _LYLIM_INOUE
    on = (lobs > _LYLIM_INOUE) & (lobs < _LYLIM_INOUE * z1)
    laf_low = 0.325 * (x**1.2 - z1**-0.9 * x**2.1)
    laf_mid = np.where(
        x < 2.2,
        2.55e-2 * z1**1.6 * x**2.1 + 0.325 * x**1.2 - 0.25 * x**2.1,
        2.55e-2 * (z1**1.6 * x**2.1 - x**3.7),
    )
    laf_high = np.where(
        x < 2.2,
        5.22e-4 * z1**3.4 * x**2.1 + 0.325 * x**1.2 - 3.14e-2 * x**2.1,
        np.where(
            x < 5.7,
            5.22e-4 * z1**3.4 * x**2.1 + 0.218 * x**2.1 - 2.55e-2 * x**3.7,
            5.22e-4 * (z1**3.4 * x**2.1 - x**5.5),
        ),
    )
    laf = np.where(zs < 1.2, laf_low, np.where(zs < 4.7, laf_mid, laf_high))
    dla_low = 0.211 * z1**2 - 7.66e-2 * z1**2.3 * x**-0.3 - 0.135 * x**2
    dla_high = np.where(
        x < 3.0,
        0.634 + 4.7e-2 * z1**3 - 1.78e-2 * z1**3.3 * x**-0.3 - 0.135 * x**2 - 0.291 * x**-0.3,
        4.7e-2 * z1**3 - 1.78e-2 * z1**3.3 * x**-0.3 - 2.92e-2 * x**3,
    )
    dla = np.where(zs < 2.0, dla_low, dla_high)
    tau += np.where(on, laf + dla, 0.0)
    return tau
