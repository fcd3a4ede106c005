"""Training examples in memory, with a fresh noise draw and band dropout every epoch."""

from __future__ import annotations

__all__ = ["Examples", "drop_bands"]

from collections.abc import Sequence

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
    ) -> Tensor:
        """Encode noisy observations of ``rows``: a new noise draw and band dropout.

        Returns
        -------
        torch.Tensor, (len(rows), encoder.n_features), float32
        """
        flux, err = noise.apply(self.photometry[rows], rng)
        if dropout > 0:
            flux, err = drop_bands(flux, err, rng, dropout)
        return encoder.encode(flux, err, self.zred[rows])

    def noisy(self, rows: np.ndarray, noise: NoiseModel, rng: np.random.Generator) -> tuple:
        """Noisy fluxes and errors of ``rows`` (no dropout): ``(flux, err)``, (len(rows), F)."""
        return noise.apply(self.photometry[rows], rng)

    def targets(self, rows: np.ndarray) -> Tensor:
        """Physical targets of ``rows`` as float64 tensor, (len(rows), D)."""
        return torch.from_numpy(self.theta[rows])
