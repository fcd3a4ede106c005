"""``BC03MilesBasis``: a Prospector-compatible SPS source on the BC03-MILES grids."""

from __future__ import annotations

__all__ = ["BC03MilesBasis"]

from collections.abc import Mapping, Sequence

import numpy as np

from ..constants import LIGHTSPEED, LYMAN_LIMIT, MAGGIE_CGS
from .dust import birth_cloud_tau, diffuse_tau
from .dust_emission import DustEmission
from .emlines import emission_line_info, kept_lines, line_mapping
from .grids import SSPGrids, interp_index, load_grids
from .igm import IGM_MODELS, igm_transmission
from .params import Resolved, batch_size, resolve_params
from .photometry import FilterProjector, flux_norm, trapezoid_weights
from .sfh import cumulative_mass, split_young_old


class BC03MilesBasis:
    """Prospector SPS source built on the BC03 SSPs with the MILES library (Chabrier IMF).

    Pass it as ``sps`` wherever Prospector takes one (``SpecModel.predict``,
    ``prospect.fitting.fit_model``): it implements ``get_galaxy_spectrum`` and
    ``get_galaxy_elines`` with the units of Prospector's FSPS sources, and honours the FSPS
    parameter names of Prospector's templates (see ``docs/sources.md``):

    - ``zred``; ``mass`` (formed); ``logzsol`` (linear in log Z between the 7 grid
      metallicities, -2.3 to 0.7); ``imf_type`` 1 (2 accepted with a warning);
    - ``sfh`` 0 (SSP), 1 (tau), 4 (delayed-tau; ``tage``, ``tau`` in Gyr) and 3 (step SFH from
      ``agebins``, log10 yr, and per-bin ``mass``), each integrated exactly over the SSP age
      bins;
    - ``dust_type`` 0, 2, 4 with ``dust2``, ``dust_index``; ``dust1``, ``dust1_index`` on stars
      younger than ``10**dust_tesc`` yr and on their nebular emission;
    - ``add_neb_emission``, ``add_neb_continuum``, ``nebemlineinspec``, ``gas_logz``,
      ``gas_logu`` from the Cloudy grids, ionised by stars younger than ``10**dust_tesc`` yr
      (their ionising photons are absorbed, f_esc = 0); with ``nebemlineinspec`` False the
      batch photometry leaves out Prospector's ``elines_to_ignore``, as ``SpecModel`` does;
    - ``add_igm_absorption``, ``igm_factor``;
    - ``add_dust_emission`` (on unless set False, as in FSPS), ``duste_umin``, ``duste_qpah``,
      ``duste_gamma``: Draine & Li (2007) emission of the luminosity the dust absorbs
      (:class:`~prospect_sbi.sources.dust_emission.DustEmission`).

    Any other FSPS parameter set to a value that would change the result is an error.

    Parameters
    ----------
    igm : {"madau1995", "inoue2014"}
        IGM model used when ``add_igm_absorption`` is set (FSPS uses Madau 1995).
    wave : ndarray, optional
        Rest-frame wavelength grid (AA) to resample the SSPs onto, flux-conserving. ``None``
        keeps the native grid (13216 points), which the single-object Prospector path uses;
        a coarser grid speeds up :meth:`photometry` at a small cost in accuracy.
    **params
        Initial parameter values, as for FSPS sources.

    Examples
    --------
    >>> from prospect.models import SpecModel
    >>> from prospect.models.templates import TemplateLibrary
    >>> from prospect_sbi import BC03MilesBasis, jades_filters
    >>> spec = TemplateLibrary["parametric_sfh"]
    >>> spec["imf_type"]["init"] = 1
    >>> model = SpecModel(spec)
    >>> sps = BC03MilesBasis()
    >>> _, maggies, mfrac = model.predict(model.theta, obs={"filters": jades_filters()}, sps=sps)
    >>> maggies.shape
    (14,)
    """

    def __init__(
        self, igm: str = "madau1995", wave: np.ndarray | None = None, **params: object
    ) -> None:
        if igm not in IGM_MODELS:
            raise ValueError(f"unknown IGM model {igm!r}; use one of {IGM_MODELS}")
        self.igm = igm
        self._wave_request = None if wave is None else np.asarray(wave, dtype=float)
        self._grids: SSPGrids | None = None
        self._deposit: np.ndarray | None = None
        self._line_map: np.ndarray | None = None
        self._line_table: np.ndarray | None = None
        self._projectors: dict[tuple[str, ...], FilterProjector] = {}
        self.params: dict[str, object] = {}
        self._line_lum = None
        self._emission: DustEmission | None = None
        self.update(**params)

    def __getstate__(self) -> dict:
        # Pickled to worker processes: send the settings, not the ~300 MB of loaded grids
        # and caches, which each worker reloads lazily.
        state = self.__dict__.copy()
        state.update(
            _grids=None,
            _deposit=None,
            _line_map=None,
            _line_table=None,
            _projectors={},
            _line_lum=None,
            _emission=None,
        )
        return state

    # ------------------------------------------------------------------ grids, lazily
    @property
    def grids(self) -> SSPGrids:
        """The SSP grids in use (loaded on first access)."""
        if self._grids is None:
            grids = load_grids()
            if self._wave_request is not None:
                grids = grids.resampled(self._wave_request)
            self._grids = grids
        return self._grids

    @property
    def wavelengths(self) -> np.ndarray:
        """Rest-frame wavelengths of :meth:`get_galaxy_spectrum`, AA, (L,)."""
        return self.grids.wave.copy()

    @property
    def description(self) -> str:
        """One line naming the SPS ingredients, for provenance."""
        res = "native" if self._wave_request is None else f"{len(self._wave_request)} pixels"
        return (
            "BC03MilesBasis(BC03 SSPs + MILES, Chabrier IMF, Cloudy nebular, "
            f"DL07 dust emission, IGM={self.igm}, wave={res})"
        )

    def _line_deposit(self) -> np.ndarray:
        """(E, L) matrix adding line luminosities (Lsun) to an L_nu spectrum, flux-conserving."""
        if self._deposit is None:
            wave = self.grids.wave
            dw = trapezoid_weights(wave)
            dep = np.zeros((len(self.grids.line_wave), len(wave)))
            for e, lam in enumerate(self.grids.line_wave):
                j = np.searchsorted(wave, lam) - 1
                if j < 0 or j >= len(wave) - 1:
                    continue
                t = (lam - wave[j]) / (wave[j + 1] - wave[j])
                # Split between the two neighbours (keeps the centroid); /dw makes the
                # trapezoid integral of L_lambda equal the line luminosity.
                dep[e, j] = (1 - t) / dw[j] * wave[j] ** 2 / LIGHTSPEED
                dep[e, j + 1] = t / dw[j + 1] * wave[j + 1] ** 2 / LIGHTSPEED
            self._deposit = dep
        return self._deposit

    def table_lines(self) -> tuple[np.ndarray, np.ndarray]:
        """Return Prospector's line table and the map onto it from the grids' Cloudy lines.

        Returns
        -------
        table : structured ndarray, (E',)
            :func:`~prospect_sbi.sources.emlines.emission_line_info`, re-read when SPS_HOME
            changes.
        mapping : ndarray, (E, E')
            :func:`~prospect_sbi.sources.emlines.line_mapping` of the grids' lines onto it.
        """
        # Follow SPS_HOME as SpecModel does when it is built, even if it changes later.
        table = emission_line_info()
        if self._line_table is None or not np.array_equal(table, self._line_table):
            self._line_table = table
            self._line_map = line_mapping(self.grids.line_wave, table["wave"])
        return self._line_table, self._line_map

    # ------------------------------------------------------------------ Prospector interface
    def update(self, **params: object) -> None:
        """Store parameter values (scalars squeezed, as Prospector's sources do) and check them."""
        self._store(params)
        if params:
            resolve_params(self.params, partial=True)

    def _store(self, params: Mapping[str, object]) -> None:
        for k, v in params.items():
            try:
                self.params[k] = np.squeeze(v) if not callable(v) else v
            except (TypeError, ValueError):
                self.params[k] = v

    def get_galaxy_spectrum(self, **params: object) -> tuple[np.ndarray, np.ndarray, float]:
        """Rest-frame spectrum per solar mass formed.

        Parameters
        ----------
        **params
            Parameter values (FSPS/Prospector names).

        Returns
        -------
        wave : ndarray, (L,)
            Rest-frame wavelengths, AA.
        spectrum : ndarray, (L,)
            L_nu in Lsun/Hz per Msun formed (IGM included when requested).
        mfrac : float
            Surviving stellar mass / mass formed.
        """
        self._store(params)  # checked in full just below, once per call
        res = resolve_params(self.params)
        spec, mfrac, lines = self._sed(res, slice(None))
        self._line_lum = lines[0]
        return self.grids.wave.copy(), spec[0], float(mfrac[0])

    def get_galaxy_elines(self) -> tuple[np.ndarray, np.ndarray]:
        """Emission lines of the last :meth:`get_galaxy_spectrum` call, in Prospector's layout.

        Returns
        -------
        ewave : ndarray, (E,)
            Rest-frame vacuum wavelengths, AA, of the lines in
            :func:`~prospect_sbi.sources.emission_line_info` (the table ``SpecModel`` uses).
        elum : ndarray, (E,)
            Dust-attenuated luminosities, Lsun per Msun formed (0 without nebular emission).
        """
        table, mapping = self.table_lines()
        if self._line_lum is None:
            return table["wave"].copy(), np.zeros(len(table))
        return table["wave"].copy(), self._line_lum @ mapping

    def get_spectrum(
        self,
        outwave: np.ndarray | None = None,
        filters: Sequence | None = None,
        peraa: bool = False,
        **params: object,
    ) -> tuple:
        """Observed spectrum and photometry, as ``prospect.sources.SSPBasis.get_spectrum``.

        Returns ``(spec, phot, mfrac)``: spectrum in maggies (or erg/s/cm^2/AA with
        ``peraa``) at ``outwave`` (observed frame), photometry in maggies, mass fraction.
        Used by Prospector's older ``SedModel``; ``SpecModel`` calls
        :meth:`get_galaxy_spectrum`.
        """
        wave, lnu, mfrac = self.get_galaxy_spectrum(**params)
        res = resolve_params(self.params)
        norm = self._flux_norm(res)[0]
        zred = float(res.values["zred"][0])
        obs_wave = wave * (1 + zred)
        fnu = lnu * norm  # maggies
        phot = 0.0
        if filters is not None:
            phot = self.photometry(self.params, filters, single=True)[0][0]
        if outwave is None:
            outwave = obs_wave
        spec = np.interp(outwave, obs_wave, fnu, left=0, right=0)
        if peraa:
            spec = spec * MAGGIE_CGS * LIGHTSPEED / outwave**2
        return spec, phot, mfrac

    # ------------------------------------------------------------------ batched interface
    def spectra(
        self,
        params: Mapping[str, object],
        n: int | None = None,
        wave_range: tuple[float, float] | None = None,
    ) -> dict[str, np.ndarray]:
        """Rest-frame spectra of a batch of parameter vectors.

        Parameters
        ----------
        params : mapping
            Values by name with the batch on axis 0 (B,), or shared scalars; ``agebins``
            (nbin, 2) or (B, nbin, 2) and ``mass`` (B, nbin) for ``sfh=3``.
        n : int, optional
            Batch size B (inferred from ``zred`` when omitted).
        wave_range : (float, float), optional
            Restrict to these rest-frame wavelengths, AA.

        Returns
        -------
        dict
            ``wave`` (L,), ``spectrum`` (B, L) Lsun/Hz per Msun formed, ``mfrac`` (B,),
            ``line_lum`` (B, E) attenuated Lsun per Msun formed, on the grids' Cloudy lines.
        """
        n = batch_size(params, n)
        res = resolve_params(params, n)
        wave = self.grids.wave
        sl = slice(None)
        if wave_range is not None:
            sl = slice(
                np.searchsorted(wave, wave_range[0]),
                np.searchsorted(wave, wave_range[1], side="right"),
            )
        spec, mfrac, lines = self._sed(res, sl)
        return {"wave": wave[sl].copy(), "spectrum": spec, "mfrac": mfrac, "line_lum": lines}

    def photometry(
        self,
        params: Mapping[str, object],
        filters: Sequence,
        n: int | None = None,
        chunk_size: int = 256,
        single: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Observed-frame photometry of a batch of parameter vectors, in maggies.

        Equals what ``SpecModel.predict`` returns for each vector with this source (same
        cosmology, ``lumdist`` honoured, emission lines added the same way), but computes
        thousands at once: spectra only over the rest-frame range the filters see, objects
        sorted by redshift and processed in chunks so memory is bounded by ``chunk_size``.

        Parameters
        ----------
        params : mapping
            As for :meth:`spectra`, plus ``mass`` (formed; summed over bins for ``sfh=3``)
            and optionally ``lumdist`` (Mpc).
        filters : sequence of sedpy.observate.Filter
            F filters.
        n : int, optional
            Batch size.
        chunk_size : int
            Objects per chunk.
        single : bool
            ``params`` describe one object (scalars as Prospector passes them).

        Returns
        -------
        maggies : ndarray, (B, F)
        mfrac : ndarray, (B,)
            Surviving stellar mass / mass formed.
        """
        n = 1 if single else batch_size(params, n)
        res = resolve_params(params, None if single else n)
        proj = self._projector(filters)
        norm = self._flux_norm(res)
        zred = res.values["zred"]
        order = np.argsort(zred, kind="stable")
        maggies = np.empty((res.n, len(proj.filters)))
        mfrac = np.empty(res.n)
        for start in range(0, res.n, chunk_size):
            idx = order[start : start + chunk_size]
            sub = res.take(idx)
            lo, hi = proj.index_range(zred[idx])
            spec, mf, lines = self._sed(sub, slice(lo, hi))
            phot = proj.counts(spec, zred[idx], start=lo)
            if sub.switches["add_neb_emission"] and not sub.switches["nebemlineinspec"]:
                table, mapping = self.table_lines()
                kept = kept_lines(table, sub.switches["elines_to_ignore"])
                line_flux = proj.line_counts((lines @ mapping) * kept, table["wave"], zred[idx])
                phot = phot + line_flux / (1 + zred[idx])[:, None]
            maggies[idx] = phot * norm[idx, None]
            mfrac[idx] = mf
        return maggies, mfrac

    def _projector(self, filters: Sequence) -> FilterProjector:
        flist = list(getattr(filters, "filters", filters))
        key = tuple(f.name for f in flist)
        if key not in self._projectors:
            self._projectors[key] = FilterProjector(self.grids.wave, flist)
        return self._projectors[key]

    @staticmethod
    def _flux_norm(res: Resolved) -> np.ndarray:
        """Lsun/Hz per Msun formed -> maggies, as ``SpecModel.flux_norm`` (B,)."""
        from prospect.sources.constants import cosmo

        zred = res.values["zred"]
        lumdist = res.values.get("lumdist")
        if lumdist is None:
            lumdist = np.full(res.n, 1e-5)
            far = zred > 0
            if far.any():
                lumdist[far] = cosmo.luminosity_distance(zred[far]).to("Mpc").value
        return flux_norm(zred, res.values["mass"].sum(-1), lumdist)

    # ------------------------------------------------------------------ the physics
    def _sed(self, res: Resolved, sl: slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Spectra (B, L) on ``wave[sl]``, mass fractions (B,), attenuated lines (B, E)."""
        g = self.grids
        v, sw = res.values, res.switches
        wave = g.wave[sl]
        young, old, mfrac = self._stars(res, g.ssp[:, :, sl])
        lines = np.zeros((res.n, len(g.line_wave)))
        if sw["add_neb_emission"]:
            young[:, wave < LYMAN_LIMIT] = 0.0  # ionising photons go into the nebula
            cont, lines = self._nebular(res, g.neb_cont[..., sl])
            young += cont

        tau2 = diffuse_tau(wave, sw["dust_type"], v["dust2"], v["dust_index"])
        tau1 = birth_cloud_tau(wave, v["dust1"], v["dust1_index"])
        spec = young * np.exp(-(tau1 + tau2)) + old * np.exp(-tau2)
        if sw["add_dust_emission"]:
            spec += self._dust_emission(res, lines, sl)
        if sw["add_igm_absorption"]:
            spec *= self._igm(wave, v["zred"], v["igm_factor"])
        if sw["add_neb_emission"]:
            lw = g.line_wave
            tau_lines = diffuse_tau(lw, sw["dust_type"], v["dust2"], v["dust_index"])
            tau_lines += birth_cloud_tau(lw, v["dust1"], v["dust1_index"])
            lines = lines * np.exp(-tau_lines)
            if sw["nebemlineinspec"]:
                in_spec = lines
                if sw["add_igm_absorption"]:
                    # Lines see the IGM just blueward of their centre (Lyman-alpha is absorbed
                    # whatever pixels it is deposited into).
                    blue_side = np.nextafter(lw, 0.0)
                    in_spec = lines * igm_transmission(
                        blue_side, v["zred"], self.igm, v["igm_factor"]
                    )
                spec += in_spec @ self._line_deposit()[:, sl]
        return spec, mfrac, lines

    def _igm(self, wave: np.ndarray, zred: np.ndarray, factor: np.ndarray) -> np.ndarray:
        return igm_transmission(wave, zred, self.igm, factor)

    def _dust_emission(self, res: Resolved, lines: np.ndarray, sl: slice) -> np.ndarray:
        """DL07 emission (B, L) on ``wave[sl]`` of the light the dust absorbs (energy balance).

        ``lines`` (B, E): line luminosities before dust. The absorbed light is counted on the
        bins of :class:`~.dust_emission.DustEmission`, over all wavelengths.
        """
        if self._emission is None:
            self._emission = DustEmission(self.grids)
        de = self._emission
        young, old, _ = self._stars(res, de.ssp)
        if res.switches["add_neb_emission"]:
            young[:, de.centres < LYMAN_LIMIT] = 0.0
            young += self._nebular(res, de.neb_cont)[0]
        else:
            lines = None
        return de.spectra(res, de.absorbed(res, young, old, lines), sl)

    def _stars(self, res: Resolved, ssp: np.ndarray) -> tuple[np.ndarray, ...]:
        """Young and old starlight (B, L) and mfrac (B,) from exact per-SSP mass weights.

        ``ssp`` (Z, A, L): the SSP spectra (or their binned luminosities) to weight.
        """
        g = self.grids
        v = res.values
        young, old = split_young_old(g.age_edges, 10.0 ** v["dust_tesc"], res.switches["sfh"], v)
        zi, zf = interp_index(g.logzsol, v["logzsol"])
        nwave = ssp.shape[-1]
        stars_young, stars_old = np.empty((res.n, nwave)), np.empty((res.n, nwave))
        mfrac = np.empty(res.n)
        for k in np.unique(zi):
            rows = np.flatnonzero(zi == k)
            f = zf[rows, None]
            both = np.concatenate([young[rows], old[rows]])
            ff = np.concatenate([f, f])
            mixed = (1 - ff) * (both @ ssp[k]) + ff * (both @ ssp[k + 1])
            stars_young[rows], stars_old[rows] = mixed[: len(rows)], mixed[len(rows) :]
            live = (1 - f) * g.live_frac[k] + f * g.live_frac[k + 1]
            mfrac[rows] = ((young[rows] + old[rows]) * live).sum(-1)
        return stars_young, stars_old, mfrac

    def _nebular(self, res: Resolved, neb_cont: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Nebular continuum (B, L) and lines (B, E) from exact nebular-age mass weights.

        ``neb_cont`` (Z, U, N, L): the continuum spectra (or their binned luminosities).
        """
        g = self.grids
        v = res.values
        clipped = np.minimum(g.neb_age_edges[None, :], 10.0 ** v["dust_tesc"][:, None])
        neb_mass = np.diff(cumulative_mass(clipped, res.switches["sfh"], v), axis=-1)
        cont = np.zeros((res.n, neb_cont.shape[-1]))
        lines = np.zeros((res.n, g.line_lum.shape[-1]))
        continuum = res.switches["add_neb_continuum"]
        for rows, corners in _neb_corners(g, v):
            m = neb_mass[rows]
            for (zk, uk), w in corners:
                lines[rows] += w[:, None] * (m @ g.line_lum[zk, uk])
                if continuum:
                    cont[rows] += w[:, None] * (m @ neb_cont[zk, uk])
        return cont, lines


def _neb_corners(g: SSPGrids, v: dict) -> list:
    """Objects grouped by their (gas Z, logU) grid cell, with bilinear corner weights."""
    zi, zf = interp_index(g.logzsol, v["gas_logz"])
    ui, uf = interp_index(g.logu, v["gas_logu"])
    key = zi * len(g.logu) + ui
    groups = []
    for k in np.unique(key):
        rows = np.flatnonzero(key == k)
        z0, u0 = divmod(int(k), len(g.logu))
        wz, wu = zf[rows], uf[rows]
        corners = [
            ((z0, u0), (1 - wz) * (1 - wu)),
            ((z0, u0 + 1), (1 - wz) * wu),
            ((z0 + 1, u0), wz * (1 - wu)),
            ((z0 + 1, u0 + 1), wz * wu),
        ]
        groups.append((rows, corners))
    return groups
