"""The fast path's grid: uniform in ln(lambda), least-squares filters, a redshift as a shift.

:class:`LogGrid` holds the observed pixels covering every filter and the rest pixels they
map from at any redshift up to ``zmax``; it bins native spectra onto the rest pixels (hat
functions) and projects rest spectra through the filters at per-object redshifts. Used by
:class:`~prospect_sbi.sources.fast.FastPhotometry`.
"""

from __future__ import annotations

__all__ = ["LogGrid", "kernel_matrix", "runs", "support"]

from collections.abc import Callable, Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..constants import LIGHTSPEED, LYMAN_ALPHA, MAGGIE_CGS
from .grids import by_rows
from .photometry import trapezoid_weights

_F32 = np.float32


class LogGrid:
    """Pixels uniform in ln(lambda) with step 1/R, observed and rest frame, and the filters.

    Observed pixel m at sub-pixel phase p sits at ``u_obs + (m + p) step``; a redshift z is a
    shift by ``ln(1 + z) / step`` pixels: an integer shift (a window of the rest pixels) and a
    fractional one (filters tabulated at ``phases`` offsets and blended).

    Parameters
    ----------
    filters : sequence of sedpy.observate.Filter
        F filters.
    resolution : float
        R, pixels per unit ln(lambda).
    zmax : float
        Largest redshift supported.
    phases : int
        Sub-pixel offsets at which the filters are tabulated.

    Attributes
    ----------
    step : float
        1 / R.
    u_obs : float
        ln(lambda / AA) of observed pixel 0.
    n_obs : int
        Observed pixels.
    offset : int
        Rest pixels blueward of observed pixel 0 (the largest shift, plus 2).
    u_rest, rest_wave : ndarray, (n_obs + offset,)
        ln(lambda) and lambda (AA) of the rest pixels.
    n_blue : int
        Rest pixels whose hats reach blueward of Lyman-alpha.
    zero : ndarray, (F,)
        AB zero-point counts of the filters.
    bands : ndarray, (phases, n_obs, 2 F) float32
        Filters at each phase and the next, side by side, in maggies per unit
        ``L_nu w / lambda`` sum.
    """

    def __init__(self, filters: Sequence, resolution: float, zmax: float, phases: int) -> None:
        self.filters = list(filters)
        self.phases = int(phases)
        self.zero = np.array([f.ab_zero_counts for f in self.filters])
        h = self.step = 1.0 / resolution
        lo = min(support(f)[0] for f in self.filters)
        hi = max(support(f)[1] for f in self.filters)
        self.u_obs = np.log(lo) - h  # observed pixel m at phase p sits at u_obs + (m + p) h
        self.n_obs = int(np.ceil((np.log(hi) - self.u_obs) / h)) + 2
        self.offset = int(np.ceil(np.log1p(zmax) / h)) + 2
        self.u_rest = self.u_obs + h * (np.arange(self.n_obs + self.offset) - self.offset)
        self.rest_wave = np.exp(self.u_rest)
        self.n_blue = int(np.searchsorted(self.u_rest - h, np.log(LYMAN_ALPHA)))  # reach Lya
        self.bands = self._fit_bands()

    def binner(self, native: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """Return a function binning spectra (..., L_native) on ``native`` (AA) onto rest pixels.

        The binned spectrum dotted with a piecewise-linear function on the rest pixels is
        the exact trapezoid sum ``sum_j L[j] f(lambda_j) w_j / lambda_j``.
        """
        kern = kernel_matrix(native, np.log(self.rest_wave), self.step)
        used = np.flatnonzero(np.diff(kern.indptr) > 0)
        sel = slice(used[0], used[-1] + 1)
        kern = kern[sel].T.tocsr()

        def binned(spectra: np.ndarray) -> np.ndarray:
            return by_rows(spectra, kern.shape[0], lambda rows: (kern @ rows[:, sel].T).T)

        return binned

    def _fit_bands(self) -> np.ndarray:
        """Fit the filters on the observed grid at ``phases + 1`` offsets, paired by phase.

        Each filter is the least-squares fit (in ln(lambda)) by the hats that overlap it, so
        it has the filter's own integral against any piecewise-linear spectrum and is zero
        outside the filter (no red light leaks into dropout bands).
        """
        from scipy.linalg import solve_banded

        h, s = self.step, self.phases
        n, nf = self.n_obs, len(self.filters)
        q = 64  # quadrature points per pixel
        t = (np.arange(-q, q) + 0.5) / q
        hat = (1 - np.abs(t)) * h / q
        tabs = np.zeros((s + 1, n, nf))
        for p in range(s + 1):
            lam = np.exp(self.u_obs + (np.arange(n)[:, None] + p / s + t[None, :]) * h)
            for b, f in enumerate(self.filters):
                rhs = np.interp(lam, f.wavelength, f.transmission, left=0.0, right=0.0) @ hat
                on = np.flatnonzero(rhs)
                m0, m1 = on[0], on[-1] + 1
                gram = np.zeros((3, m1 - m0))
                gram[0, 1:] = gram[2, :-1] = h / 6
                gram[1] = 2 * h / 3
                tabs[p, m0:m1, b] = solve_banded((1, 1), gram, rhs[m0:m1])
        tabs *= LIGHTSPEED * MAGGIE_CGS / self.zero
        return np.concatenate([tabs[:-1], tabs[1:]], axis=-1).astype(_F32)

    def project(self, light: np.ndarray, phase: np.ndarray, first: np.ndarray) -> np.ndarray:
        """Band counts (C, F) of rest spectra (C, L) shifted by ``first + phase`` pixels.

        Observed pixel m of object c is column ``m - first[c]`` of ``light`` (a window of
        its row), seen through the filters at sub-pixel ``phase`` (C,) in [0, 1).
        """
        nf, s = len(self.filters), self.phases
        phase = phase * s
        group = np.minimum(phase.astype(int), s - 1)
        blend = (phase - group)[:, None]
        order = np.argsort(group, kind="stable")
        window = sliding_window_view(light, self.n_obs, axis=1)[order, -first[order]]
        out = np.empty((len(light), nf))
        for s, e in runs(group[order]):
            pair = window[s:e] @ self.bands[group[order[s]]]
            rows = order[s:e]
            out[rows] = pair[:, :nf] + blend[rows] * (pair[:, nf:] - pair[:, :nf])
        return out


def support(f: object) -> tuple[float, float]:
    """Wavelengths (AA) beyond which ``np.interp(..., left=0, right=0)`` of filter f is 0."""
    positive = np.flatnonzero(f.transmission > 0)
    first = max(positive[0] - 1, 0)
    last = min(positive[-1] + 1, len(f.wavelength) - 1)
    return float(f.wavelength[first]), float(f.wavelength[last])


def kernel_matrix(native: np.ndarray, u_grid: np.ndarray, step: float) -> object:
    """Sparse (native, coarse) map: ``w_j / lambda_j`` times hat i at ln(lambda_j).

    A native spectrum times this matrix, dotted with the node values of a piecewise-linear
    function on the coarse grid, is the exact trapezoid sum with that function.

    Parameters
    ----------
    native : ndarray, (L,)
        Native wavelengths, AA.
    u_grid : ndarray, (N,)
        ln(lambda) of the coarse grid, uniform with step ``step``.
    step : float
        Coarse step in ln(lambda).

    Returns
    -------
    scipy.sparse.csr_matrix, (L, N)
    """
    from scipy.sparse import csr_matrix

    omega = trapezoid_weights(native) / native
    x = (np.log(native) - u_grid[0]) / step
    j = np.flatnonzero((x > -1) & (x < len(u_grid)))
    i = np.floor(x[j]).astype(int)
    t = x[j] - i
    rows, cols = np.concatenate([j, j]), np.concatenate([i, i + 1])
    vals = np.concatenate([(1 - t) * omega[j], t * omega[j]])
    keep = (cols >= 0) & (cols < len(u_grid))
    return csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(len(native), len(u_grid)))


def runs(key: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of equal values in ``key`` (K,)."""
    cuts = np.flatnonzero(np.diff(key)) + 1
    bounds = np.concatenate([[0], cuts, [len(key)]])
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True))
