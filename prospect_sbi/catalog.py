"""Read photometric catalogues (FITS, ECSV, any astropy table) into maggies for an estimator."""

from __future__ import annotations

__all__ = ["Catalog", "FLUX_UNITS", "read_catalog", "short_band_name", "to_maggies"]

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from astropy.table import Table

#: Flux units a catalogue may use -> factor to maggies ("AB" magnitudes are handled apart).
FLUX_UNITS = {"maggies": 1.0, "Jy": 1 / 3631, "mJy": 1e-3 / 3631, "uJy": 1e-6 / 3631,
              "nJy": 1e-9 / 3631}  # fmt: skip


def short_band_name(name: str) -> str:
    """Short upper-case band name of a sedpy filter: ``"jwst_f444w"`` -> ``"F444W"``."""
    return name.rsplit("_", 1)[-1].upper()


def to_maggies(flux: np.ndarray, err: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Convert fluxes and 1-sigma errors to maggies; AB magnitudes and magnitude errors too.

    Raises
    ------
    ValueError
        An unknown unit.
    """
    flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
    if unit == "AB":
        maggies = 10 ** (-0.4 * flux)
        return maggies, 0.4 * np.log(10) * maggies * err
    if unit not in FLUX_UNITS:
        raise ValueError(f"unknown flux unit {unit!r}; use one of {[*FLUX_UNITS, 'AB']}")
    return flux * FLUX_UNITS[unit], err * FLUX_UNITS[unit]


@dataclass
class Catalog:
    """Fluxes of B objects in F bands, ready for :meth:`AmortizedPosterior.sample`.

    Attributes
    ----------
    flux, err : ndarray, (B, F)
        Maggies; NaN in both where a band is missing (NaN, non-positive or non-finite error).
    zred : ndarray (B,) or None
    ids : ndarray (B,)
        The id column, or row numbers.
    table : astropy.table.Table
        The catalogue as read.
    """

    flux: np.ndarray
    err: np.ndarray
    zred: np.ndarray | None
    ids: np.ndarray
    table: Table


def read_catalog(
    source: str | os.PathLike | Table,
    bands: Sequence[str],
    *,
    unit: str | None = None,
    flux_format: str = "{band}",
    err_format: str = "unc_{band}",
    zred_column: str | None = None,
    id_column: str | None = None,
    err_floor: float = 0.0,
) -> Catalog:
    """Read the fluxes of ``bands`` from a catalogue table, in maggies.

    Parameters
    ----------
    source : path or Table
        Any table astropy reads (FITS, ECSV, CSV, ...).
    bands : sequence of str
        sedpy names, in the order wanted (e.g. an estimator's ``filters``).
    unit : str, optional
        ``maggies``, ``Jy``, ``mJy``, ``uJy``, ``nJy`` or ``AB``; overrides the columns' own
        units (headers are sometimes wrong). Without it the columns must carry a flux unit.
    flux_format, err_format : str
        Column names, ``{band}`` standing for the short name (``F444W``); the sedpy name
        (``jwst_f444w``) and lower case are tried too.
    zred_column, id_column : str, optional
    err_floor : float
        Fractional error floor added in quadrature, ``err = hypot(err, err_floor * |flux|)``,
        as SED fits of integrated photometry do (e.g. 0.05): catalogue errors can be far below
        any error the estimator was trained on (``checks.warn_precise``). 0 keeps the errors.

    Returns
    -------
    Catalog

    Raises
    ------
    FileNotFoundError
        No file at ``source``.
    ValueError
        Not a table, no rows, a band's flux or error column missing, no unit, an unknown unit.
    """
    if not (np.isfinite(err_floor) and err_floor >= 0):
        raise ValueError(f"err_floor must be a fraction >= 0 of the flux; got {err_floor}")
    table = source if isinstance(source, Table) else _read_table(source)
    if len(table) == 0:
        where = "the catalogue" if isinstance(source, Table) else str(source)
        raise ValueError(f"{where} has no rows: nothing to fit")
    flux = np.empty((len(table), len(bands)))
    err = np.empty_like(flux)
    for j, band in enumerate(bands):
        fname, ename = (_column(table, fmt, band, what) for fmt, what in
                        ((flux_format, "flux"), (err_format, "error")))  # fmt: skip
        col_unit = unit or _unit_of(table[fname], fname)
        raw = (np.ma.filled(table[name], np.nan) for name in (fname, ename))
        flux[:, j], err[:, j] = to_maggies(*raw, col_unit)
    with np.errstate(invalid="ignore"):
        missing = ~np.isfinite(flux) | ~np.isfinite(err) | (err <= 0)
    flux[missing] = err[missing] = np.nan
    err = np.hypot(err, err_floor * np.abs(flux)) if err_floor else err
    zred = None
    if zred_column is not None:
        if zred_column not in table.colnames:
            raise ValueError(f"no redshift column {zred_column!r} in the catalogue")
        zred = np.asarray(np.ma.filled(table[zred_column], np.nan), dtype=float)
    if id_column is not None and id_column not in table.colnames:
        raise ValueError(f"no id column {id_column!r} in the catalogue")
    ids = np.asarray(table[id_column]) if id_column else np.arange(len(table))
    return Catalog(flux, err, zred, ids, table)


def _read_table(path: str | os.PathLike) -> Table:
    """Read a table file; anything astropy cannot read as a table is a one-line ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no catalogue at {path}")
    try:
        return Table.read(path)
    except Exception as err:  # astropy's readers raise many types, with multi-line messages
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path} is not a table astropy can read (FITS table, ECSV, CSV, ...): "
                         f"{first}") from None


def _column(table: Table, fmt: str, band: str, what: str) -> str:
    cols = {c.lower(): c for c in table.colnames}
    names = (fmt.format(band=short_band_name(band)), fmt.format(band=band))
    for name in names:
        if name.lower() in cols:
            return cols[name.lower()]
    raise ValueError(f"no {what} column for band {band} (tried {names[0]!r} and {names[1]!r})")


def _unit_of(column: object, name: str) -> str:
    import astropy.units as u

    unit = getattr(column, "unit", None)
    if unit is None:
        raise ValueError(f"column {name!r} has no unit; give one (maggies, Jy, uJy, nJy, AB)")
    for key in FLUX_UNITS:
        if key != "maggies" and unit == u.Unit(key):
            return key
    if unit == u.mag or unit == u.ABmag:
        return "AB"
    raise ValueError(f"column {name!r} has unit {unit}, not a flux density; give the unit")
