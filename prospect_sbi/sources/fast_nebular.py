"""The fast path's nebular emission: Cloudy continuum on the rest pixels, lines off the grid.

:class:`FastNebular` holds the nebular continuum binned on the
:class:`~.fast_grid.LogGrid` rest pixels and the line luminosities per (Z, U, age) grid
point, and puts each emission line through the filters at its own observed wavelength (a
fine filter table in ln(lambda)). Used by :class:`~prospect_sbi.sources.fast.FastPhotometry`.
"""

from __future__ import annotations

__all__ = ["FastNebular"]

from collections.abc import Callable

import numpy as np

from ..constants import MAGGIE_CGS
from .emlines import kept_lines
from .fast_attenuation import FastAttenuation
from .fast_grid import LogGrid, runs, support
from .grids import SSPGrids, interp_index
from .params import Resolved
from .sfh import cumulative_mass, power_moments

_F32 = np.float32


#: :meth:`FastNebular.line_counts` takes the lines through the filters once per redshift,
#: not once per row, when a chunk has at least this many rows per distinct redshift (the
#: draws of a few objects in a refinement, a galaxy's pixels).
_ROWS_PER_REDSHIFT = 8


class FastNebular:
    """Nebular continuum and lines of a chunk of objects, and the lines' band counts.

    Parameters
    ----------
    grids : SSPGrids
        The source's grids.
    binned : callable
        Bins native spectra onto the rest pixels (:meth:`~.fast_grid.LogGrid.binner`).
    scale : float
        Divisor of every binned spectrum (:attr:`~.fast_stars.FastStars.scale`).
    grid : LogGrid
        The filters and their zero points.
    line_step : float
        ln(lambda) step of the filter tables used for emission lines.
    table_lines : callable
        Returns Prospector's line table and the map onto it from the grids' lines
        (:meth:`~prospect_sbi.sources.basis.BC03MilesBasis.table_lines`).

    Attributes
    ----------
    cont : ndarray, (Z, U, N, L) float32
        Nebular continuum per grid point and nebular age bin, on the rest pixels.
    line_lum : ndarray, (Z, U, N, E)
        Line luminosities per grid point and nebular age bin.
    """

    def __init__(
        self,
        grids: SSPGrids,
        binned: Callable[[np.ndarray], np.ndarray],
        scale: float,
        grid: LogGrid,
        line_step: float,
        table_lines: Callable[[], tuple],
    ) -> None:
        self.grids = grids
        self.cont = (binned(grids.neb_cont) / scale).astype(_F32)  # (Z, U, N, L)
        self.line_lum = grids.line_lum / scale  # (Z, U, N, E)
        self._table_lines = table_lines
        self._series: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._build_lines(grid, float(line_step))

    def _build_lines(self, grid: LogGrid, step: float) -> None:
        """Fine filter tables in ln(lambda_obs) for the lines, and the lines' positions."""
        g = self.grids
        self._step = step
        self._nbands = len(grid.filters)
        tabs, start, off, length = [], [], [], []
        for f, zero in zip(grid.filters, grid.zero, strict=True):
            lo, hi = support(f)
            u = np.arange(np.log(lo) - 2 * step, np.log(hi) + 3 * step, step)
            tab = np.interp(np.exp(u), f.wavelength, f.transmission, left=0.0, right=0.0)
            tab[:2] = tab[-2:] = 0.0  # clipped look-ups land on zeros
            off.append(sum(len(t) for t in tabs))
            start.append(u[0])
            length.append(len(u))
            tabs.append(tab * MAGGIE_CGS / zero)
        tab = np.concatenate(tabs)
        # value and slope side by side: one gather per look-up
        self._line_tab = np.stack([tab, np.append(np.diff(tab), 0.0)], axis=1).astype(_F32)
        self._line_start = np.array(start)
        self._line_off = np.array(off)
        self._line_len = np.array(length)
        # nebemlineinspec=True: each line is split between its two native neighbours.
        lw = g.line_wave
        j = np.searchsorted(g.wave, lw) - 1
        ok = (j >= 0) & (j < len(g.wave) - 1)
        e, j = np.flatnonzero(ok), j[ok]
        t = (lw[ok] - g.wave[j]) / (g.wave[j + 1] - g.wave[j])
        self._points_spec = _sorted_points(
            np.concatenate([g.wave[j], g.wave[j + 1]]),
            np.concatenate([e, e]),
            np.concatenate([(1 - t) * g.wave[j], t * g.wave[j + 1]]),
        )
        self._points_table: dict[tuple[str, ...], tuple] = {}
        self._table_key: np.ndarray | None = None

    # ------------------------------------------------------------------ continuum and lines
    def weights(self, res: Resolved) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nebular age weights (C, N), the (Z, U) cell's grid points (C, 4), their weights."""
        g, v = self.grids, res.values
        edges = np.minimum(g.neb_age_edges[None, :], 10.0 ** v["dust_tesc"][:, None])
        mass = np.diff(cumulative_mass(edges, res.switches["sfh"], v, closed_form=True), axis=-1)
        zi, zf = interp_index(g.logzsol, v["gas_logz"])
        ui, uf = interp_index(g.logu, v["gas_logu"])
        nu = len(g.logu)
        cols = np.stack(
            [zi * nu + ui, zi * nu + ui + 1, (zi + 1) * nu + ui, (zi + 1) * nu + ui + 1], axis=1
        )
        corner = np.stack([(1 - zf) * (1 - uf), (1 - zf) * uf, zf * (1 - uf), zf * uf], axis=1)
        return mass, cols, corner

    def add(
        self,
        res: Resolved,
        slow: np.ndarray,
        mass: np.ndarray,
        cols: np.ndarray,
        corner: np.ndarray,
        light: np.ndarray,
        lines: np.ndarray,
        i0: int,
        i1: int,
        tables: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        """Add the nebular continuum and lines of rows ``slow`` by products over age weights.

        Rows come grouped by cell; grid points (Z, U) and (Z, U + 1) are adjacent in memory,
        so a cell takes two products over 2 N ages (one where the gas metallicity is on a
        grid point, as Prospector's default ``gas_logz`` = 0). ``light`` (C, L) on rest pixels
        [i0, i1) and ``lines`` (C, E) are added to in place. ``tables``, the line
        luminosities (Z, U, N', E) and continuum (Z, U, N', L) of other age weights (default
        :attr:`line_lum` and :attr:`cont`, per age bin), go with ``mass`` (C, N').
        """
        line_lum, cont = (self.line_lum, self.cont) if tables is None else tables
        nu, nage = cont.shape[1], cont.shape[2]
        for s, e in runs(cols[:, 0]):
            pick = slice(s, e) if slow[s:e].all() else s + np.flatnonzero(slow[s:e])
            if not isinstance(pick, slice) and not len(pick):
                continue
            zk, uk = divmod(int(cols[s, 0]), nu)
            for dz in (0, 1):
                if not corner[pick, 2 * dz : 2 * dz + 2].any():
                    continue
                w = corner[pick, 2 * dz : 2 * dz + 2, None] * mass[pick, None, :]
                w = w.reshape(len(w), 2 * nage)
                lines[pick] += w @ line_lum[zk + dz, uk : uk + 2].reshape(2 * nage, -1)
                if res.switches["add_neb_continuum"]:
                    basis = cont[zk + dz, uk : uk + 2].reshape(2 * nage, -1)
                    light[pick] += w.astype(_F32) @ basis[:, i0:i1]

    def series_tables(self, tesc: float, terms: int) -> tuple[np.ndarray, np.ndarray]:
        """Lines (Z, U, K, E) and continuum (Z, U, K, L) per power of age below ``tesc`` yr.

        For :meth:`add` with the coefficients of :func:`~.sfh.young_series` as ``mass``:
        each age bin's luminosities weighted by its :func:`~.sfh.power_moments`. Kept.
        """
        key = (float(tesc), int(terms))
        if key not in self._series:
            moments = power_moments(self.grids.neb_age_edges, tesc, terms)  # (K, N)
            lum = np.einsum("kn,zune->zuke", moments, self.line_lum)
            cont = np.einsum("kn,zunl->zukl", moments.astype(_F32), self.cont)
            lum, cont = np.ascontiguousarray(lum), np.ascontiguousarray(cont)  # views in add
            self._series = {key: (lum, cont)}  # one escape age at a time
        return self._series[key]

    def spectra(self, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lines (Z U, E) and continuum (Z U, L) of each grid point for nebular age weights."""
        lum = np.einsum("n,zune->zue", shape, self.line_lum)
        cont = np.einsum("n,zunl->zul", shape.astype(_F32), self.cont)
        return lum.reshape(-1, lum.shape[-1]), cont.reshape(-1, cont.shape[-1])

    # ------------------------------------------------------------------ lines through filters
    def line_counts(self, res: Resolved, lines: np.ndarray, dust: FastAttenuation) -> np.ndarray:
        """Band counts (C, F) of the emission lines (C, E), each at its own observed wavelength.

        ``dust`` attenuates them (and applies the IGM to those in the spectrum).
        """
        sw = res.switches
        pos, line, weight = self._line_points(sw["nebemlineinspec"], sw["elines_to_ignore"])
        ln1z = np.log1p(res.values["zred"])
        zs, at = np.unique(ln1z, return_inverse=True)
        if len(zs) * _ROWS_PER_REDSHIFT <= res.n:
            points = pos, line, weight
            return self._line_counts_by_redshift(res, lines, dust, points, zs, at.ravel())
        step = self._step
        # The points that fall in each band for some object of the chunk, band after band.
        band, point, count = self._in_bands(pos, ln1z.min(), ln1z.max())
        out = np.zeros((res.n, self._nbands))
        if not count.any():
            return out
        used, col = np.unique(line[point], return_inverse=True)
        amp = dust.lines(res, lines, used)[:, col] * weight[point].astype(_F32)
        # Table coordinate of each (point, object), from the chunk's lowest redshift so that
        # float32 keeps it to ~1e-2 of a step; point-major order walks the table in order.
        base = ((pos[point] + ln1z.min() - self._line_start[band]) / step).astype(_F32)
        x = base[:, None] + ((ln1z - ln1z.min()) / step).astype(_F32)[None, :]
        np.clip(x, 0, (self._line_len[band] - 2).astype(_F32)[:, None], out=x)
        j = x.astype(np.int32)
        x -= j
        j += self._line_off[band].astype(np.int32)[:, None]
        pair = np.take(self._line_tab, j, axis=0)
        trans = pair[..., 1] * x
        trans += pair[..., 0]
        trans *= amp.T
        bands = np.flatnonzero(count)
        out[:, bands] = np.add.reduceat(trans, np.cumsum(count)[bands] - count[bands], axis=0).T
        return out

    def _line_counts_by_redshift(
        self,
        res: Resolved,
        lines: np.ndarray,
        dust: FastAttenuation,
        points: tuple[np.ndarray, np.ndarray, np.ndarray],
        zs: np.ndarray,
        at: np.ndarray,
    ) -> np.ndarray:
        """Return :meth:`line_counts` for rows at a few redshifts, one product per redshift.

        Per redshift, one line-to-band matrix (E', F) of the line points' filter
        transmissions, times the attenuated lines (C_z, E') of its rows. ``points`` are
        :meth:`_line_points`'; ``zs`` (U,) the distinct ln(1 + z) and ``at`` (C,) each row's
        index into them.
        """
        pos, line, weight = points
        step, nb = self._step, self._nbands
        per_z = []
        for ln1z in zs:
            band, point, _ = self._in_bands(pos, ln1z, ln1z)
            x = (pos[point] + ln1z - self._line_start[band]) / step
            np.clip(x, 0, self._line_len[band] - 2, out=x)
            j = x.astype(np.int64)
            pair = self._line_tab[j + self._line_off[band]]
            per_z.append((line[point], band, weight[point] * (pair[:, 0] + pair[:, 1] * (x - j))))
        used, col = np.unique(np.concatenate([p[0] for p in per_z]), return_inverse=True)
        amp = dust.lines(res, lines, used)  # (C, E') behind dust
        out = np.zeros((res.n, nb))
        start = 0
        for u, (pts, band, trans) in enumerate(per_z):
            to_band = np.zeros((len(used), nb), dtype=_F32)
            np.add.at(to_band, (col[start : start + len(pts)], band), trans)
            start += len(pts)
            rows = np.flatnonzero(at == u)
            out[rows] = amp[rows] @ to_band
        return out

    def _in_bands(
        self, pos: np.ndarray, lo: float, hi: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Line points in each band's table for some ln(1 + z) in [lo, hi], band after band.

        Returns each point's band (M,), its index into ``pos`` (M,) and the count per band (F,).
        """
        first = np.searchsorted(pos, self._line_start - hi)
        last = np.searchsorted(pos, self._line_start + self._line_len * self._step - lo)
        count = np.maximum(last - first, 0)
        point = np.concatenate([np.arange(a, a + c) for a, c in zip(first, count, strict=True)])
        return np.repeat(np.arange(self._nbands), count), point, count

    def _line_points(
        self, in_spectrum: bool, ignore: tuple[str, ...] = ()
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sorted ln(lambda) (P,), source line (P,) and weight in AA (P,) of the line points.

        In the spectrum, a line is split between its two native pixels; otherwise it sits at
        the wavelength of the table line it maps to (``SpecModel``'s line photometry), less
        the table lines named in ``ignore`` (Prospector's ``elines_to_ignore``).
        """
        if in_spectrum:
            return self._points_spec
        table, mapping = self._table_lines()
        if self._table_key is None or not np.array_equal(table, self._table_key):
            self._points_table = {}
            self._table_key = table
        if ignore not in self._points_table:
            e, t = np.nonzero(mapping * kept_lines(table, ignore))
            self._points_table[ignore] = _sorted_points(table["wave"][t], e, table["wave"][t])
        return self._points_table[ignore]


def _sorted_points(wave: np.ndarray, line: np.ndarray, weight: np.ndarray) -> tuple:
    """Line points (ln lambda, source line, weight in AA), sorted by wavelength."""
    order = np.argsort(wave)
    return np.log(wave[order]), line[order], weight[order]
