"""Per-object posterior draws of a catalogue fit, kept chunk by chunk and assembled into HDF5.

A catalogue fit (:func:`~prospect_sbi.fitting.write_catalog_fit`) can keep, beside its table
of quantiles, every object's equal-weight draws: the free parameters in the model's theta
order (``zred`` filled with the catalogue's redshift when the estimator is conditioned on it)
and the derived quantities, the same draws the table's ``<label>_p50`` ... were computed from.
Each chunk is kept as a part file (atomically) next to the table's parts, so an interrupted
fit resumes with its draws; the parts are assembled into one HDF5 file, a chunk at a time.

File layout (N objects, n draws, D free parameters, K derived quantities)::

    id       (N,)        catalogue ids (strings or integers)
    zred     (N,)        redshift column (NaN when none)
    flag     (N,)        the table's flag
    theta    (N, n, D)   float32, model theta order; NaN rows for objects not fitted
    derived  (N, n, K)   float32
    attrs: theta_labels, derived_labels, labels (estimator order), model_hash, model_spec,
           estimator_digest, n_draws, seed, refine, format  (JSON strings)
"""

from __future__ import annotations

__all__ = ["DRAWS_FORMAT", "DrawParts", "read_catalog_draws"]

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import ChunkStore, atomic_path

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: ``format`` attribute of a catalogue draws file.
DRAWS_FORMAT = "prospect-sbi catalogue draws 1"


def _check_suffix(path: Path) -> Path:
    if path.suffix.lower() not in (".h5", ".hdf5"):
        raise ValueError(f"draws file {path}: expected a .h5 or .hdf5 name")
    return path


class DrawParts:
    """Draws of a catalogue fit, one part per chunk in ``folder``, for the HDF5 file ``out``.

    Parameters
    ----------
    out : path-like
        The HDF5 file the parts will make (``.h5`` or ``.hdf5``).
    folder : path-like
        Where the parts live (created; :class:`~prospect_sbi._io.ChunkStore` without a
        manifest of its own): the fit's table parts folder, so that they share its
        fingerprint.
    estimator : AmortizedPosterior
        The estimator (labels, model, digest).
    model : prospect.models.SpecModel
        Whose theta order the draws follow (the estimator's own model by default).
    attrs : dict
        More JSON-able attributes of the file (``n_draws``, ``seed``, ``refine``).

    Raises
    ------
    ValueError
        A file name without the ``.h5``/``.hdf5`` suffix; a model whose free parameters the
        estimator does not give.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        folder: str | os.PathLike,
        estimator: AmortizedPosterior,
        model: Any = None,
        attrs: dict | None = None,
    ) -> None:
        from ..provenance import model_spec

        post = estimator
        self.out = _check_suffix(Path(out))
        self.store = ChunkStore(folder, None, ".npz", name="draws{:06d}")
        self.folder = self.store.folder
        self.labels = list(post.labels)
        self.model = post.model() if model is None else model
        self.theta_labels = list(self.model.theta_labels())
        missing = [k for k in self.theta_labels if k not in self.labels and k != "zred"]
        if missing:
            raise ValueError(
                f"the estimator gives no draws of the model's {missing} (its labels {self.labels})"
            )
        self.derived_labels = [k for k in self.labels if k not in self.theta_labels]
        self.attrs = {
            "format": DRAWS_FORMAT,
            "theta_labels": self.theta_labels,
            "derived_labels": self.derived_labels,
            "labels": self.labels,
            "model_hash": post.model_hash,
            "model_spec": model_spec(self.model),
            "estimator_digest": post.digest(),
            **(attrs or {}),
        }

    def path(self, c: int) -> Path:
        """Part file of chunk ``c``."""
        return self.store.path(c)

    def __contains__(self, c: int) -> bool:
        return c in self.store

    def split(self, draws: np.ndarray, zred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Theta (b, n, D) in the model's order and derived (b, n, K) of draws (b, n, L).

        ``zred`` (b,) fills the ``zred`` column when the estimator does not draw it (NaN for
        objects not fitted, whose draws are all NaN).
        """
        draws = np.asarray(draws)
        cols = []
        for label in self.theta_labels:
            if label in self.labels:
                cols.append(draws[..., self.labels.index(label)])
            else:  # zred, known
                cols.append(
                    np.broadcast_to(np.asarray(zred, draws.dtype)[:, None], draws.shape[:2])
                )
        theta = np.stack(cols, axis=-1)
        theta[np.isnan(draws).all(-1)] = np.nan  # objects not fitted: no zred either
        derived = draws[..., [self.labels.index(k) for k in self.derived_labels]]
        return theta, derived

    def write(
        self, c: int, ids: np.ndarray, zred: np.ndarray, flag: Sequence[str], draws: np.ndarray
    ) -> None:
        """Keep chunk ``c``: ids, zred, flags (b,) and draws (b, n, L), atomically."""
        theta, derived = self.split(draws, zred)
        self.store.save(
            c,
            id=np.asarray(ids),
            zred=np.asarray(zred, float),
            flag=np.asarray(flag, dtype=str),
            theta=theta,
            derived=derived,
        )

    def assemble(self, n_chunks: int) -> Path:
        """Write the ``n_chunks`` parts to :attr:`out` atomically, a part at a time.

        Returns
        -------
        pathlib.Path
        """
        import h5py

        def column(name: str) -> np.ndarray:
            out = []
            for c in range(n_chunks):
                with np.load(self.path(c)) as part:
                    out.append(part[name])
            return np.concatenate(out)

        ids, zred, flag = column("id"), column("zred"), column("flag")
        n_rows = len(ids)
        with np.load(self.path(0)) as first:
            _, n, d = first["theta"].shape
            k, dtype = first["derived"].shape[-1], first["theta"].dtype
        with atomic_path(self.out, overwrite=True) as tmp, h5py.File(tmp, "w") as hf:
            if ids.dtype.kind in "US":
                hf.create_dataset("id", data=ids.astype(object), dtype=h5py.string_dtype())
            else:
                hf.create_dataset("id", data=ids)
            hf.create_dataset("zred", data=zred)
            hf.create_dataset("flag", data=flag.astype(object), dtype=h5py.string_dtype())
            # HDF5 chunks of about 4 MB: a few objects' draws each
            rows = int(np.clip(4e6 // (n * max(d, k, 1) * dtype.itemsize), 1, max(n_rows, 1)))
            theta = hf.create_dataset("theta", (n_rows, n, d), dtype=dtype, chunks=(rows, n, d))
            derived = hf.create_dataset(
                "derived", (n_rows, n, k), dtype=dtype, chunks=(rows, n, k) if k else None
            )
            start = 0
            for c in range(n_chunks):  # one part in memory at a time
                with np.load(self.path(c)) as part:
                    stop = start + len(part["id"])
                    theta[start:stop] = part["theta"]
                    if k:
                        derived[start:stop] = part["derived"]
                start = stop
            for key, value in self.attrs.items():
                hf.attrs[key] = json.dumps(value, default=str)
        return self.out

    def remove(self) -> None:
        """Delete the parts folder (once the file is written)."""
        self.store.remove()


def read_catalog_draws(path: str | os.PathLike) -> dict[str, Any]:
    """Read a catalogue draws file written by a catalogue fit.

    Returns
    -------
    dict
        ``id`` (N,), ``zred`` (N,), ``flag`` (N,) str, ``theta`` (N, n, D), ``derived``
        (N, n, K), and the file's attributes decoded (``theta_labels``, ``derived_labels``,
        ``model_hash``, ``model_spec``, ``estimator_digest``, ...).
    """
    import h5py

    with h5py.File(path, "r") as hf:
        out: dict[str, Any] = {k: json.loads(v) for k, v in hf.attrs.items()}
        ids = hf["id"]
        out["id"] = ids.asstr()[()].astype(str) if ids.dtype.kind in "OS" else ids[()]
        out["zred"] = hf["zred"][()]
        out["flag"] = hf["flag"].asstr()[()].astype(str)
        out["theta"] = hf["theta"][()]
        out["derived"] = hf["derived"][()]
    return out
