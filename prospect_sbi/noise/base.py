"""Noise models: the common interface, JSON round trip, band matching."""

from __future__ import annotations

__all__ = ["UJY_TO_MAGGIES", "NoiseModel", "match_bands", "noise_from_dict"]

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import numpy as np

from ..constants import UJY_TO_MAGGIES
from ..filters import resolve_band_names

_FORMAT = 1
_KINDS: dict[str, type[NoiseModel]] = {}  # NoiseModel.kind -> subclass, for noise_from_dict


def _band_list(bands: Sequence[str]) -> str:
    return f"{bands[0]}..{bands[-1]}" if len(bands) > 2 else ", ".join(bands)


def match_bands(bands: Iterable[str], known: Sequence[str]) -> list[str]:
    """Map names (sedpy or short) onto ``known``, raising for any band not in it.

    Parameters
    ----------
    bands : iterable of str
        sedpy (``jwst_f200w``) or short (``F200W``) filter names.
    known : sequence of str
        The sedpy names of a noise model's bands.

    Returns
    -------
    list of str
        The names in ``known``, in the order of ``bands``.
    """
    out = []
    for band in bands:
        name = str(band).strip().lower()
        if name not in known:
            name = resolve_band_names([band])[0]
        if name not in known:
            raise ValueError(
                f"band {band!r} is not in this noise model (bands: {', '.join(known)})"
            )
        out.append(name)
    return out


class NoiseModel(ABC):
    """Base class: per-band noise, depth, non-detections and missing bands, in maggies.

    Arrays carry the bands on their last axis, in the order of :attr:`bands` (F of them);
    ``*`` stands for any leading (batch) dimensions.

    Parameters
    ----------
    bands : sequence of str
        sedpy filter names, the order of the last axis.
    depth : array_like, (F,)
        1-sigma depth per band in maggies: the error of a source too faint to be measured.
    limit_sigma : float
        A band whose flux is below ``limit_sigma * depth`` is a non-detection (upper limit).
        The default, 1, is the threshold of SBIPIX (Iglesias-Navarro et al. 2025), whose JADES
        calibration :class:`JadesPixelNoise` uses: a flux below its 1-sigma error is consistent
        with zero, and is better given to the estimator as a limit than as a measurement.
    p_missing : float or array_like, (F,)
        Probability that a band is missing (NaN) in the output of :meth:`apply`.
    """

    kind: ClassVar[str] = ""
    #: Keys of :meth:`to_dict` that hold one value per band (cut by :meth:`select`).
    per_band_keys: ClassVar[tuple[str, ...]] = ("depth", "p_missing")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def __init__(
        self, bands: Sequence[str], depth: Any, limit_sigma: float = 1.0, p_missing: Any = 0.0
    ) -> None:
        self.bands: tuple[str, ...] = tuple(str(b) for b in bands)
        n = len(self.bands)
        if n == 0 or len(set(self.bands)) != n:
            raise ValueError(f"bands must be distinct and non-empty; got {list(self.bands)}")
        self.depth = self._per_band_array(depth, "depth")
        if not np.all(self.depth > 0):
            raise ValueError(f"depth must be finite and > 0 in every band; got {self.depth}")
        if not (np.isfinite(limit_sigma) and limit_sigma >= 0):
            raise ValueError(f"limit_sigma must be finite and >= 0; got {limit_sigma}")
        self.limit_sigma = float(limit_sigma)
        self.p_missing = self._per_band_array(p_missing, "p_missing")
        if not np.all((self.p_missing >= 0) & (self.p_missing <= 1)):
            raise ValueError(f"p_missing must lie in [0, 1]; got {self.p_missing}")

    def _per_band_array(self, value: Any, name: str) -> np.ndarray:
        arr = np.asarray(value, dtype=float)
        if arr.ndim > 1 or arr.size not in (1, len(self.bands)):
            raise ValueError(f"{name} needs 1 or {len(self.bands)} values; got shape {arr.shape}")
        arr = np.array(np.broadcast_to(arr, (len(self.bands),)))
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite in every band; got {arr}")
        return arr

    @property
    def limits(self) -> np.ndarray:
        """Non-detection threshold per band, ``limit_sigma * depth``, maggies, (F,)."""
        return self.limit_sigma * self.depth

    def _check(self, values: Any, name: str) -> np.ndarray:
        arr = np.asarray(values, dtype=float)
        if arr.ndim == 0 or arr.shape[-1] != len(self.bands):
            raise ValueError(
                f"{name} must have shape (..., {len(self.bands)}) for bands "
                f"{_band_list(self.bands)}; got shape {arr.shape}"
            )
        return arr

    def apply(
        self,
        maggies: Any,
        rng: np.random.Generator | int | None = None,
        *,
        allow_missing: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noisy fluxes and their 1-sigma errors, as an observation would have them.

        Parameters
        ----------
        maggies : array_like, (*, F)
            Noiseless model fluxes in maggies, >= 0.
        rng : numpy.random.Generator or int, optional
            Source of randomness; call once per epoch for a fresh draw.
        allow_missing : bool
            Let NaN in ``maggies`` through as missing bands (NaN out); otherwise NaN raises.

        Returns
        -------
        flux, err : numpy.ndarray, (*, F)
            ``flux = maggies + N(0, err)`` and ``err`` > 0 in maggies; both NaN where a band is
            missing. Non-detections keep their noisy flux; find them with :meth:`upper_limits`.

        Raises
        ------
        ValueError
            Wrong last axis, NaN (unless ``allow_missing``), infinite or negative fluxes.
        """
        true = self._check(maggies, "maggies")
        missing = np.isnan(true)
        if missing.any() and not allow_missing:
            first = tuple(int(i) for i in np.argwhere(missing)[0])
            raise ValueError(
                f"maggies has {missing.sum()} NaN values (first at index {first}); pass "
                "allow_missing=True to treat them as missing bands"
            )
        true = np.where(missing, 0.0, true)
        if not np.all(np.isfinite(true)):
            raise ValueError(f"maggies has {np.isinf(true).sum()} infinite values")
        if np.any(true < 0):
            raise ValueError(
                f"maggies has {np.sum(true < 0)} negative values (min {true.min():.3g}); "
                "noiseless model fluxes must be >= 0"
            )
        rng = np.random.default_rng(rng)
        err = self._draw_sigma(true, rng)
        flux = true + err * rng.standard_normal(true.shape)
        if np.any(self.p_missing > 0):
            missing = missing | (rng.random(true.shape) < self.p_missing)
        flux[missing] = np.nan
        err[missing] = np.nan
        return flux, err

    @abstractmethod
    def _draw_sigma(self, maggies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """1-sigma errors (maggies) for true fluxes ``maggies`` >= 0, (*, F)."""

    def smallest_error(self) -> np.ndarray | None:
        """Return the smallest 1-sigma error :meth:`apply` can give per band, if bounded.

        Returns
        -------
        numpy.ndarray, (F,), maggies, or None
            None (the default) for errors with an unbounded lower tail; the plausibility
            checks then estimate a bound by Monte Carlo
            (:class:`~prospect_sbi.posterior.plausibility.NoiseRange`).
        """
        return None

    def upper_limits(self, flux: Any, err: Any = None) -> np.ndarray:
        """Non-detections: bands whose flux is below ``limit_sigma * depth``.

        The same test applies to simulated output of :meth:`apply` and to real data, so that
        training and inference treat faint bands alike.

        Parameters
        ----------
        flux : array_like, (*, F)
            Observed fluxes in maggies; NaN marks a missing band (never an upper limit).
        err : array_like, (*, F), optional
            Their errors; a band with a non-finite or non-positive error counts as missing.

        Returns
        -------
        numpy.ndarray of bool, (*, F)
        """
        flux = self._check(flux, "flux")
        below = flux < self.limits
        if err is not None:
            err = self._check(err, "err")
            with np.errstate(invalid="ignore"):
                below &= np.isfinite(err) & (err > 0)
        return below

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; :func:`noise_from_dict` rebuilds the model from it."""
        head = {
            "kind": self.kind,
            "format": _FORMAT,
            "bands": list(self.bands),
            "limit_sigma": self.limit_sigma,
            "depth": self.depth.tolist(),
            "p_missing": self.p_missing.tolist(),
        }
        return head | self._params()

    def _params(self) -> dict[str, Any]:
        return {}

    @classmethod
    @abstractmethod
    def from_dict(cls, d: dict[str, Any]) -> NoiseModel:
        """Rebuild from :meth:`to_dict` output (:func:`noise_from_dict` picks the class)."""

    def select(self, bands: Iterable[str]) -> NoiseModel:
        """Restrict the model to ``bands`` (sedpy or short names), in that order.

        Raises
        ------
        ValueError
            Naming a band this model does not have.
        """
        idx = [self.bands.index(b) for b in match_bands(bands, self.bands)]
        d = self.to_dict()
        for key in self.per_band_keys:
            d[key] = [d[key][i] for i in idx]
        d["bands"] = [self.bands[i] for i in idx]
        return noise_from_dict(d)

    def __repr__(self) -> str:
        p = self.p_missing
        p_txt = f"{p[0]:g}" if np.all(p == p[0]) else "per band"
        return (
            f"{type(self).__name__}({len(self.bands)} bands: {_band_list(self.bands)}, "
            f"limit_sigma={self.limit_sigma:g}, p_missing={p_txt})"
        )


def noise_from_dict(d: dict[str, Any]) -> NoiseModel:
    """Rebuild a noise model from :meth:`NoiseModel.to_dict` output (e.g. read from JSON).

    Raises
    ------
    ValueError
        Not a dict, an unknown ``"kind"`` or a newer format.
    """
    if not isinstance(d, dict):
        raise ValueError(
            f"a noise model is a JSON object (NoiseModel.to_dict); got a {type(d).__name__}"
        )
    kind = d.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown noise model kind {kind!r}; known: {sorted(_KINDS)}")
    if int(d.get("format", _FORMAT)) > _FORMAT:
        raise ValueError(f"noise model format {d['format']} is newer than this code ({_FORMAT})")
    try:
        return _KINDS[kind].from_dict(d)
    except KeyError as exc:
        raise ValueError(f"noise model dict of kind {kind!r} lacks key {exc}") from None
