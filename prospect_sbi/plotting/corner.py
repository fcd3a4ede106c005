"""Corner plot overlaying two posteriors (e.g. SBI and dynesty), saved as a PNG."""

from __future__ import annotations

__all__ = ["overlay_corner"]

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .._io import atomic_path


def overlay_corner(
    path: str | os.PathLike,
    samples_a: np.ndarray,
    samples_b: np.ndarray,
    labels: Sequence[str],
    weights_b: np.ndarray | None = None,
    names: tuple[str, str] = ("SBI", "dynesty"),
    truths: Sequence[float | None] | None = None,
) -> Path:
    """Overlay two sets of samples on one corner plot and save it (atomically) as a PNG.

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

    Returns
    -------
    pathlib.Path
    """
    import corner
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    a, b = np.asarray(samples_a, float), np.asarray(samples_b, float)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] != len(labels):
        raise ValueError(f"samples have shapes {a.shape} and {b.shape}; expected (n, "
                         f"{len(labels)}) and (m, {len(labels)})")  # fmt: skip
    qb = _weighted_percentiles(b, weights_b, (0.005, 0.995))
    lo = np.minimum(np.percentile(a, 0.5, 0), qb[0])
    hi = np.maximum(np.percentile(a, 99.5, 0), qb[1])
    span = np.where(hi > lo, hi - lo, 1.0)
    ranges = list(zip(lo - 0.05 * span, hi + 0.05 * span, strict=True))
    common = {"labels": list(labels), "range": ranges, "bins": 30, "smooth": 1.0,
              "plot_datapoints": False, "plot_density": False, "levels": (0.39, 0.86)}
    # corner writes the colour into hist_kwargs: each call gets its own dict
    fig = corner.corner(a, color="C0", hist_kwargs={"density": True}, **common)
    corner.corner(b, weights=weights_b, color="C1", fig=fig, hist_kwargs={"density": True},
                  **common,
                  truths=None if truths is None else [np.nan if t is None else t
                                                      for t in truths])  # fmt: skip
    handles = [plt.Line2D([], [], color=c, label=n) for c, n in zip(("C0", "C1"), names,
                                                                    strict=True)]  # fmt: skip
    fig.legend(handles=handles, loc="upper right", fontsize=12)
    path = Path(path)
    try:
        with atomic_path(path, overwrite=True) as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
    return path


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
