"""Noise learned from a real catalogue of fluxes and errors."""

from __future__ import annotations

__all__ = ["EmpiricalNoise"]

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..filters import JADES_BANDS, resolve_band_names
from .base import NoiseModel


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
