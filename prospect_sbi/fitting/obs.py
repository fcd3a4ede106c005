"""Checks of a Prospector obs dict against an estimator, each failing with a one-line error."""

from __future__ import annotations

__all__ = ["obs_arrays", "obs_inputs", "resolve_estimator"]

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from ..posterior.checks import check_observations, check_zred
from ..posterior.plausibility import check_errors

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior


def resolve_estimator(
    estimator: AmortizedPosterior | str | os.PathLike | None,
) -> AmortizedPosterior:
    """Return :meth:`AmortizedPosterior.resolve` of ``estimator``, refusing None for the fitter.

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
        raise ValueError(
            "the sbi fitter needs an estimator: pass estimator= (an "
            "AmortizedPosterior, a .sbi file or a pretrained name) or set "
            "run_params['sbi_estimator']"
        )
    return AmortizedPosterior.resolve(estimator)


def obs_inputs(
    obs: dict, estimator: AmortizedPosterior, model: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Check ``obs`` against ``estimator`` and return its inputs.

    :func:`obs_arrays`, then the values as ``AmortizedPosterior.prepare`` checks them (unit
    slips, swapped flux and error, flipped signs), without its flags and warnings: for a caller
    that uses the values before drawing (the ``sbi`` fitter itself checks them once, in
    ``prepare``). Parameters and returned values are :func:`obs_arrays`'.

    Raises
    ------
    ValueError
        As :func:`obs_arrays`, and values that contradict maggies.
    """
    flux, err, zred = obs_arrays(obs, estimator, model)
    stats = estimator.header.get("flux_stats")
    flux, err = check_observations(flux, err, estimator.filters, stats)
    check_errors(flux, err, estimator.noise_range)
    return flux[0], err[0], zred


def obs_arrays(
    obs: dict, estimator: AmortizedPosterior, model: Any = None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Check the layout of ``obs`` against ``estimator`` and return its arrays, values unchecked.

    Checks, in order: the filters (names and order) and the model's free parameters
    (``estimator.check``); the flux units (``obs["units"]`` if present must be
    ``"maggies"``); one object (``maggies`` of shape (F,)); a boolean ``phot_mask`` (True: fit
    the band, as in Prospector); the redshift, ``obs["zred"]`` (or ``obs["redshift"]``; both
    must agree), one value, required when the estimator is conditioned on it and refused when
    it infers it. Bands that Prospector would not fit (``phot_mask`` False, non-finite flux or
    error, error <= 0) become missing bands (NaN). The values themselves are checked by
    ``estimator.prepare`` (or :func:`obs_inputs`).

    Parameters
    ----------
    obs : dict
        Prospector obs dict: ``maggies``, ``maggies_unc`` (F,), ``filters``; optional
        ``phot_mask`` (F,), ``zred``, ``units``.
    estimator : AmortizedPosterior
    model : prospect.models.SpecModel, optional

    Returns
    -------
    flux, err : numpy.ndarray, float64, (F,)
        Maggies, NaN in both for a missing band.
    zred : float or None
        None when the estimator infers the redshift.

    Raises
    ------
    ValueError
        A missing key, other filters, another model, units other than maggies, several
        objects, a ``phot_mask`` of indices, a redshift missing, unexpected, given twice or
        outside the training range.
    """
    for key in ("maggies", "maggies_unc", "filters"):
        if obs.get(key) is None:
            raise ValueError(
                f"obs has no {key!r}; the sbi fitter needs maggies, maggies_unc and filters"
            )
    estimator.check(filters=obs["filters"], model=model)
    units = obs.get("units", "maggies")
    if str(units).lower() != "maggies":
        raise ValueError(f"obs['units'] is {units!r}; convert to maggies (Jy / 3631)")
    n = len(estimator.filters)
    for key in ("maggies", "maggies_unc"):
        shape = np.shape(obs[key])
        if len(shape) > 1 and int(np.prod(shape)) != n:
            raise ValueError(
                f"obs[{key!r}] has shape {shape}: the sbi fitter fits one "
                f"object; expected ({n},) (batches: AmortizedPosterior.sample)"
            )
    flux = np.array(obs["maggies"], dtype=float).reshape(-1)
    err = np.array(obs["maggies_unc"], dtype=float).reshape(-1)
    if flux.shape != err.shape:
        raise ValueError(f"maggies and maggies_unc differ in shape: {flux.shape}, {err.shape}")
    mask = _phot_mask(obs.get("phot_mask"), flux.shape)
    with np.errstate(invalid="ignore"):
        mask = mask & np.isfinite(flux) & np.isfinite(err) & (err > 0)
    flux[~mask], err[~mask] = np.nan, np.nan
    return flux, err, _zred(obs, estimator)


def _phot_mask(mask: Any, shape: tuple) -> np.ndarray:
    """Prospector's ``phot_mask``: booleans (or 0/1), True where a band is fitted."""
    if mask is None:
        return np.ones(shape, bool)
    arr = np.asarray(mask).reshape(-1)
    if arr.dtype != bool:
        other = np.setdiff1d(arr, [0, 1])
        if other.size:
            raise ValueError(
                f"obs['phot_mask'] holds {', '.join(f'{v:g}' for v in other[:5])}:"
                " it is a boolean mask (True where a band is fitted), not a list "
                "of band indices"
            )
    if arr.shape != shape:
        raise ValueError(f"phot_mask has shape {arr.shape}; expected {shape}")
    return arr.astype(bool)


def _zred(obs: dict, estimator: AmortizedPosterior) -> float | None:
    z = obs.get("zred", obs.get("redshift"))
    for key in ("zred", "redshift"):
        if obs.get(key) is not None and np.size(obs[key]) != 1:
            raise ValueError(
                f"obs[{key!r}] has {np.size(obs[key])} values; one redshift is expected"
            )
    if obs.get("zred") is not None and obs.get("redshift") is not None:
        a, b = float(np.ravel(obs["zred"])[0]), float(np.ravel(obs["redshift"])[0])
        if a != b:
            raise ValueError(f"obs['zred'] = {a:g} and obs['redshift'] = {b:g} differ; give one")
    if estimator.redshift != "known":
        if z is not None:
            raise ValueError(
                "this estimator infers the redshift (redshift='infer'); remove "
                "obs['zred'] or use one trained with redshift='known'"
            )
        return None
    if z is None:
        raise ValueError(
            "this estimator is conditioned on the redshift (redshift='known'): set obs['zred']"
        )
    try:
        z = check_zred(np.ravel(z)[:1], 1, True, estimator.header.get("zred_range"))
    except ValueError as exc:
        raise ValueError(f"obs['zred']: {exc}") from None
    return float(z[0])
