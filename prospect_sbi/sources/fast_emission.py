"""Dust emission on the fast path's rest pixels: the exact path's energy balance, batched.

The absorbed luminosity uses the bins of :class:`~.dust_emission.DustEmission` (the same bins
and formula as :class:`~prospect_sbi.sources.basis.BC03MilesBasis`); only the products that
weight the SSPs are done here, per chunk, in float32 like the rest of the fast path.
"""

from __future__ import annotations

__all__ = ["FastDustEmission"]

from collections.abc import Callable

import numpy as np

from .dust_emission import DustEmission
from .fast_grid import runs
from .fast_stars import mix, z_pairs
from .grids import SSPGrids
from .params import Resolved

_F32 = np.float32


class FastDustEmission:
    """DL07 emission of a chunk of objects on the rest pixels, in the fast path's units.

    Parameters
    ----------
    grids : SSPGrids
        The source's grids.
    binned : callable
        Bins native spectra onto the rest pixels (:meth:`~.fast_grid.LogGrid.binner`).
    scale : float
        Divisor of every binned spectrum (:attr:`~.fast_stars.FastStars.scale`).

    Attributes
    ----------
    emission : DustEmission
        Bins, energy balance and the DL07 nodes.
    nodes : ndarray, (2 Q U, L) float32
        DL07 nodes (per unit luminosity) on the rest pixels.
    """

    def __init__(
        self, grids: SSPGrids, binned: Callable[[np.ndarray], np.ndarray], scale: float
    ) -> None:
        self.emission = de = DustEmission(grids)
        self._pairs = z_pairs(de.ssp / scale)
        self._pairs_nolyc = z_pairs((de.ssp - de.lyc) / scale)
        nz, nu, nage, nbin = de.neb_cont.shape
        self._neb = (de.neb_cont / scale).reshape(nz * nu, nage, nbin)
        self.nodes = binned(de.nodes.reshape(-1, de.nodes.shape[-1])).astype(_F32)
        lit = np.flatnonzero(np.abs(self.nodes).max(0) > 0)
        self._first_lit = int(lit[0]) if len(lit) else self.nodes.shape[1]

    def reaches(self, i1: int) -> bool:
        """Whether any node is non-zero on the rest pixels below ``i1``.

        DL07 starts at ~1 micron rest: at z >~ 4.2 no NIRCam band (F444W ends at ~5 micron)
        sees it, and adding it (and the energy balance that sets its luminosity) would add
        exact zeros.
        """
        return self._first_lit < i1

    def absorbed(
        self,
        res: Resolved,
        young: np.ndarray,
        old: np.ndarray,
        zi: np.ndarray,
        zf: np.ndarray,
        nebular: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
        lines: np.ndarray | None,
    ) -> np.ndarray:
        """Absorbed luminosity (C,) in the fast path's units.

        Parameters
        ----------
        res : Resolved
            The chunk, grouped by ``zi``.
        young, old : ndarray, (C, A)
            Young and old SSP mass weights (:meth:`~.fast_stars.FastStars.weights`).
        zi, zf : ndarray, (C,)
            Each object's ``logzsol`` on the grid.
        nebular : (mass (C, N), cols (C, 4), corner (C, 4)), optional
            Nebular weights (:meth:`~.fast_nebular.FastNebular.weights`); None without nebular
            emission.
        lines : ndarray, (C, E), optional
            Line luminosities before dust, fast path's units.
        """
        nbin = self._pairs.shape[-1]
        pairs = self._pairs if nebular is None else self._pairs_nolyc
        light_young = mix(young, zi, zf, pairs, 0, nbin).astype(float)
        light_old = mix(old, zi, zf, self._pairs, 0, nbin).astype(float)
        if nebular is not None:
            if res.switches["add_neb_continuum"]:
                mass, cols, corner = nebular
                nage = mass.shape[1]
                for s, e in runs(cols[:, 0]):  # rows come grouped by (Z, U) cell
                    w = (corner[s:e, :, None] * mass[s:e, None, :]).reshape(e - s, 4 * nage)
                    light_young[s:e] += w @ self._neb[cols[s]].reshape(4 * nage, nbin)
        else:
            lines = None
        return self.emission.absorbed(res, light_young, light_old, lines)

    def add(
        self, res: Resolved, luminosity: np.ndarray, light: np.ndarray, i0: int, i1: int
    ) -> None:
        """Add the emission of ``luminosity`` (C,) to ``light`` (C, L) on rest pixels [i0, i1)."""
        idx, w = self.emission.weights(res)
        if (idx == idx[0]).all() and np.allclose(w, w[0], rtol=1e-12, atol=0.0):
            shape = (w[0].astype(_F32) @ self.nodes[idx[0], i0:i1])[None, :]
            light += luminosity.astype(_F32)[:, None] * shape
            return
        for k in range(idx.shape[1]):
            light += (luminosity * w[:, k]).astype(_F32)[:, None] * self.nodes[idx[:, k], i0:i1]
