"""Emission-line tables in FSPS's layout; Prospector's ``SpecModel`` without SPS_HOME.

Prospector's ``SpecModel.__init__`` reads ``$SPS_HOME/data/emlines_info.dat`` and fails with a
TypeError when SPS_HOME is unset; its nebular-line code then indexes the source's line
luminosities with masks built from that table. :func:`emission_line_info` returns the table a
model should use: FSPS's own file when ``$SPS_HOME/data`` has it (so FSPS users see no change),
otherwise the Cloudy line list of the BC03-MILES grids. ``BC03MilesBasis`` reports its lines in
whichever layout this function returns, so the two always agree. The patch installed by
:func:`patch_specmodel` (run on ``import prospect_sbi``) only replaces ``init_eline_info``; it
never writes to SPS_HOME or sets environment variables.
"""

from __future__ import annotations

__all__ = ["emission_line_info", "kept_lines", "line_mapping", "patch_specmodel"]

import functools
import os
import warnings
from pathlib import Path

import numpy as np

from ..constants import LYMAN_ALPHA

_DTYPE = [("wave", "f8"), ("name", "<U20")]


@functools.lru_cache(maxsize=4)
def _read_table(path: str | None) -> np.ndarray:
    if path is None:
        from .grids import load_line_list

        wave, names = load_line_list()
        info = np.zeros(len(wave), dtype=_DTYPE)
        info["wave"], info["name"] = wave, names
        return info
    return np.genfromtxt(path, dtype=_DTYPE, delimiter=",")


def _fsps_table_path(eline_file: str = "emlines_info.dat") -> str | None:
    home = os.getenv("SPS_HOME")
    if not home:
        return None
    path = Path(home) / "data" / eline_file
    return str(path) if path.is_file() else None


def emission_line_info(eline_file: str = "emlines_info.dat") -> np.ndarray:
    """Return the emission-line table ``SpecModel`` uses after ``import prospect_sbi``.

    Parameters
    ----------
    eline_file : str
        Name of the FSPS line file under ``$SPS_HOME/data``.

    Returns
    -------
    ndarray
        Structured array with fields ``wave`` (vacuum AA) and ``name``: FSPS's table when
        ``$SPS_HOME/data/<eline_file>`` exists, else the Cloudy lines of the BC03-MILES grids.
    """
    return _read_table(_fsps_table_path(eline_file)).copy()


def kept_lines(table: np.ndarray, ignore: tuple[str, ...]) -> np.ndarray:
    """(E',) mask of the ``table`` lines kept when Prospector's ``elines_to_ignore`` is ``ignore``.

    ``SpecModel`` adds the table's lines to the photometry itself when ``nebemlineinspec`` is
    False, all but the ignored ones (its ``_use_eline``); the batch paths do the same with
    this mask.

    Raises
    ------
    ValueError
        A name that is not a line of the table (Prospector's own check is an assert).
    """
    known = set(table["name"])
    unknown = [name for name in ignore if name not in known]
    if unknown:
        lya = str(table["name"][np.argmin(np.abs(table["wave"] - LYMAN_ALPHA))])
        raise ValueError(
            f"elines_to_ignore names {unknown} are not lines of the emission-line table "
            f"(emission_line_info()['name'], e.g. Lyman-alpha is {lya!r})"
        )
    return ~np.isin(table["name"], list(ignore))


def line_mapping(source_wave: np.ndarray, table_wave: np.ndarray) -> np.ndarray:
    """(E_source, E_table) 0/1 matrix sending each source line to the table line it is.

    Lines match when their vacuum wavelengths differ by less than 0.05%. A source line
    without a match cannot be reported in the table's layout; it still appears in spectra and
    photometry when lines are added to the spectrum (``nebemlineinspec=True``), and a warning
    names it once.
    """
    source_wave = np.asarray(source_wave, dtype=float)
    table_wave = np.asarray(table_wave, dtype=float)
    rel = np.abs(source_wave[:, None] / table_wave[None, :] - 1.0)
    best = rel.argmin(axis=1)
    matched = rel[np.arange(len(source_wave)), best] < 5e-4
    mapping = np.zeros((len(source_wave), len(table_wave)))
    mapping[np.flatnonzero(matched), best[matched]] = 1.0
    if not matched.all():
        missing = ", ".join(f"{w:.1f}" for w in source_wave[~matched][:8])
        warnings.warn(
            f"{(~matched).sum()} Cloudy lines have no counterpart in the FSPS line table "
            f"(e.g. {missing} AA); they are left out of get_galaxy_elines()",
            stacklevel=2,
        )
    return mapping


def _init_eline_info(self: object, eline_file: str = "emlines_info.dat") -> None:
    info = emission_line_info(eline_file)
    self.emline_info = info
    self._use_eline = np.ones(len(info), dtype=bool)


def patch_specmodel() -> None:
    """Let Prospector's ``SpecModel`` (and subclasses) build without SPS_HOME.

    Replaces ``SpecModel.init_eline_info`` with one that reads :func:`emission_line_info`.
    Idempotent.
    """
    from prospect.models import sedmodel

    if getattr(sedmodel.SpecModel.init_eline_info, "_prospect_sbi", False):
        return
    _init_eline_info._prospect_sbi = True
    _init_eline_info.__doc__ = emission_line_info.__doc__
    sedmodel.SpecModel.init_eline_info = _init_eline_info
