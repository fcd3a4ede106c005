"""Corner plot overlaying posteriors (e.g. SBI and dynesty), saved as a PNG."""

from __future__ import annotations

__all__ = ["overlay_corner"]

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import save_figure


def overlay_corner(
    path: str | os.PathLike,
    samples_a: np.ndarray,
    samples_b: np.ndarray,
    labels: Sequence[str],
    weights_b: np.ndarray | None = None,
    names: tuple[str, str] = ("SBI", "dynesty"),
    truths: Sequence[float | None] | None = None,
    extra: Sequence[tuple[str, np.ndarray, np.ndarray | None]] = (),
    title: str | None = None,
) -> Path:
    """Overlay two (or more) sets of samples on one corner plot and save it as a PNG.

    Parameters
    ----------
    path : path-like
        Output PNG.
    samples_a : numpy.ndarray, (n, P)
        Equal-weight samples (drawn in blue).
    samples_b : numpy.ndarray, (m, P)
        Samples drawn in orange, weighted by ``weights_b`` (m,) if given.
    labels : sequence of str
        P axis labels.
    names : (str, str)
        Legend entries.
    truths : sequence, optional
        P true values (None where unknown).
    extra : sequence of (name, samples (k, P), weights (k,) or None)
        More sets, drawn in green, red, ...
    title : str, optional
        Figure title (``fig.suptitle``).

    Returns
    -------
    pathlib.Path
    """
    import corner
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = [(names[0], samples_a, None), (names[1], samples_b, weights_b), *extra]
    sets = [(n, np.asarray(x, float), w) for n, x, w in sets]
    if any(x.ndim != 2 or x.shape[1] != len(labels) for _, x, _ in sets):
        raise ValueError(
            f"samples have shapes {[x.shape for _, x, _ in sets]}; expected "
            f"(n, {len(labels)}) each"
        )
    qs = np.stack([_weighted_percentiles(x, w, (0.005, 0.995)) for _, x, w in sets])
    lo, hi = qs[:, 0].min(0), qs[:, 1].max(0)
    span = np.where(hi > lo, hi - lo, 1.0)
    ranges = list(zip(lo - 0.05 * span, hi + 0.05 * span, strict=True))
    common = {
        "labels": list(labels),
        "range": ranges,
        "bins": 30,
        "smooth": 1.0,
        "plot_datapoints": False,
        "plot_density": False,
        "levels": (0.39, 0.86),
    }
    marks = None if truths is None else [np.nan if t is None else t for t in truths]
    fig = None
    for i, (_, x, w) in enumerate(sets):
        # corner writes the colour into hist_kwargs: each call gets its own dict
        fig = corner.corner(
            x,
            weights=w,
            color=f"C{i}",
            fig=fig,
            hist_kwargs={"density": True},
            **common,
            truths=marks if i == len(sets) - 1 else None,
        )
    handles = [plt.Line2D([], [], color=f"C{i}", label=n) for i, (n, _, _) in enumerate(sets)]
    fig.legend(handles=handles, loc="upper right", fontsize=12)
    if title:
        fig.suptitle(title, fontsize=14)
    try:
        return save_figure(fig, path, dpi=90)
    finally:
        plt.close(fig)


def _weighted_percentiles(x: np.ndarray, w: np.ndarray | None, q: tuple) -> np.ndarray:
    """Quantiles ``q`` (fractions) of each column of x (m, P) with weights w (m,): (len(q), P)."""
    if w is None:
        return np.quantile(x, q, axis=0)
    w = np.asarray(w, dtype=float)
    out = np.empty((len(q), x.shape[1]))
    for j in range(x.shape[1]):
        order = np.argsort(x[:, j])
        cdf = np.cumsum(w[order]) / w.sum()
        out[:, j] = np.interp(q, cdf, x[order, j])
    return out
