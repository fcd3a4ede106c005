"""Training sets: draws from a Prospector model's priors and their noiseless photometry.

The work is cut into chunks of ``chunk_rows`` draws. Chunk ``c`` takes its random numbers
from ``SeedSequence(seed, spawn_key=(c,))`` only, so its content does not depend on which
worker computed it, in what order, or how many restarts it took. Each finished chunk is written
atomically (temporary file + rename) into ``<path>.parts/``; when all chunks exist they are
assembled, again through a temporary file, into the final HDF5 file, and the parts are removed.
Killing the job at any moment loses at most the chunks in flight; rerunning the same call
finishes the rest, and removes the temporary files a killed writer left.
"""

from __future__ import annotations

__all__ = ["simulate", "SIMULATION_METHODS"]

import json
import os
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
from tqdm.auto import tqdm

from ._io import ChunkStore, atomic_path, chunk_sequence, parts_folder, run_ordered
from .constants import LYMAN_ALPHA
from .cosmology import age_of_universe
from .derived import DERIVED, STEP_DERIVED, derived_quantities
from .filters import resolve_band_names
from .forward import fast_refusal, predict_each
from .numeric import check_count
from .provenance import model_difference, model_hash, model_spec, versions
from .sources import BC03MilesBasis
from .sources.params import FSPS_DEFAULTS, resolve_params
from .trainingset import TrainingSet

#: ``method`` values: "fast" (batched :class:`FastPhotometry`, BC03MilesBasis only),
#: "generic" (``model.predict`` one vector at a time, any ``sps``), "auto" (fast when it can).
SIMULATION_METHODS = ("auto", "fast", "generic")
_FORMAT_VERSION = 1


@dataclass
class _Job:
    """Everything a worker needs to compute a chunk (pickled once per task)."""

    model: object
    sps: object  # an SPS object, or a zero-argument callable that builds one
    filters: list[str]
    method: str
    chunk_rows: int
    seed: int
    fast_options: dict = field(default_factory=dict)


_WORKER_STATE: dict = {}  # per process: (sps, filters, fast photometry) built once


def simulate(
    model: object,
    sps: object,
    filters: Sequence,
    n: int,
    path: str | os.PathLike,
    seed: int = 0,
    executor: object = None,
    batch_size: int = 4096,
    method: str = "auto",
    progress: bool = True,
    fast_options: dict | None = None,
) -> TrainingSet:
    """Simulate a training set from a Prospector model's priors, resumably, into one HDF5 file.

    Parameters
    ----------
    model : prospect.models.SpecModel
        The model: its priors are sampled (``prior_transform``), its ``depends_on``
        transforms applied. A ``tage`` older than the universe at its ``zred`` is redrawn
        from its prior truncated at that age, the other parameters kept (so ``zred`` keeps
        its prior; the number of redraws is the file's ``redrawn`` attribute).
    sps : object or callable
        The SPS source (``BC03MilesBasis``, or Prospector's FSPS sources), or a
        zero-argument callable that builds one in each worker (use that for FSPS sources,
        which do not pickle).
    filters : sequence
        sedpy filters, a ``FilterSet`` or band names (``"F444W"``, ``"jwst_f444w"``).
    n : int
        Number of draws wanted. Rerunning with a larger ``n`` extends the file.
    path : path-like
        Output HDF5 file.
    seed : int
        Random seed; the same seed gives the same content for any executor or restarts.
    executor : None, int, concurrent.futures.Executor or dask.distributed.Client
        Where chunks run: this process (None), that many local processes (int), or any
        object with ``submit(fn, *args)`` returning futures with ``result()``.
    batch_size : int
        Draws per chunk, fixed when the file is started (a rerun keeps the original value).
        Memory is bounded by it, not by ``n``.
    method : {"auto", "fast", "generic"}
        "fast": batched photometry on a log-wavelength grid (``BC03MilesBasis`` only, within
        0.5% of the exact projection); "generic": ``model.predict`` per draw, exactly what
        Prospector would compute, for any ``sps``; "auto": fast when possible. A model class
        whose photometry is not ``SpecModel``'s (:func:`~prospect_sbi.forward.fast_refusal`)
        is refused by "fast" and "auto" with a ``BC03MilesBasis``: pass "generic".
    progress : bool
        Show a progress bar with SEDs/s.
    fast_options : dict, optional
        Keyword arguments for :class:`~prospect_sbi.sources.FastPhotometry`.

    Returns
    -------
    TrainingSet
        The finished file, opened for reading.

    Raises
    ------
    ValueError
        Unknown filters, a model with no free parameters, priors outside the SPS grids,
        ``n <= 0``, a file made with another model, filters, SPS, method or seed.
    PermissionError
        The output folder is not writable.
    """
    n = check_count("n", n)
    path = Path(path)
    filters = _filter_names(filters)
    if model.ndim == 0:
        raise ValueError("the model has no free parameters: nothing to simulate")
    if method not in SIMULATION_METHODS:
        raise ValueError(f"method={method!r}; use one of {SIMULATION_METHODS}")
    fast_ok = isinstance(sps, BC03MilesBasis)
    if method == "fast" and not fast_ok:
        raise ValueError("method='fast' needs a BC03MilesBasis sps; use method='generic'")
    why = fast_refusal(model) if fast_ok and method != "generic" else None
    if why is not None:  # the fast path would silently compute another model's photometry
        raise ValueError(
            f"the batched simulator computes SpecModel's photometry, but {why}; "
            "use method='generic' (model.predict, one draw at a time)"
        )
    method = "fast" if method == "auto" and fast_ok else method.replace("auto", "generic")
    _check_outlier_model(model)
    _check_writable(path)

    spec = model_spec(model)
    header = {
        "model_hash": model_hash(spec),
        "filters": filters,
        "sps": _describe_sps(sps),
        "method": method,
        "seed": int(seed),
    }
    job = _Job(model, sps, filters, method, int(batch_size), int(seed), dict(fast_options or {}))
    done_rows = _existing_rows(path, header, spec)
    if done_rows >= n:
        return TrainingSet.open(path)
    _check_support(job)
    parts = _parts(path, header, job, spec, done_rows)
    job.chunk_rows = parts.manifest["chunk_rows"]

    chunks = range(done_rows // job.chunk_rows, -(-n // job.chunk_rows))
    todo = [c for c in chunks if c not in parts]
    have = done_rows + sum(
        _rows_in(c, job.chunk_rows, done_rows, n) for c in chunks if c not in todo
    )
    bar = tqdm(
        total=n,
        initial=min(have, n),
        unit="SED",
        unit_scale=True,
        desc="simulate",
        disable=not progress,
        smoothing=0.1,
    )
    try:
        for c, result in run_ordered(_chunk, ((c, (c,)) for c in todo), executor, shared=(job,)):
            parts.save(c, **result)
            bar.update(_rows_in(c, job.chunk_rows, done_rows, n))
    finally:
        bar.close()
    _assemble(path, parts, header, spec, job, n, done_rows)
    return TrainingSet.open(path)


def _filter_names(filters: Sequence) -> list[str]:
    if isinstance(filters, str):
        filters = [filters]
    items = list(getattr(filters, "filters", filters))
    if not items:
        raise ValueError("no filters given")
    names = [f if isinstance(f, str) else f.name for f in items]
    return resolve_band_names(names)


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise PermissionError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PermissionError(f"cannot write {path}: permission denied")


def _describe_sps(sps: object) -> str:
    if callable(sps) and not hasattr(sps, "get_galaxy_spectrum"):
        return f"factory {getattr(sps, '__module__', '?')}.{getattr(sps, '__qualname__', sps)}"
    return getattr(sps, "description", type(sps).__name__)


def _check_outlier_model(model: object) -> None:
    """Refuse Prospector's photometric outlier mixture: its likelihood has it, no noise model."""
    free = "f_outlier_phot" in model.free_params
    value = np.ravel(model.params.get("f_outlier_phot", 0.0))
    if free or np.any(value != 0):
        raise ValueError(
            f"f_outlier_phot is {'free' if free else f'fixed at {value[0]:g}'}: Prospector's "
            "likelihood mixes in outliers, but no noise model here draws them, so the "
            "estimator would not see them; fix it at 0 (the outlier_model template's default)"
        )


def _check_igm(params: dict, filters: list[str]) -> None:
    """Warn when no IGM absorbs what a band sees blueward of Lyman-alpha at the prior's redshifts.

    FSPS (and so Prospector's templates, unless the model adds ``"igm"``) leaves the IGM off:
    such a model has no Lyman break, and an estimator trained on it places real z > 3
    galaxies at low redshift.
    """
    from sedpy.observate import load_filters

    if np.all(np.ravel(params.get("add_igm_absorption", FSPS_DEFAULTS["add_igm_absorption"]))):
        return
    zmax = float(np.max(params["zred"]))
    blue = [
        f.name
        for f in load_filters(filters)
        if f.wavelength[f.transmission > 0.01 * f.transmission.max()].min()
        < LYMAN_ALPHA * (1 + zmax)
    ]
    if blue:
        warnings.warn(
            f"the model has no IGM absorption (add_igm_absorption off or absent, FSPS's "
            f"default) but its redshifts reach {zmax:.3g}, where {', '.join(blue)} see "
            "blueward of Lyman-alpha: no Lyman break is simulated; add "
            "TemplateLibrary['igm'] (build_model does)",
            stacklevel=4,
        )


def _check_support(job: _Job) -> None:
    """Fail before any work if the priors reach outside what the SPS can compute."""
    model = job.model
    rng = np.random.default_rng(12345)
    # Random draws, plus each parameter pushed to both ends of its prior in turn.
    unit = [rng.uniform(size=(64, model.ndim))]
    for i in range(model.ndim):
        for edge in (1e-9, 1 - 1e-9):
            u = np.full((1, model.ndim), 0.5)
            u[0, i] = edge
            unit.append(u)
    params = _draw(model, np.concatenate(unit), np.random.default_rng(0), strict=False)[1]
    _check_igm(params, job.filters)
    if job.method == "fast":
        try:
            resolve_params(params, len(params["zred"]))
        except ValueError as err:
            raise ValueError(f"the model's priors reach outside BC03MilesBasis: {err}") from None
        zmax = job.fast_options.get("zmax", 20.0)
        if np.max(params["zred"]) > zmax:
            raise ValueError(
                f"the zred prior reaches {np.max(params['zred']):.3g}, beyond "
                f"FastPhotometry zmax={zmax}"
            )


# ---------------------------------------------------------------------- draws and chunks
def _draw(model: object, unit: np.ndarray, rng: np.random.Generator, strict: bool = True) -> tuple:
    """Theta and batched params, with ``tage`` redrawn where it exceeds the age of the universe.

    Only ``tage`` is redrawn, from its own prior truncated at the age of the universe (inverse
    CDF on the shortened unit interval), so the redshift and the other parameters keep their
    priors.
    """
    from .transforms import batch_params, draw_theta

    theta = draw_theta(model, unit)
    params = batch_params(model, theta)
    bad = _unphysical(params)
    redrawn = int(bad.sum())
    if redrawn and strict:
        if "tage" not in model.theta_index:
            raise ValueError(
                "tage is fixed but exceeds the age of the universe at some zred "
                "of the prior; narrow the zred prior or free tage"
            )
        col = model.theta_index["tage"].start
        prior = model.config_dict["tage"]["prior"]
        tuniv = age_of_universe(np.asarray(params["zred"], dtype=float).reshape(-1)[bad])
        top = np.asarray(prior.inverse_unit_transform(tuniv * (1 - 1e-9)), dtype=float)
        unit[bad, col] = rng.uniform(size=redrawn) * top
        theta[bad] = draw_theta(model, unit[bad])
        sub = batch_params(model, theta[bad])
        for k, v in params.items():
            if isinstance(v, np.ndarray):
                v[bad] = sub[k]
        if _unphysical(params).any():
            raise ValueError(
                "the tage prior does not reach below the age of the universe at "
                "some zred of the prior"
            )
    _check_agebins(params)
    return theta, params, redrawn


def _unphysical(params: dict) -> np.ndarray:
    zred = np.asarray(params.get("zred", 0.0), dtype=float).reshape(-1)
    tage = params.get("tage")
    sfh = int(np.asarray(params.get("sfh", 0)).flat[0])
    if tage is None or sfh == 3:
        return np.zeros(len(zred), dtype=bool)
    return np.asarray(tage, dtype=float) > age_of_universe(zred) * (1 + 1e-9)


def _check_agebins(params: dict) -> None:
    if int(np.asarray(params.get("sfh", 0)).flat[0]) != 3 or "agebins" not in params:
        return
    bins = np.asarray(params["agebins"], dtype=float)
    zred = np.asarray(params["zred"], dtype=float).reshape(-1)
    bad = np.flatnonzero(np.any(bins[..., 1] <= bins[..., 0], axis=-1))
    if bad.size:
        i = bad[0]
        raise ValueError(
            f"agebins are not increasing at zred={zred[i]:.3g} "
            f"({bins[i].round(3).tolist()}): the bins do not fit in the age of "
            "the universe there; narrow the zred prior or change agebins"
        )
    tuniv = np.log10(age_of_universe(zred) * 1e9)
    old = np.flatnonzero(bins[:, -1, 1] > tuniv + 1e-6)
    if old.size:
        i = old[0]
        raise ValueError(
            f"agebins reach 10^{bins[i, -1, 1]:.3f} yr, older than the universe "
            f"at zred={zred[i]:.3g}; make them follow zred with model_params"
            "['agebins']['depends_on'] = "
            "prospect_sbi.transforms.zred_to_agebins"
        )


def _chunk(job: _Job, c: int) -> dict:
    """Draws, derived quantities and photometry of chunk ``c`` (a pure function of c)."""
    rng = np.random.default_rng(chunk_sequence(job.seed, c))
    unit = rng.uniform(size=(job.chunk_rows, job.model.ndim))
    theta, params, redrawn = _draw(job.model, unit, rng)
    sps, filters, fast = _worker_state(job)
    if job.method == "fast":
        phot, mfrac = fast(params, n=len(theta))
    else:
        phot, mfrac = predict_each(job.model, sps, filters, theta)
    # The fast path's float32 sums can leave dropout bands at -1e-20 maggies; a noiseless
    # flux is never negative.
    phot = np.maximum(phot, 0.0)
    bad = ~np.all(np.isfinite(phot), axis=1)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(f"non-finite photometry for theta={theta[i].tolist()}")
    out = {
        "theta": theta,
        "photometry": phot,
        "mfrac": mfrac,
        "redrawn": np.array(redrawn),
        "zred": np.asarray(params["zred"], dtype=float).reshape(-1),
    }
    out.update({f"derived/{k}": v for k, v in derived_quantities(params, mfrac).items()})
    return out


def _worker_state(job: _Job) -> tuple:
    key = (id(job.sps), job.method, tuple(job.filters), json.dumps(job.fast_options))
    if _WORKER_STATE.get("key") != key:
        from sedpy.observate import load_filters

        from .sources.fast import FastPhotometry

        sps = job.sps
        if callable(sps) and not hasattr(sps, "get_galaxy_spectrum"):
            sps = sps()
        filters = load_filters(job.filters)
        fast = None
        if job.method == "fast":
            fast = FastPhotometry(filters, sps=sps, **job.fast_options)
        _WORKER_STATE.update(key=key, state=(sps, filters, fast))
    return _WORKER_STATE["state"]


# ---------------------------------------------------------------------- files
def _rows_in(c: int, rows: int, done: int, n: int) -> int:
    """Rows of chunk ``c`` that are new (not in the existing file) and wanted (below n)."""
    return max(0, min((c + 1) * rows, n) - max(c * rows, done))


def _existing_rows(path: Path, header: dict, spec: dict | None = None) -> int:
    if not path.exists():
        return 0
    try:
        with h5py.File(path, "r") as f:
            _compare(dict(f.attrs), header, path, spec)
            return int(f["theta"].shape[0])
    except OSError as err:
        raise ValueError(f"{path} exists but is not a readable HDF5 training set: {err}") from None


def _compare(found: dict, header: dict, where: object, spec: dict | None = None) -> None:
    for key, want in header.items():
        have = found.get(key)
        if isinstance(have, bytes):
            have = have.decode()
        if key == "filters" and isinstance(have, str):
            have = json.loads(have)
        if isinstance(have, np.generic):
            have = have.item()
        if key == "model_hash" and have != want and spec is not None and found.get("model_spec"):
            stored = found["model_spec"]
            stored = json.loads(stored) if isinstance(stored, str | bytes) else stored
            diff = model_difference(spec, stored, what=f"that of {where}")
            raise ValueError(f"{diff}; use another path or the original model")
        if have != want:
            raise ValueError(
                f"{where} was made with {key}={have!r}, not {want!r}; "
                "use another path or the original settings"
            )


def _parts(path: Path, header: dict, job: _Job, spec: dict, done_rows: int) -> ChunkStore:
    """Return the chunks of ``path`` done so far, in ``<path>.parts/`` (manifest checked).

    A folder made with other settings is refused naming the first that differs; one left by
    an extension that the final file already holds (or by an older layout) is started again.
    """
    folder = parts_folder(path)
    chunk_rows = job.chunk_rows
    if done_rows:
        with h5py.File(path, "r") as f:
            chunk_rows = int(f.attrs["chunk_rows"])

    extra = {"chunk_rows": chunk_rows, "model_spec": spec}

    def mismatch(found: dict) -> None:  # raises for other settings; else the parts are stale
        found = {**found, **found.get("inputs", {})}
        _compare(found, header, folder, spec)
        if found.get("done_rows") == done_rows and "chunk_rows" in found:  # an older layout
            extra["chunk_rows"] = int(found["chunk_rows"])  # a rerun keeps the batch size

    return ChunkStore(
        folder,
        dict(header, done_rows=done_rows),
        ".npz",
        name="chunk_{:07d}",
        extra=extra,
        on_mismatch=mismatch,
        sync=True,
    )


def _assemble(
    path: Path, parts: ChunkStore, header: dict, spec: dict, job: _Job, n: int, done_rows: int
) -> None:
    """Write the final file through a temporary one, then drop the parts.

    :func:`~prospect_sbi._io.atomic_path` removes the temporary file of an assembly that was
    killed (tens of MB for a large set) when this one succeeds.
    """
    rows = job.chunk_rows
    first = done_rows // rows
    keep = first * rows  # rows of an existing file kept as they are
    with np.load(parts.path(first)) as probe:
        names = [k for k in probe.files if k not in ("redrawn",)]
        shapes = {k: probe[k].shape[1:] for k in names}
    redrawn = 0
    with atomic_path(path, overwrite=True) as tmp, h5py.File(tmp, "w") as out:
        for k in names:
            out.create_dataset(
                k, shape=(n, *shapes[k]), dtype="f8", chunks=(min(n, 4096), *shapes[k])
            )
        if keep:
            with h5py.File(path, "r") as old:
                redrawn = int(old.attrs.get("redrawn", 0))
                for start in range(0, keep, rows):
                    for k in names:
                        out[k][start : start + rows] = old[k][start : min(start + rows, keep)]
        for c in range(first, -(-n // rows)):
            with np.load(parts.path(c)) as part:
                take = min(rows, n - c * rows)
                for k in names:
                    out[k][c * rows : c * rows + take] = part[k][:take]
                redrawn += int(part["redrawn"])
        out.attrs.update(
            {
                **{k: v for k, v in header.items() if k != "filters"},
                "filters": json.dumps(header["filters"]),
                "labels": json.dumps(list(job.model.theta_labels())),
                "model_spec": json.dumps(spec),
                "derived_units": json.dumps({**DERIVED, **STEP_DERIVED}),
                "chunk_rows": rows,
                "redrawn": redrawn,
                "versions": json.dumps(versions()),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "format_version": _FORMAT_VERSION,
                "photometry_units": "maggies",
            }
        )
    parts.remove()
