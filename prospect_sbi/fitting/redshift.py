"""A galaxy's redshift when none is known: its photometric-redshift posterior and its propagation.

How a redshift is given is decided once, by :func:`zred_given`: one number, a table of segment
id -> redshift, or ``"infer"`` with a photometric-redshift estimator (``redshift="infer"``,
default the pretrained ``<name>-photoz`` of a pretrained known-redshift estimator ``<name>``).
:func:`redshift_posterior` draws a galaxy's redshift from its (integrated) photometry through
the photo-z estimator's own ``sample`` (by default the exact posterior where the flow's draws
need it, ``photoz_refine="auto"``); :class:`RedshiftPosterior` summarises the draws
(median, 16/84, modes counted by :func:`count_modes`) and tells whether a given redshift is
ruled out. :func:`marginal_draws` propagates it: each object is fitted by the known-redshift
estimator at K redshifts of the posterior (all objects x K redshifts as rows of one ``sample``
call), n/K draws at each, so its draws are marginalised over the redshift.
"""

from __future__ import annotations

__all__ = [
    "PHOTOZ_ERR_FLOOR",
    "ZRED_RULED_OUT",
    "RedshiftPosterior",
    "ZredGiven",
    "combine_diagnostics",
    "count_modes",
    "marginal_draws",
    "median_redshift_draws",
    "photoz_estimator",
    "read_zred_table",
    "redshift_posterior",
    "summed_photometry",
    "zred_given",
]

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table

from ..numeric import check_count

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: Fractional error floor of a galaxy's summed pixel photometry for its photo-z posterior: that
#: of the integrated-photometry benchmarks (``benchmarks/photoz.py``).
PHOTOZ_ERR_FLOOR = 0.05
#: Flag (and warning) of an object fitted at a redshift its photometry rules out: outside the
#: central ``level`` (99.7%) interval of the photo-z estimator's posterior.
ZRED_RULED_OUT = "zred_ruled_out"


def count_modes(
    zred: Any, *, bandwidth: float = 0.03, min_mass: float = 0.05, dip: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Modes of redshift draws and the share of draws around each, on a density in log(1+z).

    The draws' density in ``u = log(1 + z)`` is a histogram of bin ``bandwidth / 4`` smoothed
    by a Gaussian of width ``bandwidth``. Of its local maxima, two neighbours whose lowest
    density between them is above ``dip`` times the lower maximum are one mode (the higher
    kept); a mode holding less than ``min_mass`` of the draws (between the minima that part it
    from its neighbours) is dropped. A Lyman break at z ~ 3 and a Balmer break at z ~ 0.3,
    ``u`` 1.4 and 0.26, are two modes; the wiggles of 1000 draws of one peak are not.

    Parameters
    ----------
    zred : array_like, (n,)
        Redshift draws (non-finite ones are left out).
    bandwidth : float
        Smoothing width in log(1+z) (0.03: the scatter of a good photo-z, 3% in 1+z).
    min_mass : float
        Least share of the draws of a mode.
    dip : float
        Largest ratio of the valley between two modes to the lower mode.

    Returns
    -------
    modes : numpy.ndarray, float, (M,)
        Redshift of each mode, by decreasing share.
    masses : numpy.ndarray, float, (M,)
        Share of the draws of each mode (sums to 1).

    Raises
    ------
    ValueError
        No finite draw, or ``bandwidth`` not > 0.
    """
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be > 0 (in log(1+z)); got {bandwidth!r}")
    z = np.asarray(zred, dtype=float).ravel()
    u = np.log1p(z[np.isfinite(z) & (z > -1)])
    if u.size == 0:
        raise ValueError("no finite redshift draw to count modes of")
    if u.size < 3 or np.ptp(u) < bandwidth / 4:
        return np.array([float(np.expm1(np.median(u)))]), np.array([1.0])
    step = bandwidth / 4
    edges = np.arange(u.min() - 4 * bandwidth, u.max() + 4 * bandwidth + step, step)
    counts, _ = np.histogram(u, edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    kernel = np.exp(-0.5 * (np.arange(-16, 17) / 4.0) ** 2)
    dens = np.convolve(counts.astype(float), kernel / kernel.sum(), mode="same")
    inner = (dens[1:-1] > dens[:-2]) & (dens[1:-1] >= dens[2:])
    peaks = list(np.flatnonzero(inner) + 1)
    if not peaks:
        peaks = [int(np.argmax(dens))]

    def valley(a: int, b: int) -> int:
        return a + int(np.argmin(dens[a : b + 1]))

    def basins(peaks: list[int]) -> np.ndarray:
        cuts = [0, *(valley(a, b) for a, b in zip(peaks[:-1], peaks[1:], strict=True))]
        cuts.append(len(counts))
        return np.array([counts[c0:c1].sum() for c0, c1 in zip(cuts[:-1], cuts[1:], strict=True)])

    while True:
        merged = False
        for j in range(len(peaks) - 1):
            a, b = peaks[j], peaks[j + 1]
            if dens[valley(a, b)] > dip * min(dens[a], dens[b]):
                peaks.pop(j if dens[a] < dens[b] else j + 1)
                merged = True
                break
        if merged:
            continue
        mass = basins(peaks) / u.size
        if len(peaks) > 1 and mass.min() < min_mass:
            peaks.pop(int(np.argmin(mass)))
            continue
        break
    order = np.argsort(-mass, kind="stable")
    return np.expm1(centres[np.asarray(peaks)][order]), mass[order]


@dataclass
class RedshiftPosterior:
    """A galaxy's redshift posterior: draws of a photometric-redshift estimator and summaries.

    Attributes
    ----------
    draws : numpy.ndarray, float, (n,)
        Redshift draws.
    estimator : str
        The photo-z estimator: its pretrained name or file, or the start of its digest.
    modes, masses : numpy.ndarray, (M,)
        :func:`count_modes` of the draws (set from them when not given).
    exact : bool
        The draws are the exact posterior's (the estimator's refinement), not the flow's.
    khat_flag, ess_flag : bool
        Exact draws whose refinement ended with a Pareto k-hat above 0.7, or an ESS short of
        its target (the refinement's flags): not vouched for as the exact posterior
        (:attr:`unconverged`).
    """

    draws: np.ndarray
    estimator: str = "?"
    modes: np.ndarray = field(default=None)  # type: ignore[assignment]
    masses: np.ndarray = field(default=None)  # type: ignore[assignment]
    exact: bool = False
    khat_flag: bool = False
    ess_flag: bool = False

    def __post_init__(self) -> None:
        self.draws = np.asarray(self.draws, dtype=float).ravel()
        if self.modes is None or self.masses is None:
            self.modes, self.masses = count_modes(self.draws)

    @property
    def median(self) -> float:
        """Median redshift."""
        return float(np.median(self.draws))

    @property
    def p16(self) -> float:
        """16th percentile."""
        return float(np.percentile(self.draws, 16))

    @property
    def p84(self) -> float:
        """84th percentile."""
        return float(np.percentile(self.draws, 84))

    @property
    def unconverged(self) -> bool:
        """Exact draws not vouched for (``khat_flag`` or ``ess_flag``)."""
        return bool(self.khat_flag or self.ess_flag)

    @property
    def multimodal(self) -> bool:
        """More than one mode (:func:`count_modes`)."""
        return len(self.modes) > 1

    def interval(self, level: float = 0.997) -> tuple[float, float]:
        """Central interval holding ``level`` of the draws, (lo, hi)."""
        lo, hi = np.percentile(self.draws, [50 * (1 - level), 50 * (1 + level)])
        return float(lo), float(hi)

    def ruled_out(self, zred: Any, level: float = 0.997) -> np.ndarray:
        """Whether each redshift lies outside the central ``level`` interval ."""
        lo, hi = self.interval(level)
        z = np.asarray(zred, dtype=float)
        return (z < lo) | (z > hi)

    def grid(self, k: int) -> np.ndarray:
        """K redshifts standing for the posterior: its quantiles at ``(i + 0.5) / k``, (k,)."""
        k = check_count("k", k)
        return np.quantile(self.draws, (np.arange(k) + 0.5) / k)

    def histogram(self, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
        """Return counts (bins,) and edges (bins + 1,) of the draws, evenly spaced in log(1+z)."""
        u = np.log1p(self.draws)
        counts, edges = np.histogram(u, bins=bins)
        return counts, np.expm1(edges)

    def summary(self) -> dict[str, Any]:
        """Catalogue columns: ``zphot_p16/p50/p84``, ``zphot_nmodes``, ``zphot_modes``, ...

        ``zphot_modes`` and ``zphot_mode_masses`` are comma-separated (by decreasing share);
        ``zphot_multimodal`` is True for more than one mode, ``zphot_exact`` for draws of the
        exact posterior, ``zphot_unconverged`` for exact draws not vouched for.
        """
        return {
            "zphot_p16": self.p16,
            "zphot_p50": self.median,
            "zphot_p84": self.p84,
            "zphot_nmodes": len(self.modes),
            "zphot_modes": ",".join(f"{m:.3f}" for m in self.modes),
            "zphot_mode_masses": ",".join(f"{m:.3f}" for m in self.masses),
            "zphot_multimodal": self.multimodal,
            "zphot_exact": bool(self.exact),
            "zphot_unconverged": bool(self.unconverged),
        }

    def header(self) -> dict[str, tuple]:
        """FITS cards (key -> (value, comment)) of the posterior, for a map's primary header."""
        cards: dict[str, tuple] = {
            "ZPHOT": (self.median, "median of the galaxy's photo-z posterior"),
            "ZPHOT16": (self.p16, "16th percentile of the photo-z posterior"),
            "ZPHOT84": (self.p84, "84th percentile of the photo-z posterior"),
            "ZNMODES": (len(self.modes), "modes of the photo-z posterior"),
            "ZMULTI": (self.multimodal, "photo-z posterior has more than one mode"),
            "ZPHOTEST": (self.estimator[-48:], "photo-z estimator"),  # 80 characters
            "ZPHOTEXA": (bool(self.exact), "photo-z draws of the exact posterior"),
            "ZUNCONV": (bool(self.unconverged), "exact photo-z draws not vouched (ESS or k-hat)"),
        }
        for i, (m, w) in enumerate(zip(self.modes[:9], self.masses[:9], strict=True)):
            cards[f"ZMODE{i + 1}"] = (float(m), f"photo-z mode holding {w:.1%} of the draws")
        return cards


def summed_photometry(
    flux: np.ndarray, err: np.ndarray, err_floor: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Sum pixels' fluxes (B, F) and their errors in quadrature: (F,) each, maggies.

    A band missing (NaN) in any pixel is missing in the sum. ``err_floor``: a fractional
    floor of the sum's errors, ``hypot(sigma, err_floor * |total|)``; the sum of hundreds of
    pixels has an S/N in the thousands, far beyond what the model matches.
    """
    missing = np.any(np.isnan(flux), axis=0)
    total = np.where(missing, np.nan, np.nansum(flux, axis=0))
    sigma = np.where(missing, np.nan, np.sqrt(np.nansum(err**2, axis=0)))
    if err_floor:
        sigma = np.hypot(sigma, float(err_floor) * np.abs(total))
    return total, sigma


def _label(estimator: Any, post: Any) -> str:
    if isinstance(estimator, str | os.PathLike):
        return os.fspath(estimator)
    return f"digest {post.digest()[:12]}"


def photoz_estimator(estimator: Any, photoz: Any = None) -> tuple[AmortizedPosterior, str]:
    """Resolve the photometric-redshift estimator that goes with ``estimator``.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The known-redshift estimator (its bands must be the photo-z estimator's).
    photoz : AmortizedPosterior, path-like or str, optional
        The photo-z estimator; default the pretrained ``<estimator>-photoz`` when
        ``estimator`` is a pretrained name.

    Returns
    -------
    (AmortizedPosterior, str)
        The photo-z estimator and its label (name, file or digest).

    Raises
    ------
    ValueError
        No ``photoz`` and no pretrained photo-z estimator for ``estimator``; a ``photoz``
        that does not infer the redshift, or with other bands.
    """
    from ..posterior import AmortizedPosterior
    from ..pretrained import PRETRAINED

    if photoz is None:
        name = f"{estimator}-photoz" if isinstance(estimator, str) else None
        if name is None or estimator not in PRETRAINED or name not in PRETRAINED:
            given = estimator if isinstance(estimator, str) else type(estimator).__name__
            raise ValueError(
                f"zred='infer' needs a photometric-redshift estimator: none is shipped for "
                f"{given!r} (pretrained: {', '.join(PRETRAINED)}); pass photoz= (--photoz)"
            )
        photoz = name
    post = AmortizedPosterior.resolve(photoz)
    if post.redshift != "infer":
        raise ValueError(
            f"photo-z estimator {_label(photoz, post)} is conditioned on the redshift "
            "(redshift='known'); give one trained with redshift='infer'"
        )
    if not isinstance(estimator, str | os.PathLike) or Path(estimator).is_file():
        known = AmortizedPosterior.resolve(estimator)
        from ..filters import resolve_band_names

        if sorted(resolve_band_names(known.filters)) != sorted(resolve_band_names(post.filters)):
            raise ValueError(
                f"photo-z estimator has bands {', '.join(post.filters)}; the estimator's are "
                f"{', '.join(known.filters)}"
            )
    return post, _label(photoz, post)


def redshift_posterior(
    photoz: Any,
    flux: Any,
    err: Any,
    n: int = 1000,
    *,
    seed: int = 0,
    label: str | None = None,
    refine: str = "never",
    sps: Any = None,
) -> RedshiftPosterior | list[RedshiftPosterior]:
    """Redshift posterior of each object from its photometry, by a photo-z estimator.

    Parameters
    ----------
    photoz : AmortizedPosterior, path-like or str
        An estimator with ``redshift="infer"``.
    flux, err : array_like, (B, F) or (F,)
        Maggies in the estimator's band order (NaN: missing), through its ``sample`` and
        its checks (a galaxy's integrated photometry: the sum of its pixels, errors in
        quadrature, :func:`summed_photometry`).
    n : int
        Draws per object.
    seed : int
    label : str, optional
        Name of the estimator recorded in the result (default: its name, file or digest).
    refine : {"never", "always", "auto"}
        Draw from the exact posterior (the estimator's importance-sampled refinement, guided
        across redshift for the pretrained photo-z estimators) for every object, none, or
        those that need it (``AmortizedPosterior.sample(..., refine=)``; integrated
        photometry is bright: ``"auto"`` refines nearly every galaxy). On the 99 JADES spec-z
        galaxies with cross-validated zero points, sigma_NMAD 0.062 and 17% outliers from the
        flow, 0.035 and 8% exact (``jades-parametric-photoz``, ~0.25 s a galaxy).
    sps : Prospector source, optional
        Of the refinement (default a shared ``BC03MilesBasis``).

    Returns
    -------
    RedshiftPosterior, or a list of B of them for (B, F) photometry

    Raises
    ------
    ValueError
        An estimator that does not infer the redshift; the errors of ``sample``.
    """
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(photoz)
    if post.redshift != "infer" or "zred" not in post.labels:
        raise ValueError(
            f"photo-z estimator {_label(photoz, post)} does not infer the redshift "
            f"(redshift={post.redshift!r}); give one trained with redshift='infer'"
        )
    label = label or _label(photoz, post)
    draws = post.sample(flux, err, int(n), seed=seed, refine=refine, sps=sps)
    z = np.asarray(draws)[..., post.labels.index("zred")]
    exact = khat = ess = np.zeros(z.shape[:-1], bool)
    if getattr(draws, "refined", None) is not None:
        exact = np.asarray(draws.refined, bool)
        khat, ess = exact & draws.khat_flag, exact & draws.ess_flag
    if z.ndim == 1:
        return RedshiftPosterior(
            z, label, exact=bool(exact), khat_flag=bool(khat), ess_flag=bool(ess)
        )
    return [
        RedshiftPosterior(row, label, exact=bool(e), khat_flag=bool(k), ess_flag=bool(s))
        for row, e, k, s in zip(z, exact, khat, ess, strict=True)
    ]


def read_zred_table(
    path: str | os.PathLike, id_column: str = "id", zred_column: str | None = "z"
) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids and redshifts of a table file (FITS, ECSV or CSV).

    ``zred_column=None`` reads the ids alone (redshifts all NaN, e.g. to infer them).

    Returns
    -------
    ids : numpy.ndarray, int, (N,)
    zred : numpy.ndarray, float, (N,)
        NaN where the redshift is masked, not finite or <= 0.

    Raises
    ------
    ValueError
        A missing column (the columns there are named), ids that are not integers or repeat.
    """
    path = Path(path)
    fmt = {".ecsv": "ascii.ecsv", ".csv": "ascii.csv"}.get(path.suffix.lower())
    table = Table.read(path, format=fmt)
    for col, what in ((id_column, "id"), (zred_column, "redshift")):
        if col is not None and col not in table.colnames:
            raise ValueError(
                f"catalogue {path.name} has no {what} column {col!r}; its columns: "
                f"{', '.join(table.colnames[:12])}"
            )
    raw = np.ma.filled(np.ma.asarray(table[id_column]), -1)
    try:
        ids = np.asarray(raw).astype(np.int64)
        whole = np.all(ids == np.asarray(raw, dtype=float))
    except (TypeError, ValueError):
        whole = False
    if not whole:
        raise ValueError(
            f"catalogue {path.name}: id column {id_column!r} is not integer segment ids"
        )
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(
            f"catalogue {path.name}: segment id {uniq[counts > 1][0]} appears "
            f"{counts[counts > 1][0]} times"
        )
    if zred_column is None:
        return ids, np.full(len(ids), np.nan)
    z = np.ma.filled(np.ma.asarray(table[zred_column], dtype=float), np.nan)
    with np.errstate(invalid="ignore"):
        z = np.where(np.isfinite(z) & (z > 0), z, np.nan)
    return ids, z


@dataclass
class ZredGiven:
    """How the redshift of a galaxy (or of each segment) is given: one resolver for every caller.

    Attributes
    ----------
    kind : {"value", "table", "infer"}
    value : float or None
        The redshift of every galaxy (``"value"``).
    table : dict of int -> float or None
        Segment id -> redshift (``"table"``; NaN: none usable).
    photoz : AmortizedPosterior or None
        The photo-z estimator: draws the redshift (``"infer"``), or checks a given one
        (flag :data:`ZRED_RULED_OUT`) when passed with a number or a table.
    photoz_label : str
    n_zred : int
        Redshifts K of the galaxy's posterior each object is fitted at (``"infer"``).
    refine : {"auto", "always", "never"}
        How the photo-z posterior is drawn (:func:`redshift_posterior`'s ``refine``).
    err_floor : float
        Fractional error floor of a galaxy's summed pixel photometry the posterior is drawn
        from (:func:`summed_photometry`).
    """

    kind: str
    value: float | None = None
    table: dict[int, float] | None = None
    photoz: Any = None
    photoz_label: str = ""
    n_zred: int = 20
    refine: str = "auto"
    err_floor: float = PHOTOZ_ERR_FLOOR

    def of(self, segment: int) -> float:
        """Return the redshift of ``segment`` (NaN: none in the table; not for ``infer``)."""
        if self.kind == "value":
            return float(self.value)
        if self.kind == "table":
            return float(self.table.get(int(segment), np.nan))
        raise ValueError("the redshift is inferred: there is no given redshift")

    def describe(self) -> dict[str, Any]:
        """Describe what the redshift depends on, JSON-able (for markers and fingerprints)."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "value":
            out["value"] = self.value
        elif self.kind == "table":
            out["table"] = [
                [k, v if np.isfinite(v) else None] for k, v in sorted(self.table.items())
            ]
        if self.photoz is not None:
            out |= {"photoz": self.photoz.digest(), "n_zred": self.n_zred}
            out |= {"photoz_refine": self.refine, "photoz_err_floor": self.err_floor}
        return out

    def posterior(
        self, flux: Any, err: Any, n: int, *, seed: int = 0, sps: Any = None
    ) -> RedshiftPosterior | list[RedshiftPosterior]:
        """:func:`redshift_posterior` of the photo-z estimator, drawn as :attr:`refine` says."""
        if self.photoz is None:
            raise ValueError("no photo-z estimator: the redshift is given, not inferred")
        return redshift_posterior(
            self.photoz,
            flux,
            err,
            n,
            seed=seed,
            label=self.photoz_label,
            refine=self.refine,
            sps=sps,
        )


def zred_given(
    zred: Any,
    estimator: Any = None,
    photoz: Any = None,
    *,
    n_zred: int = 20,
    photoz_refine: str = "auto",
    photoz_err_floor: float = PHOTOZ_ERR_FLOOR,
    id_column: str = "id",
    zred_column: str = "z",
) -> ZredGiven:
    """Decide how the redshift is given: a number, a per-segment table, or ``"infer"``.

    Parameters
    ----------
    zred : float, mapping, astropy.table.Table, path-like, "infer" or ZredGiven
        A redshift for every galaxy; segment id -> redshift (a mapping, a table with
        ``id_column`` and ``zred_column``, or a table file: FITS, ECSV, CSV); ``"infer"``:
        each galaxy's photo-z posterior, propagated (:func:`marginal_draws`).
    estimator : AmortizedPosterior, path-like or str
        The known-redshift estimator (for the default photo-z estimator, ``<name>-photoz``).
    photoz : AmortizedPosterior, path-like or str, optional
        The photo-z estimator (:func:`photoz_estimator`); with a given redshift it checks it.
    n_zred : int
        Redshifts per galaxy the objects are fitted at with ``"infer"``.
    photoz_refine : {"auto", "always", "never"}
        How the photo-z posterior is drawn (:func:`redshift_posterior`): by default the exact
        posterior where the flow's draws need it, as good as the model gets on real galaxies
        (a galaxy's integrated photometry is one object, ~0.25 s); ``"never"``: the flow's
        draws alone (milliseconds, twice the scatter on real galaxies). Ignored when ``zred``
        is a ZredGiven already.
    photoz_err_floor : float
        Fractional error floor of the summed photometry of a galaxy's pixels the posterior
        is drawn from (maps; a catalogue's rows keep their own errors, with its
        ``err_floor``). Without one, the sum of the 150-460 pixels of a JOF galaxy has an
        S/N of thousands and an exact posterior 0.01 wide, which rules out redshifts 0.05
        (1 + z) away that the model's own systematics allow.
    id_column, zred_column : str
        Columns of a table.

    Returns
    -------
    ZredGiven

    Raises
    ------
    ValueError
        Anything else (naming what was given), a redshift <= 0 or not finite, ``n_zred < 1``,
        the errors of :func:`photoz_estimator` and :func:`read_zred_table`.
    """
    if isinstance(zred, ZredGiven):
        return zred
    from ..posterior.refine import check_refine

    n_zred = check_count("n_zred", n_zred)
    check_refine(photoz_refine, "photoz_refine")
    if not (np.isfinite(photoz_err_floor) and photoz_err_floor >= 0):
        raise ValueError(
            f"photoz_err_floor must be a fraction >= 0 of the flux; got {photoz_err_floor}"
        )
    pz, label = (None, "")
    if zred == "infer" or photoz is not None:
        pz, label = photoz_estimator(estimator, photoz)
    common = {"photoz": pz, "photoz_label": label, "n_zred": n_zred, "refine": photoz_refine}
    common["err_floor"] = float(photoz_err_floor)
    if isinstance(zred, str) and zred == "infer":
        return ZredGiven("infer", **common)
    if isinstance(zred, int | float | np.integer | np.floating) and not isinstance(zred, bool):
        if not (np.isfinite(zred) and zred > 0):
            raise ValueError(f"zred must be a finite redshift > 0; got {zred!r}")
        return ZredGiven("value", value=float(zred), **common)
    if isinstance(zred, Mapping):
        table = {int(k): float(v) for k, v in zred.items()}
        return ZredGiven("table", table=table, **common)
    if isinstance(zred, Table):
        for col in (id_column, zred_column):
            if col not in zred.colnames:
                raise ValueError(
                    f"the redshift table has no column {col!r}; its columns: "
                    f"{', '.join(zred.colnames[:12])}"
                )
        ids = np.asarray(zred[id_column]).astype(np.int64)
        z = np.ma.filled(np.ma.asarray(zred[zred_column], dtype=float), np.nan)
        return ZredGiven("table", table=dict(zip(ids.tolist(), z.tolist(), strict=True)), **common)
    if isinstance(zred, str | os.PathLike) and Path(zred).is_file():
        ids, z = read_zred_table(zred, id_column, zred_column)
        return ZredGiven("table", table=dict(zip(ids.tolist(), z.tolist(), strict=True)), **common)
    raise ValueError(
        f"zred must be a redshift, a table of segment id -> redshift (mapping, Table or "
        f"file) or 'infer'; got {zred!r}"
    )


def combine_diagnostics(diag: dict[str, np.ndarray], b: int, k: int) -> dict[str, np.ndarray]:
    """Per-object refinement diagnostics (b,) from those of its k redshift rows (b * k,).

    ``refined``, ``khat_flag`` and ``ess_flag``: any row; ``ess`` and ``is_draws``: summed;
    ``khat``: the largest; ``logz``: the log of the mean evidence over the k redshifts.
    """
    out = {}
    for key, v in diag.items():
        v = np.asarray(v).reshape(b, k)
        if v.dtype == bool:
            out[key] = v.any(1)
        elif key in ("ess", "is_draws"):
            out[key] = np.nansum(v, 1)
        elif key == "logz":
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                top = np.nanmax(v, 1, keepdims=True)
                out[key] = top[:, 0] + np.log(np.nanmean(np.exp(v - top), 1))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out[key] = np.nanmax(v, 1)
    return out


def median_redshift_draws(draws: np.ndarray, zgrid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return each object's median redshift of its K and its draws there (what a check judges).

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)
        Marginalised draws laid out as :func:`marginal_draws` lays them out (draw
        ``j * n/K + i`` at the j-th redshift).
    zgrid : numpy.ndarray, (B, K)
        Each object's redshifts, in increasing order (:meth:`RedshiftPosterior.grid`).

    Returns
    -------
    zred : numpy.ndarray, (B,)
        ``zgrid[:, K // 2]``.
    draws : numpy.ndarray, (B, n/K, D)
        The draws at that redshift.
    """
    k = zgrid.shape[1]
    m = draws.shape[1] // k
    return zgrid[:, k // 2], draws[:, (k // 2) * m : (k // 2 + 1) * m]


def marginal_draws(
    estimator: AmortizedPosterior | str | os.PathLike,
    flux: Any,
    err: Any,
    zgrid: Any,
    n: int,
    **sample_options: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Draws of each object marginalised over its redshift posterior.

    Every object is fitted at each of its K redshifts (``zgrid``, e.g.
    :meth:`RedshiftPosterior.grid`) with n/K draws, all B x K rows in one ``sample`` call
    (its checks, chunking, refinement). Draw ``j * n/K + i`` of every object is at its j-th
    redshift, so draws with the same index share the redshift across objects (a galaxy's
    pixels summed draw by draw stay at one redshift).

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        Conditioned on the redshift.
    flux, err : array_like, (B, F)
        Maggies.
    zgrid : array_like, (B, K) or (K,)
        Redshifts of each object (a (K,) grid is every object's).
    n : int
        Draws per object, a multiple of K.
    **sample_options
        ``seed``, ``refine``, ``sps``, ``likelihood``, ... of ``sample``.

    Returns
    -------
    draws : numpy.ndarray, float32, (B, n, D)
    diagnostics : dict of numpy.ndarray (B,) or None
        With ``refine``: ``refined``, ``khat_flag`` and ``ess_flag`` (any of the K rows),
        ``ess`` and ``is_draws`` (sums), ``khat`` (max), ``logz`` (log of the mean evidence
        over the K redshifts).

    Raises
    ------
    ValueError
        ``n`` not a multiple of K, a grid of another number of objects, the errors of ``sample``.
    """
    from ..posterior import AmortizedPosterior
    from ..posterior.refine import DIAGNOSTICS, RefinementWarning, warn_unconverged

    post = AmortizedPosterior.resolve(estimator)
    flux = np.atleast_2d(np.asarray(flux, dtype=float))
    err = np.atleast_2d(np.asarray(err, dtype=float))
    b = len(flux)
    z = np.asarray(zgrid, dtype=float)
    z = np.broadcast_to(z, (b, z.shape[-1])) if z.ndim == 1 else z
    if z.shape[0] != b:
        raise ValueError(f"zgrid has {z.shape[0]} rows; there are {b} objects")
    k = z.shape[1]
    if int(n) % k:
        raise ValueError(f"draws per object ({n}) must be a multiple of the {k} redshifts")
    m = int(n) // k
    with warnings.catch_warnings():  # said below of the objects, not of their B x K rows
        warnings.simplefilter("ignore", RefinementWarning)
        draws = post.sample(
            np.repeat(flux, k, axis=0),
            np.repeat(err, k, axis=0),
            m,
            zred=z.ravel(),
            **sample_options,
        )
    diag = None
    if sample_options.get("refine", "never") != "never":
        diag = combine_diagnostics({key: getattr(draws, key) for key in DIAGNOSTICS}, b, k)
        target = sample_options.get("target_ess")
        warn_unconverged(diag["khat_flag"], diag["ess_flag"], target, refined=diag["refined"])
    out = np.asarray(draws, dtype=np.float32).reshape(b, k * m, -1)
    return out, diag
