"""Checks of observations given to a posterior, each failing with a one-line error."""

from __future__ import annotations

__all__ = ["check_observations", "check_zred", "drop_shallow", "outside_zred_range",
           "shallow_errors", "warn_faint", "warn_precise", "SHALLOW_FACTOR"]  # fmt: skip

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..noise.base import _DMAG

_FAINT_DEX = 2.0  # median flux this many dex below the training set's faintest: a warning
#: Median relative error of detected bands below this fraction of the training noise's floor:
#: a warning (:func:`warn_precise`).
_PRECISE_FRACTION = 0.5
_BATCH = 50  # objects from which a batch's median flux is compared with the training set's
#: A non-detection (S/N < 3) whose error exceeds this many times the noise model's depth, and
#: every error of a non-detection in training, is treated as a missing band (see
#: :func:`drop_shallow`).
SHALLOW_FACTOR = 3.0


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
        Training-set fluxes (maggies): ``max`` and the 99th percentile ``p99``. A median flux
        above ``max`` (or, for 50 objects or more, above ``p99``) is taken for Jy or microJy
        and refused: Jy are 3.56 dex brighter than maggies, which moves a typical galaxy of
        the training set beyond 99% of it.

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
        raise ValueError(f"flux is NaN but err is not in {_where(nan_f & ~nan_e)}; "
                         "a missing band needs NaN in both")  # fmt: skip
    if np.any(nan_e & ~nan_f):
        raise ValueError(f"err is NaN but flux is not in {_where(nan_e & ~nan_f)}; "
                         "a missing band needs NaN in both")  # fmt: skip
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
    _check_units(flux[~nan_f], err[~nan_e], flux_stats or {}, len(flux) >= _BATCH)
    return flux, err


def _check_units(flux: np.ndarray, err: np.ndarray, stats: dict, batch: bool) -> None:
    if flux.size == 0:
        return
    median = float(np.median(flux))
    if median > 1.0 and np.all((flux > 5) & (flux < 45)):
        raise ValueError(
            f"flux looks like AB magnitudes (median {median:.3g}); pass maggies: "
            "10**(-0.4 * mag), and err = 0.4 * ln(10) * flux * mag_err"
        )
    if np.max(np.abs(flux)) >= 1.0 or np.max(err) >= 1.0:
        raise ValueError(
            f"fluxes or errors of 1 maggie (AB 0) or more (max |flux| {np.max(np.abs(flux)):.3g}"
            "): these are not maggies; convert Jy with / 3631, microJy with * 1e-6 / 3631"
        )
    key = "p99" if batch else "max"
    limit = stats.get(key)
    if limit is not None and median > limit:
        what = "99% of the training fluxes" if batch else "every training flux"
        raise ValueError(
            f"median flux {median:.3g} maggies is brighter than {what} ({limit:.3g}): are "
            "these Jy or microJy? Convert to maggies (Jy / 3631)"
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
    tol = 1e-3 * (hi - lo) + 1e-9
    return (z < lo - tol) | (z > hi + tol)


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
            raise ValueError("this estimator infers the redshift (redshift='infer'); "
                             "do not pass zred")  # fmt: skip
        return None
    if zred is None:
        raise ValueError("this estimator is conditioned on the redshift (redshift='known'): "
                         "pass zred, a scalar or one value per object")  # fmt: skip
    z = np.asarray(zred, dtype=float)
    if z.ndim > 1 or (z.ndim == 1 and z.size not in (1, n)):
        raise ValueError(f"zred has shape {z.shape}; expected () or ({n},)")
    z = np.broadcast_to(z.reshape(-1), (n,)).copy()
    if not np.all(np.isfinite(z)):
        raise ValueError(f"zred is not finite in {int(np.sum(~np.isfinite(z)))} objects")
    if bounds is not None:
        lo, hi = bounds
        out = outside_zred_range(z, bounds)
        if out.any():
            raise ValueError(f"zred {z[out][0]:g} is outside the training range [{lo:g}, {hi:g}]"
                             f" ({int(out.sum())} objects)")  # fmt: skip
    return z


def shallow_errors(noise: Any, factor: float = SHALLOW_FACTOR, q: float = 0.999) -> np.ndarray:
    """Per band, the error above which a non-detection is outside the training noise.

    The larger of ``factor`` times the depth and the ``q`` quantile of the errors of
    non-detections (S/N < 3) that ``noise`` gives to fluxes from 0.1 to 30 times the depth
    (a fixed Monte-Carlo draw). JadesPixelNoise gives some faint detections magnitude errors
    of several magnitudes, i.e. errors of up to ~10 times the depth.

    Parameters
    ----------
    noise : NoiseModel
        The estimator's noise model.
    factor : float
    q : float

    Returns
    -------
    numpy.ndarray, (F,)
        Errors, maggies.
    """
    rng = np.random.default_rng(0)
    depth = np.asarray(noise.depth, dtype=float)
    true = depth * 10 ** rng.uniform(-1.0, np.log10(30.0), (20_000, depth.size))
    flux, err = noise.apply(true, rng)
    with np.errstate(invalid="ignore"):
        undetected = np.where(np.abs(flux) < 3 * err, err, np.nan)
    return np.fmax(factor * depth, np.nanquantile(undetected, q, axis=0))


def drop_shallow(
    flux: np.ndarray, err: np.ndarray, max_err: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Treat non-detections much shallower than the training noise as missing bands.

    A band with S/N < 3 and an error over ``max_err`` (:func:`shallow_errors`: beyond the
    errors of training non-detections; e.g. HST pixels of a JWST-depth survey, or an edge
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
        stacklevel=3,
    )
    return flux, err


def warn_faint(flux: np.ndarray, flux_stats: dict[str, float] | None) -> None:
    """Warn when a batch's median |flux| is over 2 dex below the training set's 0.1 percentile.

    The absolute value: noise scatters undetected objects to negative fluxes, which the
    estimator was trained on.
    """
    finite = np.abs(flux[np.isfinite(flux)])
    flux_min = (flux_stats or {}).get("p0.1")
    if flux_min is None or flux_min <= 0 or finite.size == 0:
        return
    median = float(np.median(finite))
    if median < flux_min * 10**-_FAINT_DEX:
        warnings.warn(
            f"median |flux| {median:.3g} maggies is over 2 dex below the faintest training flux "
            f"({flux_min:.3g}): the estimator extrapolates",
            UserWarning,
            stacklevel=3,
        )


def warn_precise(flux: np.ndarray, err: np.ndarray, mag_err_floor: float) -> None:
    """Warn when detected bands are far more precise than the training noise's error floor.

    A noise model with a magnitude-error floor (``JadesPixelNoise.mag_err_floor``) never gave
    the estimator errors below it. Integrated catalogue photometry can be at S/N 1000 and more
    (the JADES spec-z catalogue reaches 3000), where the estimator extrapolates and no SED
    model fits; SED fits add an error floor, e.g. ``err = hypot(err, 0.05 * flux)``.
    """
    if mag_err_floor <= 0:
        return
    with np.errstate(invalid="ignore", divide="ignore"):
        detected = np.isfinite(flux) & (flux > 5 * err)
        if not detected.any():
            return
        frac = float(np.median(err[detected] / flux[detected]))
    least = _DMAG * mag_err_floor  # relative error at the floor
    if frac < _PRECISE_FRACTION * least:
        warnings.warn(
            f"median relative error {frac:.2g} of detected bands is below the training noise's "
            f"{mag_err_floor:g} mag floor ({least:.2g}): the estimator extrapolates; add an error "
            "floor, e.g. err = hypot(err, 0.05 * flux)",
            UserWarning,
            stacklevel=3,
        )
