"""Checks of a Prospector obs dict against an estimator, each failing with a one-line error."""

from __future__ import annotations

__all__ = ["obs_inputs", "resolve_estimator"]

from typing import Any

import numpy as np

from ..posterior.checks import check_observations, check_zred


def resolve_estimator(estimator: Any) -> Any:
    """Return an :class:`~prospect_sbi.posterior.AmortizedPosterior` from an object or path.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        An estimator, a file written by ``AmortizedPosterior.save``, or the name of a
        pretrained one (:data:`prospect_sbi.PRETRAINED`).

    Raises
    ------
    ValueError
        ``None``, or a string that is neither a file nor a pretrained name.
    """
    from ..posterior import AmortizedPosterior

    if estimator is None:
        raise ValueError("the sbi fitter needs an estimator: pass estimator= (an "
                         "AmortizedPosterior, a .sbi file or a pretrained name) or set "
                         "run_params['sbi_estimator']")  # fmt: skip
    return AmortizedPosterior.resolve(estimator)


def obs_inputs(
    obs: dict, estimator: Any, model: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Check ``obs`` against ``estimator`` and return its inputs.

    Checks, in order: the filters (names and order) and the model's free parameters
    (``estimator.check``); the flux units (``obs["units"]`` if present must be
    ``"maggies"``; values are checked as in ``AmortizedPosterior.sample``); the redshift,
    ``obs["zred"]`` (or ``obs["redshift"]``), required when the estimator is conditioned on
    it and refused when it infers it. Bands that Prospector would not fit (``phot_mask``
    False, non-finite flux or error, error <= 0) become missing bands (NaN).

    Parameters
    ----------
    obs : dict
        Prospector obs dict: ``maggies``, ``maggies_unc`` (F,), ``filters``; optional
        ``phot_mask`` (F,), ``zred``, ``units``.
    estimator : AmortizedPosterior
    model : prospect.models.SpecModel, optional

    Returns
    -------
    flux, err : numpy.ndarray, (F,)
        Maggies, NaN in both for a missing band.
    zred : float or None
        None when the estimator infers the redshift.

    Raises
    ------
    ValueError
        A missing key, other filters, another model, units other than maggies, a redshift
        missing, unexpected or outside the training range.
    """
    for key in ("maggies", "maggies_unc", "filters"):
        if obs.get(key) is None:
            raise ValueError(f"obs has no {key!r}; the sbi fitter needs maggies, maggies_unc "
                             "and filters")  # fmt: skip
    estimator.check(filters=obs["filters"], model=model)
    units = obs.get("units", "maggies")
    if str(units).lower() != "maggies":
        raise ValueError(f"obs['units'] is {units!r}; convert to maggies (Jy / 3631)")
    flux = np.array(obs["maggies"], dtype=float).reshape(-1)
    err = np.array(obs["maggies_unc"], dtype=float).reshape(-1)
    if flux.shape != err.shape:
        raise ValueError(f"maggies and maggies_unc differ in shape: {flux.shape}, {err.shape}")
    mask = np.asarray(obs.get("phot_mask", np.ones(flux.shape, bool)), dtype=bool).reshape(-1)
    if mask.shape != flux.shape:
        raise ValueError(f"phot_mask has shape {mask.shape}; expected {flux.shape}")
    with np.errstate(invalid="ignore"):
        mask = mask & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    flux[~mask], err[~mask] = np.nan, np.nan
    stats = estimator.header.get("flux_stats")
    flux, err = (a[0] for a in check_observations(flux, err, estimator.filters, stats))
    return flux, err, _zred(obs, estimator)


def _zred(obs: dict, estimator: Any) -> float | None:
    z = obs.get("zred", obs.get("redshift"))
    if estimator.redshift != "known":
        if z is not None:
            raise ValueError("this estimator infers the redshift (redshift='infer'); remove "
                             "obs['zred'] or use one trained with redshift='known'")  # fmt: skip
        return None
    if z is None:
        raise ValueError("this estimator is conditioned on the redshift (redshift='known'): "
                         "set obs['zred']")  # fmt: skip
    try:
        z = check_zred(np.ravel(z)[:1], 1, True, estimator.header.get("zred_range"))
    except ValueError as exc:
        raise ValueError(f"obs['zred']: {exc}") from None
    return float(z[0])
