"""The ``sbi`` fitter: check ``obs``, draw from the estimator, refine, lay out the result."""

from __future__ import annotations

__all__ = ["refine_mode", "run_sbi", "sbi_chain"]

import os
import time
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from ..posterior.plausibility import join_flags, prior_edge_flags
from ..posterior.refine import (
    MAX_ROUNDS,
    ROUND_DRAWS,
    check_refine,
    check_target_ess,
    needs_refinement,
    warn_unconverged,
)
from .likelihood import NoiseLikelihood
from .obs import obs_arrays, resolve_estimator
from .results import SBIResult, to_struct

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior


def sbi_chain(draws: np.ndarray, labels: list[str], model: Any, zred: float | None) -> np.ndarray:
    """Reorder estimator draws (n, len(labels)) into the model's theta order (n, model.ndim).

    A known redshift fills the ``zred`` column.

    Raises
    ------
    ValueError
        A free parameter of the model that the estimator does not give.
    """
    cols = []
    for label in model.theta_labels():
        if label == "zred" and label not in labels:
            if zred is None:
                raise ValueError("the model's zred is free but the estimator gives no zred")
            cols.append(np.full(len(draws), float(zred)))
        elif label in labels:
            cols.append(draws[:, labels.index(label)])
        else:
            raise ValueError(
                f"the estimator has no column for the model's {label!r} (labels {labels})"
            )
    return np.stack(cols, axis=-1).astype(float)


def refine_mode(refine: Any) -> str:
    """Resolve ``refine``/``sbi_refine`` to one of ``"never"``, ``"always"``, ``"auto"``.

    None is ``"auto"``, True ``"always"``, False ``"never"``.

    Raises
    ------
    ValueError
        Any other value.
    """
    if refine is None:
        return "auto"
    if isinstance(refine, bool | np.bool_):
        return "always" if refine else "never"
    return check_refine(refine)


def run_sbi(
    obs: dict,
    model: Any,
    sps: Any = None,
    noise: tuple = (None, None),
    sbi_estimator: AmortizedPosterior | str | os.PathLike | None = None,
    sbi_ndraws: int = 4000,
    sbi_seed: int | None = None,
    sbi_lnlike: bool = True,
    sbi_refine: bool | str | None = None,
    sbi_refine_ndraws: int = ROUND_DRAWS,
    sbi_refine_rounds: int = MAX_ROUNDS,
    sbi_refine_ess: float | None = None,
    sbi_likelihood: str = "flux",
    sbi_check: bool = True,
    **extras: Any,
) -> dict:
    """Run the ``sbi`` fitter: check ``obs``, draw from the estimator, refine, lay out the result.

    ``sps`` computes each draw's log-likelihood (``sbi_likelihood``, see
    :class:`~prospect_sbi.fitting.NoiseLikelihood`) when ``sbi_lnlike``, and the forward model
    of the refinement (None: a shared ``BC03MilesBasis``); ``noise`` must be ``(None,
    None)``: the estimator carries its own noise model. Other keyword arguments (the rest of
    a ``run_params``) are ignored.

    ``sbi_refine`` (:func:`refine_mode`: ``"auto"`` by default) decides whether the draws are
    replaced by the exact posterior of the likelihood, by importance sampling with the
    estimator as first proposal (:meth:`~prospect_sbi.posterior.refine.Refiner.run`: rounds
    of ``sbi_refine_ndraws`` draws, at most ``sbi_refine_rounds``, until the ESS reaches
    ``sbi_refine_ess``, default 200, with a Pareto k-hat of at most 0.7): the posterior of the
    likelihood dynesty samples, at the cost of one forward model per draw (~0.1-0.5 s an
    object instead of milliseconds; ``sbi_ndraws`` is then not used). The result's
    ``weights`` are then the importance weights, draws of zero weight are left out, ``eff``
    is the ESS in percent of the draws, ``logz`` the log evidence, and the derived quantities
    are computed from each draw.

    The result says what the estimator cannot vouch for: ``flags`` (the reasons of
    :meth:`AmortizedPosterior.prepare` and a posterior piled on an edge of the mass prior,
    each also warned about), and with ``sps`` and ``sbi_check`` the posterior-predictive
    check of :class:`~prospect_sbi.ppc.PredictiveCheck` (``chi2_red``, ``ood``, and ``ood``
    among the flags; not for refined draws, whose ``eff`` is their diagnostic). ``notes``
    lists what was left out: ``obs["spectrum"]`` (the estimator uses photometry only; a
    warning too).

    Returns
    -------
    dict
        ``{"optimization": (None, 0.0), "sampling": (SBIResult, seconds)}``; seconds is the
        wall time of checking the inputs, drawing (and refining). The result also holds
        ``refined`` (bool), and for refined fits ``ess``, ``khat``, ``khat_flag``,
        ``ess_flag`` (flags ``khat`` and ``ess``, with a RefinementWarning) and ``is_draws``
        (importance draws taken).
    """
    if any(n is not None for n in noise):
        raise ValueError(
            "the sbi fitter takes no Prospector noise model: the estimator was "
            "trained with its own (estimator.noise)"
        )
    mode = refine_mode(sbi_refine)
    if mode != "never":
        check_target_ess(sbi_refine_ess)
    post = resolve_estimator(sbi_estimator)
    t0 = time.perf_counter()
    flux, err, zred = obs_arrays(obs, post, model)
    prepared = post.prepare(flux, err, zred)  # the one check of the values
    notes = []
    if obs.get("spectrum") is not None:
        warnings.warn(
            "obs['spectrum'] is ignored: the sbi fitter uses the photometry only "
            "(the estimator was trained on it)",
            UserWarning,
            stacklevel=3,
        )
        notes.append("spectrum ignored: the estimator uses photometry only")
    draws = post.sample(prepared, n=int(sbi_ndraws), seed=sbi_seed)
    refiner = None if mode == "never" else post.refiner(sps, sbi_likelihood)
    if refiner is not None and (
        mode == "always" or needs_refinement(refiner, prepared, draws[None])[0]
    ):
        res = refiner.run(
            prepared,
            1,
            seed=sbi_seed,
            first=int(sbi_refine_ndraws),
            draws=int(sbi_refine_ndraws),
            rounds=int(sbi_refine_rounds),
            target_ess=sbi_refine_ess,
        )
        batch = res.batch
        keep = np.flatnonzero(np.isfinite(batch.log_weights[0]))
        pts = {k: v[0, keep] for k, v in batch.points.items()}
        chain = pts["theta"].astype(float)
        derived = to_struct({k: pts[f"d:{k}"] for k in refiner.derived_keys})
        result = SBIResult.from_draws(
            chain,
            derived,
            model.theta_labels(),
            pts["lnlike"],
            log_weights=batch.log_weights[0, keep],
            logz=float(batch.logz[0]),
        )
        result.update(
            refined=True,
            ess=float(batch.ess[0]),
            khat=float(batch.khat[0]),
            khat_flag=bool(batch.flagged[0]),
            ess_flag=bool(batch.short[0]),
            is_draws=int(batch.n_draws[0]),
        )
        warn_unconverged(batch.flagged, batch.short, sbi_refine_ess, stacklevel=4)
        labels = list(model.theta_labels())
        edge = prior_edge_flags(chain[None], labels, post.space)
        weight_flags = [("khat", batch.flagged[:1]), ("ess", batch.short[:1])]
        result.describe(join_flags(1, weight_flags, prepared.flags, edge)[0], notes)
        return {"optimization": (None, 0.0), "sampling": (result, time.perf_counter() - t0)}
    duration = time.perf_counter() - t0
    labels = list(post.labels)
    chain = sbi_chain(draws, labels, model, zred)
    free = set(model.theta_labels())
    derived = to_struct({k: draws[:, i] for i, k in enumerate(labels) if k not in free})
    phot = None if sps is None else _photometry(model, sps, post)
    logl = None
    if sbi_lnlike and phot is not None:
        logl = NoiseLikelihood(phot, post.noise, sbi_likelihood).lnlike(phot(chain)[0], flux, err)
    result = SBIResult.from_draws(chain, derived, model.theta_labels(), logl)
    result["refined"] = False
    flags = join_flags(1, [], prepared.flags, prior_edge_flags(draws[None], labels, post.space))
    if sbi_check and phot is not None:
        from ..ppc import PredictiveCheck

        check = PredictiveCheck(post, model, sps, photometry=phot)
        chi2, ood = check(flux[None], err[None], zred, draws[None])
        flags = join_flags(1, [], flags, np.where(ood, "ood", ""))
        result.describe(flags[0], notes, float(chi2[0]), bool(ood[0]))
    else:
        result.describe(flags[0], notes)
    return {"optimization": (None, 0.0), "sampling": (result, duration)}


def _photometry(model: Any, sps: Any, estimator: AmortizedPosterior) -> Any:
    from ..forward import ModelPhotometry

    return ModelPhotometry(model, sps, estimator.filters)
