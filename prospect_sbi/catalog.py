"""Read photometric catalogues (FITS, ECSV, any astropy table) into maggies for an estimator."""

from __future__ import annotations

__all__ = ["AB_SENTINEL", "Catalog", "FLUX_UNITS", "read_catalog", "short_band_name", "to_maggies"]

import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from astropy.table import Table

from ._io import hash_arrays
from .constants import DMAG, JY_PER_MAGGIE

#: Flux units a catalogue may use -> factor to maggies ("AB" magnitudes are handled apart).
FLUX_UNITS = {
    "maggies": 1.0,
    "Jy": 1 / JY_PER_MAGGIE,
    "mJy": 1e-3 / JY_PER_MAGGIE,
    "uJy": 1e-6 / JY_PER_MAGGIE,
    "nJy": 1e-9 / JY_PER_MAGGIE,
}
#: AB magnitudes (or magnitude errors) this large are sentinels (99, -99) of a missing band.
AB_SENTINEL = 50.0
_MAG_ROWS = 5  # rows from which flux columns all within 5-45 (errors < 1) are magnitudes


def short_band_name(name: str) -> str:
    """Short upper-case band name of a sedpy filter: ``"jwst_f444w"`` -> ``"F444W"``."""
    return name.rsplit("_", 1)[-1].upper()


def to_maggies(
    flux: np.ndarray, err: np.ndarray, unit: str, err_unit: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert fluxes and 1-sigma errors to maggies; AB magnitudes and magnitude errors too.

    Parameters
    ----------
    flux, err : array_like, (*,)
        Values in ``unit``; errors in ``err_unit`` (default ``unit``).
    unit, err_unit : str
        A key of :data:`FLUX_UNITS` or ``"AB"`` (magnitudes and magnitude errors). AB values
        of :data:`AB_SENTINEL` or more in size (99, -99) are missing bands: NaN.

    Returns
    -------
    flux, err : numpy.ndarray, (*,)
        Maggies.

    Raises
    ------
    ValueError
        An unknown unit, or AB magnitudes with errors in a flux unit (or the reverse).
    """
    flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
    err_unit = unit if err_unit is None else err_unit
    for u in (unit, err_unit):
        if u != "AB" and u not in FLUX_UNITS:
            raise ValueError(f"unknown flux unit {u!r}; use one of {[*FLUX_UNITS, 'AB']}")
    if (unit == "AB") != (err_unit == "AB"):
        raise ValueError(
            f"fluxes in {unit} but errors in {err_unit}: give both as AB "
            "magnitudes or both as flux densities"
        )
    if unit == "AB":
        sentinel = _ab_sentinels(flux, err)
        flux, err = np.where(sentinel, np.nan, flux), np.where(sentinel, np.nan, err)
        maggies = 10 ** (-0.4 * flux)
        return maggies, DMAG * maggies * err
    return flux * FLUX_UNITS[unit], err * FLUX_UNITS[err_unit]


def _look_like_magnitudes(flux: np.ndarray, err: np.ndarray) -> bool:
    """Whether a flux column and its errors look like AB magnitudes and magnitude errors."""
    ok = np.isfinite(flux) & np.isfinite(err)
    return bool(
        ok.any()
        and np.all((flux[ok] > 5) & (flux[ok] < 45))
        and np.all((err[ok] > 0) & (err[ok] < 1))
    )


def _ab_sentinels(mag: np.ndarray, mag_err: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return (np.abs(mag) >= AB_SENTINEL) | (np.abs(mag_err) >= AB_SENTINEL)


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
    units : dict of str -> str
        Unit each flux and error column was read in (a key of :data:`FLUX_UNITS` or ``AB``).
    unit_source : {"option", "header"}
        Whether the units were given (``unit=``) or read from the columns' own units.
    id_column : str or None
        The column ``ids`` were read from (None: row numbers).
    """

    flux: np.ndarray
    err: np.ndarray
    zred: np.ndarray | None
    ids: np.ndarray
    table: Table
    units: dict[str, str] = field(default_factory=dict)
    unit_source: str = "option"
    id_column: str | None = None

    def digest(self) -> str:
        """SHA-256 (hex) of what a fit reads: ``ids``, ``flux``, ``err`` and ``zred``.

        The same digest gives the same rows (with the same estimator, options and seed)
        whatever the file's name, format or modification time; resumable fits
        (``prospect-sbi fit``) record it.
        """
        h = hashlib.sha256("\x00".join(map(str, np.asarray(self.ids).tolist())).encode())
        hash_arrays(h, (self.flux, self.err, self.zred))
        return h.hexdigest()


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
        ``maggies``, ``Jy``, ``mJy``, ``uJy``, ``nJy`` or ``AB``, for fluxes and errors;
        overrides the columns' own units (headers are sometimes wrong). Without it the flux
        columns must carry a flux unit; an error column without one shares its flux column's.
    flux_format, err_format : str
        Column names, ``{band}`` standing for the short name (``F444W``); the sedpy name
        (``jwst_f444w``) and other cases are tried too, and two columns that both match
        (``F444W`` and ``f444w``) are refused.
    zred_column : str, optional
    id_column : str, optional
        Default: the table's ``id`` column (any case) when it has one, else row numbers, so
        that an output's ``id`` is never a row number beside the catalogue's own ids.
    err_floor : float
        Fractional error floor added in quadrature, ``err = hypot(err, err_floor * |flux|)``,
        as SED fits of integrated photometry do (e.g. 0.05): catalogue errors can be far below
        any error the estimator was trained on (rows flagged ``snr_above_training``). 0 keeps
        the errors.

    Returns
    -------
    Catalog

    Raises
    ------
    FileNotFoundError
        No file at ``source``.
    ValueError
        Not a table, no rows, a band's flux or error column missing or matched twice, no unit,
        two id columns that differ only in case (without ``id_column``),
        an unknown unit, flux columns that hold AB magnitudes (5 rows or more, every value
        within 5-45 with errors below 1) read in a flux unit.
    """
    if not (np.isfinite(err_floor) and err_floor >= 0):
        raise ValueError(f"err_floor must be a fraction >= 0 of the flux; got {err_floor}")
    table = source if isinstance(source, Table) else _read_table(source)
    if len(table) == 0:
        where = "the catalogue" if isinstance(source, Table) else str(source)
        raise ValueError(f"{where} has no rows: nothing to fit")
    flux = np.empty((len(table), len(bands)))
    err = np.empty_like(flux)
    units, sentinels, like_mags = {}, 0, None
    for j, band in enumerate(bands):
        fname, ename = (
            _column(table, fmt, band, what)
            for fmt, what in ((flux_format, "flux"), (err_format, "error"))
        )
        units[fname] = unit or _unit_of(table[fname], fname)
        units[ename] = unit or _unit_of(table[ename], ename, default=units[fname])
        raw = [np.asarray(np.ma.filled(table[name], np.nan), float) for name in (fname, ename)]
        if units[fname] == "AB":
            sentinels += int(np.sum(_ab_sentinels(*raw)))
        else:
            like_mags = like_mags is not False and _look_like_magnitudes(*raw)
        flux[:, j], err[:, j] = to_maggies(*raw, units[fname], units[ename])
    if like_mags and len(table) >= _MAG_ROWS:
        first = _column(table, flux_format, bands[0], "flux")
        raise ValueError(
            f"the flux columns hold values between 5 and 45 with errors below 1 "
            f"in every row, like AB magnitudes, but are read as {units[first]} "
            f"({first!r}): pass --unit AB (unit='AB')"
        )
    if sentinels:
        warnings.warn(
            f"{sentinels} entries with an AB magnitude or error of {AB_SENTINEL:g} or "
            "more (99, -99: no measurement) are treated as missing bands",
            UserWarning,
            stacklevel=2,
        )
    with np.errstate(invalid="ignore"):
        missing = ~np.isfinite(flux) | ~np.isfinite(err) | (err <= 0)
    flux[missing] = err[missing] = np.nan
    err = np.hypot(err, err_floor * np.abs(flux)) if err_floor else err
    zred = None
    if zred_column is not None:
        if zred_column not in table.colnames:
            raise ValueError(f"no redshift column {zred_column!r} in the catalogue")
        zred = np.asarray(np.ma.filled(table[zred_column], np.nan), dtype=float)
    if id_column is None:
        named = [c for c in table.colnames if c.lower() == "id"]
        if len(named) > 1:
            raise ValueError(f"id columns {named} differ only in case: give id_column")
        id_column = named[0] if named else None
    elif id_column not in table.colnames:
        raise ValueError(f"no id column {id_column!r} in the catalogue")
    ids = np.asarray(table[id_column]) if id_column else np.arange(len(table))
    source = "option" if unit else "header"
    return Catalog(flux, err, zred, ids, table, units, source, id_column)


def _read_table(path: str | os.PathLike) -> Table:
    """Read a table file; anything astropy cannot read as a table is a one-line ValueError."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no catalogue at {path}")
    try:
        return Table.read(path)
    except Exception as err:  # astropy's readers raise many types, with multi-line messages
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"{path} is not a table astropy can read (FITS table, ECSV, CSV, ...): {first}"
        ) from None


def _column(table: Table, fmt: str, band: str, what: str) -> str:
    names = (fmt.format(band=short_band_name(band)), fmt.format(band=band))
    wanted = {name.lower() for name in names}
    found = [c for c in table.colnames if c.lower() in wanted]
    if len(found) > 1:
        raise ValueError(
            f"columns {' and '.join(map(repr, found))} both match the {what} of "
            f"band {band} (names are matched whatever their case): drop or rename "
            "one"
        )
    if found:
        return found[0]
    raise ValueError(f"no {what} column for band {band} (tried {names[0]!r} and {names[1]!r})")


def _unit_of(column: object, name: str, default: str | None = None) -> str:
    import astropy.units as u

    unit = getattr(column, "unit", None)
    if unit is None and default is not None:
        return default
    if unit is None:
        raise ValueError(f"column {name!r} has no unit; give one (maggies, Jy, uJy, nJy, AB)")
    for key in FLUX_UNITS:
        if key != "maggies" and unit == u.Unit(key):
            return key
    if unit == u.mag or unit == u.ABmag:
        return "AB"
    raise ValueError(f"column {name!r} has unit {unit}, not a flux density; give the unit")
