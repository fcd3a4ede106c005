"""Drop-in ``fit_model``: Prospector's signature and output; the fitter comes from the registry."""

from __future__ import annotations

__all__ = ["fit_model", "refine_mode", "resolve_fitter", "run_sbi", "sbi_chain"]

import os
from typing import TYPE_CHECKING, Any

from prospect.fitting import lnprobfn as _prospect_lnprobfn

from .registry import get_fitter
from .sbi import refine_mode, run_sbi, sbi_chain  # re-exported: their home is the sbi backend

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior


def resolve_fitter(
    optimize: bool = False,
    emcee: bool = False,
    dynesty: bool = True,
    sbi: bool = False,
    fitter: str | None = None,
) -> str:
    """Turn Prospector's backend flags (or an explicit name) into one fitter name.

    ``fitter`` wins over the flags; otherwise ``sbi`` > ``emcee`` > ``dynesty`` >
    ``optimize``. An optimisation before emcee or dynesty stays Prospector's (the flag is
    passed on).

    Raises
    ------
    ValueError
        Two samplers at once (emcee and dynesty, or sbi with emcee or optimize), or none.
    """
    if fitter is not None:
        return str(fitter)
    if sbi and (emcee or optimize):
        raise ValueError("sbi=True cannot be combined with emcee or optimize; pick one fitter")
    if sbi:
        return "sbi"
    if emcee and dynesty:
        raise ValueError(
            "emcee=True and dynesty=True: pick one sampler (dynesty is the "
            "default; pass dynesty=False with emcee=True)"
        )
    if emcee:
        return "emcee"
    if dynesty:
        return "dynesty"
    if optimize:
        return "optimize"
    raise ValueError("no fitter chosen: set one of dynesty, emcee, optimize, sbi or fitter=")


def fit_model(
    obs: dict,
    model: Any,
    sps: Any,
    noise: tuple = (None, None),
    lnprobfn: Any = _prospect_lnprobfn,
    optimize: bool = False,
    emcee: bool = False,
    dynesty: bool = True,
    sbi: bool = False,
    estimator: AmortizedPosterior | str | os.PathLike | None = None,
    fitter: str | None = None,
    refine: str | None = None,
    **kwargs: Any,
) -> dict:
    """Fit ``obs`` with ``model``: ``prospect.fitting.fit_model`` plus an ``sbi`` backend.

    Change ``from prospect.fitting import fit_model`` to ``from prospect_sbi import
    fit_model`` and pass ``sbi=True, estimator=...``; every other backend runs Prospector's
    code unchanged. Call it as ``fit_model(obs, model, sps, noise, **run_params)`` with
    ``run_params["fitter"]`` (a name from :func:`available_fitters`) and
    ``run_params["sbi_estimator"]`` to pick both from a parameter file.

    Parameters
    ----------
    obs, model, sps, noise, lnprobfn, optimize, emcee, dynesty
        As in Prospector (``lnprobfn`` is ignored by ``sbi``).
    sbi : bool
        Draw from an amortised posterior instead of sampling.
    estimator : AmortizedPosterior, path-like or str, optional
        For ``sbi``: the estimator, its file or a pretrained name (also
        ``kwargs["sbi_estimator"]``).
    fitter : str, optional
        A fitter name; overrides the flags.
    refine : {"auto", "always", "never"}, optional
        For ``sbi``: replace the amortised draws by the exact posterior of the likelihood
        (importance sampling, see :func:`run_sbi`) for every object, for none, or
        (``"auto"``, the default) when the object is bright or the flow's draws fit it badly
        (:func:`~prospect_sbi.posterior.refine.needs_refinement`). Same as
        ``sbi_refine`` (which also takes True for ``"always"`` and False for ``"never"``).
    **kwargs
        Passed to the fitter: Prospector's (``nested_nlive_init``, ...), or for ``sbi``:
        ``sbi_ndraws`` (default 4000), ``sbi_seed``, ``sbi_lnlike`` (compute each draw's
        log-likelihood, default True), ``sbi_likelihood`` (``"flux"`` or ``"noise"``, see
        :class:`NoiseLikelihood`), ``sbi_check`` (the predictive check, default True; needs
        ``sps``), ``sbi_refine`` (as ``refine``), ``sbi_refine_ndraws``,
        ``sbi_refine_rounds`` and ``sbi_refine_ess``.

    Returns
    -------
    dict
        ``{"optimization": (result, seconds), "sampling": (result, seconds)}``; for
        ``sbi`` the sampling result is an :class:`SBIResult`.

    Raises
    ------
    ValueError
        Conflicting flags, an unknown fitter or ``refine``, or an obs dict the estimator
        cannot take.

    Examples
    --------
    >>> from prospect_sbi import fit_model  # doctest: +SKIP
    >>> out = fit_model(obs, model, sps, sbi=True, estimator="jades-parametric")  # doctest: +SKIP
    >>> chain = out["sampling"][0]["samples"]  # (4000, model.ndim)  # doctest: +SKIP
    """
    name = resolve_fitter(optimize, emcee, dynesty, sbi, fitter)
    if estimator is not None:
        kwargs["sbi_estimator"] = estimator
    if refine is not None:
        alias = kwargs.get("sbi_refine")
        if alias is not None and refine_mode(alias) != refine_mode(refine):
            raise ValueError(f"refine={refine!r} and sbi_refine={alias!r} disagree; pass one")
        kwargs["sbi_refine"] = refine
    run = get_fitter(name)
    if name in ("dynesty", "emcee") and optimize:
        kwargs["optimize"] = True
    if name == "sbi":
        return run(obs, model, sps, noise, **kwargs)
    return run(obs, model, sps, noise, lnprobfn=lnprobfn, **kwargs)
