"""SBI draws as a Prospector result, and atomic Prospector HDF5 files with derived quantities."""

from __future__ import annotations

__all__ = ["SBIResult", "derived_chain", "write_results"]

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
        return res

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


def write_results(
    path: str | os.PathLike,
    output: Mapping,
    model: Any,
    obs: dict,
    run_params: dict | None = None,
    derived: np.ndarray | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a fit with Prospector's ``write_hdf5``, adding ``sampling/derived``, atomically.

    ``prospect.io.read_results.results_from(path)`` reads it; ``res["derived"]`` is then the
    structured array of derived quantities, one row per chain row.

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

    Returns
    -------
    pathlib.Path
    """
    import h5py
    from prospect.io.write_results import write_hdf5

    path = Path(path)
    if path.suffix != ".h5":
        raise ValueError(f"{path}: Prospector's results_from reads only files ending in .h5")
    sampler, tsample = output.get("sampling", (None, 0.0))
    optres, topt = output.get("optimization", (None, 0.0))
    if derived is None and isinstance(sampler, Mapping):
        derived = sampler.get("derived")
    with atomic_path(path, overwrite) as tmp:
        with h5py.File(tmp, "w") as hf:  # write_hdf5 closes it itself
            write_hdf5(hf, dict(run_params or {}), model, obs, sampler=sampler,
                       optimize_result_list=optres, tsample=tsample, toptimize=topt)  # fmt: skip
        if derived is not None:
            with h5py.File(tmp, "a") as hf:
                hf["sampling"].create_dataset("derived", data=np.asarray(derived))
    return path
