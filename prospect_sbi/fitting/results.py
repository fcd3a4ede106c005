"""SBI draws as a Prospector result, and atomic Prospector HDF5 files with derived quantities."""

from __future__ import annotations

__all__ = ["SBIResult", "derived_chain", "write_results"]

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_path


class SBIResult(dict):
    """Draws of an amortised posterior, laid out as a dynesty result for Prospector's writers.

    ``prospect.io.write_results.write_hdf5`` writes it as it writes a dynesty run (it looks
    for the ``"eff"`` key), so ``results_from`` reads back ``chain`` (the draws, in the
    model's theta order) and ``weights`` (all ``1/n``, or the importance weights of draws
    refined with the likelihood). n draws, D = ``model.ndim``.

    Keys
    ----
    samples : numpy.ndarray, (n, D)
        Draws in ``model.theta_labels()`` order; a known ``zred`` is a constant column.
    logwt, logl, logvol : numpy.ndarray, (n,)
        ``logz - ln n`` (``logz`` plus the log importance weights for refined draws), so that
        ``exp(logwt - logz)`` are the weights, as for dynesty; ``logl`` the log-likelihood of
        each draw when computed, else 0.
    logz : numpy.ndarray, (1,)
        Log evidence ``ln int prior L`` of refined draws (importance sampling gives it; the
        same quantity as dynesty's), 0 for amortised draws, which give none.
    logzerr, information : numpy.ndarray, (1,)
        Zeros.
    derived : numpy.ndarray, structured, (n,)
        Derived quantities learned by the estimator (``log_mstar``, ``log_sfr100``, ...).
    theta_labels : list of str
    flags : list of str
        Why the estimator cannot vouch for the result (empty when it can): the reasons of
        :meth:`AmortizedPosterior.prepare`, ``<param>_at_prior_max``/``_min``, ``ood``.
    notes : list of str
        What the fit left out (``obs["spectrum"]``).
    chi2_red : float
        Reduced chi-square of the posterior-median photometry (NaN when not computed).
    ood : bool
        The predictive check's out-of-distribution flag.
    """

    @classmethod
    def from_draws(
        cls,
        chain: np.ndarray,
        derived: np.ndarray,
        labels: Sequence[str],
        logl: np.ndarray | None = None,
        log_weights: np.ndarray | None = None,
        logz: float = 0.0,
    ) -> SBIResult:
        """Build from draws (n, D), a structured array of derived quantities and labels.

        ``log_weights`` (normalised, e.g. importance weights) replace the equal weights;
        ``eff`` is then the ESS in percent of n, as dynesty's sampling efficiency. ``logz``
        is the log evidence (refined draws).
        """
        n = len(chain)
        logwt = np.full(n, -np.log(n)) if log_weights is None else np.asarray(log_weights, float)
        ess = 1.0 / np.sum(np.exp(2 * logwt))
        res = cls(
            samples=np.asarray(chain, dtype=float),
            logwt=logwt + float(logz),
            logl=np.zeros(n) if logl is None else np.asarray(logl, dtype=float),
            logvol=np.zeros(n),
            logz=np.array([float(logz)]),
            logzerr=np.zeros(1),
            information=np.zeros(1),
            eff=np.array(100.0 * ess / n),
            niter=np.array(n),
            ncall=np.array(n),
            samples_id=np.arange(n),
            derived=derived,
            theta_labels=list(labels),
        )
        res.describe("")
        return res

    def describe(
        self, flags: str, notes: Sequence[str] = (), chi2_red: float = np.nan, ood: bool = False
    ) -> None:
        """Set ``flags`` (from ``;``-joined reasons), ``notes``, ``chi2_red`` and ``ood``."""
        self["flags"] = [f for f in str(flags).split(";") if f]
        self["notes"] = list(notes)
        self["chi2_red"], self["ood"] = float(chi2_red), bool(ood)

    @property
    def weights(self) -> np.ndarray:
        """Weights of :attr:`samples`, summing to 1, (n,)."""
        return np.exp(self["logwt"] - self["logz"][-1])


def derived_chain(model: Any, sps: Any, filters: Sequence, chain: np.ndarray) -> np.ndarray:
    """Compute derived quantities (stellar mass, SFR, ages) of a chain, as a structured array (n,).

    Parameters
    ----------
    model : prospect.models.SpecModel
    sps : BC03MilesBasis or other Prospector source
    filters : sequence of sedpy filters or names
    chain : numpy.ndarray, (n, model.ndim)
    """
    from ..forward import ModelPhotometry

    values = ModelPhotometry(model, sps, filters).derived(chain)
    return to_struct({k: np.asarray(v, float) for k, v in values.items()})


def to_struct(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Structured array (n,) of float columns."""
    names = list(columns)
    n = len(next(iter(columns.values())))
    out = np.zeros(n, dtype=[(k, "f8") for k in names])
    for k in names:
        out[k] = columns[k]
    return out


def _is_output(x: Any) -> bool:
    return isinstance(x, Mapping) and ("sampling" in x or "optimization" in x)


def _arguments(
    output: Any,
    model: Any,
    obs: Any,
    run_params: Any,
    sampler: Any,
    optimize_result_list: Any,
    tsample: float,
    toptimize: float,
) -> tuple:
    """Return ``(output, run_params)`` from ours or Prospector's order; refuse any other."""
    if sampler is not None or optimize_result_list is not None:  # write_hdf5's keywords
        if run_params is not None:
            raise ValueError(
                "pass the fit once: as fit_model's output or as sampler=/"
                "optimize_result_list=, not both"
            )
        fit = {"sampling": (sampler, tsample), "optimization": (optimize_result_list, toptimize)}
        output, run_params = fit, output
    elif not _is_output(output) and _is_output(run_params):  # (path, run_params, model, obs, out)
        output, run_params = run_params, output
    if not _is_output(output):
        keys = (
            ", ".join(map(repr, list(output)[:6]))
            if isinstance(output, Mapping)
            else type(output).__name__
        )
        raise ValueError(
            f"no fit to write: the 2nd argument holds no 'sampling' or "
            f"'optimization' (keys {keys}); call write_results(path, output, "
            "model, obs, run_params) with fit_model's output, or in Prospector's "
            "order write_results(path, run_params, model, obs, output)"
        )
    if not hasattr(model, "theta_labels"):
        raise ValueError(
            f"model (3rd argument) is a {type(model).__name__}, not a Prospector "
            "model: write_results(path, output, model, obs, run_params)"
        )
    if not isinstance(obs, Mapping):
        raise ValueError(
            f"obs (4th argument) is a {type(obs).__name__}, not an obs dict: "
            "write_results(path, output, model, obs, run_params)"
        )
    if run_params is not None and not isinstance(run_params, Mapping):
        raise ValueError(f"run_params is a {type(run_params).__name__}, not a dict")
    if (
        output.get("sampling", (None, 0.0))[0] is None
        and output.get("optimization", (None, 0.0))[0] is None
    ):
        raise ValueError(
            "no fit to write: the output's 'sampling' and 'optimization' results are both None"
        )
    return output, run_params


def write_results(
    path: str | os.PathLike,
    output: Mapping,
    model: Any,
    obs: dict,
    run_params: dict | None = None,
    derived: np.ndarray | None = None,
    overwrite: bool = False,
    *,
    sampler: Any = None,
    optimize_result_list: Any = None,
    tsample: float = 0.0,
    toptimize: float = 0.0,
    sps: Any = None,
) -> Path:
    """Write a fit with Prospector's ``write_hdf5``, adding ``sampling/derived``, atomically.

    The one writer of prospect-sbi results: Prospector's ``write_hdf5`` called alone drops
    the derived quantities. ``prospect.io.read_results.results_from(path)`` reads it:
    ``res["chain"]`` (n, D), ``res["weights"]`` (n,), ``res["derived"]`` (the structured
    array of derived quantities, one row per chain row), ``res["logz"]``, ``res["bestfit"]``
    (with ``sps``) and an :class:`SBIResult`'s ``flags``, ``notes``, ``chi2_red``, ``ood``,
    ``refined`` (and for refined draws ``ess``, ``khat``, ``khat_flag``, ``ess_flag``,
    ``is_draws``) as
    ``res["flags"]``,
    ....

    With ``sps``, Prospector's ``bestfit`` group is written as ``write_hdf5(..., sps=sps)``
    writes it: the draw of highest ``lnprobability`` (log-likelihood plus log prior, as
    Prospector's ``best_sample`` picks it) as ``parameter``, and the model's ``spectrum``,
    ``photometry`` (maggies, ``obs["filters"]``), ``mfrac`` and ``restframe_wavelengths``
    there, from ``model.predict``.

    Prospector's own order is accepted too, ``write_results(path, run_params, model, obs,
    output)`` or ``write_results(path, run_params, model, obs, sampler=..., tsample=...)``
    as in ``write_hdf5(hfile, run_params, model, obs, sampler=...)``; any other is refused.

    Parameters
    ----------
    path : path-like
        Output ``.h5`` file (Prospector's reader wants the ``.h5`` suffix).
    output : dict
        :func:`prospect_sbi.fit_model` output ``{"optimization": ..., "sampling": ...}``.
    model : prospect.models.SpecModel
        The model whose theta order the chain follows.
    obs : dict
        The obs dict that was fitted.
    run_params : dict, optional
        Stored as JSON by Prospector.
    derived : numpy.ndarray, structured, (n,), optional
        Default: ``output["sampling"][0]["derived"]`` when the result has one.
    overwrite : bool
        Replace an existing file (otherwise FileExistsError).
    sampler, optimize_result_list, tsample, toptimize
        ``write_hdf5``'s keywords, in place of ``output``.
    sps : object, optional
        The SPS source of the fit (e.g. ``BC03MilesBasis``): writes the ``bestfit`` group.
        An SBI result needs each draw's log-likelihood for it (``fit_model`` computes them
        when given ``sps``, unless ``sbi_lnlike=False``).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        A path not ending in ``.h5``; arguments in neither order (no fit found, a model or
        obs of the wrong type), naming the argument; ``sps`` with draws whose
        log-likelihoods were not computed.
    """
    import h5py
    from prospect.io.write_results import write_hdf5

    path = Path(path)
    if path.suffix != ".h5":
        raise ValueError(f"{path}: Prospector's results_from reads only files ending in .h5")
    output, run_params = _arguments(
        output, model, obs, run_params, sampler, optimize_result_list, tsample, toptimize
    )
    sampler, tsample = output.get("sampling", (None, 0.0))
    optres, topt = output.get("optimization", (None, 0.0))
    if derived is None and isinstance(sampler, Mapping):
        derived = sampler.get("derived")
    if sps is not None:
        obs = _predictable(obs, sampler)
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as hf:  # write_hdf5 closes it itself
            write_hdf5(
                hf,
                dict(run_params or {}),
                model,
                obs,
                sampler=sampler,
                optimize_result_list=optres,
                tsample=tsample,
                toptimize=topt,
                sps=sps,
            )
        with h5py.File(tmp, "a") as hf:
            if derived is not None:
                hf["sampling"].create_dataset("derived", data=np.asarray(derived))
            for key in _SBI_KEYS:  # read back as JSON
                if isinstance(sampler, Mapping) and key in sampler:
                    hf["sampling"].attrs[key] = json.dumps(_plain(sampler[key]))
    return path


#: :class:`SBIResult` entries that :func:`write_results` keeps as JSON attributes of ``sampling``.
_SBI_KEYS = (
    "flags",
    "notes",
    "chi2_red",
    "ood",
    "refined",
    "ess",
    "khat",
    "khat_flag",
    "ess_flag",
    "is_draws",
)


def _plain(value: Any) -> Any:
    """Return numpy scalars as Python ones (anything else unchanged), for JSON."""
    return value.item() if isinstance(value, np.generic) else value


def _predictable(obs: Mapping, sampler: Any) -> dict:
    """Return the obs dict ``model.predict`` needs for ``bestfit``: ``wavelength``, filters.

    Raises
    ------
    ValueError
        An SBI result whose draws have no log-likelihood (all 0): its best draw is unknown.
    """
    if (
        isinstance(sampler, Mapping)
        and "logl" in sampler
        and "eff" in sampler
        and not np.any(np.asarray(sampler["logl"]))
    ):
        raise ValueError(
            "sps= writes the best-fit draw, but this result's log-likelihoods "
            "are all 0 (not computed): fit with fit_model(..., sps) and "
            "sbi_lnlike=True, or write without sps"
        )
    obs = dict(obs)
    obs.setdefault("wavelength", None)
    filters = obs.get("filters")
    if filters is not None and any(isinstance(f, str) for f in filters):
        from sedpy.observate import load_filters

        obs["filters"] = load_filters([str(f) for f in filters])
    return obs
