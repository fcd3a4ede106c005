"""Calibration figures: coverage, TARP, SBC ranks, predicted and photo-z vs true, zero points.

Every function but :func:`plot_zeropoints` (a :class:`~prospect_sbi.fitting.ZeroPoints`)
takes :class:`~prospect_sbi.validate.CalibrationReport` objects (anything with their
attributes); each returns a ``matplotlib.figure.Figure`` built without pyplot, so it works
on headless machines and leaves pyplot's global state alone; save it with ``fig.savefig``.
"""

from __future__ import annotations

__all__ = [
    "plot_coverage",
    "plot_photoz",
    "plot_predicted",
    "plot_sbc",
    "plot_tarp",
    "plot_zeropoints",
]

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats


def _figure(n_panels: int, ncols: int = 4, size: float = 2.6) -> tuple[Any, np.ndarray]:
    from matplotlib.figure import Figure

    ncols = min(ncols, n_panels)
    nrows = -(-n_panels // ncols)
    # Fixed margins: a constrained layout costs more than drawing the points.
    fig = Figure(figsize=(size * ncols, size * nrows + 0.3))
    fig.subplots_adjust(
        left=0.8 / (size * ncols),
        right=1 - 0.2 / (size * ncols),
        bottom=0.55 / (size * nrows),
        top=1 - 0.5 / (size * nrows),
        wspace=0.35,
        hspace=0.5,
    )
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes[:n_panels]


def plot_coverage(report: Any) -> Any:
    """Plot the coverage of central credible intervals against credibility, one line a label.

    Lines below the diagonal mean an overconfident posterior (intervals too narrow).
    """
    fig, (ax,) = _figure(1, size=4.2)
    ax.plot([0, 1], [0, 1], color="k", lw=1, ls="--")
    for label, cov in zip(report.labels, report.coverage, strict=True):
        ax.plot(report.levels, cov, lw=1.2, label=label)
    ax.set(
        xlabel="credibility level",
        ylabel="expected coverage",
        xlim=(0, 1),
        ylim=(0, 1),
        title=f"coverage: {report.name}",
    )
    ax.legend(fontsize=6, ncols=2, loc="upper left")
    return fig


def plot_tarp(reports: Sequence[Any]) -> Any:
    """TARP expected coverage probability against credibility, one line a test set."""
    fig, (ax,) = _figure(1, size=4.2)
    ax.plot([0, 1], [0, 1], color="k", lw=1, ls="--")
    for report in reports:
        levels, ecp = report.tarp
        ax.plot(levels, ecp, lw=1.5, label=f"{report.name} (err {report.tarp_err:.3f})")
    ax.set(
        xlabel="credibility level",
        ylabel="expected coverage (TARP)",
        xlim=(0, 1),
        ylim=(0, 1),
        title="TARP",
    )
    ax.legend(fontsize=7, loc="upper left")
    return fig


def plot_sbc(report: Any, bins: int | None = None) -> Any:
    """SBC rank histograms per label with the 99% band of uniform ranks and the p-value."""
    n_obj, n = len(report), report.n_draws
    bins = report.sbc_bins if bins is None else int(bins)
    fig, axes = _figure(len(report.labels))
    lo, hi = stats.binom.ppf([0.005, 0.995], n_obj, 1.0 / bins)
    for ax, label, ranks, p in zip(axes, report.labels, report.ranks.T, report.sbc_p, strict=True):
        ax.axhspan(lo, hi, color="0.85")
        ax.hist(ranks / (n + 1), bins=bins, range=(0, 1), histtype="step", color="C0")
        ax.set_title(f"{label}  p={p:.2g}", fontsize=8)
        ax.set_yticks([])
    fig.suptitle(f"SBC ranks: {report.name}", fontsize=9)
    return fig


def plot_predicted(report: Any, max_points: int = 1000) -> Any:
    """Posterior median (with 16-84% bars) against the true value, per label."""
    fig, axes = _figure(len(report.labels))
    table = report.table
    rows = np.arange(len(report))[:max_points]
    for i, (ax, label) in enumerate(zip(axes, report.labels, strict=True)):
        t, m = report.truth[rows, i], report.p50[rows, i]
        ax.vlines(t, report.p16[rows, i], report.p84[rows, i], lw=0.3, alpha=0.4, color="C0")
        ax.plot(t, m, ".", ms=1.5, color="C0")
        lims = [min(t.min(), m.min()), max(t.max(), m.max())]
        ax.plot(lims, lims, color="k", lw=0.8)
        if lims[0] > 0 and np.median(t) < 0.01 * lims[1]:  # log-uniform, e.g. mass in Msun
            ax.set(xscale="log", yscale="log")
        r = table[i]
        ax.text(
            0.04,
            0.96,
            f"R2={r['r2']:.3f}\nbias={r['bias']:.3f}\nscatter={r['scatter']:.3f}",
            transform=ax.transAxes,
            va="top",
            fontsize=6,
        )
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("true", fontsize=7)
        ax.set_ylabel("posterior median", fontsize=7)
        ax.tick_params(labelsize=6)
    fig.suptitle(f"predicted vs true: {report.name}", fontsize=9)
    return fig


def plot_photoz(
    z_true: np.ndarray,
    z_phot: np.ndarray,
    lo: np.ndarray | None = None,
    hi: np.ndarray | None = None,
    title: str = "",
) -> Any:
    """Photometric against true redshift, with the outlier lines and the statistics.

    The dotted lines are ``|z_phot - z_true| / (1 + z_true)`` =
    :data:`~prospect_sbi.validate.photoz.OUTLIER_DZ`; the statistics those of
    :func:`~prospect_sbi.validate.photoz.photoz_stats`.

    Parameters
    ----------
    z_true, z_phot : numpy.ndarray, (B,)
        True (or spectroscopic) redshifts and point estimates.
    lo, hi : numpy.ndarray, (B,), optional
        Interval of each estimate (e.g. the 16th and 84th percentiles), drawn as bars for up
        to 300 objects.
    title : str
    """
    from ..validate.photoz import OUTLIER_DZ, photoz_stats

    z_true, z_phot = np.asarray(z_true, float), np.asarray(z_phot, float)
    fig, (ax,) = _figure(1, size=4.4)
    top = max(float(np.max(z_true)), float(np.max(z_phot if hi is None else hi))) * 1.05 + 0.1
    grid = np.linspace(0, top, 50)
    ax.plot(grid, grid, "k-", lw=0.8)
    for s in (-OUTLIER_DZ, OUTLIER_DZ):
        ax.plot(grid, grid + s * (1 + grid), "k:", lw=0.8)
    many = len(z_true) > 300
    bars = None if many or lo is None or hi is None else [z_phot - lo, hi - z_phot]
    ax.errorbar(
        z_true,
        z_phot,
        yerr=bars,
        fmt=".",
        ms=2 if many else 4,
        alpha=0.3 if many else 0.8,
        elinewidth=0.6,
    )
    s = photoz_stats(z_phot, z_true)
    ax.text(
        0.04,
        0.96,
        f"N={s['n']}\nsigma_NMAD={s['sigma_nmad']:.3f}\n"
        f"outliers={100 * s['outlier_frac']:.1f}%\nbias={s['bias']:+.3f}",
        transform=ax.transAxes,
        va="top",
        fontsize=7,
    )
    ax.set(
        xlim=(0, top), ylim=(0, top), xlabel="true / spectroscopic z", ylabel="z_phot", title=title
    )
    return fig


def plot_zeropoints(zp: Any, title: str = "") -> Any:
    """Zero-point corrections (magnitudes added) against each band's effective wavelength.

    Each band's bar is the standard error of its median, ``1.25 scatter / sqrt(n)`` (the
    scatter of ln flux, x 1.0857 in magnitudes); the labels give the galaxies it is the
    median of. The dotted lines are
    :data:`~prospect_sbi.fitting.zeropoints.ZEROPOINT_WARN_MAG`, beyond which a correction is
    warned about (units, band order, apertures). Bands left uncalibrated (no galaxy) are open
    circles at 0.

    Parameters
    ----------
    zp : ZeroPoints
        From :func:`~prospect_sbi.fitting.calibrate_zeropoints` or ``ZeroPoints.load``.
    title : str
    """
    from matplotlib.figure import Figure

    from ..filters import jades_filters
    from ..fitting.zeropoints import ZEROPOINT_WARN_MAG

    wave = np.array([f.wave_effective for f in jades_filters(bands=zp.bands)]) / 1e4
    mag, n = np.asarray(zp.offsets_mag, float), np.asarray(zp.n_galaxies, int)
    with np.errstate(invalid="ignore", divide="ignore"):
        sem = 1.0857 * 1.2533 * np.asarray(zp.scatter, float) / np.sqrt(n)
    fig = Figure(figsize=(6.4, 3.6))
    fig.subplots_adjust(left=0.12, right=0.98, bottom=0.14, top=0.9)
    ax = fig.add_subplot()
    ax.axhline(0, color="k", lw=0.8)
    for s in (-ZEROPOINT_WARN_MAG, ZEROPOINT_WARN_MAG):
        ax.axhline(s, color="k", ls=":", lw=0.8)
    used = n > 0
    ax.errorbar(wave[used], mag[used], yerr=np.nan_to_num(sem[used]), fmt="o", ms=4, capsize=2)
    ax.plot(wave[~used], mag[~used], "o", mfc="none", color="C0")
    for rank, i in enumerate(np.argsort(wave)):  # neighbours' labels: above, below, above...
        above = rank % 2 == 0
        short = zp.bands[i].rsplit("_", 1)[-1].upper()
        ax.annotate(
            f"{short}\n{n[i]}" if above else f"{n[i]}\n{short}",
            (wave[i], mag[i]),
            (0, 8 if above else -8),
            textcoords="offset points",
            fontsize=6,
            ha="center",
            va="bottom" if above else "top",
        )
    ax.set_xscale("log")
    ax.set_xticks(
        [0.4, 0.6, 0.8, 1, 1.5, 2, 3, 4], ["0.4", "0.6", "0.8", "1", "1.5", "2", "3", "4"]
    )
    ax.minorticks_off()
    top = max(ZEROPOINT_WARN_MAG, float(np.nanmax(np.abs(mag) + np.nan_to_num(sem)))) * 1.3
    ax.set(
        ylim=(-top, top),
        xlabel="effective wavelength (um)",
        ylabel="correction (mag added)",
        title=title or f"zero points from {zp.meta.get('n_objects', '?')} galaxies",
    )
    return fig
