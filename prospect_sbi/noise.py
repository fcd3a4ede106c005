"""JADES-like noise, depth limits, non-detections and missing bands, applied on the fly."""

from __future__ import annotations

__all__ = ["UJY_TO_MAGGIES", "EmpiricalNoise", "JadesPixelNoise", "NoiseModel", "noise_from_dict"]

import json
import os
import warnings
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy.special import ndtr, ndtri

from .filters import JADES_BANDS, resolve_band_names

#: microJansky -> maggies (AB: 1 maggie = 3631 Jy).
UJY_TO_MAGGIES = 1e-6 / 3631.0
_DMAG = 0.4 * np.log(10.0)  # sigma_flux = _DMAG * flux * sigma_mag
_FORMAT = 1
#: Band order of the SBIPIX ``obs/obs_properties`` arrays, as sedpy names.
_SBIPIX_ORDER = (
    "jwst_f090w", "jwst_f115w", "jwst_f150w", "jwst_f182m", "jwst_f200w", "jwst_f210m",
    "jwst_f277w", "jwst_f335m", "jwst_f356w", "jwst_f410m", "jwst_f430m", "jwst_f444w",
    "jwst_f460m", "jwst_f480m", "acs_wfc_f435w", "acs_wfc_f606w", "acs_wfc_f775w",
    "acs_wfc_f814w", "acs_wfc_f850lp",
)  # fmt: skip
_SBIPIX_FILES = {
    "depth": "background_noise_hainline.npy",
    "edges": "percentiles_jades_res_bins.npy",
    "mean": "mean_sigma_jades_res_bins.npy",
    "std": "std_sigma_jades_res_bins.npy",
}


def _band_list(bands: Sequence[str]) -> str:
    return f"{bands[0]}..{bands[-1]}" if len(bands) > 2 else ", ".join(bands)


def _match_bands(bands: Iterable[str], known: Sequence[str]) -> list[str]:
    """Map names (sedpy or short) onto ``known``, raising for any band not in it."""
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
    _per_band: ClassVar[tuple[str, ...]] = ("depth", "p_missing")
    _kinds: ClassVar[dict[str, type[NoiseModel]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            NoiseModel._kinds[cls.kind] = cls

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
    def _from_dict(cls, d: dict[str, Any]) -> NoiseModel:
        """Rebuild from :meth:`to_dict` output."""

    def select(self, bands: Iterable[str]) -> NoiseModel:
        """Restrict the model to ``bands`` (sedpy or short names), in that order.

        Raises
        ------
        ValueError
            Naming a band this model does not have.
        """
        idx = [self.bands.index(b) for b in _match_bands(bands, self.bands)]
        d = self.to_dict()
        for key in self._per_band:
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
        For an unknown ``"kind"`` or a newer format.
    """
    kind = d.get("kind")
    if kind not in NoiseModel._kinds:
        raise ValueError(f"unknown noise model kind {kind!r}; known: {sorted(NoiseModel._kinds)}")
    if int(d.get("format", _FORMAT)) > _FORMAT:
        raise ValueError(f"noise model format {d['format']} is newer than this code ({_FORMAT})")
    try:
        return NoiseModel._kinds[kind]._from_dict(d)
    except KeyError as exc:
        raise ValueError(f"noise model dict of kind {kind!r} lacks key {exc}") from None


def _read_sbipix_tables(data_dir: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Per-band numbers from the SBIPIX ``obs/obs_properties`` arrays, keyed by sedpy name."""
    arrays = {}
    for key, name in _SBIPIX_FILES.items():
        path = Path(data_dir) / name
        if not path.is_file():
            raise FileNotFoundError(f"JADES noise file {path} not found (data_dir={data_dir})")
        arrays[key] = np.load(path)
    n_band, n_edge = len(_SBIPIX_ORDER), arrays["edges"].shape[0]
    shapes = {"depth": (n_band,), "edges": (n_edge, n_band)}
    for key, arr in arrays.items():
        want = shapes.get(key, (n_band, n_edge + 2))
        if arr.shape != want:
            raise ValueError(f"{_SBIPIX_FILES[key]} has shape {arr.shape}; expected {want}")
    # Keep bins 0..n_edge-1 (bin k lies below edge k). The catch-all bin beyond the last edge
    # (mean errors of 10-360 mag, inf in ACS) and the trailing all-zero column are dropped.
    return {
        band: {
            "depth_uJy": float(arrays["depth"][i]),
            "mag_edges": arrays["edges"][:, i].tolist(),
            "mag_err_mean": arrays["mean"][i, :n_edge].tolist(),
            "mag_err_std": arrays["std"][i, :n_edge].tolist(),
        }
        for i, band in enumerate(_SBIPIX_ORDER)
    }


@lru_cache(maxsize=1)
def _package_table() -> dict[str, dict[str, Any]]:
    text = resources.files("prospect_sbi").joinpath("data/jades_pixel_noise.json").read_text()
    return json.loads(text)["bands"]


class JadesPixelNoise(NoiseModel):
    """Noise of JADES galaxy pixels (0.03"), calibrated on the real JADES/HUDF mosaics.

    Follows SBIPIX (``sbipix._add_noise_nan_limit``; Iglesias-Navarro et al. 2025): a band
    whose true flux is above ``limit_sigma * depth`` gets a magnitude error drawn from the
    normal distribution of its magnitude bin, truncated at 0, and ``err = 0.4 ln(10) flux
    sigma_mag``; a fainter band gets ``err = depth``. Unlike SBIPIX, the noise is added to the
    flux, not to the magnitude, so ``(flux - maggies) / err`` is N(0, 1) and negative fluxes
    can occur, as in real forced photometry. The numbers ship with the package (see
    ``docs/noise.md``); ``data_dir`` reads them from the SBIPIX files instead.

    Parameters
    ----------
    bands : sequence of str
        Any of the 19 JADES bands (sedpy or short names); default :data:`JADES_BANDS`.
    data_dir : str or path-like, optional
        Folder with the SBIPIX ``obs/obs_properties`` ``.npy`` files.
    limit_sigma, p_missing
        As in :class:`NoiseModel`.

    Examples
    --------
    >>> import numpy as np
    >>> noise = JadesPixelNoise()
    >>> flux, err = noise.apply(np.full((2, 14), 1e-13), np.random.default_rng(0))
    >>> flux.shape, bool(np.all(err > 0))
    ((2, 14), True)
    """

    kind = "jades_pixel"
    _per_band = NoiseModel._per_band + ("mag_edges", "mag_err_mean", "mag_err_std")

    def __init__(
        self,
        bands: Sequence[str] = JADES_BANDS,
        data_dir: str | os.PathLike | None = None,
        *,
        limit_sigma: float = 1.0,
        p_missing: Any = 0.0,
    ) -> None:
        table = _package_table() if data_dir is None else _read_sbipix_tables(data_dir)
        names = _match_bands(bands, tuple(table))
        rows = [table[b] for b in names]
        self._init(
            names,
            np.array([r["depth_uJy"] for r in rows]) * UJY_TO_MAGGIES,
            *(
                np.array([r[k] for r in rows])
                for k in ("mag_edges", "mag_err_mean", "mag_err_std")
            ),
            limit_sigma=limit_sigma,
            p_missing=p_missing,
        )

    def _init(
        self,
        bands: Sequence[str],
        depth: Any,
        edges: Any,
        mean: Any,
        std: Any,
        limit_sigma: float,
        p_missing: Any,
    ) -> None:
        super().__init__(bands, depth, limit_sigma, p_missing)
        self.mag_edges, self.mag_err_mean, self.mag_err_std = (
            np.array(a, dtype=float) for a in (edges, mean, std)
        )
        shape = (len(self.bands), self.mag_edges.shape[-1])
        for name in ("mag_edges", "mag_err_mean", "mag_err_std"):
            arr = getattr(self, name)
            if arr.shape != shape or not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} must be finite with shape {shape}; got {arr.shape}")
        if not (np.all(self.mag_err_mean > 0) and np.all(self.mag_err_std > 0)):
            raise ValueError("mag_err_mean and mag_err_std must be > 0")

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> JadesPixelNoise:
        obj = cls.__new__(cls)
        keys = ("bands", "depth", "mag_edges", "mag_err_mean", "mag_err_std", "limit_sigma")
        obj._init(*(d[k] for k in keys), d["p_missing"])
        return obj

    def _params(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in ("mag_edges", "mag_err_mean", "mag_err_std")}

    def magnitude_bin(self, maggies: Any) -> np.ndarray:
        """Index of the magnitude bin (bin k lies below edge k; the last bin is open), (*, F)."""
        f = self._check(maggies, "maggies")
        with np.errstate(divide="ignore", invalid="ignore"):
            mag = -2.5 * np.log10(f)
        k = np.sum(mag[..., None] >= self.mag_edges, axis=-1)
        return np.minimum(k, self.mag_edges.shape[-1] - 1)

    def _draw_sigma(self, maggies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        detected = maggies > self.limits
        k = self.magnitude_bin(np.where(detected, maggies, 1.0))
        band = np.arange(len(self.bands))
        mean, std = self.mag_err_mean[band, k], self.mag_err_std[band, k]
        p0 = ndtr(-mean / std)  # truncation at sigma_mag = 0, by inverting the normal CDF
        q = p0 + rng.random(maggies.shape) * (1.0 - p0)
        sigma_mag = mean + std * ndtri(np.clip(q, np.nextafter(p0, 1), np.nextafter(1.0, 0)))
        return np.where(detected, _DMAG * maggies * sigma_mag, self.depth)


class EmpiricalNoise(NoiseModel):
    """Noise learned from a real table of fluxes and errors (any survey, pixels or objects).

    Per band, ``log10(sigma)`` is a piecewise-linear function of ``x = asinh(flux / scale)``
    (``scale`` = the band's median error) through binned medians, with a log-normal scatter
    interpolated the same way. :meth:`apply` draws ``sigma`` at the true flux, and
    ``flux = maggies + N(0, sigma)``. Below the faintest bin ``sigma`` is constant; beyond the
    brightest bin the signal-to-noise is held constant, so no source is measured better than the
    catalogue's brightest. ``depth`` is the median ``sigma`` at zero flux. Build it with
    :meth:`from_catalog`.

    Parameters
    ----------
    bands : sequence of str
        sedpy names, the order of the last axis (F bands).
    scale : array_like, (F,)
        Softening flux of ``x`` per band, maggies.
    nodes, log_sigma, log_scatter : sequence of F arrays, (K_j,) each
        Increasing ``x`` nodes; median ``log10(sigma / maggies)`` and its scatter (dex) there.
    limit_sigma, p_missing
        As in :class:`NoiseModel`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> flux = rng.lognormal(np.log(1e-10), 1.0, size=(500, 2))
    >>> err = np.hypot(3e-12, 0.02 * flux)
    >>> noise = EmpiricalNoise.from_catalog(flux, err, bands=["F200W", "F444W"])
    >>> noise.bands, noise.depth.shape
    (('jwst_f200w', 'jwst_f444w'), (2,))
    """

    kind = "empirical"
    _per_band = NoiseModel._per_band + ("scale", "nodes", "log_sigma", "log_scatter")

    def __init__(
        self,
        bands: Sequence[str],
        scale: Any,
        nodes: Sequence[Any],
        log_sigma: Sequence[Any],
        log_scatter: Sequence[Any],
        *,
        limit_sigma: float = 1.0,
        p_missing: Any = 0.0,
    ) -> None:
        self.scale = np.asarray(scale, dtype=float).reshape(-1)
        self.nodes, self.log_sigma, self.log_scatter = (
            [np.asarray(a, dtype=float) for a in arrs] for arrs in (nodes, log_sigma, log_scatter)
        )
        n = len(bands)
        lengths = {len(self.scale), len(self.nodes), len(self.log_sigma), len(self.log_scatter)}
        if lengths != {n}:
            raise ValueError(f"scale, nodes, log_sigma, log_scatter need {n} bands each")
        for j in range(n):
            x, m, s = self.nodes[j], self.log_sigma[j], self.log_scatter[j]
            ok = x.ndim == 1 and x.size >= 1 and m.shape == x.shape == s.shape
            if not (ok and np.all(np.diff(x) > 0) and np.all(s >= 0) and self.scale[j] > 0):
                raise ValueError(f"band {bands[j]!r}: invalid relation (nodes {x})")
        depth = [
            10 ** np.interp(0.0, x, m) for x, m in zip(self.nodes, self.log_sigma, strict=True)
        ]
        super().__init__(bands, depth, limit_sigma, p_missing)

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> EmpiricalNoise:
        return cls(
            d["bands"],
            d["scale"],
            d["nodes"],
            d["log_sigma"],
            d["log_scatter"],
            limit_sigma=d["limit_sigma"],
            p_missing=d["p_missing"],
        )

    def _params(self) -> dict[str, Any]:
        return {"scale": self.scale.tolist()} | {
            k: [a.tolist() for a in getattr(self, k)]
            for k in ("nodes", "log_sigma", "log_scatter")
        }

    @classmethod
    def from_catalog(
        cls,
        flux: Any,
        err: Any,
        bands: Sequence[str] = JADES_BANDS,
        *,
        n_bins: int = 10,
        min_per_bin: int = 20,
        limit_sigma: float = 1.0,
        learn_missing: bool = True,
    ) -> EmpiricalNoise:
        """Learn the noise of a survey from its measured fluxes and errors.

        Parameters
        ----------
        flux, err : array_like, (N, F)
            Fluxes and 1-sigma errors in maggies (Jy / 3631, microJy * 1e-6 / 3631). An entry
            with non-finite flux or error, or error <= 0, is missing.
        bands : sequence of str
            sedpy or short names of the F columns.
        n_bins : int
            Most flux bins per band (equal counts).
        min_per_bin : int
            Fewest entries per bin; a band needs at least this many valid entries.
        limit_sigma : float
            As in :class:`NoiseModel`.
        learn_missing : bool
            Set ``p_missing`` to each band's fraction of missing entries (else 0).

        Returns
        -------
        EmpiricalNoise

        Raises
        ------
        ValueError
            Shapes that differ or do not match ``bands``; a band with too few valid entries.
        """
        flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
        names = resolve_band_names(bands)
        if flux.ndim != 2 or flux.shape != err.shape or flux.shape[1] != len(names):
            raise ValueError(
                f"flux and err must both have shape (N, {len(names)}) for {len(names)} bands; "
                f"got {flux.shape} and {err.shape}"
            )
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(flux) & np.isfinite(err) & (err > 0)
        if valid.any() and np.median(np.abs(flux[valid])) > 1e-6:
            warnings.warn(
                f"median |flux| is {np.median(np.abs(flux[valid])):.3g} maggies (AB < 15): are "
                "these Jy, microJy or nJy? Convert to maggies (Jy / 3631)",
                UserWarning,
                stacklevel=2,
            )
        rel = [
            _fit_band(flux[valid[:, j], j], err[valid[:, j], j], names[j], n_bins, min_per_bin)
            for j in range(len(names))
        ]
        p_missing = 1.0 - valid.mean(axis=0) if learn_missing else 0.0
        return cls(names, *zip(*rel, strict=True), limit_sigma=limit_sigma, p_missing=p_missing)

    def _relation(self, j: int, maggies: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Median log10 sigma and its scatter at true fluxes ``maggies`` in band ``j``."""
        x_nodes, scale = self.nodes[j], self.scale[j]
        x = np.arcsinh(maggies / scale)
        mu = np.interp(x, x_nodes, self.log_sigma[j])
        f_last = scale * np.sinh(x_nodes[-1])
        if f_last > 0:
            with np.errstate(divide="ignore", invalid="ignore"):
                mu = np.where(x > x_nodes[-1], mu + np.log10(maggies / f_last), mu)
        return mu, np.interp(x, x_nodes, self.log_scatter[j])

    def median_sigma(self, maggies: Any) -> np.ndarray:
        """Median 1-sigma error (maggies) of sources with true fluxes ``maggies``, (*, F)."""
        f = self._check(maggies, "maggies")
        return np.stack(
            [10 ** self._relation(j, f[..., j])[0] for j in range(len(self.bands))], axis=-1
        )

    def _draw_sigma(self, maggies: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal(maggies.shape)
        out = np.empty_like(maggies)
        for j in range(len(self.bands)):
            mu, scatter = self._relation(j, maggies[..., j])
            out[..., j] = 10 ** (mu + scatter * z[..., j])
        return out


def _fit_band(
    flux: np.ndarray, err: np.ndarray, band: str, n_bins: int, min_per_bin: int
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Scale, nodes, median log10 sigma and scatter of one band (valid entries only)."""
    if flux.size < max(min_per_bin, 1):
        raise ValueError(f"band {band!r} has {flux.size} valid entries; need >= {min_per_bin}")
    scale = float(np.median(err))
    x, log_sig = np.arcsinh(flux / scale), np.log10(err)
    n = int(np.clip(flux.size // max(min_per_bin, 1), 1, n_bins))
    cuts = np.quantile(x, np.linspace(0, 1, n + 1)[1:-1])
    which = np.searchsorted(cuts, x, side="right")
    groups = [np.flatnonzero(which == b) for b in range(n)]
    groups = [g for g in groups if g.size]
    nodes = np.array([np.median(x[g]) for g in groups])
    mu = np.array([np.median(log_sig[g]) for g in groups])
    nodes, keep = np.unique(nodes, return_index=True)  # ties from quantised fluxes
    mu, groups = mu[keep], [groups[i] for i in keep]
    resid = log_sig - np.interp(x, nodes, mu)
    scatter = np.array(
        [1.4826 * np.median(np.abs(resid[g] - np.median(resid[g]))) for g in groups]
    )
    return scale, nodes, mu, scatter
