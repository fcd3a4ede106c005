"""The fast path's stars: exact SSP age weights of a chunk, and SSP spectra mixed in Z.

:class:`FastStars` holds the SSP spectra binned on the :class:`~.fast_grid.LogGrid` rest
pixels (float32, scaled to <= 1), with metallicity pairs interleaved so that a range of ages
is a range of rows of one matrix product. Used by
:class:`~prospect_sbi.sources.fast.FastPhotometry`.
"""

from __future__ import annotations

__all__ = [
    "SAME_SHAPE",
    "SERIES_TERMS",
    "SERIES_TOL",
    "STEP_BASIS_ROWS",
    "FastStars",
    "common_shape",
    "mix",
    "z_pairs",
    "z_spectra",
]

from collections.abc import Callable

import numpy as np

from ..constants import LYMAN_LIMIT
from .fast_grid import runs
from .grids import SSPGrids
from .params import Resolved
from .sfh import cumulative_mass, power_moments, step_bin_masses

_F32 = np.float32

#: Rows whose age weights match a reference shape to this (relative) are rank one.
SAME_SHAPE = 1e-10
#: Rows of one call sharing step-SFH bins from which :meth:`FastStars.old_light` builds the
#: bins' spectra (~2 ms, kept for later calls): from ~100 rows the products they save cost more.
STEP_BASIS_ROWS = 128
#: Powers of age in the young stars' series (:func:`~.sfh.young_series`), and the largest
#: fraction of the rate's leading term it may leave out of a row that uses it.
SERIES_TERMS, SERIES_TOL = 8, 1e-9
#: Spectra of :meth:`FastStars.basis_spectra` kept (~0.5 MB each): a refinement chunk's
#: objects' step-SFH bins, the young stars' series.
_BASIS_CACHE = 64
#: Fewest rows sharing bins that look for their spectra among those kept.
_CACHED_ROWS = 8


class FastStars:
    """SSP spectra on the rest pixels and the age weights of a chunk of objects.

    Parameters
    ----------
    grids : SSPGrids
        The source's grids.
    binned : callable
        Bins native spectra (..., L_native) onto the rest pixels
        (:meth:`~.fast_grid.LogGrid.binner`).

    Attributes
    ----------
    scale : float
        Largest binned SSP value; every binned spectrum here is divided by it.
    pairs, pairs_nolyc : ndarray, (Z - 1, 2 A, L) float32
        SSPs with ages interleaved between Z_k and Z_k+1, with and without their ionising
        photons (which go into the nebula when there is one).
    edges : ndarray, (A + 1,)
        SSP age-bin edges, yr, the last one finite and older than any SFH.
    """

    def __init__(self, grids: SSPGrids, binned: Callable[[np.ndarray], np.ndarray]) -> None:
        self.grids = grids
        self.edges = grids.age_edges.copy()
        self.edges[-1] = max(1e13, 10 * self.edges[-2])  # finite, older than any SFH
        ssp = binned(grids.ssp)
        self.scale = float(np.abs(ssp).max())
        ssp /= self.scale
        lyc = binned(grids.ssp * (grids.wave < LYMAN_LIMIT)) / self.scale
        # Z pairs with ages interleaved (row 2a: SSP a at Z_k, 2a + 1: at Z_k+1), so that a
        # range of ages is a range of rows of one matrix product.
        self.pairs = z_pairs(ssp)
        self.pairs_nolyc = z_pairs(ssp - lyc)  # ionising photons go into the nebula
        self._basis: dict[bytes, np.ndarray] = {}  # basis_spectra's

    def weights(
        self, res: Resolved, zi: np.ndarray, zf: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Young and old mass fractions per SSP age bin (C, A) and mfrac (C,), float64.

        Young stars are those younger than ``10**dust_tesc`` yr (the bin holding it is split
        exactly), as :func:`~prospect_sbi.sources.sfh.split_young_old`; ``zi``, ``zf`` (C,)
        place each object's ``logzsol`` on the grid.
        """
        v = res.values
        tesc = 10.0 ** v["dust_tesc"]
        cut = np.searchsorted(self.edges, tesc, side="right") - 1  # bin holding tesc
        if res.switches["sfh"] == 3:
            lo, hi, sfr = _step_rates(v)
            total, partial = _step_total(self.edges, lo, hi, sfr, tesc, cut)
        else:
            # every star is younger than tage: from the first edge past it, the cumulative
            # fraction is exactly 1 (no incomplete gamma function to evaluate there)
            k = min(int(np.searchsorted(self.edges, 1e9 * np.max(v["tage"]))) + 1, len(self.edges))
            edges = np.broadcast_to(self.edges[:k], (res.n, k))
            cum = np.ones((res.n, len(self.edges) + 1))
            part = cumulative_mass(
                np.concatenate([edges, tesc[:, None]], axis=1),
                res.switches["sfh"],
                v,
                closed_form=True,
            )
            cum[:, :k], cum[:, -1] = part[:, :-1], part[:, -1]
            total = np.diff(cum[:, :-1], axis=-1)
            partial = cum[:, -1] - cum[np.arange(res.n), cut]
        young, old = _split(self.edges, total, partial, cut, tesc)
        # (C, Z), then linear in log Z as the exact path; einsum, not BLAS, so that a row's sum
        # does not depend on how many rows share the chunk
        live = np.einsum("ca,za->cz", total, self.grids.live_frac)
        rows = np.arange(res.n)
        return young, old, (1 - zf) * live[rows, zi] + zf * live[rows, zi + 1]

    def old_light(
        self,
        res: Resolved,
        old: np.ndarray,
        zi: np.ndarray,
        zf: np.ndarray,
        i0: int,
        i1: int,
    ) -> np.ndarray:
        """Return the old stars' spectra (C, L) float32 on rest pixels [i0, i1), as ``mix``.

        For a step SFH, rows sharing ``agebins`` and ``dust_tesc`` (the draws of one object
        in a refinement, the pixels of one galaxy) have old-star weights ``sfr @ B``, with B
        (K, A) the weights of each bin at unit rate: their spectra are mixed from the K bins'
        spectra (products over K instead of ~100-150 SSP ages per row), built once per set
        of bins when at least :data:`STEP_BASIS_ROWS` rows share it, and kept for later calls.
        """
        slow = np.ones(len(old), dtype=bool)
        out = None
        if res.switches["sfh"] == 3:
            v = res.values
            sfr = _step_rates(v)[2]
            key = np.concatenate([v["agebins"].reshape(res.n, -1), v["dust_tesc"][:, None]], 1)
            # rows grouped by a hash of their key (np.unique over rows costs ~2 us a row)
            _, first, group, counts = np.unique(
                key @ np.sqrt(np.arange(2.0, key.shape[1] + 2)),
                return_index=True,
                return_inverse=True,
                return_counts=True,
            )
            for g in np.flatnonzero(counts >= _CACHED_ROWS):
                k = key[first[g]]
                rows = np.flatnonzero(group == g)  # still grouped by zi
                if not np.array_equal(key[rows], np.broadcast_to(k, (len(rows), len(k)))):
                    continue  # a hash collision: the full products
                spectra = self._bin_spectra(k, build=len(rows) >= STEP_BASIS_ROWS)
                if spectra is None:
                    continue
                if out is None:
                    out = np.zeros((len(old), i1 - i0), dtype=_F32)
                out[rows] = mix(sfr[rows], zi[rows], zf[rows], spectra, i0, i1)
                slow[rows] = False
        if out is None:
            return mix(old, zi, zf, self.pairs, i0, i1)
        if slow.any():
            out[slow] = mix(old[slow], zi[slow], zf[slow], self.pairs, i0, i1)
        return out

    def _bin_spectra(self, key: np.ndarray, build: bool) -> np.ndarray | None:
        """Old-star spectra (Z - 1, 2 K, L) float32 of K step-SFH bins at unit rate, kept.

        ``key`` is a row's ``agebins`` (K, 2), flattened, then its ``dust_tesc``. None when
        they are not kept and ``build`` is false.
        """
        name = b"bins" + key.tobytes()
        if not build and name not in self._basis:
            return None

        def basis() -> np.ndarray:
            bins, tesc = key[:-1].reshape(-1, 2), 10.0 ** key[-1]
            nbin = len(bins)
            lo, hi = (np.broadcast_to(10.0 ** bins[:, j], (nbin, nbin)) for j in (0, 1))
            cut = np.full(nbin, np.searchsorted(self.edges, tesc, side="right") - 1)
            tesc = np.full(nbin, tesc)
            total, partial = _step_total(self.edges, lo, hi, np.eye(nbin), tesc, cut)
            return _split(self.edges, total, partial, cut, tesc)[1]

        return self.basis_spectra(name, basis, self.pairs)

    def young_series_spectra(self, tesc: float, pairs: np.ndarray) -> np.ndarray:
        """Spectra (Z - 1, 2 K, L) float32 of stars younger than ``tesc`` yr, per power of age.

        Row k mixes the SSPs with the :func:`~.sfh.power_moments` of ``(t / tesc)^k``, so
        that ``coef @`` them (:func:`~.sfh.young_series`) are the young stars' spectra;
        ``pairs`` is :attr:`pairs` or :attr:`pairs_nolyc`.
        """
        key = b"young" + np.float64(tesc).tobytes() + bytes([pairs is self.pairs_nolyc])
        return self.basis_spectra(
            key, lambda: power_moments(self.edges, tesc, SERIES_TERMS), pairs
        )

    def basis_spectra(
        self, key: bytes, basis: Callable[[], np.ndarray], pairs: np.ndarray
    ) -> np.ndarray:
        """Spectra (Z - 1, 2 K, L) float32 of K sets of SSP age weights ``basis()`` (K, A).

        Laid out as ``pairs`` (:attr:`pairs` or :attr:`pairs_nolyc`), for :func:`mix`; built
        once and kept by ``key`` (the last :data:`_BASIS_CACHE`).
        """
        spectra = self._basis.get(key)
        if spectra is None:
            weights = basis().astype(_F32)
            ssp = [*(p[0::2] for p in pairs), pairs[-1, 1::2]]  # (A, L) per grid Z
            spectra = z_pairs(np.stack([weights @ s for s in ssp]))
            if len(self._basis) >= _BASIS_CACHE:
                self._basis.pop(next(iter(self._basis)))  # the oldest
            self._basis[key] = spectra
        return spectra


def _step_rates(values: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step-SFH bins' start and stop lookback ages (C, K), yr, and rates per unit mass (C, K)."""
    lo, hi = 10.0 ** values["agebins"][..., 0], 10.0 ** values["agebins"][..., 1]
    return lo, hi, values["mass"] / (hi - lo) / values["mass"].sum(-1, keepdims=True)


def _step_total(
    edges: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    sfr: np.ndarray,
    tesc: np.ndarray,
    cut: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Step-SFH mass per SSP age bin (C, A), and the part of bin ``cut`` (C,) below ``tesc``."""
    total = step_bin_masses(edges, lo, hi, sfr)
    start = edges[cut][:, None]
    overlap = np.clip(np.minimum(hi, tesc[:, None]) - np.maximum(lo, start), 0.0, None)
    return total, (sfr * overlap).sum(-1)


def _split(
    edges: np.ndarray, total: np.ndarray, partial: np.ndarray, cut: np.ndarray, tesc: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Young and old parts (C, A) of masses per age bin ``total``, split at ``tesc`` (C,), yr.

    Young: every bin wholly below tesc, and ``partial`` (C,) of the bin ``cut`` holding it.
    """
    nyoung = int(cut.max()) + 1
    young = np.zeros_like(total)
    young[:, :nyoung] = np.where(np.arange(nyoung) < cut[:, None], total[:, :nyoung], 0.0)
    young[np.arange(len(total)), cut] = partial
    old = total - young
    old[edges[None, 1:] <= tesc[:, None]] = 0.0  # exactly 0, not a rounding residual
    return young, old


def z_pairs(ssp: np.ndarray) -> np.ndarray:
    """(Z, A, L) -> (Z - 1, 2 A, L) float32, ages interleaved between Z_k and Z_k+1."""
    nz, na, nl = ssp.shape
    out = np.empty((nz - 1, na, 2, nl), dtype=_F32)
    out[:, :, 0] = ssp[:-1]
    out[:, :, 1] = ssp[1:]
    return out.reshape(nz - 1, 2 * na, nl)


def z_spectra(shape: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Spectra (Z, L) float32 of one set of SSP age weights (A,) at each grid metallicity."""
    a1 = int(np.flatnonzero(shape)[-1]) + 1
    w = shape[:a1].astype(_F32)
    spectra = [w @ pairs[k, 0 : 2 * a1 : 2] for k in range(len(pairs))]
    return np.stack([*spectra, w @ pairs[-1, 1 : 2 * a1 : 2]])


def common_shape(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Row sums (C,), the shape most rows share (or None), and which rows share it (C,).

    Rows of ``weights`` (C, A) share the shape to a relative :data:`SAME_SHAPE`.
    """
    alpha = weights.sum(-1)
    ref = int(np.argmax(alpha))
    if alpha[ref] <= 0:
        return alpha, None, np.zeros(len(alpha), dtype=bool)
    shape = weights[ref] / alpha[ref]
    dev = np.abs(weights - alpha[:, None] * shape[None, :]).max(-1)
    same = dev <= SAME_SHAPE * np.abs(alpha) * shape.max()
    return alpha, (shape if same.mean() > 0.5 else None), same


def mix(
    weights: np.ndarray, zi: np.ndarray, zf: np.ndarray, pairs: np.ndarray, i0: int, i1: int
) -> np.ndarray:
    """Spectra (C, L) float32 on rest pixels [i0, i1) of SSP weights (C, A), linear in Z.

    Rows must come grouped by ``zi`` (C,); ``zf`` (C,) is the fraction towards Z_zi+1.
    """
    active = np.flatnonzero(weights.any(axis=0))
    out = np.zeros((len(weights), i1 - i0), dtype=_F32)
    if not len(active):
        return out
    a0, a1 = active[0], active[-1] + 1
    w = np.empty((len(weights), a1 - a0, 2), dtype=_F32)
    w[:, :, 0] = (1 - zf[:, None]) * weights[:, a0:a1]
    w[:, :, 1] = zf[:, None] * weights[:, a0:a1]
    w = w.reshape(len(weights), -1)
    for s, e in runs(zi):
        np.matmul(w[s:e], pairs[zi[s], 2 * a0 : 2 * a1, i0:i1], out=out[s:e])
    return out
