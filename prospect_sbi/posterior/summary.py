"""Posterior summaries as an astropy Table: median, 16th/84th percentiles, mean, std."""

from __future__ import annotations

__all__ = ["STATISTICS", "draw_statistics", "summary_table"]

from collections.abc import Sequence

import numpy as np
from astropy.table import Table

#: Column suffixes, in the order of the last axis of ``stats``.
STATISTICS = ("p50", "p16", "p84", "mean", "std")


def draw_statistics(draws: np.ndarray) -> np.ndarray:
    """Statistics of :data:`STATISTICS` over the draws of each object.

    Parameters
    ----------
    draws : numpy.ndarray, (B, n, D)

    Returns
    -------
    numpy.ndarray, float64, (B, D, 5)
    """
    draws = np.asarray(draws)
    q = np.percentile(draws, [50, 16, 84], axis=1)  # (3, B, D)
    return np.stack([q[0], q[1], q[2], draws.mean(1), draws.std(1)], axis=-1).astype(float)


def summary_table(labels: Sequence[str], stats: np.ndarray, meta: dict | None = None) -> Table:
    """One row per object; columns ``<label>_<statistic>`` for :data:`STATISTICS`.

    Parameters
    ----------
    labels : sequence of str
        D names.
    stats : numpy.ndarray, (B, D, 5)
        Statistics in the order of :data:`STATISTICS`.
    meta : dict, optional
        Table metadata.

    Returns
    -------
    astropy.table.Table
    """
    stats = np.asarray(stats)
    columns = {
        f"{name}_{stat}": stats[:, j, k]
        for j, name in enumerate(labels)
        for k, stat in enumerate(STATISTICS)
    }
    return Table(columns, meta=dict(meta or {}))
