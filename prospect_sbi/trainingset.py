"""Reading training sets written by :func:`prospect_sbi.simulate`, and checking their fluxes."""

from __future__ import annotations

__all__ = ["MAX_ABS_MAG", "TrainingSet", "check_photometry"]

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from ._io import parts_folder
from .cosmology import luminosity_distance

#: Brightest absolute AB magnitude (any band) a training flux may have. The brightest stellar
#: population a prior of this package reaches, 10^12 Msun formed in one burst and seen at
#: 1 Myr without dust, has M_AB = -31.2 (its brightest JADES band at z = 0.1); the most
#: luminous quasars reach about -30. Fluxes 3000 times brighter than the former are no
#: galaxy: a flux in other units, or a broken simulation.
MAX_ABS_MAG = -40.0
#: Negative noiseless fluxes down to this fraction of the row's brightest band are float
#: round-off (the fast path's float32 sums leave -1e-20 maggies) and are read as zero.
_ROUND_OFF = 1e-6
#: Attributes and datasets a training set must have.
_ATTRS = ("labels", "filters", "model_hash", "model_spec")
_DATASETS = ("theta", "photometry", "zred", "mfrac", "derived")


class TrainingSet:
    """A simulated training set on disk, read lazily.

    ``theta``, ``photometry`` and the arrays in ``derived`` are h5py datasets: slicing one
    (``ts.theta[:1000]``) reads only those rows, and ``np.asarray(ts.theta)`` reads it all.

    Attributes
    ----------
    labels : list of str
        Free parameters, in the model's theta order.
    filters : list of str
        sedpy names of the bands, the order of the photometry's last axis.
    theta : h5py.Dataset, (N, n_free)
    photometry : h5py.Dataset, (N, n_filters)
        Noiseless fluxes, maggies.
    derived : dict of h5py.Dataset, (N,)
        ``log_mstar``, ``log_sfr10``, ``log_sfr100``, ``log_ssfr100``, ``mwa`` and, for
        tau and step SFHs, ``t25``, ``t50``, ``t75`` (units in ``derived_units``).
    zred : h5py.Dataset, (N,)
        Redshift of each draw (free or fixed).
    mfrac : h5py.Dataset, (N,)
        Surviving / formed stellar mass.
    provenance : dict
        Model specification and hash, filters, SPS, method, seed, package versions, ...

    Examples
    --------
    >>> ts = TrainingSet.open("train.h5")  # doctest: +SKIP
    >>> len(ts), ts.labels, ts.photometry[:10].shape  # doctest: +SKIP
    """

    def __init__(self, handle: h5py.File) -> None:
        self._file = handle
        attrs = handle.attrs
        self.labels: list[str] = _json_attr(handle, "labels")
        self.filters: list[str] = _json_attr(handle, "filters")
        self.theta = handle["theta"]
        self.photometry = handle["photometry"]
        self.zred = handle["zred"]
        self.mfrac = handle["mfrac"]
        self.derived = {k: handle["derived"][k] for k in handle["derived"]}
        self.provenance = {
            k: (json.loads(v) if k in ("model_spec", "versions", "derived_units") else v)
            for k, v in ((k, _plain(attrs[k])) for k in attrs)
        }

    @classmethod
    def open(cls, path: str | os.PathLike) -> TrainingSet:
        """Open a training set for reading.

        Parameters
        ----------
        path : path-like
            HDF5 file written by :func:`prospect_sbi.simulate`.

        Returns
        -------
        TrainingSet

        Raises
        ------
        FileNotFoundError
            No file at ``path``.
        ValueError
            Not an HDF5 file, or one without the arrays and attributes of a training set.
        """
        path = Path(path)
        if not path.exists():
            parts = parts_folder(path)
            hint = f" (an unfinished run is in {parts}: rerun simulate)" if parts.exists() else ""
            raise FileNotFoundError(f"no training set at {path}{hint}")
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise ValueError(f"{path} is not an HDF5 training set ({err})") from None
        if "theta" not in handle or "labels" not in handle.attrs:
            handle.close()
            raise ValueError(f"{path} is not a prospect-sbi training set")
        lacking = [f"{k!r} attribute" for k in _ATTRS if k not in handle.attrs] + [
            f"{k!r} array" for k in _DATASETS if k not in handle
        ]
        if lacking:
            handle.close()
            raise ValueError(
                f"{path} is not a complete prospect-sbi training set: it has no "
                f"{', '.join(lacking)}"
            )
        try:
            return cls(handle)
        except ValueError:
            handle.close()
            raise

    @property
    def path(self) -> Path:
        """The HDF5 file."""
        return Path(self._file.filename)

    @property
    def model_hash(self) -> str:
        """Hash of the model specification the set was drawn from."""
        return str(self.provenance["model_hash"])

    @property
    def derived_units(self) -> dict[str, str]:
        """Meaning and units of each derived quantity."""
        return dict(self.provenance["derived_units"])

    def __len__(self) -> int:
        return int(self.theta.shape[0])

    def __getitem__(self, index: slice | np.ndarray) -> dict[str, np.ndarray]:
        """Rows ``index`` of every array, read from disk: theta, photometry, zred, derived."""
        out = {
            "theta": self.theta[index],
            "photometry": self.photometry[index],
            "zred": self.zred[index],
            "mfrac": self.mfrac[index],
        }
        out.update({k: v[index] for k, v in self.derived.items()})
        return out

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> TrainingSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"TrainingSet({self._file.filename!r}, n={len(self)}, labels={self.labels}, "
            f"filters={len(self.filters)})"
        )


def _json_attr(handle: h5py.File, key: str) -> list:
    try:
        value = json.loads(_plain(handle.attrs[key]))
    except (TypeError, ValueError):
        value = None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{handle.filename}: the {key!r} attribute is not a JSON list of names")
    return value


def check_photometry(
    photometry: np.ndarray,
    zred: np.ndarray,
    filters: Sequence[str],
    first_row: int = 0,
) -> np.ndarray:
    """Refuse noiseless training fluxes that no galaxy has; return them with round-off zeroed.

    An estimator learns whatever a training set holds, and its fluxes also set the range
    that :func:`~prospect_sbi.posterior.checks.check_observations` compares observations with
    (so a set in Jy would switch off the check for fluxes in Jy). Each flux must be finite,
    not negative beyond round-off (a millionth of the row's brightest band), and no brighter
    than absolute AB magnitude :data:`MAX_ABS_MAG` at the row's redshift: below
    ``10**(-0.4 * (MAX_ABS_MAG + DM(z))) * (1 + z)`` maggies, with DM the distance modulus of
    Prospector's cosmology and 10 pc at z = 0 (where Prospector gives absolute magnitudes).

    Parameters
    ----------
    photometry : numpy.ndarray, (N, F)
        Noiseless fluxes, maggies.
    zred : numpy.ndarray, (N,)
        Redshift of each row.
    filters : sequence of str
        The F band names (for messages).
    first_row : int
        Row number of the first row in the file (for messages).

    Returns
    -------
    numpy.ndarray, float64, (N, F)
        The fluxes, with negative round-off set to 0.

    Raises
    ------
    ValueError
        Naming the first offending row and band, the value and the limit.

    Examples
    --------
    >>> check_photometry(np.array([[1e-9, 2e-9]]), np.array([2.0]), ["a", "b"]).shape
    (1, 2)
    """
    phot = np.asarray(photometry, dtype=float)
    z = np.asarray(zred, dtype=float).reshape(-1)

    def where(mask: np.ndarray) -> tuple[int, str, float]:
        i, j = np.argwhere(mask)[0]
        return first_row + int(i), filters[j], float(phot[i, j])

    bad_z = ~np.isfinite(z) | (z < 0)
    if bad_z.any():
        i = int(np.argmax(bad_z))
        raise ValueError(
            f"training zred is {z[i]} at row {first_row + i}; expected a finite redshift >= 0"
        )
    if not np.all(np.isfinite(phot)):
        row, band, value = where(~np.isfinite(phot))
        raise ValueError(
            f"training photometry is {value} at row {row}, band {band}; expected "
            "finite fluxes (maggies)"
        )
    floor = -_ROUND_OFF * np.max(np.abs(phot), axis=1, keepdims=True)
    if np.any(phot < floor):
        row, band, value = where(phot < floor)
        raise ValueError(
            f"training photometry is {value:.3g} maggies at row {row}, band {band};"
            " expected noiseless fluxes >= 0"
        )
    dist_pc = np.maximum(luminosity_distance(z) * 1e6, 10.0)
    limit = 10 ** (-0.4 * (MAX_ABS_MAG + 5 * np.log10(dist_pc / 10.0))) * (1 + z)
    over = phot > limit[:, None]
    if over.any():
        row, band, value = where(over)
        i = row - first_row
        raise ValueError(
            f"training photometry is {value:.3g} maggies at row {row}, band {band}; "
            f"no galaxy at zred {z[i]:.3g} is brighter than {limit[i]:.3g} maggies "
            f"(absolute AB magnitude {MAX_ABS_MAG:g}): fluxes in other units?"
        )
    return np.maximum(phot, 0.0)


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
