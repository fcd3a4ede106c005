"""Fit every row of a photometric catalogue: units checked, rows flagged, resumable, streamed.

Rows are never dropped: one the estimator cannot fit (no valid band, a redshift missing or
outside the training range) gets NaN summaries and a flag; one it can fit but cannot vouch
for gets its summaries and the named reasons in ``flag`` (a doubtful input, a posterior piled
on a prior edge, a failed predictive check). Catalogue units that the values contradict (a
header that says nJy over values in Jy) are refused in one line naming the column, the
declared unit and the likely one.
"""

from __future__ import annotations

__all__ = ["FIT_FLAGS", "N_ZPHOT_DRAWS", "check_catalog", "fit_catalog", "write_catalog_fit"]

import dataclasses
import inspect
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table, vstack

from .._io import (
    ChunkStore,
    check_sendable,
    chunk_slices,
    row_seed,
    run_ordered,
    set_torch_threads,
)
from .._steps import from_text, record, say, to_text
from ..catalog import FLUX_UNITS, Catalog
from ..numeric import check_count
from ..posterior.checks import check_observations, outside_zred_range, zred_tolerance
from ..posterior.observations import Observations
from ..posterior.plausibility import (
    PriorEdgeWarning,
    UnitError,
    check_errors,
    count_flags,
    join_flags,
    warn_prior_edge,
)
from ..posterior.refine import (
    DIAGNOSTICS,
    RefinementWarning,
    check_refine,
    resume_columns,
    warn_unconverged,
)
from ..posterior.summary import STATISTICS, draw_statistics
from ..tables import TableParts
from .redshift import (
    ZRED_RULED_OUT,
    combine_diagnostics,
    median_redshift_draws,
    photoz_estimator,
    redshift_posterior,
    zred_given,
)
from .zeropoints import ZeroPoints

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: Flags of rows that are not fitted (NaN summaries), on top of those of
#: :data:`~prospect_sbi.posterior.plausibility.FLAG_REASONS` and ``<param>_at_prior_max/min``.
FIT_FLAGS = {
    "no_valid_band": "no band with a finite flux and a positive error",
    "zred_missing": "the redshift column is empty for the row",
    "zred_outside_training_range": "a redshift the estimator never saw",
    "ood": "the posterior-predictive check failed (chi2_red above its 0.1% quantile)",
    ZRED_RULED_OUT: "the given redshift lies outside the 99.7% of the photo-z posterior",
    "zphot_multimodal": "the photo-z posterior has more than one mode",
    "zphot_clipped": "photo-z draws beyond the estimator's redshift range, fitted at its edge",
    "zphot_unconverged": "exact photo-z draws not vouched for (ESS short of its target or k-hat "
    "above 0.7)",
}

#: Draws of each object's photo-z posterior.
N_ZPHOT_DRAWS = 1000
#: Rows of one photo-z chunk (kept in the parts folder, so a killed fit resumes it). Small, so
#: that a catalogue of ~100 rows splits over workers; in one process it costs no more than
#: larger chunks (99 JADES rows, exact posteriors: 26.1 s in chunks of 32, 26.9 s in one).
_ZPHOT_CHUNK = 32
#: Names of the kept photo-z chunks: with the chunk size and the arrays' version (2: with the
#: refinement's flags), so that chunks of another size or version are not read.
_ZPHOT_FILES = f"zphot_v2_{_ZPHOT_CHUNK}rows_{{:06d}}"
#: Columns of the photo-z step (:meth:`RedshiftPosterior.summary`'s numbers).
_ZPHOT_COLUMNS = ("zphot_p16", "zphot_p50", "zphot_p84", "zphot_nmodes", "zphot_exact")
#: Per-row flags of the photo-z step's chunks besides those columns.
_ZPHOT_FLAGS = ("khat_flag", "ess_flag", "ruled")


def _row_flags(post: Any, catalog: Catalog) -> np.ndarray:
    """Flag (B,) the rows that cannot be fitted; ``""`` for the others."""
    flag = np.full(len(catalog.flux), "", dtype=object)
    flag[np.sum(np.isfinite(catalog.flux), axis=1) == 0] = "no_valid_band"
    if post.redshift == "known":
        z = catalog.zred
        if z is None:
            raise ValueError(
                "this estimator is conditioned on the redshift: name the "
                "catalogue's redshift column (--zred-column)"
            )
        flag[(flag == "") & ~np.isfinite(z)] = "zred_missing"
        outside = outside_zred_range(z, post.header.get("zred_range"))
        flag[(flag == "") & outside] = "zred_outside_training_range"
    return flag


def _unit_problem(post: Any, flux: np.ndarray, err: np.ndarray) -> str | None:
    """Return the unit error the estimator's checks raise for these maggies, or None."""
    try:
        flux, err = check_observations(flux, err, post.filters, post.header.get("flux_stats"))
        check_errors(flux, err, post.noise_range)
    except UnitError as exc:
        return str(exc)
    return None


def _likely_unit(post: Any, flux: np.ndarray, err: np.ndarray, declared: str) -> str | None:
    """Find the flux unit of :data:`FLUX_UNITS` under which the values pass the checks, or None.

    Among several, the one that puts the catalogue's smallest errors (5th percentile per
    band, median over bands) nearest 3 times the noise model's depth: a survey's best errors
    lie around its depth (the JADES spec-z catalogue's at 9, the JOF pixels' at 0.12-0.5).
    """
    best, score = None, np.inf
    depth = post.noise_range.depth
    for unit, factor in FLUX_UNITS.items():
        if unit == declared:
            continue
        scale = factor / FLUX_UNITS[declared]
        if _unit_problem(post, flux * scale, err * scale) is not None:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p5 = np.nanmedian(np.nanpercentile(err * scale / depth, 5, axis=0))
        s = abs(np.log10(p5) - np.log10(3.0))
        if s < score:
            best, score = unit, s
    return best


def check_catalog(
    estimator: AmortizedPosterior | str | os.PathLike,
    catalog: Catalog,
    rows: np.ndarray | None = None,
) -> Observations:
    """Check the catalogue's fluxes (``rows`` of them) against the estimator, once.

    As :meth:`AmortizedPosterior.prepare`, with the catalogue's units in the message of a
    unit error: the column, the unit it was read in (its own, or ``unit=``/``--unit``) and
    the flux unit under which the values would pass, if any.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator, its file or a pretrained name
        (:meth:`~prospect_sbi.posterior.AmortizedPosterior.resolve`).
    catalog : Catalog
        In the estimator's band order (:func:`prospect_sbi.read_catalog`).
    rows : numpy.ndarray, int, optional
        The rows to check (default all).

    Returns
    -------
    Observations
        Of those rows.

    Raises
    ------
    ValueError
        Any error of ``prepare``; for units, e.g. ``column 'F435W' declares nJy (its unit in
        the file) but the values look like Jy: ...; pass --unit Jy (unit='Jy') to override``.
    """
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    rows = np.arange(len(catalog.flux)) if rows is None else np.asarray(rows)
    zred = None if post.redshift != "known" or catalog.zred is None else catalog.zred[rows]
    try:
        return post.prepare(catalog.flux[rows], catalog.err[rows], zred)
    except UnitError as exc:
        flux, err = catalog.flux[rows], catalog.err[rows]
        column = next(iter(catalog.units), "?")
        declared = catalog.units.get(column, "?")
        likely = _likely_unit(post, flux, err, declared) if declared in FLUX_UNITS else None
        source = (
            "(its unit in the file)" if catalog.unit_source == "header" else "(the unit given)"
        )
        if likely is None:
            raise ValueError(f"column {column!r} read as {declared} {source}: {exc}") from None
        fix = (
            "pass --unit {u} (unit={u!r}) to override the file's unit"
            if catalog.unit_source == "header"
            else "pass --unit {u} (unit={u!r})"
        )
        raise ValueError(
            f"column {column!r} declares {declared} {source} but the values look "
            f"like {likely}: {exc}; {fix.format(u=likely)}"
        ) from None


def _predictive_check(post: Any, model: Any, sps: Any) -> Any:
    """Build a :class:`~prospect_sbi.ppc.PredictiveCheck`; None for ``model=False`` or none."""
    from ..ppc import PredictiveCheck, check_model

    model, sps = check_model(post, model, sps, stacklevel=5)
    return None if model is None else PredictiveCheck(post, model, sps)


def _photoz_chunk(
    pz: Any,
    label: str,
    refine: str,
    sps: Any,
    k: int,
    threads: int | None,
    flux: np.ndarray,
    err: np.ndarray,
    seed: int,
    zred: np.ndarray,
) -> dict[str, np.ndarray]:
    """Summaries of one chunk's photo-z posteriors (b, F) in, see ``_CatalogFit._photoz``.

    ``zred`` (b,): the given redshifts to check (NaN: none); ``k``: redshifts of each
    posterior's grid. Its warnings travel as text (``"warnings"``), as the chunk files keep them;
    those counted over the whole step instead (the refinement's) or over the fit's rows (the
    prior's edges) are left out.
    """
    set_torch_threads(threads)
    with record() as now:
        warnings.simplefilter("ignore", RefinementWarning)
        warnings.simplefilter("ignore", PriorEdgeWarning)
        posts = redshift_posterior(
            pz, flux, err, N_ZPHOT_DRAWS, seed=seed, label=label, refine=refine, sps=sps
        )
    summ = [p.summary() for p in posts]
    part = {key: np.array([q[key] for q in summ]) for key in _ZPHOT_COLUMNS}
    part["khat_flag"] = np.array([p.khat_flag for p in posts], bool)
    part["ess_flag"] = np.array([p.ess_flag for p in posts], bool)
    part["ruled"] = np.array([p.ruled_out(zi) for p, zi in zip(posts, zred, strict=True)])
    part["grid"] = np.stack([p.grid(k) for p in posts])
    part["warnings"] = np.array(to_text(now), dtype=str)
    return part


def _fit_chunk(
    job: _CatalogFit, rows: slice, with_draws: bool
) -> tuple[Table, np.ndarray | None, list[tuple[str, str]]]:
    """:meth:`_CatalogFit.chunk` here or on a worker, with its warnings recorded."""
    set_torch_threads(job.threads)
    with record() as said:
        table, draws = job.chunk(rows, with_draws)
    return table, draws, said


def _fitted(
    job: _CatalogFit,
    slices: list[slice],
    todo: Any,
    keep: Any,
    client: Any,
    said: list[tuple[str, str]],
) -> Any:
    """Yield ``(c, table)`` of the chunks ``todo`` (in order), fitted where ``client`` says.

    With ``keep`` (a DrawParts) each chunk's draws are written first, so a table part always
    has its draws; each chunk's warnings are added to ``said``.
    """
    items = ((c, (slices[c], keep is not None)) for c in todo)
    for c, (table, values, now) in run_ordered(_fit_chunk, items, client, shared=(job,)):
        if keep is not None:
            keep.write(c, table["id"], table["zred"], table["flag"], values)
        said.extend(now)
        yield c, table


class _CatalogFit:
    """The rows of a catalogue fit, chunk by chunk; everything fixed before the first chunk."""

    def __init__(
        self,
        post: Any,
        catalog: Catalog,
        draws: int,
        seed: int,
        model: Any,
        sps: Any,
        refine: str = "never",
        likelihood: str = "flux",
        zred: Any = None,
        photoz: Any = None,
        n_zred: int = 20,
        source: Any = None,
        zeropoints: Any = None,
        photoz_refine: str = "auto",
        photoz_parts: Any = None,
        progress: bool = False,
        client: Any = None,
    ) -> None:
        if len(catalog.flux) == 0:
            raise ValueError("the catalogue has no rows")
        draws = check_count("draws", draws)
        self.zeropoints = None
        if zeropoints is not None:
            zp = ZeroPoints.resolve(zeropoints)
            flux, err = zp.apply(catalog.flux, catalog.err, post.filters)
            catalog, self.zeropoints = dataclasses.replace(catalog, flux=flux, err=err), zp
        self.zgrid, self.zcols, self.ruled = None, {}, None
        self.zmulti = self.zclip = self.zunconv = None
        self.refine, self.likelihood = check_refine(refine), likelihood
        if refine != "never":
            post.refiner(sps, likelihood)  # a likelihood the noise model lacks fails here
        self.sps, self.photoz_refine = sps, check_refine(photoz_refine, "photoz_refine")
        # torch threads of a chunk on a worker: one each, as many workers as cores
        self.threads = None if client is None else 1
        check_sendable(sps, client)
        if zred is not None or photoz is not None:
            catalog = self._redshifts(
                post,
                catalog,
                draws,
                seed,
                zred,
                photoz,
                n_zred,
                source,
                photoz_parts,
                progress,
                client,
            )
        self.post, self.catalog, self.draws, self.seed = post, catalog, draws, int(seed)
        self.flag = _row_flags(post, catalog)
        self.ok = np.flatnonzero(self.flag == "")
        self.obs = check_catalog(post, catalog, self.ok)
        # position of each catalogue row among the fitted ones
        self.index = np.cumsum(self.flag == "") - 1
        self.check = _predictive_check(post, model, sps)
        self.columns = [f"{label}_{s}" for label in post.labels for s in STATISTICS]
        self.edge_flags: list[np.ndarray] = []

    def _redshifts(
        self,
        post: Any,
        catalog: Catalog,
        draws: int,
        seed: int,
        zred: Any,
        photoz: Any,
        n_zred: int,
        source: Any,
        folder: Any,
        progress: bool,
        client: Any,
    ) -> Catalog:
        """Return the catalogue with the redshifts to fit at; the photo-z posteriors, checks.

        ``folder``: where the photo-z chunks are kept (or None); ``progress``: their bar;
        ``client``: where they run (:func:`~prospect_sbi._io.run_ordered`).
        """
        if post.redshift != "known":
            raise ValueError(
                "this estimator infers the redshift (redshift='infer'): zred= and photoz= "
                "are for estimators conditioned on it"
            )
        infer = isinstance(zred, str) and zred == "infer"
        source = post if source is None else source
        if zred is not None and not infer:
            given = zred_given(zred, source)
            if given.kind == "value":
                z = np.full(len(catalog.flux), given.value)
            else:
                try:
                    z = np.array([given.of(int(i)) for i in catalog.ids], dtype=float)
                except (TypeError, ValueError):
                    raise ValueError(
                        "a redshift table needs integer catalogue ids (--id-column)"
                    ) from None
            catalog = dataclasses.replace(catalog, zred=z)
        if not infer and photoz is None:
            return catalog
        pz, label = photoz_estimator(source, photoz)
        if infer and draws % int(n_zred):  # before the photo-z step, not after it
            raise ValueError(
                f"draws ({draws}) must be a multiple of n_zred ({n_zred}) with zred='infer'"
            )
        if not infer and catalog.zred is None:
            raise ValueError(
                "photoz= checks given redshifts: name the catalogue's redshift column, or "
                "pass zred="
            )
        rows = np.flatnonzero(np.isfinite(catalog.flux).any(1))
        n = len(catalog.flux)
        found = self._photoz(
            pz,
            label,
            catalog.flux[rows],
            catalog.err[rows],
            seed,
            int(n_zred) if infer else 1,
            None if infer else np.asarray(catalog.zred[rows], float),
            folder,
            progress,
            client,
        )
        cols = {c: np.full(n, np.nan) for c in _ZPHOT_COLUMNS[:3]}
        cols["zphot_nmodes"] = np.zeros(n, int)
        cols["zphot_exact"] = np.zeros(n, bool)
        for c in cols:
            cols[c][rows] = found[c]
        self.zcols = cols
        self.zmulti = cols["zphot_nmodes"] > 1
        self.zunconv = np.zeros(n, bool)
        self.zunconv[rows] = found["khat_flag"] | found["ess_flag"]
        if infer:
            grid = np.full((n, int(n_zred)), np.nan)
            grid[rows] = found["grid"]
            zr = post.header.get("zred_range")
            self.zclip = np.zeros(n, bool)
            if zr is not None:
                self.zclip = np.any((grid < zr[0]) | (grid > zr[1]), axis=1)
                grid = np.clip(grid, zr[0], zr[1])
            self.zgrid = grid
            return dataclasses.replace(
                catalog, zred=np.clip(cols["zphot_p50"], *(zr or (0, np.inf)))
            )
        self.ruled = np.zeros(n, bool)
        self.ruled[rows] = found["ruled"]
        if self.ruled.any():
            warnings.warn(
                f"{int(self.ruled.sum())} of {n} objects have a given redshift their photometry "
                f"rules out (outside 99.7% of the photo-z posterior): flagged {ZRED_RULED_OUT}",
                UserWarning,
                stacklevel=4,
            )
        return catalog

    def _photoz(
        self,
        pz: Any,
        label: str,
        flux: np.ndarray,
        err: np.ndarray,
        seed: int,
        k: int,
        zred: np.ndarray | None,
        folder: Any,
        progress: bool,
        client: Any = None,
    ) -> dict[str, np.ndarray]:
        """Summarise the rows' (B, F) photo-z posteriors, :data:`_ZPHOT_CHUNK` rows at a time.

        Returns ``zphot_p16/p50/p84``, ``zphot_nmodes``, ``zphot_exact``, ``khat_flag``,
        ``ess_flag`` (:class:`RedshiftPosterior`'s), ``ruled`` (B,: the
        given ``zred`` (B,) ruled out, ``RedshiftPosterior.ruled_out``; all False without) and
        ``grid`` (B, k: ``RedshiftPosterior.grid``); the draws are not kept, so memory stays
        flat in the rows. With ``folder`` (the table's parts), each chunk's arrays are kept
        there as they finish, so a killed fit does not draw them again (the exact posteriors
        take ~0.3 s a row); the chunk of rows ``r`` draws with seed ``seed + r``, here or on
        ``client``'s workers (the same numbers, as :func:`fit_catalog` says). Its warnings
        are said once, counts added over the chunks (kept ones' too); the refinement's counted
        over all its rows.
        """
        from tqdm.auto import tqdm

        store = None if folder is None else ChunkStore(folder, None, ".npz", name=_ZPHOT_FILES)
        parts: list[dict[str, np.ndarray]] = []
        said: list[tuple[str, str]] = []
        slices = chunk_slices(len(flux), _ZPHOT_CHUNK)
        kept = {c for c in range(len(slices)) if store is not None and c in store}
        z = np.full(len(flux), np.nan) if zred is None else zred
        computed = run_ordered(
            _photoz_chunk,
            (
                (c, (flux[rows], err[rows], row_seed(seed, rows), z[rows]))
                for c, rows in enumerate(slices)
                if c not in kept
            ),
            client,
            shared=(pz, label, self.photoz_refine, self.sps, k, self.threads),
        )
        for c, _ in enumerate(tqdm(slices, desc="photo-z", unit="chunk", disable=not progress)):
            if c in kept:
                part = store.load(c)
            else:
                part = next(computed)[1]
                if store is not None:
                    store.save(c, **part)
            said.extend(from_text(part.pop("warnings")))
            parts.append(part)
        if not parts:  # no row with a valid band
            return {key: np.zeros(0) for key in (*_ZPHOT_COLUMNS, *_ZPHOT_FLAGS)} | {
                "grid": np.zeros((0, k))
            }
        found = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        with record() as now:
            warn_unconverged(found["khat_flag"], found["ess_flag"], refined=found["zphot_exact"])
        say([*said, *now], "photo-z", stacklevel=5)
        return found

    def _marginal(self, obs: Any, grid: np.ndarray, seed: Any, collect: Any) -> dict:
        """Summaries of objects marginalised over their K redshifts (rows x K in one call)."""
        b, k = grid.shape
        m = self.draws // k
        wide = Observations(
            np.repeat(obs.flux, k, 0),
            np.repeat(obs.err, k, 0),
            grid.ravel(),
            False,
            np.repeat(obs.flags, k),
            np.repeat(obs.like_flux, k, 0),
            np.repeat(obs.like_err, k, 0),
        )
        kept = np.empty((b * k, m, len(self.post.labels)), np.float32)

        def keep(rows: slice, values: np.ndarray) -> None:
            kept[rows] = values

        with warnings.catch_warnings():  # counted over the whole catalogue instead
            warnings.simplefilter("ignore", PriorEdgeWarning)
            warnings.simplefilter("ignore", RefinementWarning)
            summ = self.post.summarize(
                wide,
                n=m,
                seed=seed,
                refine=self.refine,
                sps=self.sps,
                likelihood=self.likelihood,
                on_draws=keep,
            )
        draws = kept.reshape(b, k * m, -1)
        if collect is not None:
            collect(slice(0, b), draws)
        stats = draw_statistics(draws)
        out = {
            f"{label}_{s}": stats[:, j, i]
            for j, label in enumerate(self.post.labels)
            for i, s in enumerate(STATISTICS)
        }
        reasons = np.asarray(summ["flag"], dtype=object).reshape(b, k)
        flag = [
            ";".join(dict.fromkeys(r for f in row if f != "ok" for r in f.split(";")))
            for row in reasons
        ]
        ood = np.zeros(b, bool)
        if self.check is not None:  # once, at the median redshift: the row's ood is its flag's
            zmid, block = median_redshift_draws(draws, grid)
            out["chi2_red"], ood = self.check(obs.flux, obs.err, zmid, block)
            out["ood"] = ood
        flag = join_flags(b, [], np.array(flag, dtype=object), np.where(ood, "ood", ""))
        out["flag"] = np.where(flag == "", "ok", flag).astype(object)
        if self.refine != "never":
            out |= combine_diagnostics({c: np.asarray(summ[c]) for c in DIAGNOSTICS}, b, k)
        return out

    def chunk(self, rows: slice, with_draws: bool = False) -> tuple[Table, np.ndarray | None]:
        """Rows ``rows`` of the output table, and their draws (n, draws, D) ``with_draws``."""
        n = rows.stop - rows.start
        cat = self.catalog
        z = np.full(n, np.nan) if cat.zred is None else np.asarray(cat.zred[rows], float)
        fixed = self.post.fixed_zred
        if fixed is not None:  # the redshift fitted: a rounding of it is taken as it
            near = np.abs(z - fixed) <= zred_tolerance((fixed, fixed))
            z = np.where(near, fixed, z)
        out = Table({"id": cat.ids[rows], "zred": z})
        flag = self.flag[rows].copy()
        n_bands = np.sum(np.isfinite(cat.flux[rows]), axis=1)
        values = {c: np.full(n, np.nan) for c in self.columns}
        extra = (
            {}
            if self.refine == "never"
            else {
                k: np.zeros(n, t) if t is bool else np.full(n, np.nan)
                for k, t in DIAGNOSTICS.items()
            }
        )
        chi2, ood = np.full(n, np.nan), np.zeros(n, bool)
        fit = np.flatnonzero(flag == "")
        draws = (
            np.full((n, self.draws, len(self.post.labels)), np.nan, np.float32)
            if with_draws
            else None
        )

        def collect(batch: slice, values: np.ndarray) -> None:
            draws[fit[batch]] = values

        if fit.size:
            obs = self.obs[self.index[fit + rows.start]]
            if self.zgrid is not None:  # marginalised over each object's photo-z posterior
                summ = self._marginal(
                    obs,
                    self.zgrid[fit + rows.start],
                    row_seed(self.seed, rows),
                    collect if with_draws else None,
                )
            else:
                with warnings.catch_warnings():  # counted over the whole catalogue instead
                    warnings.simplefilter("ignore", PriorEdgeWarning)
                    warnings.simplefilter("ignore", RefinementWarning)
                    summ = self.post.summarize(
                        obs,
                        n=self.draws,
                        seed=row_seed(self.seed, rows),
                        predictive_check=self.check,
                        refine=self.refine,
                        sps=self.sps,
                        likelihood=self.likelihood,
                        on_draws=collect if with_draws else None,
                    )
            for c in self.columns:
                values[c][fit] = summ[c]
            for c in extra:
                extra[c][fit] = summ[c]
            flag[fit] = np.asarray(summ["flag"], dtype=object)
            if self.check is not None:
                chi2[fit], ood[fit] = summ["chi2_red"], summ["ood"]
            n_bands[fit] = np.sum(np.isfinite(obs.flux), axis=1)
        extra_flags = [
            (name, mask[rows])
            for name, mask in (
                (ZRED_RULED_OUT, self.ruled),
                ("zphot_multimodal", self.zmulti),
                ("zphot_clipped", self.zclip),
                ("zphot_unconverged", self.zunconv),
            )
            if mask is not None
        ]
        for name, mask in extra_flags:
            for i in np.flatnonzero(mask):
                flag[i] = name if flag[i] in ("", "ok") else f"{flag[i]};{name}"
        out["flag"] = np.asarray(flag, dtype=str)
        out["n_bands"] = n_bands
        for c, v in self.zcols.items():
            out[c] = v[rows]
        for c in self.columns:
            out[c] = values[c]
        if self.check is not None:
            out["chi2_red"], out["ood"] = chi2, ood
        for name, v in extra.items():
            out[name] = v
        return out, draws

    def draw_parts(self, out: Any, folder: Any, model: Any) -> Any:
        """Return a :class:`~prospect_sbi.fitting.DrawParts` for this fit's draws, or None."""
        if out is None:
            return None
        from .draws import DrawParts

        model = None if model is None or model is False else model
        attrs = {"n_draws": self.draws, "seed": self.seed, "refine": self.refine}
        return DrawParts(out, folder, self.post, model, attrs)

    @property
    def meta(self) -> dict[str, Any]:
        return {
            "estimator_model_hash": self.post.model_hash,
            "n_draws": self.draws,
            "seed": self.seed,
            "refine": self.refine,
            "ppc": "chi2 of the posterior-median photometry"
            if self.check is not None
            else "skipped",
            # what the fluxes were multiplied by, band=factor (a string: FITS headers too)
            "zeropoints": "none"
            if self.zeropoints is None
            else self.zeropoints.describe(self.post.filters),
            # how the photo-z step drew (none: no photo-z step)
            "photoz_refine": self.photoz_refine if self.zcols else "none",
        }


def fit_catalog(
    estimator: AmortizedPosterior | str | os.PathLike,
    catalog: Catalog,
    draws: int = 1000,
    seed: int = 0,
    chunk_size: int = 1024,
    *,
    model: Any = None,
    sps: Any = None,
    progress: bool = True,
    refine: str = "auto",
    likelihood: str = "flux",
    draws_file: str | os.PathLike | None = None,
    zred: Any = None,
    photoz: Any = None,
    n_zred: int = 20,
    zeropoints: Any = None,
    photoz_refine: str = "auto",
    client: Any = None,
) -> Table:
    """Posterior summaries of every catalogue row, with flags and a predictive check.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator, its file or a pretrained name
        (:meth:`~prospect_sbi.posterior.AmortizedPosterior.resolve`).
    catalog : Catalog
        In the estimator's band order (:func:`prospect_sbi.read_catalog`), maggies.
    draws : int
        Posterior draws per object.
    seed : int
        Chunk ``c`` starting at row ``r`` draws with seed ``seed + r``
        (:func:`~prospect_sbi._io.row_seed`).
    chunk_size : int
        Rows per chunk (memory: ``chunk_size * draws * D`` floats).
    model : prospect.models.SpecModel or False, optional
        For the predictive check: default the estimator's own (:meth:`~AmortizedPosterior.model`);
        ``False`` skips it (no ``chi2_red``/``ood`` columns).
    sps : object, optional
        Its SPS source, also the forward model of the refinement; default a
        ``BC03MilesBasis``.
    progress : bool
        Show a progress bar over the chunks.
    refine : {"auto", "always", "never"}
        :meth:`AmortizedPosterior.summarize`'s: replace the amortised draws by the exact
        posterior for the objects that need it (default: bright ones, and those the flow's
        draws fit badly), for all or for none.
    likelihood : {"flux", "noise"}
        Likelihood of the refinement (``"flux"`` for real catalogues).
    draws_file : path-like, optional
        Also keep every object's draws in this HDF5 file (``.h5``): the free parameters in
        the model's theta order and the derived quantities, the draws behind the
        summaries (:mod:`prospect_sbi.fitting.draws`; read it with
        :func:`~prospect_sbi.fitting.read_catalog_draws`). Written atomically, replacing it.
    zred : float, mapping, path-like or "infer", optional
        The redshifts instead of the catalogue's column (:func:`~prospect_sbi.fitting.zred_given`:
        one for every row, or catalogue id -> redshift), or ``"infer"``: each object's
        photo-z posterior (``photoz``, 1000 draws of its photometry), then its parameters by
        this estimator at ``n_zred`` redshifts of it (its quantiles; ``draws / n_zred``
        draws each), so the summaries are marginalised over the redshift, and ``zred`` is
        the photo-z median. (A photo-z estimator's own joint posterior is ``fit_catalog``
        with it as ``estimator``; this two-step fit keeps the known-redshift estimator's
        parameters, checks and refinement, as the maps do.) The predictive check is that
        of the median redshift's draws. Redshifts beyond this estimator's range are fitted at
        its edge, flagged ``zphot_clipped``.
    photoz : AmortizedPosterior, path-like or str, optional
        Photometric-redshift estimator (default the pretrained ``<estimator>-photoz``); with
        given redshifts it checks them: a row whose photometry rules its redshift out
        (outside 99.7% of the photo-z posterior) is flagged ``zred_ruled_out`` (and warned).
    n_zred : int
        Redshifts per object with ``zred="infer"``.
    zeropoints : ZeroPoints or path-like, optional
        Per-band corrections (:func:`~prospect_sbi.fitting.calibrate_zeropoints`, or a file of
        :meth:`ZeroPoints.save`) that multiply the catalogue's fluxes and errors before
        anything else; recorded in the table's ``meta["zeropoints"]`` (``none`` without).
    photoz_refine : {"auto", "always", "never"}
        How the photo-z posteriors of ``"infer"`` and ``photoz`` are drawn
        (:func:`~prospect_sbi.fitting.redshift_posterior`): by default the exact posterior
        where the flow's draws need it (integrated photometry: nearly every row, ~0.25 s
        each; on the 99 JADES spec-z galaxies with zero points, sigma_NMAD 0.035 and 8%
        outliers, against 0.062 and 17% for the flow alone, ``"never"``); column
        ``zphot_exact``, ``meta["photoz_refine"]``; rows whose exact photo-z draws are not
        vouched for (ESS or k-hat) are flagged ``zphot_unconverged``.
    client : dask.distributed.Client, concurrent.futures.Executor or int, optional
        Where the chunks (the photo-z step's and the table's) run: in this process (None),
        on the client's workers, or in that many local processes
        (:func:`~prospect_sbi._io.run_ordered`; one torch thread each). Each chunk has its
        own seed, so the rows are those of one process: bit for bit when BLAS runs one
        thread on both sides, else to float rounding, which the exact posterior's
        resampling turns into Monte Carlo-sized differences (``docs/scaling.md``).

    Returns
    -------
    astropy.table.Table
        One row per catalogue row, in order: ``id``, ``zred``, ``flag`` (``ok`` or the
        reasons, ``;``-joined: :data:`FIT_FLAGS`, the input flags of
        :data:`~prospect_sbi.posterior.plausibility.FLAG_REASONS`, ``mass_at_prior_max``,
        ``khat``...), ``n_bands`` (bands used), ``<label>_p50/_p16/_p84/_mean/_std``,
        ``chi2_red``, ``ood``, and unless ``refine="never"`` ``refined``, ``ess``, ``khat``,
        ``logz``, ``khat_flag``, ``ess_flag``, ``is_draws``; with ``photoz`` or ``"infer"`` also
        ``zphot_p16/p50/p84``, ``zphot_nmodes`` and ``zphot_exact`` (flags
        ``zphot_multimodal``, ``zphot_unconverged``, ``zred_ruled_out``).

    Raises
    ------
    ValueError
        Observations the estimator refuses (:func:`check_catalog`), a missing redshift column.

    Warns
    -----
    ObservationWarning
        Once per reason over the whole catalogue.
    """
    from tqdm.auto import tqdm

    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    job = _CatalogFit(
        post,
        catalog,
        draws,
        seed,
        model,
        sps,
        refine,
        likelihood,
        zred,
        photoz,
        n_zred,
        estimator,
        zeropoints,
        photoz_refine,
        progress=progress,
        client=client,
    )
    slices = chunk_slices(len(job.flag), chunk_size)
    keep = None
    if draws_file is not None:
        path = Path(draws_file)
        keep = job.draw_parts(path, path.with_name(f".{path.name}.parts"), model)
    said: list[tuple[str, str]] = []
    try:
        chunks = _fitted(job, slices, range(len(slices)), keep, client, said)
        bar = tqdm(chunks, total=len(slices), unit="chunk", disable=not progress)
        tables = [table for _, table in bar]
        if keep is not None:
            keep.assemble(len(slices))
    finally:
        if keep is not None:
            keep.remove()
    say(said, stacklevel=2)
    result = vstack(tables, metadata_conflicts="silent")
    result.meta.update(job.meta)
    warn_prior_edge(count_flags(result["flag"]), len(result))
    _warn_unconverged([result])
    return result


def _warn_unconverged(tables: list[Table]) -> None:
    """One RefinementWarning for a whole catalogue fit, from its tables' refined rows.

    Each chunk's ``summarize`` warns none: one per chunk would give partial counts, and of
    the B x K rows of a photo-z marginalised fit rather than of its objects.
    """
    done = [t for t in tables if "refined" in t.colnames]
    if done:
        refined, khat, ess = (
            np.concatenate([np.asarray(t[c], bool) for t in done])
            for c in ("refined", "khat_flag", "ess_flag")
        )
        warn_unconverged(khat, ess, stacklevel=4, refined=refined)


def write_catalog_fit(
    estimator: AmortizedPosterior | str | os.PathLike,
    catalog: Catalog,
    out: str | os.PathLike,
    fingerprint: dict[str, Any],
    draws: int = 1000,
    seed: int = 0,
    chunk_size: int = 1024,
    **options: Any,
) -> dict[str, int]:
    """:func:`fit_catalog` to a file, resumable, with memory flat in the number of rows.

    Each chunk is kept in ``<out>.parts/`` as it finishes
    (:class:`~prospect_sbi.tables.TableParts`); a rerun with the same ``fingerprint`` computes
    only the chunks not done, one with another is refused naming what changed; the parts are
    then assembled into ``out`` (ECSV for ``.ecsv``, FITS otherwise) a part at a time,
    written atomically, and removed.

    Parameters
    ----------
    out : path-like
        Output table.
    fingerprint : dict
        Every input and option that changes a row (files, units, columns, error floor, draws,
        seed, chunk size, predictive check); ``chunk_size`` is added to it.
    estimator, catalog, draws, seed, chunk_size
        As in :func:`fit_catalog`.
    **options
        The keyword-only options of :func:`fit_catalog` (``model``, ``sps``, ``progress``,
        ``refine``, ``likelihood``, ``draws_file``, ``client``, ...), with its defaults. With
        ``draws_file`` each chunk's draws are kept in the parts folder with its table part
        (written first), so a resumed fit keeps them too; a chunk done by a run without
        ``draws_file`` is fitted again (the same seed gives the same rows). The file is
        assembled before the table. With ``client``, the chunks run on its workers and
        their parts are written here as they come back, in order.

    Raises
    ------
    TypeError
        An option :func:`fit_catalog` does not take.

    Returns
    -------
    dict of str -> int
        Rows per flag reason (``ok`` for rows without one), ``rows`` and ``refined``.
    """
    from tqdm.auto import tqdm

    from ..posterior import AmortizedPosterior

    opts = {
        k: p.default
        for k, p in inspect.signature(fit_catalog).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(options) - set(opts))
    if unknown:
        raise TypeError(f"write_catalog_fit() got an unexpected keyword argument {unknown[0]!r}")
    opts.update(options)
    post = AmortizedPosterior.resolve(estimator)
    slices = chunk_slices(len(catalog.flux), chunk_size)  # checks chunk_size before any file
    # parts with other refinement columns (another version's) cannot be assembled with these
    columns = resume_columns(check_refine(opts["refine"]))
    infer = isinstance(opts["zred"], str) and opts["zred"] == "infer"
    if infer or opts["photoz"] is not None:  # the photo-z step's flags (parts before them)
        columns["photoz_flags"] = [f for f in FIT_FLAGS if f.startswith("zphot_")]
    parts = TableParts(out, dict(fingerprint, chunk_size=int(chunk_size), **columns))
    try:
        job = _CatalogFit(
            post,
            catalog,
            draws,
            seed,
            opts["model"],
            opts["sps"],
            opts["refine"],
            opts["likelihood"],
            opts["zred"],
            opts["photoz"],
            opts["n_zred"],
            estimator,
            opts["zeropoints"],
            opts["photoz_refine"],
            parts.folder,  # the photo-z chunks too: a killed fit does not draw them again
            opts["progress"],
            opts["client"],
        )
    except Exception:
        if [f.name for f in parts.folder.iterdir()] == ["manifest.json"]:
            parts.store.remove()  # refused inputs leave no run to resume
        raise
    keep = job.draw_parts(opts["draws_file"], parts.folder, opts["model"])
    todo = {
        c for c in range(len(slices)) if c not in parts or (keep is not None and c not in keep)
    }
    said: list[tuple[str, str]] = []
    computed = _fitted(job, slices, sorted(todo), keep, opts["client"], said)
    counts: dict[str, int] = {}
    flagged: list[Table] = []  # the refinement columns of every part: its count and warning
    for c in tqdm(
        range(len(slices)), desc=os.fspath(out), unit="chunk", disable=not opts["progress"]
    ):
        if c in todo:
            parts.write(c, next(computed)[1])
        part = parts.read(c)
        if "refined" in part.colnames:
            flagged.append(part["refined", "khat_flag", "ess_flag"])
        flags = np.asarray(part["flag"], dtype=object)
        counts["ok"] = counts.get("ok", 0) + int(np.sum(flags == "ok"))
        for reason, k in count_flags(flags).items():
            counts[reason] = counts.get(reason, 0) + k
    say(said, stacklevel=2)
    if keep is not None:
        keep.assemble(len(slices))
    rows = parts.assemble(len(slices), job.meta)
    refined = sum(int(np.sum(t["refined"])) for t in flagged)
    warn_prior_edge(counts, rows)
    _warn_unconverged(flagged)
    return dict(counts, rows=rows, refined=refined)
