"""Observations -> network inputs: asinh magnitudes, colours, errors, limit and missing flags."""

from __future__ import annotations

__all__ = ["ObservationEncoder"]

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


class ObservationEncoder:
    """Turn fluxes and errors (maggies) into standardised network inputs.

    Per band (F bands) four features (five with ``colours``), then the redshift when it is
    known:

    - ``asinh(flux / (2 depth))``, standardised: a Lupton asinh magnitude (up to sign and
      offset) softened at the band's 1-sigma depth, so it stays finite and smooth for faint,
      zero and negative fluxes and is logarithmic for bright ones;
    - with ``colours``: that asinh magnitude minus its mean over the present bands,
      standardised. Magnitudes spread over the whole brightness range of the training set
      (standard deviation 3-4.5), colours much less (0.6-2.5), so the small colour
      differences that set the age and dust of a bright object are 2-7 times larger inputs;
    - ``log(err / depth)``, standardised;
    - the upper-limit flag: ``flux < limit_sigma * depth`` (the noise model's non-detection
      test); the band keeps its measured value, so the network sees both;
    - the missing flag: NaN flux (both values above are then 0).

    Parameters
    ----------
    bands : sequence of str
        sedpy names, the order of the last axis.
    depth : array_like, (F,)
        1-sigma depth per band, maggies (the noise model's ``depth``).
    limit_sigma : float
        Non-detection threshold in units of the depth.
    stats : dict, optional
        Standardisation: ``mag_mean``, ``mag_std``, ``err_mean``, ``err_std`` (F,) and, with
        a known redshift, ``zred_mean``, ``zred_std``; :meth:`fit` sets them.
    known_zred : bool
        Append the redshift as the last input.
    colours : bool
        Add the colour features (estimators trained before they existed have none).

    Examples
    --------
    >>> enc = ObservationEncoder(["jwst_f200w", "jwst_f444w"], [1e-13, 1e-13], 1.0)
    >>> x = enc.encode(np.array([[1e-10, np.nan]]), np.array([[1e-12, np.nan]]))
    >>> tuple(x.shape), x[0, -1].item()  # 5 features per band; the last is F444W missing
    ((1, 10), 1.0)
    """

    def __init__(
        self,
        bands: Sequence[str],
        depth: Any,
        limit_sigma: float,
        stats: dict[str, Any] | None = None,
        known_zred: bool = False,
        colours: bool = True,
    ) -> None:
        self.bands = [str(b) for b in bands]
        self.depth = np.asarray(depth, dtype=float).reshape(len(self.bands))
        self.limit_sigma = float(limit_sigma)
        self.known_zred, self.colours = bool(known_zred), bool(colours)
        n = len(self.bands)
        self.stats = {
            "mag_mean": np.zeros(n),
            "mag_std": np.ones(n),
            "err_mean": np.zeros(n),
            "err_std": np.ones(n),
            "col_mean": np.zeros(n),
            "col_std": np.ones(n),
            "zred_mean": 0.0,
            "zred_std": 1.0,
        }
        self.stats.update({k: np.asarray(v, dtype=float) for k, v in (stats or {}).items()})

    @property
    def n_features(self) -> int:
        """Length of one encoded observation: ``4 F`` or ``5 F`` (+1 with a known redshift)."""
        return (4 + int(self.colours)) * len(self.bands) + int(self.known_zred)

    def _raw(self, flux: np.ndarray, err: np.ndarray) -> tuple[np.ndarray, ...]:
        missing = np.isnan(flux)
        with np.errstate(invalid="ignore", divide="ignore"):
            mag = np.arcsinh(flux / (2.0 * self.depth))
            log_err = np.log(err / self.depth)
            limit = ~missing & (flux < self.limit_sigma * self.depth)
        present = np.where(missing, 0.0, mag)
        count = np.maximum(np.sum(~missing, axis=-1, keepdims=True), 1)
        colour = mag - np.sum(present, axis=-1, keepdims=True) / count
        return mag, log_err, limit, missing, colour

    def fit(
        self, flux: np.ndarray, err: np.ndarray, zred: np.ndarray | None = None
    ) -> ObservationEncoder:
        """Set the standardisation from noisy training fluxes and errors (N, F); returns self."""
        flux, err = np.asarray(flux, float), np.asarray(err, float)
        mag, log_err, _, missing, colour = self._raw(flux, err)
        mag, log_err, colour = (np.where(missing, np.nan, a) for a in (mag, log_err, colour))
        self.stats.update(
            mag_mean=np.nanmean(mag, 0),
            mag_std=np.maximum(np.nanstd(mag, 0), 1e-3),
            err_mean=np.nanmean(log_err, 0),
            err_std=np.maximum(np.nanstd(log_err, 0), 1e-3),
            col_mean=np.nanmean(colour, 0),
            col_std=np.maximum(np.nanstd(colour, 0), 1e-3),
        )
        if self.known_zred:
            z = np.asarray(zred, dtype=float)
            self.stats.update(zred_mean=float(z.mean()), zred_std=float(max(z.std(), 1e-3)))
        return self

    def encode(self, flux: np.ndarray, err: np.ndarray, zred: np.ndarray | None = None) -> Tensor:
        """Network inputs for checked observations.

        Parameters
        ----------
        flux, err : numpy.ndarray, (B, F)
            Fluxes and 1-sigma errors in maggies; NaN in both marks a missing band.
        zred : numpy.ndarray, (B,), optional
            Redshifts (required when :attr:`known_zred`).

        Returns
        -------
        torch.Tensor, (B, n_features), float32
        """
        s = self.stats
        mag, log_err, limit, missing, colour = self._raw(flux, err)
        mag = np.where(missing, 0.0, (mag - s["mag_mean"]) / s["mag_std"])
        log_err = np.where(missing, 0.0, (log_err - s["err_mean"]) / s["err_std"])
        parts = [mag, log_err, limit, missing]
        if self.colours:
            parts.insert(1, np.where(missing, 0.0, (colour - s["col_mean"]) / s["col_std"]))
        if self.known_zred:
            z = (np.asarray(zred, dtype=float) - s["zred_mean"]) / s["zred_std"]
            parts.append(np.reshape(z, (-1, 1)))
        return torch.from_numpy(np.concatenate(parts, axis=-1, dtype=np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; :meth:`from_dict` rebuilds the encoder."""
        return {
            "bands": self.bands,
            "depth": self.depth.tolist(),
            "limit_sigma": self.limit_sigma,
            "known_zred": self.known_zred,
            "colours": self.colours,
            "stats": {k: np.asarray(v).tolist() for k, v in self.stats.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ObservationEncoder:
        """Rebuild from :meth:`to_dict` output."""
        return cls(
            d["bands"],
            d["depth"],
            d["limit_sigma"],
            d["stats"],
            d["known_zred"],
            d.get("colours", False),
        )
