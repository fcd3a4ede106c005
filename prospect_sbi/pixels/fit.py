"""Fit every selected pixel with an amortised posterior: bounded-memory chunks, optional dask.

Pixels are cut into chunks of ``chunk_size`` in row-major order. Chunk ``c`` draws with the
torch seed of ``SeedSequence(seed, spawn_key=(c,))`` only, so the result does not depend on
where or in which order the chunks ran: serial and dask runs with the same seed agree.
Only summaries leave a chunk (quantiles per label, the predictive check, and per segment the
sum of the pixels' stellar-mass draws), so memory is bounded by ``chunk_size * n_draws * D``
floats per worker, plus a few tens of bytes per pixel for the summaries. With ``parts``, each
finished chunk's summaries are kept on disk (:class:`~prospect_sbi._io.ChunkStore`), so a
killed fit resumes with the chunks it lacks and ends with the result of an uninterrupted one.
"""

from __future__ import annotations

__all__ = ["N_ZRED_DRAWS", "PixelFit", "fit_pixels"]

import hashlib
import os
import threading
import uuid
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table
from tqdm.auto import tqdm

from .._io import (
    ChunkStore,
    check_sendable,
    chunk_seed,
    chunk_slices,
    hash_arrays,
    run_ordered,
    set_torch_threads,
)
from .._steps import category_name, from_text, record, say, to_text
from ..fitting.redshift import (
    ZRED_RULED_OUT,
    RedshiftPosterior,
    marginal_draws,
    median_redshift_draws,
    summed_photometry,
    zred_given,
)
from ..numeric import check_count
from ..posterior.refine import (
    DIAGNOSTICS,
    RefinementWarning,
    check_refine,
    resume_columns,
    warn_unconverged,
)
from ..ppc import check_model
from .images import PixelImages
from .select import select_pixels

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: Quantiles kept per pixel and label, in this order along the last axis.
QUANTILES = (16, 50, 84)


@dataclass
class PixelFit:
    """Posterior summaries of B pixels of one (ny, nx) grid.

    Attributes
    ----------
    labels : list of str
        The estimator's labels (D).
    shape : (int, int)
        (ny, nx) of the images.
    index : numpy.ndarray, int, (B, 2)
        (y, x) of each pixel.
    quantiles : numpy.ndarray, float32, (B, D, 3)
        16th, 50th and 84th percentiles of each label.
    zred : numpy.ndarray, (B,) or None
        Redshift given for each pixel (None when the estimator infers it); with
        ``zred="infer"`` the median of its galaxy's redshift posterior.
    groups : numpy.ndarray, int, (B,)
        Segment of each pixel (0 without a segmentation map).
    mass_draws : dict of int -> numpy.ndarray (n,)
        Per segment, draws of the summed surviving stellar mass of its pixels (Msun): draw k
        is the sum over pixels of each pixel's draw k (pixels are independent).
    chi2_red, ood : numpy.ndarray (B,) or None
        Predictive check (:class:`~prospect_sbi.ppc.PredictiveCheck`); None without a model.
    n_valid : numpy.ndarray, int, (B,)
        Bands with data.
    refinement : dict of numpy.ndarray (B,) or None
        With ``refine`` other than ``"never"``: per pixel ``refined`` (bool), ``ess``, ``khat``,
        ``logz``, ``khat_flag``, ``ess_flag`` and ``is_draws``
        (:class:`~prospect_sbi.posterior.refine.RefinedDraws`).
    meta : dict
        Settings and the estimator's provenance.
    resumed_chunks : int
        Chunks read back from ``parts`` rather than fitted (:func:`fit_pixels`).
    redshift : dict of int -> RedshiftPosterior
        Per segment, the galaxy's redshift posterior from its integrated photometry (with
        ``zred="infer"``, or a given redshift checked with ``photoz=``); empty otherwise.
    zred_ruled_out : dict of int -> bool
        Per segment with a given redshift checked by ``photoz=``: whether the photometry
        rules it out (outside the central 99.7% of the photo-z posterior).
    """

    labels: list[str]
    shape: tuple[int, int]
    index: np.ndarray
    quantiles: np.ndarray
    zred: np.ndarray | None
    groups: np.ndarray
    mass_draws: dict[int, np.ndarray]
    chi2_red: np.ndarray | None
    ood: np.ndarray | None
    n_valid: np.ndarray
    refinement: dict[str, np.ndarray] | None = None
    meta: dict = field(default_factory=dict)
    resumed_chunks: int = 0
    redshift: dict[int, RedshiftPosterior] = field(default_factory=dict)
    zred_ruled_out: dict[int, bool] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.index)

    def values(self, label: str, q: int = 50) -> np.ndarray:
        """Percentile ``q`` (16, 50 or 84) of ``label`` for every pixel, (B,)."""
        if label not in self.labels:
            raise ValueError(f"no label {label!r}; the estimator's are {self.labels}")
        if q not in QUANTILES:
            raise ValueError(f"q={q}; use one of {QUANTILES}")
        return self.quantiles[:, self.labels.index(label), QUANTILES.index(q)]

    def image(self, values: np.ndarray, fill: float = np.nan) -> np.ndarray:
        """Put per-pixel values (B,) on the (ny, nx) grid, ``fill`` elsewhere."""
        out = np.full(self.shape, fill, dtype=np.result_type(values, np.float32))
        out[self.index[:, 0], self.index[:, 1]] = values
        return out

    def table(self) -> Table:
        """One row per pixel: y, x, segment, zred, ``<label>_p16/p50/p84``, chi2_red, ood.

        With refinement also ``refined``, ``ess``, ``khat``, ``logz``, ``khat_flag``,
        ``ess_flag`` and ``is_draws``.
        """
        cols: dict[str, Any] = {
            "y": self.index[:, 0],
            "x": self.index[:, 1],
            "segment": self.groups,
        }
        if self.zred is not None:
            cols["zred"] = self.zred
        for j, label in enumerate(self.labels):
            for k, q in enumerate(QUANTILES):
                cols[f"{label}_p{q}"] = self.quantiles[:, j, k]
        cols["n_bands"] = self.n_valid
        if self.chi2_red is not None:
            cols["chi2_red"], cols["ood"] = self.chi2_red, self.ood
        cols.update(self.refinement or {})
        if self.zred_ruled_out:
            cols[ZRED_RULED_OUT] = np.array(
                [self.zred_ruled_out.get(int(g), False) for g in self.groups]
            )
        if self.redshift:  # each pixel carries its galaxy's photo-z summary (FITS-safe columns)
            summaries = {int(g): zp.summary() for g, zp in self.redshift.items()}
            for key in (
                "zphot_p16",
                "zphot_p50",
                "zphot_p84",
                "zphot_nmodes",
                "zphot_exact",
                "zphot_unconverged",
            ):
                cols[key] = np.array(
                    [summaries.get(int(g), {}).get(key, np.nan) for g in self.groups]
                )
        meta = {k.upper()[:8]: v for k, v in self.meta.items() if k != "ppc"}
        return Table(cols, meta=meta)


@dataclass
class _Job:
    """What a worker needs for any chunk (sent once per worker)."""

    post: Any
    model: Any
    sps: Any
    n_draws: int
    seed: int
    token: str
    p_value: float
    torch_threads: int | None
    refine: str = "never"
    likelihood: str = "flux"


_LOCAL = threading.local()  # per worker thread: the last PredictiveCheck and its photometry


def _checker(job: _Job) -> Any:
    """Return the predictive check of ``job``, built once per thread and fit."""
    if job.model is None:
        return None
    from ..forward import ModelPhotometry
    from ..ppc import PredictiveCheck

    if getattr(_LOCAL, "token", None) != job.token:
        # The photometry tables take seconds to build: keep them across fits of one model.
        key = (job.post.model_hash, tuple(job.post.filters), type(job.sps).__name__)
        if getattr(_LOCAL, "key", None) != key:
            _LOCAL.key = key
            _LOCAL.photometry = ModelPhotometry(job.model, job.sps, job.post.filters)
        _LOCAL.check = PredictiveCheck(
            job.post, job.model, job.sps, job.p_value, photometry=_LOCAL.photometry
        )

        _LOCAL.token = job.token
    return _LOCAL.check


def _fit_chunk(
    job: _Job, c: int, flux: np.ndarray, err: np.ndarray, zred: Any, groups: np.ndarray
) -> dict:
    """Summaries of one chunk of pixels (b, F), with its warnings as ``(category, message)``."""
    with record() as said:
        out = _chunk_summaries(job, c, flux, err, zred, groups)
    out["warnings"] = said
    return out


def _chunk_summaries(
    job: _Job, c: int, flux: np.ndarray, err: np.ndarray, zred: Any, groups: np.ndarray
) -> dict:
    set_torch_threads(job.torch_threads)
    post = job.post
    options = {
        "seed": chunk_seed(job.seed, c),
        "refine": job.refine,
        "sps": job.sps,
        "likelihood": job.likelihood,
    }
    marginal = zred is not None and np.ndim(zred) == 2
    if marginal:  # pixels x K redshifts of their galaxy's posterior, as rows of one call
        draws, diag = marginal_draws(post, flux, err, zred, job.n_draws, **options)
    else:
        draws = post.sample(flux, err, job.n_draws, zred=zred, **options)
    out = {
        "quantiles": np.percentile(draws, QUANTILES, axis=1).transpose(1, 2, 0).astype(np.float32)
    }
    mass = 10.0 ** draws[..., post.labels.index("log_mstar")].astype(np.float64)  # (b, n)
    ids, inverse = np.unique(groups, return_inverse=True)
    sums = np.zeros((len(ids), job.n_draws))
    np.add.at(sums, inverse, mass)
    out["mass"] = dict(zip(ids.tolist(), sums, strict=True))
    check = _checker(job)
    if check is not None:
        if marginal:  # at the galaxy's median redshift draw: the block of the middle quantile
            out["chi2_red"], out["ood"] = check(flux, err, *median_redshift_draws(draws, zred))
        else:
            out["chi2_red"], out["ood"] = check(flux, err, zred, draws)
    if job.refine != "never":
        out["refinement"] = (
            diag if marginal else {k: np.asarray(getattr(draws, k)) for k in DIAGNOSTICS}
        )
    return out


def _chunk_arrays(res: dict) -> dict[str, np.ndarray]:
    """Return the summaries of one chunk as plain arrays for an ``.npz`` (nothing pickled)."""
    arrays = {
        "quantiles": res["quantiles"],
        "mass_ids": np.array(list(res["mass"]), np.int64),
        "mass_sums": np.stack(list(res["mass"].values())),
    }
    if "chi2_red" in res:
        arrays |= {"chi2_red": np.asarray(res["chi2_red"]), "ood": np.asarray(res["ood"])}
    arrays |= {f"refinement.{k}": np.asarray(v) for k, v in res.get("refinement", {}).items()}
    said = res.get("warnings", [])
    arrays["warnings"] = np.array(to_text(said), dtype=str)
    return arrays


def _from_arrays(res: dict) -> dict:
    """Inverse of :func:`_chunk_arrays` (what :meth:`ChunkStore.load` read of a chunk)."""
    res["mass"] = dict(zip(res.pop("mass_ids").tolist(), res.pop("mass_sums"), strict=True))
    res["warnings"] = from_text(res.pop("warnings", []))
    refined = [k for k in res if k.startswith("refinement.")]
    if refined:
        res["refinement"] = {k.split(".", 1)[1]: res.pop(k) for k in refined}
    return res


def _fingerprint(job: _Job, pieces: list, sps: Any, size: int) -> dict:
    """Describe what a chunk's result depends on: estimator, pixels, options."""
    h = hashlib.sha256()
    for _, arrays in pieces:
        hash_arrays(h, arrays)
    return {
        "estimator": job.post.digest(),
        "pixels": h.hexdigest(),
        "n_draws": job.n_draws,
        "seed": job.seed,
        "chunk_size": size,
        "p_value": job.p_value,
        "check": None if job.model is None else type(sps).__name__,
        "refine": job.refine,
        "likelihood": job.likelihood,
        **resume_columns(job.refine),  # a kept chunk of other diagnostics: not mixed in
    }


def _pixel_zred(images: PixelImages, mask: np.ndarray, known: bool) -> np.ndarray | None:
    if not known:
        return None
    if images.zred is None:
        raise ValueError(
            "this estimator is conditioned on the redshift: give the images a "
            "zred (a float or a (ny, nx) map)"
        )
    z = np.asarray(images.zred, dtype=float)
    if z.ndim == 0:
        return np.full(int(mask.sum()), float(z))
    if z.shape != mask.shape:
        raise ValueError(f"zred map has shape {z.shape}; the images are {mask.shape}")
    return z[mask]


def fit_pixels(
    estimator: AmortizedPosterior | str | os.PathLike,
    images: PixelImages,
    mask: np.ndarray | None = None,
    *,
    n_draws: int = 200,
    model: Any = None,
    sps: Any = None,
    seed: int = 0,
    chunk_size: int = 1024,
    client: Any = None,
    p_value: float = 1e-3,
    torch_threads: int | None = None,
    progress: bool = True,
    parts: str | os.PathLike | None = None,
    refine: str = "never",
    likelihood: str = "flux",
    zred: Any = None,
    photoz: Any = None,
    n_zred: int = 20,
    photoz_refine: str = "auto",
) -> PixelFit:
    """Fit every selected pixel with an amortised posterior.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator, its file or a pretrained name
        (:meth:`~prospect_sbi.posterior.AmortizedPosterior.resolve`); its bands must be those
        of ``images`` (any order).
    images : PixelImages
        Fluxes and errors in maggies (:func:`load_fits`, :func:`load_cube`).
    mask : numpy.ndarray, bool, (ny, nx), optional
        Pixels to fit; default :func:`select_pixels` with its defaults.
    n_draws : int
        Posterior draws per pixel behind each summary.
    model : prospect.models.SpecModel or False, optional
        The estimator's Prospector model, for the predictive check (chi-square and OOD
        flag); default :meth:`AmortizedPosterior.model` (rebuilt from the estimator file).
        ``False`` skips the check (as does a model that cannot be rebuilt, with a warning).
    sps : object, optional
        Its SPS source; default a new ``BC03MilesBasis``.
    seed : int
        Same seed, same result, serial or distributed.
    chunk_size : int
        Pixels per chunk (bounds memory at ``chunk_size * n_draws * D`` floats per worker).
    client : dask.distributed.Client or concurrent.futures.Executor, optional
        Run the chunks on its workers (on dask the estimator, model and SPS are sent once;
        :func:`~prospect_sbi._io.run_ordered`).
    p_value : float
        False-alarm probability of the OOD flag (see :class:`~prospect_sbi.ppc.PredictiveCheck`).
    torch_threads : int, optional
        ``torch.set_num_threads`` in each worker (e.g. 1 on a dask cluster of one thread per
        core); left alone when None.
    progress : bool
        Show a progress bar (pixels/s).
    parts : path-like, optional
        Folder that keeps each finished chunk (:class:`~prospect_sbi._io.ChunkStore`): a
        rerun with the same estimator, pixels and options fits only the chunks it lacks, and
        returns what an uninterrupted fit returns. Remove it once the outputs are written
        (:func:`~prospect_sbi.pixels.map_galaxy` does). A folder of another fit is refused.
    refine : {"never", "always", "auto"}
        Replace the draws of every pixel, of those that need it (bright ones, and those the
        flow's draws fit badly) or of none by the exact posterior (importance sampling with
        the likelihood, ``AmortizedPosterior.sample(..., refine=...)``), with ``sps`` (default
        a shared ``BC03MilesBasis``); per-pixel diagnostics in :attr:`PixelFit.refinement`.
    likelihood : {"flux", "noise"}
        Likelihood of the refinement (:class:`~prospect_sbi.noise.NoiseLikelihood`).
    zred : float, mapping, table, path-like or "infer", optional
        The redshift (:func:`~prospect_sbi.fitting.zred_given`): one number, segment id ->
        redshift, or ``"infer"``: each segment's redshift posterior from the integrated
        photometry of its selected pixels (fluxes summed, errors in quadrature; 1000 draws of
        ``photoz``), every pixel then fitted at ``n_zred`` redshifts of it (its quantiles)
        with ``n_draws / n_zred`` draws each, so its summaries are marginalised over the
        galaxy's redshift; the predictive check is that of the median redshift's draws.
        Default ``images.zred``.
    photoz : AmortizedPosterior, path-like or str, optional
        Photometric-redshift estimator (``redshift="infer"``, the estimator's bands); default
        the pretrained ``<estimator>-photoz``. With a given redshift it checks it: a segment
        whose photometry rules it out gets :attr:`PixelFit.zred_ruled_out` and a warning.
    n_zred : int
        Redshifts per galaxy with ``zred="infer"``; ``n_draws`` must be a multiple of it.
    photoz_refine : {"auto", "always", "never"}
        How each segment's redshift posterior is drawn
        (:func:`~prospect_sbi.fitting.zred_given`): by default the exact posterior where the
        flow's draws need it (a segment's summed photometry is bright: nearly always, ~0.25 s
        a segment), with ``sps``.

    Returns
    -------
    PixelFit

    Raises
    ------
    ValueError
        Bands that differ from the estimator's, a mask of the wrong shape or selecting
        nothing, a missing redshift, a model that differs from the estimator's,
        ``chunk_size`` or ``n_draws`` not an integer >= 1, ``parts`` of another fit, an
        unknown ``refine``; a ``zred`` :func:`~prospect_sbi.fitting.zred_given` refuses, a
        segment missing from a redshift table, ``zred`` for an estimator that infers it, no
        photo-z estimator for ``"infer"``; a ``client`` with an SPS source that does not
        pickle (python-fsps).

    Warns
    -----
    UserWarning
        A given redshift the photometry rules out (``photoz=``), a multi-modal galaxy
        redshift posterior (``zred="infer"``).
    """
    chunk_size = check_count("chunk_size", chunk_size)
    n_draws = check_count("n_draws", n_draws)
    check_refine(refine)
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    images = images.matched(post.filters)
    mask = select_pixels(images) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != images.shape:
        raise ValueError(f"mask has shape {mask.shape}; the images are {images.shape}")
    empty = np.all(np.isnan(images.flux), axis=0) & mask
    if empty.any():
        warnings.warn(
            f"{int(empty.sum())} selected pixels have no valid band; skipped",
            UserWarning,
            stacklevel=2,
        )
        mask = mask & ~empty
    if not mask.any():
        raise ValueError("no pixel selected: lower snr_min or check the segment")
    model, sps = check_model(post, model, sps)
    check_sendable(sps, client)
    flux, err = images.pixels(mask)
    groups = images.segmap[mask] if images.segmap is not None else np.zeros(len(flux), int)
    given = None
    if zred is not None or photoz is not None:
        if post.redshift != "known":
            raise ValueError(
                "this estimator infers the redshift (redshift='infer'): zred= and photoz= "
                "are for estimators conditioned on it"
            )
        given = zred_given(
            images.zred if zred is None else zred,
            estimator,
            photoz,
            n_zred=n_zred,
            photoz_refine=photoz_refine,
        )
    if given is None:
        zred = _pixel_zred(images, mask, post.redshift == "known")
        posteriors, ruled, zpix = {}, {}, zred
    else:
        zred, posteriors, ruled, zpix = _given_zred(given, flux, err, groups, n_draws, seed, sps)
    job = _Job(
        post,
        model,
        sps,
        n_draws,
        int(seed),
        uuid.uuid4().hex,
        float(p_value),
        torch_threads,
        refine,
        likelihood,
    )
    n, size = len(flux), chunk_size
    pieces = [
        (c, (flux[rows], err[rows], None if zpix is None else zpix[rows], groups[rows]))
        for c, rows in enumerate(chunk_slices(n, size))
    ]
    store = (
        None if parts is None else ChunkStore(parts, _fingerprint(job, pieces, sps, size), ".npz")
    )
    kept = {c for c, _ in pieces if store is not None and c in store}
    computed = run_ordered(
        _fit_chunk, ((c, (c, *args)) for c, args in pieces if c not in kept), client, shared=(job,)
    )
    quantiles = np.empty((n, len(post.labels), len(QUANTILES)), dtype=np.float32)
    chi2 = np.full(n, np.nan) if model is not None else None
    ood = np.zeros(n, bool) if model is not None else None
    refinement = (
        None
        if refine == "never"
        else {
            k: np.zeros(n, t) if t is bool else np.full(n, np.nan) for k, t in DIAGNOSTICS.items()
        }
    )
    mass: dict[int, np.ndarray] = {}
    said: list[tuple[str, str]] = []
    done = sum(len(pieces[c][1][0]) for c in kept)
    bar = tqdm(
        total=n, initial=done, unit="pix", unit_scale=True, desc="fit pixels", disable=not progress
    )
    try:
        for c, _ in pieces:
            rows = slice(c * size, min((c + 1) * size, n))
            if c in kept:
                res = store.load(c, _from_arrays)
            else:
                res = next(computed)[1]
                if store is not None:
                    store.save(c, **_chunk_arrays(res))
                bar.update(rows.stop - rows.start)
            quantiles[rows] = res["quantiles"]
            if chi2 is not None:
                chi2[rows], ood[rows] = res["chi2_red"], res["ood"]
            for key, values in res.get("refinement", {}).items():
                refinement[key][rows] = values
            for g, s in res["mass"].items():
                mass[g] = mass[g] + s if g in mass else s
            said.extend(res.get("warnings", []))
    finally:
        bar.close()
        computed.close()
    # once per fit, counts added over the chunks (and from dask workers); the refinement's
    # from every pixel's flags, kept chunks' too (its per-chunk messages do not merge)
    said = [w for w in said if w[0] != category_name(RefinementWarning)]
    say(said)
    if refinement is not None:
        r = refinement
        warn_unconverged(r["khat_flag"], r["ess_flag"], refined=r["refined"])
    meta = {
        "n_draws": n_draws,
        "seed": int(seed),
        "model_hash": post.model_hash,
        "redshift": post.redshift,
        "n_pixels": int(n),
        "refine": refine,
        "ppc": "chi2 of the posterior-median photometry" if model is not None else "skipped",
    }
    if given is not None:
        meta["zred_given"] = given.kind
        if given.photoz is not None:
            meta["photoz"] = given.photoz_label
            meta["n_zred"] = given.n_zred if given.kind == "infer" else 1
    return PixelFit(
        list(post.labels),
        images.shape,
        np.argwhere(mask),
        quantiles,
        zred,
        groups,
        mass,
        chi2,
        ood,
        np.isfinite(flux).sum(1),
        refinement,
        meta,
        len(kept),
        posteriors,
        ruled,
    )


#: Draws of a galaxy's redshift posterior (its integrated photometry through the photo-z
#: estimator).
N_ZRED_DRAWS = 1000


def _given_zred(
    given: Any,
    flux: np.ndarray,
    err: np.ndarray,
    groups: np.ndarray,
    n_draws: int,
    seed: int,
    sps: Any,
) -> tuple[np.ndarray, dict, dict, np.ndarray]:
    """Per-pixel z (B,), per-segment posteriors and checks, and the fit's z (B,) or (B, K)."""
    ids = np.unique(groups).tolist()
    posteriors: dict[int, RedshiftPosterior] = {}
    if given.photoz is not None:
        with record() as now:  # said once for all the segments, counts added
            with warnings.catch_warnings():  # counted over the segments below
                warnings.simplefilter("ignore", RefinementWarning)
                for g in ids:
                    sel = groups == g
                    total, sigma = summed_photometry(flux[sel], err[sel], given.err_floor)
                    posteriors[g] = given.posterior(total, sigma, N_ZRED_DRAWS, seed=seed, sps=sps)
            zps = list(posteriors.values())
            warn_unconverged(
                [p.khat_flag for p in zps],
                [p.ess_flag for p in zps],
                refined=[p.exact for p in zps],
            )
        say(now, "photo-z", stacklevel=3)
    ruled: dict[int, bool] = {}
    if given.kind == "infer":
        k = given.n_zred
        if n_draws % k:
            raise ValueError(
                f"n_draws ({n_draws}) must be a multiple of n_zred ({k}) with zred='infer'"
            )
        zpix = np.empty((len(flux), k))
        zred = np.empty(len(flux))
        for g in ids:
            zpix[groups == g] = posteriors[g].grid(k)
            zred[groups == g] = posteriors[g].median
            if posteriors[g].multimodal:
                modes = ", ".join(f"{m:.2f}" for m in posteriors[g].modes)
                warnings.warn(
                    f"segment {g}: its redshift posterior has {len(posteriors[g].modes)} modes "
                    f"(z = {modes}); the maps are marginalised over them",
                    UserWarning,
                    stacklevel=3,
                )
        return zred, posteriors, ruled, zpix
    zseg = {g: given.of(g) for g in ids}
    missing = [g for g in ids if not np.isfinite(zseg[g])]
    if missing:
        raise ValueError(f"segment {missing[0]} has no usable redshift in the redshift table")
    zred = np.array([zseg[g] for g in groups.tolist()], dtype=float)
    for g, zp in posteriors.items():
        ruled[g] = bool(zp.ruled_out(zseg[g]))
        if ruled[g]:
            lo, hi = zp.interval()
            warnings.warn(
                f"segment {g}: z = {zseg[g]:g} is ruled out by its photometry (photo-z "
                f"{zp.median:.2f}, 99.7% in {lo:.2f}-{hi:.2f}); flagged {ZRED_RULED_OUT}",
                UserWarning,
                stacklevel=3,
            )
    return zred, posteriors, ruled, zred
