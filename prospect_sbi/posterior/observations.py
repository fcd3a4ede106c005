"""A checked, immutable batch of observations: what :meth:`AmortizedPosterior.prepare` returns."""

from __future__ import annotations

__all__ = ["Observations", "total_snr"]

from dataclasses import dataclass, field

import numpy as np


def total_snr(flux: np.ndarray, err: np.ndarray) -> np.ndarray:
    """S/N of the summed flux of the bands present: ``sum f / sqrt(sum sigma^2)``, (B,).

    The statistic the recalibration bins by: defined for any filter set, and 0 for an object
    with no band.
    """
    ok = np.isfinite(flux) & np.isfinite(err)
    signal = np.where(ok, flux, 0.0).sum(-1)
    noise = np.sqrt((np.where(ok, err, 0.0) ** 2).sum(-1))
    return np.where(noise > 0, signal / np.where(noise > 0, noise, 1.0), 0.0)


def _frozen(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    out = np.array(values, dtype=float)  # a copy: the caller's array stays writable
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class Observations:
    """B objects as the estimator sees them, checked once (:meth:`AmortizedPosterior.prepare`).

    Every method of the estimator that takes ``flux, err, zred`` also takes one of these in
    place of ``flux`` (then without ``err`` and ``zred``), so a batch used several times
    (drawn from, summarised, refined) is checked once. The arrays are read-only copies.

    Attributes
    ----------
    flux, err : numpy.ndarray, float64, (B, F)
        Maggies; NaN in both for a missing band (also for bands the checks dropped as far
        shallower than the training noise): what the estimator sees.
    zred : numpy.ndarray, float64, (B,) or None
        Redshifts, for an estimator conditioned on them; None when it infers them.
    snr : numpy.ndarray, float64, (B,)
        Total S/N of the bands present (:func:`~prospect_sbi.posterior.total_snr`), the
        statistic of the recalibration maps and of ``refine="auto"``.
    single : bool
        The input was one object (F,): methods return its result without the B axis.
    flags : numpy.ndarray, object, (B,)
        Per object, the reasons it lies outside the training data, ``;``-joined
        (:data:`~prospect_sbi.posterior.plausibility.FLAG_REASONS`); ``""`` for none (the
        default).
    like_flux, like_err : numpy.ndarray, float64, (B, F)
        The bands as given, shallow non-detections included: what the exact likelihood
        (refinement, ``refine=``) uses, since it is defined for any error. Default ``flux``
        and ``err``.

    Examples
    --------
    >>> obs = Observations(np.full((2, 3), 1e-9), np.full((2, 3), 1e-10), None)
    >>> len(obs), obs.snr.round(1).tolist(), obs.take([1]).flux.shape
    (2, [17.3, 17.3], (1, 3))
    """

    flux: np.ndarray
    err: np.ndarray
    zred: np.ndarray | None
    single: bool = False
    flags: np.ndarray | None = None
    like_flux: np.ndarray | None = None
    like_err: np.ndarray | None = None
    snr: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        flux, err = _frozen(self.flux), _frozen(self.err)
        if flux.ndim != 2 or flux.shape != err.shape:
            raise ValueError(f"flux and err must both be (B, F); got {flux.shape}, {err.shape}")
        zred = _frozen(self.zred)
        if zred is not None and zred.shape != (len(flux),):
            raise ValueError(f"zred has shape {zred.shape}; expected ({len(flux)},)")
        object.__setattr__(self, "flux", flux)
        object.__setattr__(self, "err", err)
        object.__setattr__(self, "zred", zred)
        object.__setattr__(self, "snr", _frozen(total_snr(flux, err)))
        flags = np.full(len(flux), "", dtype=object) if self.flags is None else self.flags
        flags = np.array(flags, dtype=object).reshape(len(flux))
        flags.setflags(write=False)
        object.__setattr__(self, "flags", flags)
        for name, seen in (("like_flux", flux), ("like_err", err)):
            value = seen if getattr(self, name) is None else _frozen(getattr(self, name))
            if value.shape != seen.shape:
                raise ValueError(f"{name} has shape {value.shape}; expected {seen.shape}")
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self.flux)

    def take(self, rows: slice | np.ndarray | list) -> Observations:
        """Return the objects ``rows`` (a slice, indices or a boolean mask) as a new batch."""
        z = None if self.zred is None else self.zred[rows]
        return Observations(
            self.flux[rows],
            self.err[rows],
            z,
            False,
            self.flags[rows],
            self.like_flux[rows],
            self.like_err[rows],
        )

    def __getitem__(self, rows: slice | np.ndarray | list) -> Observations:
        """Return :meth:`take` of ``rows``."""
        return self.take(rows)
