"""Tables written in chunks: resumable parts under a fingerprint, assembled with bounded memory.

A long job (a catalogue of a million rows) keeps each finished chunk as a part file, so a
rerun with the same inputs and options resumes where it stopped and a rerun with other ones is
refused, naming each option that changed. The parts are then assembled into one ECSV or FITS
file a part at a time, so memory stays that of one chunk whatever the number of rows.
"""

from __future__ import annotations

__all__ = ["TableParts", "fingerprint_changes"]

import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from ._io import ChunkStore, atomic_path, parts_folder

_FITS_BLOCK = 2880


def _flat(d: Mapping, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flat(value, name + " "))
        else:
            out[name] = value
    return out


def fingerprint_changes(old: Mapping, new: Mapping) -> list[str]:
    """Describe each entry that differs between two fingerprints: ``name: old then, new now``.

    Nested entries (a file's ``size``, ``mtime``) are named by their path (``catalog size``).

    Examples
    --------
    >>> fingerprint_changes({"--seed": 0, "catalog": {"size": 1}},
    ...                     {"--seed": 1, "catalog": {"size": 1}})
    ['--seed: 0 then, 1 now']
    """
    a, b = (
        _flat(json.loads(json.dumps(old, default=str))),
        _flat(json.loads(json.dumps(new, default=str))),
    )

    def show(d: dict, k: str) -> str:
        return repr(d[k]) if k in d else "absent"

    return [
        f"{k}: {show(a, k)} then, {show(b, k)} now"
        for k in sorted(set(a) | set(b))
        if show(a, k) != show(b, k)
    ]


class TableParts:
    """Finished chunks of a table, kept beside its output ``out`` in ``<out>.parts/``.

    The folder is a :class:`~prospect_sbi._io.ChunkStore` (one ``.npy`` a chunk, the
    fingerprint in its manifest).

    Parameters
    ----------
    out : path-like
        The table the parts will make (``.ecsv``, or FITS for any other suffix).
    fingerprint : dict
        JSON-able inputs and options: everything that changes a row.

    Raises
    ------
    ValueError
        The folder holds the parts of a run with another fingerprint; the message names each
        entry that differs.

    Examples
    --------
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "fit.ecsv"
    >>> parts = TableParts(out, {"--seed": 0})
    >>> for c in range(2):
    ...     if c not in parts:
    ...         parts.write(c, Table({"x": [c, c]}))
    >>> parts.assemble(2, meta={"seed": 0})
    4
    >>> Table.read(out)["x"].tolist(), out.with_name("fit.ecsv.parts").exists()
    ([0, 0, 1, 1], False)
    """

    def __init__(self, out: str | os.PathLike, fingerprint: dict[str, Any]) -> None:
        self.out = Path(out)
        folder = parts_folder(self.out)
        inputs = json.loads(json.dumps(fingerprint, sort_keys=True, default=str))

        def refuse(found: dict) -> None:
            changes = fingerprint_changes(found.get("inputs", {}), inputs)
            raise ValueError(
                f"{folder} holds an unfinished run with other inputs or "
                f"options ({'; '.join(changes) or 'unknown'}): rerun with the "
                "same ones to resume, or remove the folder"
            )

        self.store = ChunkStore(folder, fingerprint, ".npy", on_mismatch=refuse)
        self.folder = self.store.folder

    def path(self, c: int) -> Path:
        """File of chunk ``c``."""
        return self.store.path(c)

    def __contains__(self, c: int) -> bool:
        return c in self.store

    def write(self, c: int, table: Table) -> None:
        """Keep chunk ``c`` (numeric, boolean and string columns), written atomically."""

        def save(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.save(fh, table.as_array(), allow_pickle=False)

        self.store.write(c, save)

    def read(self, c: int) -> Table:
        """Read the table of chunk ``c``."""
        return Table(np.load(self.path(c), allow_pickle=False))

    def _dtype(self, n_chunks: int) -> np.dtype:
        """Dtype of the assembled table: every part's, strings as wide as the widest part's."""
        dtypes = [np.load(self.path(c), mmap_mode="r").dtype for c in range(n_chunks)]
        fields = []
        for name in dtypes[0].names:
            kinds = [d[name] for d in dtypes]
            if kinds[0].kind in "US":  # widest of the parts, in characters
                width = max(k.itemsize // (4 if k.kind == "U" else 1) for k in kinds)
                fields.append((name, f"{kinds[0].kind}{width}"))
            else:
                fields.append((name, kinds[0]))
        return np.dtype(fields)

    def _tables(self, n_chunks: int, dtype: np.dtype) -> Iterator[Table]:
        for c in range(n_chunks):
            yield Table(np.load(self.path(c), allow_pickle=False).astype(dtype))

    def assemble(self, n_chunks: int, meta: dict | None = None) -> int:
        """Write the ``n_chunks`` parts to :attr:`out` atomically, a part at a time; remove them.

        Returns
        -------
        int
            Rows written.
        """
        dtype = self._dtype(n_chunks)
        with atomic_path(self.out, overwrite=True) as tmp, open(tmp, "wb") as fh:
            if self.out.suffix.lower() == ".ecsv":
                rows = _write_ecsv(fh, self._tables(n_chunks, dtype), meta or {})
            else:
                rows = _write_fits(
                    fh,
                    self._tables(n_chunks, dtype),
                    dtype,
                    meta or {},
                    sum(len(np.load(self.path(c), mmap_mode="r")) for c in range(n_chunks)),
                )
        self.remove()
        return rows

    def remove(self) -> None:
        """Delete the parts (once the output is written)."""
        self.store.remove()


def _write_ecsv(fh: Any, tables: Iterator[Table], meta: dict) -> int:
    """ECSV: the first part with its header, then each part's data lines."""
    rows = 0
    for i, table in enumerate(tables):
        if i == 0:
            table.meta.update(meta)
        buf = io.StringIO()
        table.write(buf, format="ascii.ecsv")
        lines = buf.getvalue().splitlines(keepends=True)
        if i > 0:  # drop the header: comment lines, then the line of column names
            lines = [line for line in lines if not line.startswith("#")][1:]
        fh.write("".join(lines).encode())
        rows += len(table)
    return rows


def _write_fits(fh: Any, tables: Iterator[Table], dtype: np.dtype, meta: dict, n_rows: int) -> int:
    """FITS: a primary HDU, a binary table header for ``n_rows``, then each part's rows."""
    from astropy.io import fits

    empty = Table(np.zeros(0, dtype=dtype), meta=meta)
    head = fits.table_to_hdu(empty).header
    head["NAXIS2"] = n_rows
    fh.write(fits.PrimaryHDU().header.tostring().encode())
    fh.write(head.tostring().encode())
    written = 0
    for table in tables:
        hdu = fits.table_to_hdu(table)
        if hdu.header["NAXIS1"] != head["NAXIS1"]:
            raise ValueError(
                f"a part's rows are {hdu.header['NAXIS1']} bytes, not "
                f"{head['NAXIS1']}: its columns differ"
            )
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(buf)
        raw = buf.getvalue()
        with fits.open(io.BytesIO(raw)) as back:  # reads the headers only
            start = back.fileinfo(1)["datLoc"]
        size = hdu.header["NAXIS1"] * hdu.header["NAXIS2"]
        fh.write(raw[start : start + size])
        written += size
    fh.write(b"\0" * (-written % _FITS_BLOCK))
    return n_rows
