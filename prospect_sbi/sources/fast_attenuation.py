"""The fast path's attenuation: dust on the rest pixels and at the lines, IGM tables in z.

:class:`FastAttenuation` evaluates the laws of :mod:`~prospect_sbi.sources.dust` (power law,
Calzetti, Kriek & Conroy with its 2175 AA bump) and :mod:`~prospect_sbi.sources.igm` on the
:class:`~.fast_grid.LogGrid` rest pixels, in float32, with the corrections that make a pixel
stand for the hat-weighted mean of what multiplies it. Used by
:class:`~prospect_sbi.sources.fast.FastPhotometry`.
"""

from __future__ import annotations

__all__ = ["FastAttenuation", "attenuate", "curvature_correction"]

import numpy as np

from ..constants import LYMAN_ALPHA, V_BAND
from .dust import bump, bump_strength, calzetti, power_law_log_grid
from .fast_grid import LogGrid
from .igm import igm_edges, igm_transmission
from .params import Resolved

_F32 = np.float32


class FastAttenuation:
    """Dust and IGM transmission of a chunk, on the rest pixels and at the emission lines.

    Parameters
    ----------
    grid : LogGrid
        The rest pixels.
    line_wave : ndarray, (E,)
        Rest wavelengths of the grids' emission lines, AA.
    igm : {"madau1995", "inoue2014"}
        IGM model.
    zmax : float
        Largest redshift of the IGM tables.
    dz : float
        Redshift step of the IGM tables.
    """

    def __init__(
        self, grid: LogGrid, line_wave: np.ndarray, igm: str, zmax: float, dz: float
    ) -> None:
        self.grid = grid
        self.igm_model = igm
        self.zmax = float(zmax)
        self.dz = float(dz)
        self._calzetti = calzetti(grid.rest_wave).astype(_F32)
        self._bump = bump(grid.rest_wave).astype(_F32)
        self._ln5500 = grid.u_rest - np.log(V_BAND)
        self._line_wave = lw = line_wave
        self._lyman_lines = np.flatnonzero(lw <= LYMAN_ALPHA)
        self._line_curve = np.stack([calzetti(lw), bump(lw), np.log(lw / V_BAND)]).astype(_F32)
        self._igm_tables: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ dust
    def continuum(
        self, depth: np.ndarray, index: np.ndarray, dust_type: int | None, i0: int, i1: int
    ) -> np.ndarray | None:
        """exp(-tau) on rest pixels [i0, i1), (C, L) float32; None without dust.

        ``dust_type=None`` is the birth cloud, ``depth * (lambda / 5500) ** index``; otherwise
        :func:`~prospect_sbi.sources.dust.diffuse_tau` with ``dust2 = depth`` (C,) and
        ``dust_index = index`` (C,).

        Raises
        ------
        ValueError
            For a ``dust_type`` other than 0, 2 and 4.
        """
        if not np.any(depth):
            return None
        if dust_type == 2:
            minus_tau = np.multiply.outer(-depth.astype(_F32), self._calzetti[i0:i1])
        elif dust_type in (None, 0, 4):
            minus_tau = power_law_log_grid(
                index, -depth, self._ln5500[i0], self.grid.step, i1 - i0
            )
            if dust_type == 4:
                curve = np.multiply.outer(bump_strength(index).astype(_F32), self._bump[i0:i1])
                curve += self._calzetti[i0:i1]
                minus_tau *= curve
                curvature_correction(minus_tau)
        else:
            raise ValueError(f"dust_type={dust_type} is not supported by FastPhotometry")
        return np.exp(minus_tau, out=minus_tau)

    def lines(self, res: Resolved, lines: np.ndarray, used: np.ndarray) -> np.ndarray:
        """Luminosities (C, E') of lines ``used`` (E',) of ``lines`` (C, E) behind dust, f32.

        Both dust components; the IGM too for lines in the spectrum (``nebemlineinspec``).
        """
        v, sw = res.values, res.switches
        calz, bmp, ln = self._line_curve[:, used]
        index = v["dust_index"].astype(_F32)[:, None]
        if sw["dust_type"] == 2:
            tau = v["dust2"].astype(_F32)[:, None] * calz
        else:
            tau = v["dust2"].astype(_F32)[:, None] * np.exp(index * ln)
            if sw["dust_type"] == 4:
                tau *= calz + bump_strength(index) * bmp
        tau += v["dust1"].astype(_F32)[:, None] * np.exp(v["dust1_index"][:, None] * ln)
        out = lines[:, used].astype(_F32)
        out *= np.exp(-tau)
        if sw["nebemlineinspec"] and sw["add_igm_absorption"]:
            ly = np.flatnonzero(np.isin(used, self._lyman_lines))
            if len(ly):
                trans = self.igm("lines", v["zred"], v["igm_factor"], slice(None))
                out[:, ly] *= trans[:, np.searchsorted(self._lyman_lines, used[ly])]
        return out

    # ------------------------------------------------------------------ IGM
    def igm(self, kind: str, zred: np.ndarray, factor: np.ndarray, cols: slice) -> np.ndarray:
        """Transmission (C, n) of columns ``cols`` of an IGM table, linear in z.

        At ``zred`` (C,), with optical depths scaled by ``factor`` (C,); ``kind`` as for
        :meth:`igm_table`.
        """
        table = self.igm_table(kind)[:, cols]
        pos = zred / self.dz
        i = np.minimum(pos.astype(int), len(table) - 2)
        f = (pos - i).astype(_F32)[:, None]
        lo, hi = table[i], table[i + 1]
        lo += f * (hi - lo)
        if np.all(factor == 1.0):
            return lo
        return np.clip(lo, 1e-30, None) ** factor[:, None].astype(_F32)

    def igm_table(self, kind: str) -> np.ndarray:
        """IGM transmission (Nz, n) of the blue rest pixels ("cont") or Lyman lines ("lines").

        Pixels are only evaluated at redshifts where some filter can see them (elsewhere 1).
        """
        if kind not in self._igm_tables:
            grid = self.grid
            z = np.arange(0.0, self.zmax + 2 * self.dz, self.dz)
            if kind == "lines":  # lines see the IGM just blueward of their centre
                wave = np.nextafter(self._line_wave[self._lyman_lines], 0.0)
                table = igm_transmission(wave, z, self.igm_model)
            else:
                wave, weight = self._igm_samples()
                table = np.ones((len(z), grid.n_blue))
                seen = np.exp(grid.u_obs) / grid.rest_wave[: grid.n_blue] - 1  # lowest z
                for zz in np.array_split(np.arange(len(z)), len(z) // 64 + 1):
                    cols = np.flatnonzero(seen < z[zz[-1]])
                    if len(cols):
                        sub = weight[:, cols]
                        rows = np.unique(sub.nonzero()[0])
                        trans = igm_transmission(wave[rows], z[zz], self.igm_model)
                        table[zz[0] : zz[-1] + 1, cols] = (sub[rows].T @ trans.T).T
            self._igm_tables[kind] = table.astype(_F32)
        return self._igm_tables[kind]

    def _igm_samples(self) -> tuple[np.ndarray, object]:
        """Wavelengths (S,) to evaluate the IGM at, and sparse weights (S, n_blue) to average.

        A pixel is its centre, unless its hat holds an edge of the IGM (Lyman-alpha, a
        Lyman-series line, the Lyman limit): then the hat-weighted mean, what a smooth
        continuum sees, from Gauss-Legendre nodes on each piece between the edges.
        """
        from scipy.sparse import csc_matrix

        h, n = self.grid.step, self.grid.n_blue
        u = np.log(self.grid.rest_wave[:n])
        edges = np.log(np.append(igm_edges(self.igm_model), LYMAN_ALPHA))
        nodes, gauss = np.polynomial.legendre.leggauss(4)
        samples, cols, vals = [u], [np.arange(n)], [np.ones(n)]
        for i in np.flatnonzero(np.any(np.abs(u[:, None] - edges[None, :]) < h, axis=1)):
            vals[0][i] = 0.0
            cuts = np.unique(np.clip(np.concatenate([[-h, 0.0, h], edges - u[i]]), -h, h))
            for a, b in zip(cuts[:-1], cuts[1:], strict=True):
                x = 0.5 * (a + b) + 0.5 * (b - a) * nodes
                samples.append(u[i] + x)
                cols.append(np.full(len(x), i))
                vals.append(0.5 * (b - a) * gauss * (1 - np.abs(x) / h) / h)
        samples = np.concatenate(samples)
        weight = (np.concatenate(vals), (np.arange(len(samples)), np.concatenate(cols)))
        return np.exp(samples), csc_matrix(weight, shape=(len(samples), n))


def curvature_correction(minus_tau: np.ndarray) -> None:
    """Turn pixel-centre -tau (C, L) into that of the hat-weighted mean of exp(-tau), in place.

    With least-squares filters a pixel stands for the hat-weighted mean of what multiplies
    it, which for D = exp(-tau) exceeds the centre value by h^2 D'' / 12 =
    h^2 (tau'^2 - tau'') D / 12: ~1e-3 on the 2175 AA bump at dust2 ~ 2. Central differences
    give h tau' and h^2 tau''.
    """
    first = minus_tau[:, 2:] - minus_tau[:, :-2]
    second = minus_tau[:, 2:] + minus_tau[:, :-2]
    second -= 2 * minus_tau[:, 1:-1]
    first *= first
    first *= 0.25 / 12
    first += second * (1 / 12)
    minus_tau[:, 1:-1] += first


def attenuate(light: np.ndarray, factor: np.ndarray | None) -> None:
    """Multiply ``light`` (C, L) by ``factor`` (C, L) in place; None is no attenuation."""
    if factor is not None:
        light *= factor
