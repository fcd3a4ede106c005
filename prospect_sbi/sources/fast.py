"""Fast batched photometry for training sets: a redshift shifts the filters, not the spectra.

:class:`FastPhotometry` orchestrates the ingredients, each in its own module like the exact
path's: the grid and the projection (:mod:`.fast_grid`), the stars (:mod:`.fast_stars`), the
nebular emission (:mod:`.fast_nebular`), dust and IGM (:mod:`.fast_attenuation`), dust
emission (:mod:`.fast_emission`).
"""

from __future__ import annotations

__all__ = ["FastPhotometry"]

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ..cosmology import luminosity_distance
from .basis import BC03MilesBasis
from .fast_attenuation import FastAttenuation, attenuate
from .fast_emission import FastDustEmission
from .fast_grid import LogGrid, runs
from .fast_nebular import FastNebular
from .fast_stars import (
    SAME_SHAPE,
    SERIES_TERMS,
    SERIES_TOL,
    FastStars,
    common_shape,
    mix,
    z_spectra,
)
from .grids import interp_index
from .params import Resolved, batch_size, resolve_params
from .photometry import flux_norm
from .sfh import young_series

#: Most extra rest-frame pixels a chunk's redshifts may spread its window over, as a fraction
#: of the observed window: a chunk works on the rest-frame pixels that any of its redshifts
#: puts under the filters, so rows at very different redshifts (the draws of several objects
#: in one refinement round) cost more each together than in chunks of their own.
MAX_SPAN = 0.25

_F32 = np.float32


class FastPhotometry:
    """Photometry of many parameter vectors at once, for building training sets.

    The exact projection (:meth:`BC03MilesBasis.photometry`, Prospector's own) sums, over the
    source's rest-frame pixels j, ``L_nu[j] T(lambda_j (1 + z)) w_j / lambda_j``. Here the
    filter T in that sum is replaced by its least-squares fit by a piecewise-linear function
    on a grid uniform in ln(lambda) with step 1/R. The sum then runs over coarse pixels of
    spectra binned once with the same hat functions, so the native sampling of the exact
    path is kept and only the filter is approximated (the least-squares fit keeps band
    integrals right across filter edges narrower than a pixel). On that grid a redshift is a
    shift by R ln(1 + z) pixels: an integer shift of the spectrum (a window) and a
    fractional shift of the filters, tabulated at ``phases`` sub-pixel offsets and blended.

    Emission lines stay off the grid: each adds its luminosity times the filter at its own
    observed wavelength (a fine table), split between its two native pixels when
    ``nebemlineinspec`` is set, as the exact path does for either value. Dust is applied per
    pixel (with a curvature term for the 2175 AA bump), the IGM from a table in z. Dust
    emission (DL07, from ~1 micron rest) and its energy balance are skipped for chunks in
    which no band reaches 1 micron rest (z >~ 4.2 for JADES; ~15-20% of the cost). When the
    objects of a chunk share the shape of their young-star and nebular age weights (a step
    SFH whose first bin holds ``dust_tesc``, as in Prospector's templates), those spectra are
    precomputed per grid point and mixed per object. Rows sharing step-SFH bins mix their old
    stars from the bins' spectra (:meth:`~.fast_stars.FastStars.old_light`), and tau and
    delayed-tau rows their young stars and nebula from spectra per power of age
    (:func:`~.sfh.young_series`). Spectra are float32; SSP weights and ``mfrac`` are float64
    and exact.

    At the default R = 250, for ``continuity_sfh``-like step SFHs and delayed-tau models with
    dust and nebular emission at z <= 12, bands not blueward of Lyman-alpha agree with the
    exact projection to ~1e-3 at worst and ~1e-5 in the median (``tests/test_fast.py``);
    one core (single-threaded BLAS, AMD EPYC) computes ~35,000 of them per second, ~30,000
    for delayed-tau. Building takes ~0.5 s after the grids are loaded, ~50 MB.

    Parameters
    ----------
    filters : sequence of sedpy.observate.Filter
        F filters.
    sps : BC03MilesBasis, optional
        Source to follow: its grids, IGM model and line table (default: a new one).
    resolution : float
        R, pixels per unit ln(lambda). The error falls about as R^-2; the cost grows about
        linearly in R.
    zmax : float
        Largest redshift supported.
    dz : float
        Redshift step of the IGM tables.
    phases : int
        Sub-pixel offsets at which the filters are tabulated.
    line_step : float
        ln(lambda) step of the filter tables used for emission lines.

    Warnings
    --------
    Bands that reach blueward of Lyman-alpha in the rest frame see the IGM averaged over
    pixels; they agree with the exact path to ~1e-3 of the object's brightest band.

    Examples
    --------
    >>> import numpy as np
    >>> from prospect_sbi import FastPhotometry, jades_filters
    >>> fast = FastPhotometry(jades_filters(), zmax=12.0)
    >>> params = dict(zred=np.array([1.0, 6.0]), logzsol=-0.5, tage=0.5, tau=1.0, sfh=4,
    ...               mass=1e10, imf_type=1, add_neb_emission=True)
    >>> maggies, mfrac = fast(params)
    >>> maggies.shape, mfrac.shape
    ((2, 14), (2,))
    """

    def __init__(
        self,
        filters: Sequence,
        sps: BC03MilesBasis | None = None,
        resolution: float = 250.0,
        zmax: float = 20.0,
        dz: float = 0.01,
        phases: int = 16,
        line_step: float = 1e-5,
    ) -> None:
        self._sps = sps if sps is not None else BC03MilesBasis()
        self.filters = list(getattr(filters, "filters", filters))
        self.resolution = float(resolution)
        self.zmax = float(zmax)
        self._grids = g = self._sps.grids
        #: The pixels, the filters on them and the projection (:class:`.fast_grid.LogGrid`).
        self.grid = LogGrid(self.filters, self.resolution, self.zmax, phases)
        self.rest_wave = self.grid.rest_wave
        binned = self.grid.binner(g.wave)
        #: SSP spectra and age weights (:class:`.fast_stars.FastStars`).
        self.stars = FastStars(g, binned)
        #: Nebular continuum and lines (:class:`.fast_nebular.FastNebular`).
        self.nebular = FastNebular(
            g, binned, self.stars.scale, self.grid, line_step, self._sps.table_lines
        )
        #: Dust and IGM (:class:`.fast_attenuation.FastAttenuation`).
        self.attenuation = FastAttenuation(self.grid, g.line_wave, self._sps.igm, self.zmax, dz)
        self._shape_cache: list[tuple] = []
        self._binned = binned
        self._emission: FastDustEmission | None = None

    @property
    def emission(self) -> FastDustEmission:
        """Dust emission (:class:`.fast_emission.FastDustEmission`), built on first use."""
        if self._emission is None:
            self._emission = FastDustEmission(self._grids, self._binned, self.stars.scale)
        return self._emission

    # ------------------------------------------------------------------ the batch
    def __call__(
        self, params: Mapping[str, object], n: int | None = None, chunk_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """Photometry and surviving mass fractions of a batch.

        Parameters
        ----------
        params : mapping
            As for :meth:`BC03MilesBasis.photometry` (scalars and length-1 arrays are shared;
            ``lumdist`` in Mpc is honoured).
        n : int, optional
            Batch size B.
        chunk_size : int
            Objects per chunk, after sorting by redshift; bounds memory (~30 kB per object).

        Returns
        -------
        maggies : ndarray, (B, F)
        mfrac : ndarray, (B,)
            Surviving stellar mass / mass formed.

        Raises
        ------
        ValueError
            If a redshift is beyond ``zmax``, or as :func:`resolve_params`.
        """
        n = batch_size(params, n)
        res = resolve_params(params, n)
        zred = res.values["zred"]
        if zred.max() > self.zmax:
            raise ValueError(f"zred={zred.max():.3g} is beyond FastPhotometry zmax={self.zmax}")
        norm = self._flux_norm(res) * self.stars.scale
        order = np.argsort(zred, kind="stable")
        maggies = np.empty((n, len(self.filters)))
        mfrac = np.empty(n)
        for idx in self._chunks(order, zred, chunk_size):
            idx = self._regroup(idx, res)
            counts, mfrac[idx] = self._chunk(res.take(idx))
            maggies[idx] = counts * norm[idx, None]
        return maggies, mfrac

    def _chunks(self, order: np.ndarray, zred: np.ndarray, size: int) -> list[np.ndarray]:
        """Split rows ``order`` (sorted by redshift) into chunks of at most ``size`` rows.

        A chunk's redshifts spread its rest-frame window by at most :data:`MAX_SPAN` of the
        observed one.
        """
        k = np.floor(np.log1p(zred[order]) / self.grid.step)
        span = MAX_SPAN * self.grid.n_obs
        out, start = [], 0
        while start < len(order):
            end = min(start + size, int(np.searchsorted(k, k[start] + span, side="right")))
            out.append(order[start:end])
            start = end
        return out

    def _regroup(self, idx: np.ndarray, res: Resolved) -> np.ndarray:
        """Order a chunk by (stellar Z interval, nebular grid cell) so groups are slices."""
        g, v = self._grids, res.values
        key = interp_index(g.logzsol, v["logzsol"][idx])[0]
        if res.switches["add_neb_emission"]:
            gas = interp_index(g.logzsol, v["gas_logz"][idx])[0]
            key = (key * len(g.logzsol) + gas) * len(g.logu)
            key += interp_index(g.logu, v["gas_logu"][idx])[0]
        return idx[np.argsort(key, kind="stable")]

    def _chunk(self, res: Resolved) -> tuple[np.ndarray, np.ndarray]:
        """Band counts (C, F) per unit mass (internal units) and mfrac (C,) of one chunk."""
        v, sw = res.values, res.switches
        grid, dust = self.grid, self.attenuation
        shift = np.log1p(v["zred"]) / grid.step
        k = np.floor(shift).astype(int)
        i0, i1 = grid.offset - k.max(), grid.offset - k.min() + grid.n_obs
        zi, zf = interp_index(self._grids.logzsol, v["logzsol"])
        young_w, old_w, mfrac = self.stars.weights(res, zi, zf)
        light, lines, nebular = self._young_light(res, young_w, zi, zf, i0, i1)
        # FSPS's order: the birth cloud dims young stars and nebular emission only.
        attenuate(light, dust.continuum(v["dust1"], v["dust1_index"], None, i0, i1))
        light += self.stars.old_light(res, old_w, zi, zf, i0, i1)
        attenuate(light, dust.continuum(v["dust2"], v["dust_index"], sw["dust_type"], i0, i1))
        if sw["add_dust_emission"] and self.emission.reaches(i1):
            emission = self.emission
            absorbed = emission.absorbed(res, young_w, old_w, zi, zf, nebular, lines)
            emission.add(res, absorbed, light, i0, i1)
        if sw["add_igm_absorption"] and i0 < grid.n_blue:
            trans = dust.igm("cont", v["zred"], v["igm_factor"], slice(i0, None))
            light[:, : trans.shape[1]] *= trans
        counts = grid.project(light, shift - k, i0 - grid.offset + k)
        if lines is not None:
            counts += self.nebular.line_counts(res, lines, dust)
        return counts, mfrac

    def _young_light(
        self,
        res: Resolved,
        weights: np.ndarray,
        zi: np.ndarray,
        zf: np.ndarray,
        i0: int,
        i1: int,
    ) -> tuple[np.ndarray, np.ndarray | None, tuple | None]:
        """Young stars plus nebular continuum (C, L) float32, lines (C, E), nebular weights.

        The nebular weights are :meth:`~.fast_nebular.FastNebular.weights`' (None without a
        nebula), reused by the dust emission's energy balance.

        Rows whose young-star (and nebular) age weights share one shape take spectra
        precomputed per grid point: one small product per run of rows sharing a stellar Z
        interval and a nebular (Z, U) cell. Tau and delayed-tau rows take the products of
        their rate's power series (:meth:`_young_series`); the other rows the full products.
        """
        n, neb = res.n, res.switches["add_neb_emission"]
        nebular = self.nebular
        pairs = self.stars.pairs_nolyc if neb else self.stars.pairs
        ncol = int(np.flatnonzero(weights.any(axis=0))[-1]) + 1 if weights.any() else 1
        alpha, shape, same = common_shape(weights[:, :ncol])
        coefs, bases = [], []  # per-object coefficients and, per run, the spectra they mix
        if shape is not None:
            spectra = self._cached("young", id(pairs), shape, lambda: z_spectra(shape, pairs))
            coefs.append(np.stack([alpha * (1 - zf), alpha * zf], axis=1) * same[:, None])
            bases.append(lambda s: spectra[zi[s] : zi[s] + 2, i0:i1])
        key, lines, lum, weights_n = zi, None, None, None
        if neb:
            weights_n = mass, cols, corner = nebular.weights(res)
            alpha_n, shape_n, same_n = common_shape(mass)
            key = zi * len(nebular.line_lum) * nebular.cont.shape[1] + cols[:, 0]
            lines = np.zeros((n, nebular.line_lum.shape[-1]))
            if shape_n is not None:
                lum, cont = self._cached("neb", 0, shape_n, lambda: nebular.spectra(shape_n))
                coef_n = alpha_n[:, None] * corner * same_n[:, None]
                if res.switches["add_neb_continuum"]:
                    coefs.append(coef_n)
                    bases.append(lambda s: cont[cols[s], i0:i1])
        light = np.zeros((n, i1 - i0), dtype=_F32)
        coef = np.concatenate(coefs, axis=1).astype(_F32) if coefs else None
        for s, e in runs(key):
            if coef is not None:
                np.matmul(coef[s:e], np.concatenate([b(s) for b in bases]), out=light[s:e])
            if lum is not None:
                lines[s:e] = coef_n[s:e] @ lum[cols[s]]
        slow_n = neb and (shape_n is None or not same_n.all())
        if shape is not None and same.all() and not slow_n:
            return light, lines, weights_n  # every row took the shared shapes' products
        series, exact, tesc = self._young_series(res)
        if shape is None or not same.all():
            rest = ~same if shape is not None else np.ones(n, dtype=bool)
            rows = np.flatnonzero(rest & exact)
            if len(rows):
                spectra = self.stars.young_series_spectra(tesc, pairs)
                light[rows] += mix(series[rows], zi[rows], zf[rows], spectra, i0, i1)
            rows = np.flatnonzero(rest & ~exact)
            if len(rows):
                light[rows] += mix(weights[rows], zi[rows], zf[rows], pairs, i0, i1)
        if slow_n:
            slow = ~same_n if shape_n is not None else np.ones(n, dtype=bool)
            if (slow & exact).any():
                tables = nebular.series_tables(tesc, SERIES_TERMS)
                nebular.add(res, slow & exact, series, cols, corner, light, lines, i0, i1, tables)
            if (slow & ~exact).any():
                nebular.add(res, slow & ~exact, mass, cols, corner, light, lines, i0, i1)
        return light, lines, weights_n

    def _young_series(self, res: Resolved) -> tuple[np.ndarray, np.ndarray, float]:
        """Return the young stars' :func:`~.sfh.young_series` (C, K), its rows (C,), tesc.

        For tau and delayed-tau SFHs, rows whose series is exact to
        :data:`~.fast_stars.SERIES_TOL` and whose escape age is the chunk's first row's
        (yr): their young stars and nebula are mixed from spectra per power of age (K = 8
        products instead of one per SSP or nebular age younger than tesc).
        """
        tesc = 10.0 ** res.values["dust_tesc"]
        sfh = res.switches["sfh"]
        if sfh not in (1, 4):
            return np.zeros((res.n, SERIES_TERMS)), np.zeros(res.n, dtype=bool), float(tesc[0])
        coef, exact = young_series(sfh, res.values, tesc, SERIES_TERMS, SERIES_TOL)
        return coef, exact & (tesc == tesc[0]), float(tesc[0])

    def _cached(self, kind: str, variant: int, shape: np.ndarray, build: Callable) -> object:
        """``build()`` for this age shape, reused while later chunks share the shape."""
        for k, var, ref, value in self._shape_cache:
            if k == kind and var == variant and len(ref) == len(shape):
                if np.abs(ref - shape).max() <= SAME_SHAPE * shape.max():
                    return value
        value = build()
        self._shape_cache = [*self._shape_cache[-7:], (kind, variant, shape, value)]
        return value

    def _flux_norm(self, res: Resolved) -> np.ndarray:
        """Lsun/Hz per Msun formed -> maggies, as ``SpecModel.flux_norm`` (B,)."""
        zred = res.values["zred"]
        lumdist = res.values.get("lumdist")
        if lumdist is None:  # Prospector's cosmology from a table, not a quadrature per object
            lumdist = np.where(zred > 0, luminosity_distance(zred), 1e-5)
        return flux_norm(zred, res.values["mass"].sum(-1), lumdist)
