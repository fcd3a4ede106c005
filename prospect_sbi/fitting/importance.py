"""The exact posterior of one object, by importance sampling with the likelihood (reference path).

:func:`importance_sample` runs the estimator's batched refinement (:class:`Refiner
<prospect_sbi.posterior.refine.Refiner>`, :func:`~prospect_sbi.posterior.adaptive_importance`)
on one object with long-run defaults (4000 draws a round, up to 16 rounds, ESS 1000): the
reference that ``benchmarks/sharpness.py`` measures the estimator against. For many objects,
and the fast defaults, use ``AmortizedPosterior.sample(..., refine=...)`` or
``fit_model(..., refine=...)``.
"""

from __future__ import annotations

__all__ = [
    "ImportanceResult",
    "REFINE_DRAWS",
    "REFINE_ESS",
    "REFINE_ROUNDS",
    "adaptive_importance",
    "importance_sample",
]

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..numeric import check_count
from ..posterior.importance import GROW_EVERY, adaptive_importance
from ..posterior.refine import Refiner

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior

#: Defaults of :func:`importance_sample` (draws per round, most rounds, ESS to stop at): a
#: long reference run. On the bright mocks of ``benchmarks/vs_dynesty.py`` this reached an
#: ESS of 1000 on every mock.
REFINE_DRAWS, REFINE_ROUNDS, REFINE_ESS = 4000, 16, 1000.0


@dataclass
class ImportanceResult:
    """Weighted draws of the exact posterior of one object (:func:`importance_sample`).

    n draws over all rounds, D free parameters of the fitted model (``zred`` left out when
    the estimator takes it).

    Attributes
    ----------
    samples : numpy.ndarray, (n, D)
        Draws in ``labels`` (the fitted model's theta) order.
    log_weights : numpy.ndarray, (n,)
        Normalised: ``exp(log_weights)`` sums to 1; ``-inf`` for draws outside the prior.
    derived : dict of numpy.ndarray, (n,)
        Derived quantities of every draw, computed from it (``log_mstar``, ``log_sfr100``, ...).
    lnlike : numpy.ndarray, (n,)
        Log-likelihood of each draw (``-inf`` outside the prior).
    ess : float
        Effective sample size ``1 / sum(w^2)``.
    labels : list of str
    rounds : list of dict
        Per round: ``proposal`` ("flow" or "student-t"), ``n`` draws, ``ess`` of all draws so
        far.
    khat : float
        Pareto k-hat of the weights (above 0.7 they cannot be trusted).
    logz : float
        Log evidence, ``log int prior L``, natural log, with the likelihood's own units.
    """

    samples: np.ndarray
    log_weights: np.ndarray
    derived: dict[str, np.ndarray]
    lnlike: np.ndarray
    ess: float
    labels: list[str]
    rounds: list[dict] = field(default_factory=list)
    khat: float = float("nan")
    logz: float = float("nan")

    @property
    def weights(self) -> np.ndarray:
        """Weights summing to 1, (n,)."""
        return np.exp(self.log_weights)

    @property
    def efficiency(self) -> float:
        """ESS per draw."""
        return self.ess / len(self.log_weights)

    def resample(self, n: int, seed: int | None = None) -> np.ndarray:
        """Return the indices of ``n`` equal-weight draws (systematic resampling)."""
        u = (np.random.default_rng(seed).random() + np.arange(n)) / n
        return np.minimum(np.searchsorted(np.cumsum(self.weights), u), len(self.weights) - 1)


def importance_sample(
    estimator: AmortizedPosterior | str | os.PathLike,
    model: Any,
    sps: Any,
    flux: np.ndarray,
    err: np.ndarray,
    zred: float | None = None,
    n: int = REFINE_DRAWS,
    rounds: int = REFINE_ROUNDS,
    target_ess: float = REFINE_ESS,
    likelihood: str = "flux",
    seed: int | None = None,
) -> ImportanceResult:
    """Draw from the exact posterior of one object, with the estimator as the first proposal.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
    model : prospect.models.SpecModel
        The estimator's model (:meth:`AmortizedPosterior.model`).
    sps : BC03MilesBasis or any Prospector source, optional
        For the forward model (:class:`~prospect_sbi.forward.ModelPhotometry`); None for a
        shared ``BC03MilesBasis``.
    flux, err : numpy.ndarray, (F,)
        Maggies, NaN for a missing band.
    zred : float, optional
        Required when the estimator takes a known redshift.
    n : int
        Draws per round.
    rounds : int
        Most rounds: the first draws from the estimator, each later one from a Student-t in
        the flow's base space fitted to the draws so far.
    target_ess : float
        Rounds stop once the ESS of all draws reaches it.
    likelihood : {"flux", "noise"}
        See :class:`~prospect_sbi.noise.NoiseLikelihood`: ``"flux"`` for real data,
        ``"noise"`` for mocks of the estimator's noise model (the likelihood it was trained on).
    seed : int, optional

    Returns
    -------
    ImportanceResult

    Raises
    ------
    ValueError
        Bad observations (as :meth:`AmortizedPosterior.sample`), a model the estimator has no
        target for, an estimator trained without jitter on its derived targets, a likelihood
        the noise model does not have, or ``n`` / ``rounds`` not an integer >= 2 / >= 1.
    """
    from ..posterior.estimator import AmortizedPosterior

    estimator = AmortizedPosterior.resolve(estimator)
    n, rounds = check_count("n", n, 2), check_count("rounds", rounds)
    refiner = Refiner(estimator, model, sps, likelihood)
    obs = estimator.prepare(
        np.asarray(flux, float)[None],
        np.asarray(err, float)[None],
        None if zred is None else [float(zred)],
    )
    batch = adaptive_importance(refiner.target(obs), n, rounds, float(target_ess), seed=seed)
    size, pts = int(batch.n_draws[0]), batch.points
    labels = list(refiner.model.theta_labels())
    cols = [labels.index(lab) for lab in refiner.free_labels]
    history = batch.history[0][np.isfinite(batch.history[0])]
    rounds_info = [
        {
            "proposal": "flow" if r == 0 else "student-t",
            "n": n * (1 if r == 0 else 2 ** (r // GROW_EVERY)),
            "ess": float(e),
        }
        for r, e in enumerate(history)
    ]
    return ImportanceResult(
        samples=pts["theta"][0, :size][:, cols],
        log_weights=batch.log_weights[0, :size],
        derived={k: pts[f"d:{k}"][0, :size] for k in refiner.derived_keys},
        lnlike=pts["lnlike"][0, :size],
        ess=float(batch.ess[0]),
        labels=refiner.free_labels,
        rounds=rounds_info,
        khat=float(batch.khat[0]),
        logz=float(batch.logz[0]),
    )
