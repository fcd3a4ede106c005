"""SBI against nested sampling (dynesty through Prospector) on the same object."""

from __future__ import annotations

__all__ = ["MISSED_LNL", "Comparison", "compare", "posterior_metrics", "weighted_quantile"]

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table
from scipy.stats import wasserstein_distance

from ..posterior.refine import ROUND_DRAWS
from .likelihood import NoiseLikelihood, fixed_redshift_model
from .obs import obs_inputs, resolve_estimator
from .sbi import run_sbi

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior

#: A sampler whose best log-likelihood is below the other's by more than this missed the mode
#: (or the peak) the other found (:attr:`Comparison.missed`).
MISSED_LNL = 2.0

#: dynesty settings of :func:`compare` unless given: one static run, no dynamic batches.
DYNESTY_DEFAULTS = {
    "nested_nlive_init": 200,
    "nested_dlogz_init": 0.2,
    "nested_maxbatch": 0,
    "nested_bound": "multi",
    "nested_sample": "rwalk",
    "nested_walks": 16,
    "print_progress": False,
    "verbose": False,
}


def weighted_quantile(x: np.ndarray, q: Any, weights: np.ndarray | None = None) -> np.ndarray:
    """Quantiles ``q`` (in [0, 1]) of samples ``x`` (n,) with optional weights (n,)."""
    x = np.asarray(x, dtype=float)
    if weights is None:
        return np.quantile(x, q)
    order = np.argsort(x)
    cdf = np.cumsum(np.asarray(weights, dtype=float)[order])
    cdf = (cdf - 0.5 * np.asarray(weights)[order]) / cdf[-1]
    return np.interp(q, cdf, x[order])


def posterior_metrics(
    sbi: np.ndarray,
    ref: np.ndarray,
    ref_weights: np.ndarray | None = None,
    sbi_weights: np.ndarray | None = None,
) -> dict[str, float]:
    """Compare 1-D posterior samples with a reference (dynesty's, possibly weighted).

    Parameters
    ----------
    sbi : numpy.ndarray, (n,)
        Draws, equal-weight unless ``sbi_weights``.
    ref : numpy.ndarray, (m,)
        Reference draws.
    ref_weights : numpy.ndarray, (m,), optional
    sbi_weights : numpy.ndarray, (n,), optional

    Returns
    -------
    dict
        ``dmed_over_sigma``: (median_sbi - median_ref) / sigma_ref, with sigma_ref half the
        reference's 16-84% width; ``width_ratio``: ratio of the 16-84% widths (SBI / ref);
        ``wasserstein``: the 1-D Wasserstein-1 distance, in the parameter's units.
    """
    qs = weighted_quantile(sbi, [0.16, 0.5, 0.84], sbi_weights)
    qr = weighted_quantile(ref, [0.16, 0.5, 0.84], ref_weights)
    width_ref = qr[2] - qr[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "dmed_over_sigma": float((qs[1] - qr[1]) / (0.5 * width_ref)),
            "width_ratio": float((qs[2] - qs[0]) / width_ref),
            "wasserstein": float(wasserstein_distance(sbi, ref, sbi_weights, ref_weights)),
        }


@dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    table : astropy.table.Table
        One row per parameter: ``param``, ``sbi_p50``, ``dynesty_p50``, ``dynesty_sigma``,
        ``dmed_over_sigma``, ``width_ratio``, ``wasserstein``; with ``refine``, the same
        for the importance-weighted draws as ``is_p50``, ``is_dmed_over_sigma``, ... .
    t_dynesty, t_sbi : float
        Wall times, s (SBI: input checks and drawing, for one object).
    speedup : float
        ``t_dynesty / t_sbi``.
    sbi, dynesty : dict
        Fitter outputs (``{"sampling": (result, seconds), ...}``).
    samples : dict
        ``{"sbi": (n, P), "dynesty": (m, P), "weights": (m,)}`` in the order of the rows
        (with ``refine`` also ``"refined"`` and ``"refined_weights"``).
    plot : str or None
        Path of the corner plot.
    sed_plot : str or None
        Path of the SED figure of the SBI draws (observed vs model photometry, residuals,
        SFH; :func:`prospect_sbi.plotting.save_sed`), ``<stem>_sed.png`` beside ``plot``.
    refined : dict or None
        With ``refine``: the output of the refined ``sbi`` fitter.
    t_refine : float
        Wall time of the refined fit, s (0 without ``refine``).
    ess : float
        Effective sample size of the refined draws (nan without ``refine``).
    logz_refined, logz_dynesty : float
        Log evidence of the refined fit (nan without ``refine``) and dynesty's, same
        likelihood and prior.
    khat : float
        Pareto k-hat of the refined weights (nan without ``refine``).
    best_lnlike_dynesty, best_lnlike_refined : float
        The largest log-likelihood among dynesty's samples and among the refined fit's draws
        (the latter nan without ``refine``): where the two posteriors disagree, the one whose
        best fit is worse by more than a few has missed the mode the other found
        (:attr:`missed`; :func:`compare` warns, and the corner plot's title says it).
    title : str
        Title of the corner plot: the caller's ``title``, the redshift and the wall times.
    """

    table: Table
    t_dynesty: float
    t_sbi: float
    sbi: dict = field(repr=False)
    dynesty: dict = field(repr=False)
    samples: dict = field(repr=False)
    plot: str | None = None
    sed_plot: str | None = None
    refined: dict | None = field(default=None, repr=False)
    t_refine: float = 0.0
    ess: float = float("nan")
    logz_refined: float = float("nan")
    logz_dynesty: float = float("nan")
    khat: float = float("nan")
    best_lnlike_dynesty: float = float("nan")
    best_lnlike_refined: float = float("nan")
    title: str = ""

    @property
    def speedup(self) -> float:
        """Wall-time ratio dynesty / SBI."""
        return self.t_dynesty / self.t_sbi

    @property
    def missed(self) -> str:
        """Which sampler missed the mode the other found: ``"dynesty"``, ``"refined"`` or ``""``.

        The one whose best log-likelihood is below the other's by more than
        :data:`MISSED_LNL` (the same likelihood and prior); ``""`` when neither is, or
        without ``refine``. Where the posteriors disagree, the table's differences are then
        that sampler's error, not the other's.
        """
        gap = self.best_lnlike_refined - self.best_lnlike_dynesty
        if not np.isfinite(gap) or abs(gap) <= MISSED_LNL:
            return ""
        return "dynesty" if gap > 0 else "refined"

    def missed_message(self) -> str:
        """One line on :attr:`missed` (``""`` when neither sampler missed a mode)."""
        gap = abs(self.best_lnlike_refined - self.best_lnlike_dynesty)
        if self.missed == "dynesty":
            return (
                f"dynesty's best fit is {gap:.1f} below the importance-sampled SBI draws' in "
                "ln L: dynesty missed the mode they found (or stopped short of its peak), so "
                "where the posteriors differ dynesty is off; rerun it with more live points "
                "(nested_nlive_init, --nlive) and no iteration limit"
            )
        if self.missed == "refined":
            return (
                f"the importance-sampled SBI draws' best fit is {gap:.1f} below dynesty's in "
                "ln L: the refinement missed the mode dynesty found"
            )
        return ""


def compare(
    obs: dict,
    model: Any,
    sps: Any,
    estimator: AmortizedPosterior | str | os.PathLike,
    n_draws: int = 4000,
    seed: int | None = None,
    likelihood: str = "noise",
    plot: str | os.PathLike | None = None,
    truths: dict[str, float] | None = None,
    refine: bool = False,
    refine_ndraws: int = ROUND_DRAWS,
    refine_ess: float | None = None,
    title: str | None = None,
    **dynesty_kwargs: Any,
) -> Comparison:
    """Fit one object with dynesty (through Prospector) and with SBI, and compare.

    dynesty samples ``model`` (with ``zred`` fixed when the estimator is conditioned on
    it) with :class:`NoiseLikelihood`, the estimator's physics and noise model, and
    Prospector's ``fit_model``. Compared: the free parameters and the derived quantities
    both give (``log_mstar``, ``log_sfr100``, ``mwa``, ...; dynesty's computed from its
    chain).

    Parameters
    ----------
    obs : dict
        Prospector obs dict (maggies); checked as by :func:`prospect_sbi.fit_model`.
    model : prospect.models.SpecModel
        The estimator's model.
    sps : BC03MilesBasis
    estimator : AmortizedPosterior, path or pretrained name
    n_draws : int
        SBI draws.
    seed : int, optional
        Seeds the SBI draws (Prospector's dynesty runner takes no seed).
    likelihood : {"noise", "flux"}
        See :class:`NoiseLikelihood`: ``"noise"`` for mocks made by the estimator's noise
        model, ``"flux"`` for real data.
    plot : path-like, optional
        Where to save a PNG corner plot overlaying both posteriors; the SED figure of the
        SBI draws (observed vs model photometry with residuals, and the SFH) is saved
        beside it as ``<stem>_sed.png``.
    truths : dict, optional
        True values to mark on the plot.
    refine : bool
        Also fit with the exact posterior of the same likelihood by importance sampling
        (``fit_model(..., sbi=True, refine="always")``) and compare that too.
    refine_ndraws : int
        Draws per round of the refined fit.
    refine_ess : float, optional
        ESS the refined fit stops at (default that of ``fit_model``, 200).
    title : str, optional
        Start of the corner plot's title (e.g. the object's id), followed by the redshift
        and the wall times.
    **dynesty_kwargs
        Prospector's ``run_dynesty`` options; defaults :data:`DYNESTY_DEFAULTS`.

    Returns
    -------
    Comparison

    Warns
    -----
    UserWarning
        With ``refine``, when one sampler's best fit is below the other's by more than
        :data:`MISSED_LNL` in ln L (:attr:`Comparison.missed`): it missed the mode the other
        found, and the table's differences are its error.
    """
    from prospect.fitting import fit_model as prospect_fit_model

    from ..forward import ModelPhotometry

    post = resolve_estimator(estimator)
    flux, err, zred = obs_inputs(obs, post, model)
    dmodel = model if zred is None else fixed_redshift_model(model, zred)
    phot = ModelPhotometry(dmodel, sps, post.filters)
    lnp = NoiseLikelihood(phot, post.noise, likelihood)
    dobs = {
        "maggies": flux,
        "maggies_unc": err,
        "filters": phot.filters,
        "phot_mask": np.isfinite(flux),
        "wavelength": None,
        "spectrum": None,
    }
    kwargs = DYNESTY_DEFAULTS | dynesty_kwargs
    if "slice" in str(kwargs["nested_sample"]) and "nested_walks" not in dynesty_kwargs:
        # walks are rwalk's: given to a slice sampler (Prospector's own default is 25),
        # dynesty warns that they make no sense; None leaves them out
        kwargs["nested_walks"] = None
    t0 = time.perf_counter()
    dyn = prospect_fit_model(
        dobs, dmodel, sps, lnprobfn=lnp, optimize=False, emcee=False, dynesty=True, **kwargs
    )
    t_dyn = time.perf_counter() - t0
    t0 = time.perf_counter()
    sbi = run_sbi(
        obs,
        model,
        sps=None,
        sbi_estimator=post,
        sbi_ndraws=n_draws,
        sbi_seed=seed,
        sbi_refine="never",
    )
    t_sbi = time.perf_counter() - t0
    refined = None
    if refine:
        refined = run_sbi(
            obs,
            model,
            sps,
            sbi_estimator=post,
            sbi_seed=seed,
            sbi_refine="always",
            sbi_refine_ndraws=refine_ndraws,
            sbi_refine_ess=refine_ess,
            sbi_likelihood=likelihood,
        )

    res = dyn["sampling"][0]
    weights = np.exp(res["logwt"] - res["logz"][-1])
    weights /= weights.sum()
    dchain = np.asarray(res["samples"])
    ref = {k: dchain[:, i] for i, k in enumerate(dmodel.theta_labels())}
    ref.update({k: np.asarray(v, float) for k, v in phot.derived(dchain).items()})
    ours = _columns(sbi, model)
    names = [k for k in list(dmodel.theta_labels()) + list(ours) if k in ref and k in ours]
    names = list(dict.fromkeys(names))
    rows = []
    for k in names:
        m = posterior_metrics(ours[k], ref[k], weights)
        q = weighted_quantile(ref[k], [0.16, 0.5, 0.84], weights)
        rows.append(
            {
                "param": k,
                "sbi_p50": float(np.median(ours[k])),
                "dynesty_p50": q[1],
                "dynesty_sigma": 0.5 * (q[2] - q[0]),
                **m,
            }
        )
    samples = {
        "names": names,
        "sbi": np.stack([ours[k] for k in names], -1),
        "dynesty": np.stack([ref[k] for k in names], -1),
        "weights": weights,
    }
    out = Comparison(Table(rows=rows), t_dyn, t_sbi, sbi, dyn, samples)
    out.logz_dynesty = float(np.ravel(res["logz"])[-1])
    out.best_lnlike_dynesty = float(np.max(res["logl"]))
    if refined is not None:
        result, out.t_refine = refined["sampling"]
        out.refined, w_is = refined, result.weights / result.weights.sum()
        out.ess = float(1.0 / np.sum(w_is**2))
        out.logz_refined, out.khat = float(result["logz"][-1]), float(result["khat"])
        out.best_lnlike_refined = float(np.max(result["logl"]))
        theirs = _columns(refined, model)
        metrics = [posterior_metrics(theirs[k], ref[k], weights, w_is) for k in names]
        out.table["is_p50"] = [float(weighted_quantile(theirs[k], 0.5, w_is)) for k in names]
        for key in metrics[0]:
            out.table[f"is_{key}"] = [m[key] for m in metrics]
        samples["refined"] = np.stack([theirs[k] for k in names], -1)
        samples["refined_weights"] = w_is
    out.title = _title(title, zred, out)
    if out.missed:
        warnings.warn(out.missed_message(), UserWarning, stacklevel=2)
    if plot is not None:
        from ..plotting.corner import overlay_corner

        shown = [i for i, k in enumerate(names) if k != "mass"]  # log_mstar shows the mass
        extra = (
            []
            if refined is None
            else [("SBI + importance sampling", samples["refined"][:, shown], w_is)]
        )
        out.plot = str(
            overlay_corner(
                plot,
                samples["sbi"][:, shown],
                samples["dynesty"][:, shown],
                [names[i] for i in shown],
                weights_b=weights,
                truths=None if truths is None else [truths.get(names[i]) for i in shown],
                extra=extra,
                title=out.title,
            )
        )
        from ..plotting.sed import save_sed

        sed_path = Path(plot).with_name(f"{Path(plot).stem}_sed.png")
        out.sed_plot = str(
            save_sed(
                sed_path, model, sps, obs, sbi, seed=0, title="SBI posterior: model vs observed"
            )[0]
        )
    return out


def _title(start: str | None, zred: float | None, res: Comparison) -> str:
    """Corner-plot title: ``start``, the redshift and the wall times of ``res``."""
    z = "z free" if zred is None else f"z = {float(np.ravel(zred)[0]):.4g}"
    times = f"dynesty {res.t_dynesty:.1f} s, SBI {1e3 * res.t_sbi:.0f} ms (x{res.speedup:.3g})"
    if res.refined is not None:
        times += f", SBI + importance sampling {res.t_refine:.2f} s"
    missed = {"dynesty": "dynesty missed the mode", "refined": "the refinement missed the mode"}
    return "; ".join(x for x in (start, z, times, missed.get(res.missed)) if x)


def _columns(output: dict, model: Any) -> dict[str, np.ndarray]:
    """Free parameters and derived quantities of an ``sbi`` fitter output, by name."""
    chain = output["sampling"][0]
    cols = {k: chain["samples"][:, i] for i, k in enumerate(model.theta_labels())}
    cols.update({k: chain["derived"][k] for k in chain["derived"].dtype.names})
    return cols
