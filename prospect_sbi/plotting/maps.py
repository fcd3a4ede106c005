"""Figures of pixel maps and of resolved vs integrated stellar masses (no pyplot)."""

from __future__ import annotations

__all__ = ["plot_maps", "plot_outshining"]

from collections.abc import Sequence
from typing import Any

import numpy as np

#: Panels of :func:`plot_maps`: map name, title, colormap.
_PANELS = (
    ("log_sigma_mstar_p50", r"log $\Sigma_*$ [M$_\odot$/kpc$^2$]", "viridis"),
    ("log_sigma_sfr_p50", r"log $\Sigma_{\rm SFR}$ [M$_\odot$/yr/kpc$^2$]", "magma"),
    ("log_ssfr_p50", "log sSFR [1/yr]", "coolwarm_r"),
    ("mwa_p50", "mass-weighted age [Gyr]", "cividis"),
    ("logzsol_p50", r"log Z/Z$_\odot$", "PuOr"),
    ("dust2_p50", r"$\tau_V$ (dust2)", "YlOrBr"),
    ("snr", "mean S/N", "gray_r"),
    ("chi2_red", r"$\chi^2_\nu$ (posterior median)", "inferno"),
    ("ood", "out of distribution", "Reds"),
)


def plot_maps(maps: Any, title: str | None = None) -> Any:
    """Panel of the median maps, S/N, predictive chi-square and OOD flag.

    Parameters
    ----------
    maps : PixelMaps
        From :func:`prospect_sbi.pixels.make_maps`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot; save it with ``fig.savefig``.
    """
    from matplotlib.figure import Figure

    panels = [p for p in _PANELS if p[0] in maps.maps]
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.3 * ncols, 3.0 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False).ravel())
    mask = maps.maps["mask"] > 0
    for ax, (name, label, cmap) in zip(axes, panels, strict=False):
        data = np.asarray(maps.maps[name], dtype=float)
        shown = np.where(mask, data, np.nan) if name != "snr" else data
        finite = shown[np.isfinite(shown)]
        lo, hi = np.percentile(finite, [2, 98]) if finite.size else (0.0, 1.0)
        if name == "ood":
            lo, hi = 0.0, 1.0
        im = ax.imshow(
            shown,
            origin="lower",
            cmap=cmap,
            vmin=lo,
            vmax=hi if hi > lo else lo + 1,
            interpolation="nearest",
        )
        if name != "snr" and mask.any():
            ax.contour(mask.astype(float), levels=[0.5], colors="k", linewidths=0.5)
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(im, ax=ax, shrink=0.8)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_outshining(tables: Sequence[Any], names: Sequence[str] | None = None) -> Any:
    """Plot pixel-summed against integrated log stellar mass, one point per galaxy.

    Parameters
    ----------
    tables : sequence of astropy.table.Table
        Outputs of :func:`prospect_sbi.pixels.outshining` (one per cutout or field).
    names : sequence of str, optional
        A label per table.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6, 4.2), layout="constrained")
    ax = fig.subplots()
    all_vals = []
    for i, tab in enumerate(tables):
        x, y = np.asarray(tab["log_mstar_integrated"]), np.asarray(tab["log_mstar_resolved"])
        xerr = [x - tab["log_mstar_integrated_p16"], tab["log_mstar_integrated_p84"] - x]
        yerr = [y - tab["log_mstar_resolved_p16"], tab["log_mstar_resolved_p84"] - y]
        label = names[i] if names is not None else None
        ax.errorbar(
            x, y, xerr=np.abs(xerr), yerr=np.abs(yerr), fmt="o", ms=5, capsize=2, label=label
        )
        all_vals.extend([*x, *y])
    if all_vals:
        lo, hi = min(all_vals) - 0.4, max(all_vals) + 0.4
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xlim=(lo, hi), ylim=(lo, hi))
    ax.set(
        xlabel=r"integrated log M$_*$ [M$_\odot$]",
        ylabel=r"pixel-summed log M$_*$ [M$_\odot$]",
        title="resolved vs integrated",
    )
    if names is not None:
        ax.legend(fontsize=7)
    return fig
