"""Training examples in memory, with a fresh noise draw and band dropout every epoch."""

from __future__ import annotations

__all__ = ["Examples", "MASS_SCALED", "MassAugmentation", "drop_bands"]

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..noise import NoiseModel
from ..trainingset import TrainingSet, check_photometry
from .encoding import ObservationEncoder


def drop_bands(
    flux: np.ndarray, err: np.ndarray, rng: np.random.Generator, p: float
) -> tuple[np.ndarray, np.ndarray]:
    """Make bands missing at random, so that one estimator serves any subset of bands.

    Half of the rows keep every band; in the other half each band is dropped with probability
    ``p``. A row never loses all its bands: one of them, at random, is kept.

    Parameters
    ----------
    flux, err : numpy.ndarray, (N, F)
        Noisy fluxes and errors (maggies); NaN where already missing.
    rng : numpy.random.Generator
        Source of randomness.
    p : float
        Probability that a band is dropped, in the rows that drop bands.

    Returns
    -------
    flux, err : numpy.ndarray, (N, F)
        Copies with NaN in dropped bands.
    """
    n, f = flux.shape
    drop = (rng.random((n, f)) < p) & (rng.random((n, 1)) < 0.5)
    gone = np.flatnonzero(np.all(drop | np.isnan(flux), axis=1))
    drop[gone, rng.integers(f, size=gone.size)] = False
    return np.where(drop, np.nan, flux), np.where(drop, np.nan, err)


#: Derived quantities that are log10 of a quantity proportional to the formed mass: they move
#: by the same number of dex as the mass.
MASS_SCALED = ("log_mstar", "log_sfr10", "log_sfr100")
#: Mass parameters whose prior is uniform in log mass, by name: prior names allowed.
_LOG_UNIFORM_MASS = {"mass": ("LogUniform",), "logmass": ("TopHat", "Uniform")}


class MassAugmentation:
    """Draw every training row's formed mass anew from its prior, each epoch, for free.

    Photometry is exactly proportional to the formed mass (stars, nebular emission and dust
    all scale with it), and the shipped models' mass prior is uniform in log mass and
    independent of the other parameters. So a simulated row with its mass replaced by a fresh
    prior draw, its fluxes multiplied by the same factor and its mass-proportional derived
    quantities (:data:`MASS_SCALED`) moved by the same number of dex, is an exact draw from
    the prior predictive: no simulation is needed. Every epoch then sees each SED at a new
    brightness, with a new noise draw.

    Parameters
    ----------
    names : sequence of str
        Target names (free parameters, then derived quantities), the columns of ``theta``.
    spec : dict
        Model specification (:func:`prospect_sbi.provenance.model_spec`).

    Raises
    ------
    ValueError
        No free ``mass`` (LogUniform prior) or ``logmass`` (TopHat or Uniform prior) target.
    """

    def __init__(self, names: Sequence[str], spec: dict[str, Any]) -> None:
        names = list(names)
        params = spec.get("params", {})
        found = [n for n in _LOG_UNIFORM_MASS if n in names]
        if not found:
            raise ValueError(
                f"mass augmentation needs a free 'mass' or 'logmass' target; the "
                f"targets are {names}"
            )
        self.name = found[0]
        prior = params[self.name].get("prior") or {}
        allowed = _LOG_UNIFORM_MASS[self.name]
        if prior.get("name") not in allowed:
            raise ValueError(
                f"mass augmentation needs a prior uniform in log mass "
                f"({self.name}: {' or '.join(allowed)}); got "
                f"{prior.get('name')}"
            )
        lo, hi = (float(np.ravel(prior["params"][k])[0]) for k in ("mini", "maxi"))
        self.log = self.name == "logmass"
        self.lo, self.hi = (lo, hi) if self.log else (np.log10(lo), np.log10(hi))
        self.column = names.index(self.name)
        self.scaled = [names.index(n) for n in MASS_SCALED if n in names]

    def draw(self, theta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw new masses for the rows of ``theta`` (N, D).

        Returns
        -------
        theta : numpy.ndarray, (N, D)
            A copy with the new mass and shifted mass-proportional derived quantities.
        factor : numpy.ndarray, (N,)
            What the rows' fluxes are multiplied by.
        """
        old = theta[:, self.column] if self.log else np.log10(theta[:, self.column])
        new = rng.uniform(self.lo, self.hi, size=len(theta))
        shift = new - old
        out = theta.copy()
        out[:, self.column] = new if self.log else 10.0**new
        out[:, self.scaled] += shift[:, None]
        return out, 10.0**shift


class Examples:
    """Targets and noiseless photometry of a training set, held in memory.

    Parameters
    ----------
    theta : numpy.ndarray, (N, D)
        Physical target values (free parameters, then derived quantities).
    photometry : numpy.ndarray, (N, F)
        Noiseless fluxes, maggies.
    zred : numpy.ndarray, (N,)
        Redshifts.
    """

    def __init__(self, theta: np.ndarray, photometry: np.ndarray, zred: np.ndarray) -> None:
        self.theta, self.photometry, self.zred = theta, photometry, zred

    @classmethod
    def load(
        cls,
        ts: TrainingSet,
        names: Sequence[str],
        rows: int | None = None,
    ) -> Examples:
        """Read targets ``names`` (theta labels, ``zred`` or derived names) of a training set.

        Parameters
        ----------
        ts : TrainingSet
            The training set.
        names : sequence of str
            Columns, in order.
        rows : int, optional
            Read only the first ``rows`` rows.

        Raises
        ------
        ValueError
            A name that is neither a free parameter, ``zred``, nor a derived quantity; fluxes
            that no galaxy has (:func:`~prospect_sbi.trainingset.check_photometry`).
        """
        end = len(ts) if rows is None else min(int(rows), len(ts))
        theta = ts.theta[:end] if any(n in ts.labels for n in names) else None
        zred = np.asarray(ts.zred[:end], dtype=float)
        columns = []
        for name in names:
            if name in ts.labels:
                columns.append(theta[:, ts.labels.index(name)])
            elif name == "zred":
                columns.append(zred)
            elif name in ts.derived:
                columns.append(ts.derived[name][:end])
            else:
                known = ts.labels + sorted(ts.derived)
                raise ValueError(f"target {name!r} is not in the training set (known: {known})")
        # The noise models need noiseless fluxes >= 0: round-off below 0 is set to 0, and
        # non-physical fluxes are refused (they would also widen the flux range that the
        # estimator's unit checks compare observations with).
        photometry = check_photometry(ts.photometry[:end], zred, ts.filters)
        return cls(np.stack(columns, axis=1).astype(float), photometry, zred)

    def __len__(self) -> int:
        return len(self.photometry)

    def inputs(
        self,
        rows: np.ndarray,
        noise: NoiseModel,
        encoder: ObservationEncoder,
        rng: np.random.Generator,
        dropout: float,
        factor: np.ndarray | None = None,
    ) -> Tensor:
        """Encode noisy observations of ``rows``: a new noise draw and band dropout.

        ``factor`` (len(rows),) multiplies the noiseless fluxes first (:class:`MassAugmentation`).

        Returns
        -------
        torch.Tensor, (len(rows), encoder.n_features), float32
        """
        phot = self.photometry[rows]
        flux, err = noise.apply(phot if factor is None else phot * factor[:, None], rng)
        if dropout > 0:
            flux, err = drop_bands(flux, err, rng, dropout)
        return encoder.encode(flux, err, self.zred[rows])

    def noisy(self, rows: np.ndarray, noise: NoiseModel, rng: np.random.Generator) -> tuple:
        """Noisy fluxes and errors of ``rows`` (no dropout): ``(flux, err)``, (len(rows), F)."""
        return noise.apply(self.photometry[rows], rng)

    def targets(self, rows: np.ndarray) -> Tensor:
        """Physical targets of ``rows`` as float64 tensor, (len(rows), D)."""
        return torch.from_numpy(self.theta[rows])
