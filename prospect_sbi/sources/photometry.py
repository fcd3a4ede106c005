"""Batched projection of rest-frame spectra through sedpy filters at per-object redshifts."""

from __future__ import annotations

__all__ = ["FilterProjector", "flux_norm", "trapezoid_weights"]

from collections.abc import Sequence

import numpy as np

from ..constants import JY_PER_MAGGIE, LIGHTSPEED, MAGGIE_CGS


def flux_norm(zred: np.ndarray, mass: np.ndarray, lumdist: np.ndarray) -> np.ndarray:
    """Lsun/Hz per Msun formed -> maggies, as Prospector's ``SpecModel.flux_norm``, (B,).

    Parameters
    ----------
    zred : ndarray, (B,)
        Redshifts.
    mass : ndarray, (B,)
        Stellar mass formed, Msun.
    lumdist : ndarray, (B,)
        Luminosity distances, Mpc (Prospector takes 1e-5, i.e. 10 pc, at z = 0).
    """
    from prospect.sources.constants import jansky_cgs, to_cgs_at_10pc

    dfactor = (lumdist * 1e5) ** 2
    return mass * to_cgs_at_10pc / (JY_PER_MAGGIE * jansky_cgs) * (1 + zred) / dfactor


def trapezoid_weights(x: np.ndarray) -> np.ndarray:
    """Weights w with ``sum(w * y) == numpy.trapezoid(y, x)`` for any y, (L,)."""
    w = np.empty_like(x, dtype=float)
    w[1:-1] = 0.5 * (x[2:] - x[:-2])
    w[0] = 0.5 * (x[1] - x[0])
    w[-1] = 0.5 * (x[-1] - x[-2])
    return w


class FilterProjector:
    """Project rest-frame L_nu spectra through filters, object by object in redshift.

    sedpy's ``Filter.obj_counts`` (used by Prospector's ``SpecModel.predict_phot``) interpolates
    the transmission onto the observed-frame source grid and integrates lambda T f_lambda with
    the trapezoid rule. For f_lambda = f_nu c / lambda_obs^2 the (1 + z) factors cancel, so the
    count rate is ``sum_j L_nu[j] T(lambda_j (1 + z)) w_j / lambda_j`` with w the trapezoid
    weights of the rest grid: the same number sedpy gets, without building observed spectra.

    Parameters
    ----------
    wave : ndarray, (L,)
        Rest-frame wavelengths of the spectra, AA.
    filters : sequence of sedpy.observate.Filter
        F filters.
    """

    def __init__(self, wave: np.ndarray, filters: Sequence[object]) -> None:
        self.wave = np.asarray(wave, dtype=float)
        self.filters = list(getattr(filters, "filters", filters))
        self._dw_over_w = trapezoid_weights(self.wave) / self.wave
        self._support = []
        for f in self.filters:
            # np.interp is already positive between the last zero and the first positive sample.
            positive = np.flatnonzero(f.transmission > 0)
            first = max(positive[0] - 1, 0)
            last = min(positive[-1] + 1, len(f.wavelength) - 1)
            self._support.append((f.wavelength[first], f.wavelength[last]))
        self._zero = np.array([f.ab_zero_counts for f in self.filters])

    def index_range(self, zred: np.ndarray) -> tuple[int, int]:
        """First and one-past-last rest-frame pixel any filter sees for these redshifts."""
        z1 = 1.0 + np.asarray(zred, dtype=float)
        lo = min(s[0] for s in self._support) / z1.max()
        hi = max(s[1] for s in self._support) / z1.min()
        start = max(np.searchsorted(self.wave, lo) - 1, 0)
        stop = min(np.searchsorted(self.wave, hi, side="right") + 1, len(self.wave))
        return int(start), int(stop)

    def counts(self, lnu: np.ndarray, zred: np.ndarray, start: int = 0) -> np.ndarray:
        """Band-averaged f_nu of each spectrum, in the units of ``lnu``.

        Parameters
        ----------
        lnu : ndarray, (B, L')
            Rest-frame spectra on ``wave[start:start + L']`` (any f_nu-like unit).
        zred : ndarray, (B,)
            Redshifts.
        start : int
            Index in ``wave`` of the first column of ``lnu``.

        Returns
        -------
        ndarray, (B, F)
            Maggies per unit of ``lnu`` in maggies: multiply by the flux normalisation
            (``SpecModel.flux_norm``) for spectra in Lsun/Hz per Msun formed.
        """
        lnu = np.atleast_2d(lnu)
        z1 = 1.0 + np.atleast_1d(np.asarray(zred, dtype=float))
        out = np.zeros((lnu.shape[0], len(self.filters)))
        rows = np.arange(lnu.shape[0])[:, None]
        for k, (f, (tmin, tmax)) in enumerate(zip(self.filters, self._support, strict=True)):
            lo = np.searchsorted(self.wave, tmin / z1) - 1
            hi = np.searchsorted(self.wave, tmax / z1, side="right")
            lo = np.clip(lo, start, start + lnu.shape[1] - 1)
            hi = np.clip(hi, start, start + lnu.shape[1] - 1)
            width = int((hi - lo).max()) + 1
            idx = lo[:, None] + np.arange(width)[None, :]
            inside = idx <= hi[:, None]
            idx = np.minimum(idx, start + lnu.shape[1] - 1)
            lam_obs = self.wave[idx] * z1[:, None]
            trans = np.interp(lam_obs, f.wavelength, f.transmission, left=0.0, right=0.0)
            weight = np.where(inside, trans * self._dw_over_w[idx], 0.0)
            out[:, k] = (lnu[rows, idx - start] * weight).sum(-1)
        return out * (LIGHTSPEED * MAGGIE_CGS) / self._zero

    def line_counts(
        self, line_lum: np.ndarray, line_wave: np.ndarray, zred: np.ndarray
    ) -> np.ndarray:
        """Band flux of emission lines, as Prospector's ``SpecModel.nebline_photometry``.

        Parameters
        ----------
        line_lum : ndarray, (B, E)
            Line luminosities (any unit).
        line_wave : ndarray, (E,)
            Rest-frame line wavelengths, AA.
        zred : ndarray, (B,)

        Returns
        -------
        ndarray, (B, F)
            ``sum_lines T(lambda_obs) lambda_obs L / ab_zero_counts`` per unit of ``line_lum``
            (times 3631 Jy, as Prospector's ``line_norm`` includes it).
        """
        lam_obs = np.asarray(line_wave)[None, :] * (1.0 + np.atleast_1d(zred))[:, None]
        out = np.empty((line_lum.shape[0], len(self.filters)))
        for k, f in enumerate(self.filters):
            trans = np.interp(lam_obs, f.wavelength, f.transmission, left=0.0, right=0.0)
            out[:, k] = (trans * lam_obs * line_lum).sum(-1) * MAGGIE_CGS / self._zero[k]
        return out
