"""JADES pixel noise from the SBIPIX statistics (shipped as package data)."""

from __future__ import annotations

__all__ = ["JadesPixelNoise"]

import json
import os
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr, ndtri

from ..constants import DMAG, UJY_TO_MAGGIES
from ..filters import JADES_BANDS
from .base import NoiseModel, match_bands

#: Band order of the SBIPIX ``obs/obs_properties`` arrays, as sedpy names.
_SBIPIX_ORDER = (
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f182m",
    "jwst_f200w",
    "jwst_f210m",
    "jwst_f277w",
    "jwst_f335m",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f430m",
    "jwst_f444w",
    "jwst_f460m",
    "jwst_f480m",
    "acs_wfc_f435w",
    "acs_wfc_f606w",
    "acs_wfc_f775w",
    "acs_wfc_f814w",
    "acs_wfc_f850lp",
)
_SBIPIX_FILES = {
    "depth": "background_noise_hainline.npy",
    "edges": "percentiles_jades_res_bins.npy",
    "mean": "mean_sigma_jades_res_bins.npy",
    "std": "std_sigma_jades_res_bins.npy",
}


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
    normal distribution of its magnitude bin, truncated below at ``mag_err_floor``, and
    ``err = 0.4 ln(10) flux sigma_mag``; a fainter band gets ``err = depth``. SBIPIX
    truncates at 0, which gives 2-23% of bright bands errors below 0.01 mag (per-band S/N
    up to ~1000); no pixel of the three JOF galaxies in ``../shared/data`` has an error
    below 0.0106 mag in any band, hence the default floor of 0.01 mag. Unlike SBIPIX, the
    noise is added to the flux, not to the magnitude, so ``(flux - maggies) / err`` is
    N(0, 1) and negative fluxes can occur, as in real forced photometry. The numbers ship
    with the package (see ``docs/noise.md``); ``data_dir`` reads them from the SBIPIX files
    instead.

    Parameters
    ----------
    bands : sequence of str
        Any of the 19 JADES bands (sedpy or short names); default :data:`JADES_BANDS`.
    data_dir : str or path-like, optional
        Folder with the SBIPIX ``obs/obs_properties`` ``.npy`` files.
    limit_sigma, p_missing
        As in :class:`NoiseModel`.
    mag_err_floor : float
        Smallest magnitude error of a detected band (0 reproduces SBIPIX; estimators saved
        before this option existed were trained with 0 and keep it).

    Examples
    --------
    >>> import numpy as np
    >>> noise = JadesPixelNoise()
    >>> flux, err = noise.apply(np.full((2, 14), 1e-13), np.random.default_rng(0))
    >>> flux.shape, bool(np.all(err > 0))
    ((2, 14), True)
    """

    kind = "jades_pixel"
    per_band_keys = NoiseModel.per_band_keys + ("mag_edges", "mag_err_mean", "mag_err_std")

    def __init__(
        self,
        bands: Sequence[str] = JADES_BANDS,
        data_dir: str | os.PathLike | None = None,
        *,
        limit_sigma: float = 1.0,
        p_missing: Any = 0.0,
        mag_err_floor: float = 0.01,
    ) -> None:
        table = _package_table() if data_dir is None else _read_sbipix_tables(data_dir)
        names = match_bands(bands, tuple(table))
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
            mag_err_floor=mag_err_floor,
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
        mag_err_floor: float,
    ) -> None:
        super().__init__(bands, depth, limit_sigma, p_missing)
        if not (np.isfinite(mag_err_floor) and 0.0 <= mag_err_floor < 1.0):
            raise ValueError(f"mag_err_floor must be in [0, 1) mag; got {mag_err_floor}")
        self.mag_err_floor = float(mag_err_floor)
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
    def from_dict(cls, d: dict[str, Any]) -> JadesPixelNoise:
        """Rebuild from :meth:`to_dict` output."""
        obj = cls.__new__(cls)
        keys = ("bands", "depth", "mag_edges", "mag_err_mean", "mag_err_std", "limit_sigma")
        # files written before the floor existed were drawn without one
        cls._init(obj, *(d[k] for k in keys), d["p_missing"], d.get("mag_err_floor", 0.0))
        return obj

    def _params(self) -> dict[str, Any]:
        keys = ("mag_edges", "mag_err_mean", "mag_err_std")
        return {k: getattr(self, k).tolist() for k in keys} | {"mag_err_floor": self.mag_err_floor}

    def smallest_error(self) -> np.ndarray | None:
        """Return ``0.4 ln(10) limit mag_err_floor`` per band, maggies (F,); None without a floor.

        A detection just above its limit with the floor's magnitude error (``depth`` if that
        is smaller: a non-detection's error).
        """
        if self.mag_err_floor <= 0:
            return None
        return np.minimum(self.depth, DMAG * self.limits * self.mag_err_floor)

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
        # truncation at sigma_mag = mag_err_floor, by inverting the normal CDF
        p0 = ndtr((self.mag_err_floor - mean) / std)
        q = p0 + rng.random(maggies.shape) * (1.0 - p0)
        sigma_mag = mean + std * ndtri(np.clip(q, np.nextafter(p0, 1), np.nextafter(1.0, 0)))
        return np.where(detected, DMAG * maggies * sigma_mag, self.depth)
