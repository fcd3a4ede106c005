"""The estimator on held-out simulations: mocks, accuracy and calibration, recalibration maps.

Functions that run an :class:`~prospect_sbi.posterior.AmortizedPosterior` on simulations it
was not trained on; the statistics they compute are :mod:`~prospect_sbi.posterior.metrics`'
and the maps :mod:`~prospect_sbi.posterior.recalibration`'s.
"""

from __future__ import annotations

__all__ = ["evaluate", "held_out", "recalibrate"]

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from astropy.table import Table
from tqdm.auto import tqdm

from ..trainingset import TrainingSet
from .estimator import AmortizedPosterior
from .metrics import LEVELS, coverage_from_ranks, regression_metrics, sbc_ranks
from .recalibration import N_SNR_BINS, Recalibration


def held_out(
    estimator: AmortizedPosterior | str | os.PathLike,
    ts: TrainingSet,
    rows: slice | np.ndarray,
    seed: int | Sequence[int] = 0,
) -> dict[str, np.ndarray]:
    """Noisy observations and true values of training-set rows, for validation.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        Gives the noise model, the labels and the redshift mode.
    ts : TrainingSet
        Simulations never used in training (another file, or rows beyond ``max_rows``).
    rows : slice or numpy.ndarray
        Rows to use.
    seed : int or sequence of int
        Seed of the noise draw (``numpy.random.default_rng``'s).

    Returns
    -------
    dict
        ``flux``, ``err`` (B, F) maggies, ``zred`` (B,) or None, ``truth`` (B, D) in the order
        of ``estimator.labels``.
    """
    estimator = AmortizedPosterior.resolve(estimator)
    estimator.check(filters=ts.filters)
    if ts.model_hash != estimator.model_hash:
        from ..provenance import model_difference

        diff = model_difference(ts.provenance["model_spec"], estimator.model_spec)
        raise ValueError(f"training set {ts.path}: {diff}")
    data = ts[rows]
    maggies = np.maximum(data["photometry"], 0.0)  # round-off negatives (~1e-20)
    flux, err = estimator.noise.apply(maggies, np.random.default_rng(seed))
    columns = {name: data["theta"][:, i] for i, name in enumerate(ts.labels)}
    columns |= {k: v for k, v in data.items() if k not in ("theta", "photometry")}
    truth = np.stack([columns[name] for name in estimator.labels], axis=1)
    zred = data["zred"] if estimator.redshift == "known" else None
    return {"flux": flux, "err": err, "zred": zred, "truth": truth}


def evaluate(
    estimator: AmortizedPosterior | str | os.PathLike,
    flux: np.ndarray,
    err: np.ndarray,
    truth: np.ndarray,
    zred: np.ndarray | None = None,
    n: int = 1000,
    seed: int = 0,
    chunk_size: int = 256,
    recalibrate: bool = True,
    refine: str = "never",
    sps: Any = None,
) -> Table:
    """R^2, bias, scatter (of the posterior median) and coverage error, per label.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator.
    flux, err : numpy.ndarray, (B, F)
        Observations, maggies.
    truth : numpy.ndarray, (B, D)
        True values in the order of ``estimator.labels``.
    zred : numpy.ndarray, (B,), optional
        Redshifts, for an estimator conditioned on them.
    n : int
        Draws per object.
    seed : int
        Seed of the draws.
    chunk_size : int
        Objects per batch (memory holds ``chunk_size * n * D`` draws).
    recalibrate : bool
        Apply the estimator's recalibration, if it has one (False: the flow's draws).
    refine : {"never", "always", "auto"}
        As :meth:`AmortizedPosterior.sample`, with the likelihood of the estimator's noise
        model (``likelihood="noise"``, that of mocks like these): ``"always"`` scores the
        exact posterior, the most any estimator could reach on these mocks (~0.05-0.15 s an
        object).
    sps : BC03MilesBasis or any Prospector source, optional
        Forward model of the refinement (default: a shared ``BC03MilesBasis``).

    Returns
    -------
    astropy.table.Table
        One row per label: ``name``, ``r2``, ``bias``, ``scatter``, ``coverage_err`` (largest
        ``|coverage - level|`` over :data:`LEVELS`).
    """
    estimator = AmortizedPosterior.resolve(estimator)
    medians, ranks = [], []
    for start in range(0, len(flux), chunk_size):
        rows = slice(start, start + chunk_size)
        draws = estimator.sample(
            flux[rows],
            err[rows],
            n,
            seed=seed + start,
            zred=None if zred is None else zred[rows],
            recalibrate=recalibrate,
            refine=refine,
            sps=sps,
            likelihood="noise",
        )
        medians.append(np.median(draws, 1))
        ranks.append(sbc_ranks(draws, truth[rows]) / draws.shape[1])  # (b, D) in [0, 1]
    stats = regression_metrics(np.concatenate(medians), truth)
    cov_err = np.abs(coverage_from_ranks(np.concatenate(ranks), LEVELS) - LEVELS).max(1)
    return Table({"name": estimator.labels, **stats, "coverage_err": cov_err})


def recalibrate(
    estimator: AmortizedPosterior | str | os.PathLike,
    flux: np.ndarray,
    err: np.ndarray,
    truth: np.ndarray,
    zred: np.ndarray | None = None,
    *,
    n: int = 1000,
    n_bins: int = N_SNR_BINS,
    n_knots: int = 20,
    seed: int = 0,
    chunk_size: int = 256,
    info: dict | None = None,
    progress: bool = False,
) -> AmortizedPosterior:
    """Fit a :class:`Recalibration` on held-out mocks and attach it to ``estimator``.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator (changed in place: ``estimator.recalibration``, saved with it), its
        file or a pretrained name (loaded); returned.
    flux, err, truth, zred
        Held-out mocks, e.g. from :func:`~prospect_sbi.posterior.held_out` (``truth`` (B, D)
        in the order of ``estimator.labels``): simulations used neither in training nor in
        the validation that will judge the result.
    n : int
        Draws per mock.
    n_bins, n_knots
        As in :meth:`Recalibration.fit`; 20,000 mocks give 5000 ranks per bin of the default 4.
    seed : int
        Seed of the draws.
    chunk_size : int
        Mocks per batch.
    info : dict, optional
        Provenance stored with the maps.
    progress : bool
        Show a progress bar over the mocks.

    Returns
    -------
    AmortizedPosterior
    """
    estimator = AmortizedPosterior.resolve(estimator)
    # the observations as sample() sees them (shallow bands dropped), for the S/N bins too
    obs = estimator.prepare(flux, err, zred)
    d = len(estimator.labels)
    truth = np.asarray(truth, float)
    if truth.shape != (len(obs), d):
        raise ValueError(
            f"truth has shape {truth.shape}; expected ({len(obs)}, {d}), in "
            "the order of estimator.labels"
        )
    ranks = np.empty((len(obs), d))
    starts = range(0, len(obs), int(chunk_size))
    seeds = np.random.SeedSequence(int(seed)).generate_state(len(starts))
    for start, chunk_seed in zip(
        tqdm(starts, desc="recalibrate", unit="chunk", disable=not progress), seeds, strict=True
    ):
        rows = slice(start, start + int(chunk_size))
        draws = estimator.sample(obs.take(rows), n=n, seed=int(chunk_seed), recalibrate=False)
        ranks[rows] = sbc_ranks(draws, truth[rows]) / draws.shape[1]
    provenance = dict(info or {}, n_draws=int(n), seed=int(seed))
    estimator.recalibration = Recalibration.fit(ranks, obs.snr, n_bins, n_knots, provenance)
    return estimator
