"""Checks of observations given to a posterior, each failing with a one-line error."""

from __future__ import annotations

__all__ = [
    "FIXED_ZRED_TOLERANCE",
    "check_observations",
    "check_zred",
    "drop_shallow",
    "is_fixed_zred",
    "outside_zred_range",
    "zred_tolerance",
]

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .plausibility import UnitError, check_brightness

#: A redshift within this much times (1 + z) of a fixed-redshift estimator's is taken as its
#: (catalogues round: 2.6946 for 2.69458); 1e-3 (1 + z) moves a band's edge by 0.1%.
FIXED_ZRED_TOLERANCE = 1e-3


def _where(mask: np.ndarray) -> str:
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    return f"{int(mask.sum())} entries (first at index {first})"


def check_observations(
    flux: Any, err: Any, bands: Sequence[str], flux_stats: dict[str, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Validate fluxes and errors (maggies) and return them as float64 arrays (B, F).

    Parameters
    ----------
    flux, err : array_like, (F,) or (B, F)
        Fluxes and 1-sigma errors in maggies; NaN in both marks a missing band.
    bands : sequence of str
        The F bands expected, in order.
    flux_stats : dict, optional
        Training-set fluxes (maggies): ``max`` and the 99th percentile ``p99``. A batch
        brighter than the training set is taken for Jy passed as maggies and refused
        (:func:`~prospect_sbi.posterior.plausibility.check_brightness`).

    Returns
    -------
    flux, err : numpy.ndarray, (B, F)

    Raises
    ------
    ValueError
        Wrong shape or band count; NaN in one of flux and err but not the other; infinite
        values; errors <= 0; an object with no valid band; values that look like AB
        magnitudes, Jy or microJy rather than maggies.
    """
    n = len(bands)
    flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
    for name, arr in (("flux", flux), ("err", err)):
        if arr.ndim not in (1, 2) or arr.shape[-1] != n:
            raise ValueError(
                f"{name} has shape {arr.shape}; expected ({n},) or (B, {n}) for the bands "
                f"{bands[0]}..{bands[-1]} of this estimator"
            )
    if flux.shape != err.shape:
        raise ValueError(f"flux and err differ in shape: {flux.shape} and {err.shape}")
    flux, err = np.atleast_2d(flux), np.atleast_2d(err)
    nan_f, nan_e = np.isnan(flux), np.isnan(err)
    if np.any(nan_f & ~nan_e):
        raise ValueError(
            f"flux is NaN but err is not in {_where(nan_f & ~nan_e)}; "
            "a missing band needs NaN in both"
        )
    if np.any(nan_e & ~nan_f):
        raise ValueError(
            f"err is NaN but flux is not in {_where(nan_e & ~nan_f)}; "
            "a missing band needs NaN in both"
        )
    for name, arr in (("flux", flux), ("err", err)):
        if np.any(np.isinf(arr)):
            raise ValueError(f"{name} is infinite in {_where(np.isinf(arr))}")
    with np.errstate(invalid="ignore"):
        bad = ~nan_e & (err <= 0)
    if bad.any():
        raise ValueError(f"err must be > 0; got {err[bad][0]:g} in {_where(bad)}")
    empty = np.all(nan_f, axis=1)
    if empty.any():
        raise ValueError(
            f"object {int(np.argmax(empty))} has no valid band ({int(empty.sum())} such "
            "objects): drop them before inference"
        )
    _check_units(flux[~nan_f], err[~nan_e], flux_stats)
    check_brightness(flux, flux_stats)
    return flux, err


def _check_units(flux: np.ndarray, err: np.ndarray, stats: dict | None) -> None:
    if flux.size == 0:
        return
    median = float(np.median(flux))
    if median > 1.0 and np.all((flux > 5) & (flux < 45)):
        raise UnitError(
            f"flux looks like AB magnitudes (median {median:.3g}); pass maggies: "
            "10**(-0.4 * mag), and err = 0.4 * ln(10) * flux * mag_err"
        )
    if np.max(np.abs(flux)) < 1.0 <= np.median(err):
        raise UnitError(
            f"errors of 1 or more (median {np.median(err):.3g}) with fluxes below 1 maggie: "
            "inverse variances (weights) instead of 1-sigma errors? err = 1 / sqrt(ivar)"
        )
    if np.max(np.abs(flux)) >= 1.0 or np.max(err) >= 1.0:
        raise UnitError(
            f"fluxes or errors of 1 maggie (AB 0) or more (max |flux| {np.max(np.abs(flux)):.3g}"
            "): these are not maggies; convert Jy with / 3631, microJy with * 1e-6 / 3631"
        )


def outside_zred_range(zred: np.ndarray, bounds: Sequence[float] | None) -> np.ndarray:
    """Mask of redshifts outside an estimator's training range ``bounds`` (lo, hi), or None.

    The range is the training set's own min and max, a hair inside the prior's, so 1e-3 of its
    width is allowed beyond it (a redshift 1e-5 below it, one in 20,000 prior draws, is no
    extrapolation).
    """
    z = np.asarray(zred, dtype=float)
    if bounds is None:
        return np.zeros(z.shape, dtype=bool)
    lo, hi = bounds
    tol = zred_tolerance(bounds)
    return (z < lo - tol) | (z > hi + tol)


def zred_tolerance(bounds: Sequence[float]) -> float:
    """How far beyond an estimator's training redshift range ``bounds`` a redshift may lie.

    1e-3 of the range's width; for an estimator trained at one fixed redshift (a range of
    width 0), :data:`FIXED_ZRED_TOLERANCE` ``* (1 + z)``: a catalogue's rounding of that
    redshift (2.6946 or 2.695 for 2.69458) is that redshift.
    """
    lo, hi = (float(b) for b in bounds)
    if is_fixed_zred(bounds):
        return FIXED_ZRED_TOLERANCE * (1.0 + hi)
    return 1e-3 * (hi - lo) + 1e-9


def is_fixed_zred(bounds: Sequence[float] | None) -> bool:
    """Whether a training redshift range ``bounds`` is one redshift (a fixed-``zred`` model)."""
    return bounds is not None and float(bounds[1]) - float(bounds[0]) <= 1e-9 * (
        1.0 + abs(float(bounds[1]))
    )


def check_zred(zred: Any, n: int, known: bool, bounds: tuple[float, float] | None) -> Any:
    """Validate redshifts for ``n`` objects: an array (n,) when ``known``, else None.

    Raises
    ------
    ValueError
        A redshift missing, given when it is inferred, of the wrong length, not finite, or
        outside the training range.
    """
    if not known:
        if zred is not None:
            raise ValueError(
                "this estimator infers the redshift (redshift='infer'); do not pass zred"
            )
        return None
    if zred is None:
        raise ValueError(
            "this estimator is conditioned on the redshift (redshift='known'): "
            "pass zred, a scalar or one value per object"
        )
    z = np.asarray(zred, dtype=float)
    if z.ndim > 1 or (z.ndim == 1 and z.size not in (1, n)):
        raise ValueError(f"zred has shape {z.shape}; expected () or ({n},)")
    z = np.broadcast_to(z.reshape(-1), (n,)).copy()
    if not np.all(np.isfinite(z)):
        raise ValueError(f"zred is not finite in {int(np.sum(~np.isfinite(z)))} objects")
    if bounds is not None:
        lo, hi = bounds
        out = outside_zred_range(z, bounds)
        if out.any() and is_fixed_zred(bounds):
            raise ValueError(
                f"zred {z[out][0]:g} is not the redshift this estimator was trained "
                f"at, {hi:g} (its model fixes zred; {int(out.sum())} objects "
                f"farther than {zred_tolerance(bounds):.2g}); fit other redshifts "
                "with an estimator trained on a zred range"
            )
        if out.any():
            # the range rounded outward to 3 significant digits: [0.1, 10], not [0.100054, ...]
            shown = f"[{_round(lo, np.floor):g}, {_round(hi, np.ceil):g}]"
            count = int(out.sum())
            raise ValueError(
                f"zred {z[out][0]:g} is outside the training range {shown} of this estimator "
                f"({count} object{'s' if count > 1 else ''}); fit it with an estimator trained "
                "over that redshift, or one that infers it (redshift='infer')"
            )
        if is_fixed_zred(bounds):
            z[:] = hi  # a catalogue's rounding of the one redshift the network has seen
    return z


def drop_shallow(
    flux: np.ndarray, err: np.ndarray, max_err: np.ndarray, stacklevel: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Treat non-detections much shallower than the training noise as missing bands.

    A band with S/N < 3 and an error over ``max_err``
    (:func:`~prospect_sbi.posterior.plausibility.shallow_errors`: beyond the errors of
    training non-detections; e.g. HST pixels of a JWST-depth survey, or an edge
    of a mosaic) lies outside every training example, and a network extrapolates there
    unpredictably; as a missing band it is marginalised over instead, as band dropout taught
    the estimator, and it carried almost no information anyway. Warns with the number of
    entries changed.

    Parameters
    ----------
    flux, err : numpy.ndarray, (B, F)
        Checked observations, maggies.
    max_err : numpy.ndarray, (F,)
        Largest error of a non-detection the estimator handles, per band.

    Returns
    -------
    flux, err : numpy.ndarray, (B, F)
        Copies with those entries set to NaN (or the inputs when there are none).
    """
    with np.errstate(invalid="ignore"):
        shallow = (err > max_err) & (np.abs(flux) < 3 * err)
    # An object with nothing else keeps its bands: it has no information either way.
    shallow[np.all(shallow | np.isnan(flux), axis=1)] = False
    if not shallow.any():
        return flux, err
    flux, err = flux.copy(), err.copy()
    flux[shallow] = err[shallow] = np.nan
    warnings.warn(
        f"{int(shallow.sum())} non-detections with errors larger than in training are treated "
        "as missing bands (the estimator never saw such shallow data)",
        UserWarning,
        stacklevel=stacklevel,
    )
    return flux, err


def _round(value: float, direction: Any) -> float:
    """``value`` to 3 significant digits, rounded with ``direction`` (numpy.floor or ceil)."""
    if value == 0 or not np.isfinite(value):
        return value
    scale = 10.0 ** (np.floor(np.log10(abs(value))) - 2)
    return float(direction(round(value / scale, 6)) * scale)
