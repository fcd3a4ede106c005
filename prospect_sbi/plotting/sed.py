"""One object's fit as Prospector's ``FigureMaker`` shows it: SED, residuals and the SFH.

The observed photometry with its errors, the model photometry of the posterior draws (median
and 16-84% band per band) with the model spectrum at the median parameters, the residuals
chi = (observed - model) / error, and the star-formation history SFR(lookback time) of the
draws (median and 16-84% band). The numbers come from the library's forward model
(:class:`~prospect_sbi.forward.ModelPhotometry`) and SFH code
(:func:`~prospect_sbi.sources.sfh.cumulative_mass`); this module only evaluates and draws
them. F bands, D free parameters, T lookback times.
"""

from __future__ import annotations

__all__ = ["SEDData", "plot_sed", "save_sed", "sed_data", "sfr_history"]

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._io import save_figure
from ..constants import UJY_PER_MAGGIE


@dataclass
class SEDData:
    """The arrays :func:`plot_sed` draws, from :func:`sed_data`.

    Attributes
    ----------
    bands : list of str
        F band names.
    wave : numpy.ndarray, (F,)
        Effective wavelengths, observed frame, micron.
    flux, err : numpy.ndarray, (F,)
        Observed photometry and its errors, maggies (NaN where masked or missing).
    phot_p16, phot_p50, phot_p84 : numpy.ndarray, (F,)
        Model photometry of the draws per band: 16th, 50th, 84th percentiles, maggies.
    chi : numpy.ndarray, (F,)
        ``(flux - phot_p50) / err`` (NaN where a band was not observed).
    theta_median : numpy.ndarray, (D,)
        Median of the draws per parameter, the model's theta order.
    spec_wave, spec : numpy.ndarray, (L,)
        Model spectrum at ``theta_median``: observed-frame wavelengths (micron) and maggies.
    lookback, sfr_p16, sfr_p50, sfr_p84 : numpy.ndarray, (T,)
        SFH of the draws: lookback time (Gyr, bin centres) and SFR percentiles (Msun/yr).
    """

    bands: list
    wave: np.ndarray
    flux: np.ndarray
    err: np.ndarray
    phot_p16: np.ndarray
    phot_p50: np.ndarray
    phot_p84: np.ndarray
    chi: np.ndarray
    theta_median: np.ndarray
    spec_wave: np.ndarray = field(repr=False)
    spec: np.ndarray = field(repr=False)
    lookback: np.ndarray = field(repr=False)
    sfr_p16: np.ndarray = field(repr=False)
    sfr_p50: np.ndarray = field(repr=False)
    sfr_p84: np.ndarray = field(repr=False)


def _chain(draws: Any, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Draws (n, D) and weights (n,) of an array, a fit_model output or a read result."""
    if isinstance(draws, Mapping) and "sampling" in draws and isinstance(draws["sampling"], tuple):
        draws = draws["sampling"][0]
    if isinstance(draws, Mapping):
        if "chain" in draws:  # results_from
            chain, w = draws["chain"], draws.get("weights")
        elif "samples" in draws:  # a fitter's result (SBIResult, dynesty)
            chain = draws["samples"]
            w = np.exp(np.asarray(draws["logwt"]) - np.ravel(draws["logz"])[-1])
        else:
            raise ValueError(
                f"no draws: expected 'chain' or 'samples' among the keys {list(draws)[:8]}"
            )
        weights = w if weights is None else weights
        draws = chain
    chain = np.asarray(draws, dtype=float)
    if chain.ndim != 2:
        raise ValueError(f"draws have shape {chain.shape}; expected (n, D)")
    return chain, None if weights is None else np.asarray(weights, dtype=float)


def sfr_history(params: Mapping[str, np.ndarray], edges: np.ndarray) -> np.ndarray:
    """Mean SFR in lookback-time bins of batched SFH parameters, Msun/yr, (B, T).

    Parameters
    ----------
    params : mapping
        Batched parameters after the model's transforms
        (:meth:`~prospect_sbi.forward.ModelPhotometry.params`): ``sfh``, ``mass`` (Msun
        formed, (B,) or (B, nbin)), ``tage``, ``tau`` (and FSPS's burst, ``fburst`` and
        ``tburst``) or ``agebins``.
    edges : numpy.ndarray, (T + 1,)
        Lookback-time bin edges, yr, increasing.
    """
    from ..sources.sfh import cumulative_mass, sfh_inputs

    sfh = int(np.asarray(params["sfh"]).flat[0])
    mass = np.asarray(params["mass"], dtype=float)
    formed = mass.sum(-1) if mass.ndim > 1 else mass
    n = len(formed)
    sfh_params = sfh_inputs(params, n)
    frac = np.diff(
        cumulative_mass(np.broadcast_to(edges, (n, len(edges))), sfh, sfh_params), axis=-1
    )
    return formed[:, None] * frac / np.diff(edges)[None, :]


def sed_data(
    model: Any,
    sps: Any,
    obs: Mapping,
    draws: Any,
    weights: np.ndarray | None = None,
    n: int = 300,
    seed: int = 0,
    n_times: int = 60,
) -> SEDData:
    """Evaluate the model photometry, spectrum and SFH of a fit's draws for :func:`plot_sed`.

    Parameters
    ----------
    model : prospect.models.SpecModel
        The model whose theta order the draws follow.
    sps : BC03MilesBasis or other Prospector source
    obs : dict
        Prospector obs dict: ``filters``, ``maggies``, ``maggies_unc`` (``phot_mask``).
    draws : numpy.ndarray (n, D), or a fit
        Draws in the model's theta order, or :func:`prospect_sbi.fit_model`'s output, its
        sampling result, or ``results_from``'s result dict (draws and weights taken there).
    weights : numpy.ndarray, (n,), optional
        Weights of the draws (default: theirs, else equal).
    n : int
        Draws whose photometry and SFH are computed: ``n`` of equal-weight draws (all of
        them when there are fewer), or ``n`` resampled by weight.
    seed : int
        Seed of that resampling.
    n_times : int
        Lookback-time bins of the SFH (log-spaced from 1 Myr to the oldest draw's age).

    Returns
    -------
    SEDData
    """
    from ..forward import ModelPhotometry

    chain, weights = _chain(draws, weights)
    rng = np.random.default_rng(seed)
    if weights is not None and np.allclose(weights, weights[0], rtol=1e-9, atol=0):
        weights = None  # equal weights: every draw when there are no more than n
    if weights is None:
        pick = rng.choice(len(chain), size=min(int(n), len(chain)), replace=False)
    else:
        pick = rng.choice(len(chain), size=int(n), replace=True, p=weights / weights.sum())
    sub = chain[pick]
    phot = ModelPhotometry(model, sps, obs["filters"])
    maggies, _ = phot(sub)
    p16, p50, p84 = np.percentile(maggies, [16, 50, 84], axis=0)
    flux = np.asarray(obs["maggies"], dtype=float).copy()
    err = np.asarray(obs["maggies_unc"], dtype=float).copy()
    mask = np.asarray(obs.get("phot_mask", np.ones(len(flux), bool)), bool)
    mask &= np.isfinite(flux) & np.isfinite(err) & (err > 0)
    flux[~mask], err[~mask] = np.nan, np.nan
    theta_median = np.median(sub, axis=0)
    spec_wave, spec = _spectrum(model, sps, theta_median, phot.filters)
    params = phot.params(sub)
    oldest = _oldest(params)
    edges = np.concatenate([[0.0], np.geomspace(1e6, oldest, int(n_times))])
    sfr = sfr_history(params, edges)
    s16, s50, s84 = np.percentile(sfr, [16, 50, 84], axis=0)
    centres = np.sqrt(np.maximum(edges[:-1], 1e5) * edges[1:]) / 1e9
    return SEDData(
        bands=[f.name for f in phot.filters],
        wave=np.array([f.wave_effective for f in phot.filters]) / 1e4,
        flux=flux,
        err=err,
        phot_p16=p16,
        phot_p50=p50,
        phot_p84=p84,
        chi=(flux - p50) / err,
        theta_median=theta_median,
        spec_wave=spec_wave,
        spec=spec,
        lookback=centres,
        sfr_p16=s16,
        sfr_p50=s50,
        sfr_p84=s84,
    )


def _oldest(params: Mapping[str, np.ndarray]) -> float:
    """Return the oldest lookback time of any draw's SFH, yr."""
    if params.get("agebins") is not None:
        return float(10 ** np.max(params["agebins"]))
    return float(np.max(np.asarray(params["tage"], dtype=float)) * 1e9)


def _spectrum(model: Any, sps: Any, theta: np.ndarray, filters: Sequence) -> tuple:
    """Observed-frame wavelengths (micron) and model spectrum (maggies) at ``theta``."""
    spec, _, _ = model.predict(theta, obs={"filters": list(filters), "wavelength": None}, sps=sps)
    zred = float(np.atleast_1d(model.params.get("zred", 0.0))[0])
    wave = np.asarray(sps.wavelengths, dtype=float) * (1 + zred) / 1e4
    return wave, np.asarray(spec, dtype=float)


def plot_sed(data: SEDData, title: str | None = None) -> Any:
    """Draw observed vs model SED, residuals and SFH, in Prospector's ``FigureMaker`` layout.

    Parameters
    ----------
    data : SEDData
        From :func:`sed_data`.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Built without pyplot; save it with ``fig.savefig`` (or use :func:`save_sed`).
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(11.0, 4.8), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=(3, 1), width_ratios=(1.7, 1))
    sax = fig.add_subplot(grid[0, 0])
    rax = fig.add_subplot(grid[1, 0], sharex=sax)
    hax = fig.add_subplot(grid[:, 1])
    u = UJY_PER_MAGGIE
    lo, hi = np.nanmin(data.wave) * 0.8, np.nanmax(data.wave) * 1.2
    inside = (data.spec_wave > lo) & (data.spec_wave < hi) & (data.spec > 0)
    sax.plot(
        data.spec_wave[inside],
        data.spec[inside] * u,
        color="0.6",
        lw=0.7,
        label="model spectrum (median parameters)",
        zorder=1,
    )
    sax.fill_between(
        data.wave,
        data.phot_p16 * u,
        data.phot_p84 * u,
        color="C1",
        alpha=0.3,
        lw=0,
        label="model 16-84%",
        zorder=2,
    )
    sax.plot(
        data.wave,
        data.phot_p50 * u,
        "s",
        mfc="none",
        color="C1",
        ms=7,
        label="model photometry (median)",
        zorder=3,
    )
    det = np.isfinite(data.flux) & (data.flux > 0)
    sax.errorbar(
        data.wave[det],
        data.flux[det] * u,
        yerr=data.err[det] * u,
        fmt="o",
        color="k",
        ms=4,
        capsize=2,
        label="observed",
        zorder=4,
    )
    low = np.isfinite(data.flux) & ~det
    if low.any():
        sax.plot(
            data.wave[low],
            2 * data.err[low] * u,
            "v",
            color="k",
            ms=5,
            label="observed < 2 sigma",
            zorder=4,
        )
    sax.set(xscale="log", yscale="log", ylabel=r"$f_\nu$ [$\mu$Jy]")
    sax.legend(fontsize=7, loc="best")
    finite = np.isfinite(data.chi)
    rax.axhline(0, color="0.5", lw=0.8)
    rax.plot(data.wave[finite], data.chi[finite], "o", color="k", ms=4)
    lim = max(3.0, float(np.max(np.abs(data.chi[finite]), initial=0.0)) * 1.15)
    rax.set(
        xscale="log", ylim=(-lim, lim), ylabel=r"$\chi$", xlabel=r"observed wavelength [$\mu$m]"
    )
    plain = FormatStrFormatter("%g")
    rax.xaxis.set_major_formatter(plain)
    rax.xaxis.set_minor_formatter(plain)
    sax.tick_params(axis="x", which="both", labelbottom=False)
    hax.fill_between(
        data.lookback,
        data.sfr_p16,
        data.sfr_p84,
        color="C0",
        alpha=0.3,
        lw=0,
        step="mid",
        label="16-84%",
    )
    hax.plot(data.lookback, data.sfr_p50, color="C0", drawstyle="steps-mid", label="median")
    positive = data.sfr_p84[data.sfr_p84 > 0]
    top = float(positive.max()) if positive.size else 1.0
    hax.set(
        xscale="log",
        yscale="log",
        ylim=(top * 1e-4, top * 2),
        xlabel="lookback time [Gyr]",
        ylabel=r"SFR [M$_\odot$/yr]",
        title="star-formation history",
    )
    hax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def save_sed(
    path: str | os.PathLike,
    model: Any,
    sps: Any,
    obs: Mapping,
    draws: Any,
    weights: np.ndarray | None = None,
    title: str | None = None,
    **kwargs: Any,
) -> tuple[Path, SEDData]:
    """:func:`sed_data` then :func:`plot_sed`, written to the PNG ``path`` atomically.

    ``kwargs`` go to :func:`sed_data` (``n``, ``seed``, ``n_times``).

    Returns
    -------
    path : pathlib.Path
    data : SEDData
        What the figure shows.

    Examples
    --------
    >>> out = fit_model(obs, model, sps, sbi=True, estimator=post)  # doctest: +SKIP
    >>> save_sed("fit_sed.png", model, sps, obs, out)  # doctest: +SKIP
    """
    data = sed_data(model, sps, obs, draws, weights, **kwargs)
    return save_figure(plot_sed(data, title), path), data
