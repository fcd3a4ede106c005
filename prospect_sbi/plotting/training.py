"""The loss curve of a training run (train and validation loss per epoch), saved as a PNG."""

from __future__ import annotations

__all__ = ["plot_loss", "save_loss_curve"]

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._io import save_figure


def _history(source: Any) -> Sequence[Mapping[str, float]]:
    """Return the epochs of an estimator, of its ``training`` dict, or a list of epochs."""
    training = getattr(source, "training", source)
    history = training.get("history") if isinstance(training, Mapping) else training
    if not history:
        raise ValueError(
            f"no epochs to plot: expected an estimator, its training dict or "
            f"its history list of epochs, got {type(source).__name__} without "
            "any"
        )
    return history


def plot_loss(source: Any, title: str | None = None) -> Any:
    """Plot the training and validation loss per epoch, marking the best epoch.

    Parameters
    ----------
    source : AmortizedPosterior, dict or list of dict
        An estimator, its ``training`` dict, or its ``training["history"]``: one dict per
        epoch with ``epoch``, ``train_loss`` and ``val_loss`` (negative log posterior density
        per object, nats).
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot; save it with ``fig.savefig`` (or use :func:`save_loss_curve`).

    Raises
    ------
    ValueError
        No epochs.
    """
    from matplotlib.figure import Figure

    history = _history(source)
    epoch = np.array([h["epoch"] for h in history], dtype=float)
    train = np.array([h["train_loss"] for h in history], dtype=float)
    val = np.array([h["val_loss"] for h in history], dtype=float)
    fig = Figure(figsize=(5.0, 3.6), layout="constrained")
    ax = fig.subplots()
    ax.plot(epoch, train, "-", color="C0", label="training")
    ax.plot(epoch, val, "-", color="C1", label="validation")
    if np.isfinite(val).any():
        best = int(np.nanargmin(val))
        ax.plot(
            epoch[best],
            val[best],
            "o",
            color="C1",
            label=f"best: epoch {int(epoch[best])}, {val[best]:.3f}",
        )
    ax.set(
        xlabel="epoch",
        ylabel="loss (-log posterior density, nats)",
        title=title or f"loss over {len(history)} epochs",
    )
    ax.legend(fontsize=8)
    return fig


def save_loss_curve(path: str | os.PathLike, source: Any, title: str | None = None) -> Path:
    """Write :func:`plot_loss` of ``source`` to the PNG ``path``, atomically (replacing it).

    Returns
    -------
    pathlib.Path
    """
    return save_figure(plot_loss(source, title), path)
