"""Is an observation within what the estimator saw? Unit slips refused, doubtful objects flagged.

An amortised posterior answers every input, also one in the wrong unit. What it saw in
training bounds what a right input can look like: the noise model fixes the smallest error of
any band (a detection just above its limit at the magnitude-error floor), the smallest
relative error (the floor), the largest error of a non-detection, and that fluxes scatter
below zero by Gaussian noise only; the training set fixes how bright objects are. A batch
that breaks these bounds in a way only a unit slip explains (Jy passed as maggies, a factor
1e-9, flux and err swapped, a sign flipped, variances for errors) is refused in one line that
names the likely mistake. An object that breaks them alone is flagged by name and warned about
(:class:`ObservationWarning`), so that no table row claims more than the estimator can vouch for.

B stands for the number of objects, F for the number of bands, n for draws per object.
"""

from __future__ import annotations

__all__ = [
    "BRIGHT_FACTOR",
    "ERR_MARGIN",
    "FLAG_REASONS",
    "MODEL_ERROR_FLOOR",
    "NoiseRange",
    "ObservationWarning",
    "PriorEdgeWarning",
    "UnitError",
    "check_brightness",
    "check_errors",
    "count_flags",
    "flag_observations",
    "join_flags",
    "prior_edge_flags",
    "shallow_errors",
    "warn_flags",
    "warn_prior_edge",
]

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: A non-detection (S/N < 3) whose error exceeds this many times the noise model's depth, and
#: every error of a non-detection in training, is treated as a missing band (see
#: :func:`~prospect_sbi.posterior.checks.drop_shallow`).
SHALLOW_FACTOR = 3.0
#: An object whose median flux exceeds this factor times the training set's 99th-percentile
#: flux is flagged ``bright`` (0.4% of the ``jades-parametric`` training objects are; AB 17.1).
BRIGHT_FACTOR = 3.0
#: For a noise model without its own error bound: the smallest error an object may have before
#: it is flagged, as a fraction of the smallest of the noise's Monte-Carlo draws.
ERR_MARGIN = 0.25
#: Fractional model error added in quadrature to the observed errors when a fit's chi-square
#: judges it: the predictive check's default (:class:`prospect_sbi.ppc.PredictiveCheck`) and
#: ``refine="auto"``'s (:data:`~prospect_sbi.posterior.refine.AUTO_FLOOR`).
MODEL_ERROR_FLOOR = 0.10
_FAINT_DEX = 2.0  # median |flux| this many dex below the training set's 0.1 percentile: faint
_PRECISE_FRACTION = 0.5  # of the noise's relative-error floor: flagged snr_above_training
_NEGATIVE_SIGMA = 5.0  # a flux this many errors below zero: flagged negative_flux
_MIN_BATCH = 3  # objects from which a batch median brighter than the 99th percentile is refused
_LOW_ERR_SHARE = 0.1  # share of entries below the noise's smallest error that is refused
_SWAP_BANDS = 5  # valid bands an object needs before 0 < flux < err everywhere means swapped
_EDGE_WIDTH, _EDGE_SHARE = 0.01, 0.5  # prior-edge piles: share of draws within width of an edge

#: Named reasons of a row flag -> what they mean, in the order they are reported.
FLAG_REASONS = {
    "bright": f"median flux above {BRIGHT_FACTOR:g}x the training set's 99th percentile",
    "faint": f"median |flux| over {_FAINT_DEX:g} dex below the training set's 0.1 percentile",
    "err_below_noise": "an error below the smallest the training noise gives",
    "snr_above_training": "detected bands more precise than the training noise's error floor",
    "negative_flux": f"a flux more than {_NEGATIVE_SIGMA:g} sigma below zero",
    "flux_err_swapped": "0 < flux < err in every band, errors beyond any training non-detection",
}
#: Free parameters that set an object's brightness; a posterior piled on an edge of their prior
#: means the object is brighter (or fainter) than any the estimator saw at its redshift.
SCALE_PARAMETERS = ("mass", "logmass")
#: Share of training-like objects each reason flags (at most); a batch is warned about only
#: when its share is above twice this (a single flagged object always).
_TRAINING_RATE = {"bright": 0.01, "prior_edge": 0.02}


class UnitError(ValueError):
    """Values the estimator refuses because they look like another unit than maggies."""


class ObservationWarning(UserWarning):
    """Observations outside what the estimator was trained on; the objects are flagged."""


class PriorEdgeWarning(ObservationWarning):
    """Posteriors piled on an edge of a brightness parameter's prior."""


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


@dataclass(frozen=True)
class NoiseRange:
    """The errors an estimator's noise model gives, per band: what a right input can show.

    Attributes
    ----------
    bands : tuple of str
        The F bands.
    depth : numpy.ndarray, (F,)
        1-sigma depth, maggies.
    err_min : numpy.ndarray, (F,)
        Smallest error of 20,000 Monte-Carlo draws per band over true fluxes from 0.1 to 1e6
        times the depth, maggies (``JadesPixelNoise``: 0.014-0.051 times the depth, a
        detection just above its limit near the 0.01 mag floor). A sample minimum: 10% of a
        batch's errors below it is a unit slip (:func:`check_errors`), but one band of one
        object in ~10^4 of the noise's own draws falls below it.
    err_bound : numpy.ndarray, (F,)
        The smallest error the noise model can give, maggies, for the per-object flag: its own
        bound where it has one (:meth:`~prospect_sbi.noise.NoiseModel.smallest_error`;
        ``JadesPixelNoise``: 0.0092 times the depth, a detection at its limit with the 0.01 mag
        floor), else :data:`ERR_MARGIN` times ``err_min``.
    max_err : numpy.ndarray, (F,)
        Largest error of a non-detection (:func:`shallow_errors`), maggies.
    rel_floor : float
        0.01% quantile of the relative error ``err / flux`` of detections (true flux over three
        times the limit): the noise's error floor (0.0092 for a 0.01 mag floor).
    """

    bands: tuple[str, ...]
    depth: np.ndarray
    err_min: np.ndarray
    err_bound: np.ndarray
    max_err: np.ndarray
    rel_floor: float

    @classmethod
    def of(cls, noise: Any, n: int = 20_000, seed: int = 0) -> NoiseRange:
        """Measure the range of ``noise`` (a :class:`~prospect_sbi.noise.NoiseModel`)."""
        rng = np.random.default_rng(seed)
        depth = np.asarray(noise.depth, dtype=float)
        true = depth * 10 ** rng.uniform(-1.0, 6.0, (int(n), depth.size))
        _, err = noise.apply(true, rng)
        detected = true > 3 * np.asarray(noise.limits)
        rel = float(np.quantile((err / true)[detected], 1e-4))
        err_min, bound = np.min(err, axis=0), noise.smallest_error()
        err_bound = ERR_MARGIN * err_min if bound is None else np.minimum(err_min, bound)
        return cls(tuple(noise.bands), depth, err_min, err_bound, shallow_errors(noise), rel)


def _valid(flux: np.ndarray, err: np.ndarray) -> np.ndarray:
    return np.isfinite(flux) & np.isfinite(err)


def _object_median(values: np.ndarray) -> np.ndarray:
    """Median over the valid bands of each row (B, F) -> (B,), NaN for none."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a valid band
        return np.nanmedian(values, axis=1)


def check_brightness(flux: np.ndarray, flux_stats: dict[str, float] | None) -> None:
    """Refuse a batch brighter than the training set: Jy (or microJy) passed as maggies.

    Each object's median flux over its bands is taken; the batch's median of those is refused
    above the training set's brightest flux (``max``), or, for three objects or more, above
    its 99th percentile (``p99``): fewer than 1% of training objects are that bright, so three
    of them have a median above it with a chance below 3e-4. Jy are 3.56 dex brighter than
    maggies, which moves a typical galaxy of a deep field beyond 99% of the training set.

    Parameters
    ----------
    flux : numpy.ndarray, (B, F)
        Maggies; NaN for a missing band.
    flux_stats : dict, optional
        The estimator's ``header["flux_stats"]``: ``max`` and ``p99``, maggies.

    Raises
    ------
    UnitError
        Naming the median, the training limit and the likely slip.
    """
    stats = flux_stats or {}
    medians = _object_median(flux)
    medians = medians[np.isfinite(medians)]
    if medians.size == 0:
        return
    median, n = float(np.median(medians)), medians.size
    for key, what, enough in (
        ("max", "every training flux", 1),
        ("p99", "99% of the training fluxes", _MIN_BATCH),
    ):
        limit = stats.get(key)
        if limit is not None and n >= enough and median > limit:
            raise UnitError(
                f"median flux {median:.3g} maggies of the {n} objects is brighter than {what} "
                f"({limit:.3g}): are these Jy passed as maggies? Convert with Jy / 3631"
            )


def check_errors(flux: np.ndarray, err: np.ndarray, ranges: NoiseRange) -> None:
    """Refuse errors and signs that only a unit slip or a swap of arguments explains.

    In order: every flux negative with a median S/N below -3 (a sign flipped: the training
    noise scatters fluxes >= 0 by Gaussian noise only); flux and err swapped (half the objects
    or more with five valid bands or more, all with 0 < flux < err and a median error beyond
    any training non-detection, ``ranges.max_err``); 10% of the errors or more (two at least)
    below the smallest error the noise model gives (``ranges.err_min``): values scaled down
    (maggies declared as Jy, x 1e-9) or errors in another unit than the fluxes (variances).

    Parameters
    ----------
    flux, err : numpy.ndarray, (B, F)
        Checked observations (:func:`~prospect_sbi.posterior.checks.check_observations`),
        maggies; NaN in both for a missing band.
    ranges : NoiseRange
        Of the estimator's noise model.

    Raises
    ------
    ValueError
        One line: what was seen, what the noise model allows, the likely mistake; a
        :class:`UnitError` for errors below the noise model's.
    """
    valid = _valid(flux, err)
    if not valid.any():
        return
    f, e = flux[valid], err[valid]
    snr = f / e
    if np.all(f < 0) and np.median(snr) < -3:
        raise ValueError(
            f"every flux is negative (median S/N {np.median(snr):.1f}): a sign "
            "flipped? Training fluxes are >= 0 plus Gaussian noise"
        )
    swapped = _swapped(flux, err, ranges)
    if swapped.mean() >= 0.5:
        raise ValueError(
            f"flux and err look swapped: in {int(swapped.sum())} of {len(flux)} objects every "
            "band has 0 < flux < err, with errors beyond any non-detection of the training "
            f"noise (up to {np.max(ranges.max_err):.3g} maggies); pass flux first, then err"
        )
    low = valid & (err < ranges.err_min)
    share = low.sum() / valid.sum()
    if low.sum() >= 2 and share >= _LOW_ERR_SHARE:
        factor = float(np.median(np.broadcast_to(ranges.err_min, err.shape)[low] / err[low]))
        band = int(np.argmax(low.sum(0)))
        median_snr = float(np.median(np.abs(snr)))
        if median_snr > 1e3:
            hint = (
                f"median S/N {median_snr:.0e}: variances (err**2) instead of 1-sigma "
                "errors, or errors in another unit than the fluxes?"
            )
        elif factor > 1e4:
            hint = (
                "fluxes and errors far too small: Jy values read as nJy or uJy (x 1e-9, x 1e-6)?"
            )
        else:
            hint = "fluxes and errors too small: maggies declared as Jy (x 1/3631)?"
        raise UnitError(
            f"{share:.0%} of the errors are below the smallest error the estimator's noise "
            f"model gives ({ranges.err_min[band]:.3g} maggies in {ranges.bands[band]}), by a "
            f"median factor of at least {factor:.2g}; {hint}"
        )


def _swapped(flux: np.ndarray, err: np.ndarray, ranges: NoiseRange) -> np.ndarray:
    """Objects (B,) whose valid bands all look like an error passed as the flux."""
    valid = _valid(flux, err)
    with np.errstate(invalid="ignore"):
        inside = (flux > 0) & (flux < err)
        deep = _object_median(np.where(valid, err / ranges.max_err, np.nan)) > 1
    return (valid.sum(1) >= _SWAP_BANDS) & np.all(inside | ~valid, axis=1) & deep


def flag_observations(
    flux: np.ndarray, err: np.ndarray, ranges: NoiseRange, flux_stats: dict[str, float] | None
) -> np.ndarray:
    """Per object, the reasons (:data:`FLAG_REASONS`) it lies outside the training data.

    Parameters
    ----------
    flux, err : numpy.ndarray, (B, F)
        Checked observations, maggies; NaN in both for a missing band.
    ranges : NoiseRange
        Of the estimator's noise model.
    flux_stats : dict, optional
        The estimator's ``header["flux_stats"]`` (``p0.1``, ``p99``).

    Returns
    -------
    numpy.ndarray, object, (B,)
        Reasons joined by ``;``; ``""`` for an object with none.
    """
    stats = flux_stats or {}
    valid = _valid(flux, err)
    with np.errstate(invalid="ignore", divide="ignore"):
        masks = {}
        p99, p01 = stats.get("p99"), stats.get("p0.1")
        if p99 is not None:
            masks["bright"] = _object_median(flux) > BRIGHT_FACTOR * p99
        if p01 is not None and p01 > 0:
            masks["faint"] = _object_median(np.abs(flux)) < p01 * 10**-_FAINT_DEX
        masks["err_below_noise"] = np.any(valid & (err < ranges.err_bound), axis=1)
        detected = valid & (flux > 5 * err)
        rel = _object_median(np.where(detected, err / flux, np.nan))
        masks["snr_above_training"] = rel < _PRECISE_FRACTION * ranges.rel_floor
        masks["negative_flux"] = np.any(valid & (flux < -_NEGATIVE_SIGMA * err), axis=1)
        masks["flux_err_swapped"] = _swapped(flux, err, ranges)
    return join_flags(len(flux), ((name, masks[name]) for name in FLAG_REASONS if name in masks))


def join_flags(n: int, reasons: Iterable[tuple[str, np.ndarray]], *more: np.ndarray) -> np.ndarray:
    """Join named boolean masks (n,) and flag arrays (n,) into one flag array (n,), ``;``-joined.

    Parameters
    ----------
    n : int
        Number of objects.
    reasons : iterable of (str, numpy.ndarray of bool, (n,))
        A name and the objects it applies to.
    *more : numpy.ndarray, (n,)
        Flag arrays (``""`` for none) to append.

    Returns
    -------
    numpy.ndarray, object, (n,)
    """
    out = np.full(n, "", dtype=object)
    pieces = [np.where(mask, name, "") for name, mask in reasons] + list(more)
    for piece in pieces:
        piece = np.asarray(piece, dtype=object)
        add = piece != ""
        out[add] = np.where(out[add] == "", piece[add], out[add] + ";" + piece[add])
    return out


def count_flags(flags: np.ndarray) -> dict[str, int]:
    """Objects per reason in a flag array (B,) of ``;``-joined reasons (``""``, ``"ok"``: none)."""
    counts: dict[str, int] = {}
    flags = np.asarray(flags, dtype=object)
    for joined in flags[(flags != "") & (flags != "ok")]:
        for reason in str(joined).split(";"):
            counts[reason] = counts.get(reason, 0) + 1
    return counts


_WARNINGS = {
    "bright": "{k} of {b} objects are brighter than {f:g}x the training set's 99th-percentile "
    "flux ({lim:.3g} maggies): Jy passed as maggies? (maggies = Jy / 3631)",
    "faint": "{k} of {b} objects have a median |flux| over 2 dex below the faintest training "
    "fluxes: the estimator extrapolates",
    "err_below_noise": "{k} of {b} objects have errors below the smallest the training noise "
    "gives: fluxes and errors in another unit (maggies declared as Jy?)",
    "snr_above_training": "{k} of {b} objects have detected bands more precise than the training "
    "noise's error floor (relative error {rel:.2g}): the estimator "
    "extrapolates; add an error floor, e.g. err = hypot(err, 0.05 * flux)",
    "negative_flux": "{k} of {b} objects have fluxes more than 5 sigma below zero, which the "
    "training noise never gives: background over-subtracted, or a sign "
    "flipped?",
    "flux_err_swapped": "{k} of {b} objects have 0 < flux < err in every band with errors beyond "
    "any training non-detection: flux and err swapped?",
}


def warn_flags(
    flags: np.ndarray, ranges: NoiseRange, flux_stats: dict[str, float] | None, stacklevel: int = 3
) -> None:
    """Warn once per reason of :func:`flag_observations` (:class:`ObservationWarning`).

    A reason that training-like objects show too (``bright``: under 1%) is warned about only
    when more than twice that share of the batch has it; the others always.
    """
    n = len(flags)
    if n == 0:
        return
    counts = count_flags(flags)
    p99 = (flux_stats or {}).get("p99", np.nan)
    for name in FLAG_REASONS:
        k = counts.get(name, 0)
        if k and k > 2 * _TRAINING_RATE.get(name, 0.0) * n:
            text = _WARNINGS[name].format(
                k=k,
                b=n,
                f=BRIGHT_FACTOR,
                lim=BRIGHT_FACTOR * p99,
                rel=_PRECISE_FRACTION * ranges.rel_floor,
            )
            warnings.warn(text, ObservationWarning, stacklevel=stacklevel)


def prior_edge_flags(draws: np.ndarray, labels: Sequence[str], space: Any) -> np.ndarray:
    """Objects whose posterior piles on an edge of a brightness parameter's box prior.

    Half the draws or more within 1% of the box width (in log for a ``LogUniform`` prior) of
    an edge of a :data:`SCALE_PARAMETERS` prior: the estimator was never trained on anything
    beyond it, so the answer is the edge, not a measurement (Jy passed as maggies pile on the
    upper edge of the mass prior).

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)
        Posterior draws in the order of ``labels``.
    labels : sequence of str
        The estimator's labels (D).
    space : TargetSpace
        The estimator's targets, with their prior boxes.

    Returns
    -------
    numpy.ndarray, object, (B,)
        ``"<name>_at_prior_max"`` or ``"<name>_at_prior_min"``, ``;``-joined; ``""`` for none.
    """
    draws = np.asarray(draws)
    masks = []
    for j, name in enumerate(space.names):
        kind = space.kinds[j]
        if name not in SCALE_PARAMETERS or kind not in ("box", "logbox"):
            continue
        lo, hi, x = space.lo[j], space.hi[j], draws[..., list(labels).index(name)]
        if kind == "logbox":
            lo, hi, x = np.log(lo), np.log(hi), np.log(np.maximum(x, 1e-300))
        p = (x - lo) / (hi - lo)
        masks.append((f"{name}_at_prior_max", np.mean(p > 1 - _EDGE_WIDTH, axis=1) >= _EDGE_SHARE))
        masks.append((f"{name}_at_prior_min", np.mean(p < _EDGE_WIDTH, axis=1) >= _EDGE_SHARE))
    return join_flags(len(draws), masks)


def warn_prior_edge(counts: dict[str, int], n: int, stacklevel: int = 3) -> None:
    """Warn (:class:`PriorEdgeWarning`) about objects :func:`prior_edge_flags` flagged.

    Parameters
    ----------
    counts : dict of str -> int
        Objects per flag reason (:func:`count_flags`); those of prior edges are used.
    n : int
        Objects in the batch. Objects of the training set itself lie near the edges (under
        2% of them pile on one), so a batch is warned about when more than 4% of it does (a
        single object always).
    stacklevel : int
    """
    for edge, what in (("max", "upper"), ("min", "lower")):
        for name in sorted(k for k in counts if k.endswith(f"_at_prior_{edge}")):
            k = counts[name]
            if k <= 2 * _TRAINING_RATE["prior_edge"] * n:
                continue
            param = name.rsplit("_at_prior_", 1)[0]
            cause = (
                "brighter than any training object at their redshift: Jy passed as maggies?"
                if edge == "max"
                else "fainter than any training object at their redshift: fluxes too small?"
            )
            warnings.warn(
                f"{k} of {n} objects' posteriors pile on the {what} edge of the "
                f"{param} prior: {cause}",
                PriorEdgeWarning,
                stacklevel=stacklevel,
            )
