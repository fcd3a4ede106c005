"""Reading training sets written by :func:`prospect_sbi.simulate`."""

from __future__ import annotations

__all__ = ["TrainingSet"]

import json
import os
from pathlib import Path

import h5py
import numpy as np


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
        self.labels: list[str] = json.loads(attrs["labels"])
        self.filters: list[str] = json.loads(attrs["filters"])
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
        """
        path = Path(path)
        if not path.exists():
            parts = path.with_name(path.name + ".parts")
            hint = f" (an unfinished run is in {parts}: rerun simulate)" if parts.exists() else ""
            raise FileNotFoundError(f"no training set at {path}{hint}")
        handle = h5py.File(path, "r")
        if "theta" not in handle or "labels" not in handle.attrs:
            handle.close()
            raise ValueError(f"{path} is not a prospect-sbi training set")
        return cls(handle)

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
        out = {"theta": self.theta[index], "photometry": self.photometry[index],
               "zred": self.zred[index], "mfrac": self.mfrac[index]}  # fmt: skip
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
        return (f"TrainingSet({self._file.filename!r}, n={len(self)}, labels={self.labels}, "
                f"filters={len(self.filters)})")  # fmt: skip


def _plain(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value
