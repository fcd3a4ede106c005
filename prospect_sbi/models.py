"""Ready-made Prospector models for JADES-like photometry (templates + the usual edits)."""

from __future__ import annotations

__all__ = ["build_model", "LOGSFR_RATIO_SCALE", "MODEL_TEMPLATES"]

import numpy as np

#: Star-formation-history templates :func:`build_model` knows.
MODEL_TEMPLATES = ("parametric_sfh", "continuity_sfh")
#: Scale (dex) of the Student-t prior of ``continuity_sfh``'s ``logsfr_ratios`` in Prospector's
#: template, and so in :func:`build_model` unless ``logsfr_ratio_scale`` says otherwise.
LOGSFR_RATIO_SCALE = 0.3


def build_model(
    template: str = "continuity_sfh",
    zred: float | tuple[float, float] | object = (0.0, 12.0),
    nbins: int = 6,
    nebular: bool = True,
    dust_type: int = 0,
    logmass: tuple[float, float] | None = None,
    dust_emission: bool = True,
    igm: bool = True,
    logsfr_ratio_scale: float | None = None,
    burst: bool = False,
) -> object:
    """Build a Prospector ``SpecModel`` from one of its templates, set up for BC03MilesBasis.

    Starts from ``TemplateLibrary[template]`` (plus ``"nebular"`` and ``"igm"``) and changes
    only what the grids or a free redshift require: Chabrier IMF (``imf_type=1``);
    ``gas_logz`` tied to ``logzsol``; ``gas_logu`` free in [-4, -1]; with a free redshift,
    step-SFH ``agebins`` follow ``zred`` (:func:`prospect_sbi.transforms.zred_to_agebins`:
    0-30 Myr, 30-100 Myr, then log-spaced to 85% of the age of the universe, and a last bin
    to its age), and the
    ``logzsol`` prior stays within the grids.

    Parameters
    ----------
    template : {"parametric_sfh", "continuity_sfh"}
        Prospector template of the SFH.
    zred : float, (float, float) or prospect.models.priors.Prior
        Fixed redshift, the range of a uniform prior, or a bounded Prospector prior (free
        redshift; e.g. ``priors.Beta(alpha=1, beta=3, mini=0, maxi=20)`` for photometric
        redshifts, which weights low redshifts as real samples do).
    nbins : int
        Step-SFH bins (``continuity_sfh``), >= 3.
    nebular : bool
        Add Prospector's ``"nebular"`` template.
    dust_type : int
        FSPS dust law (0 power law, 2 Calzetti, 4 Kriek & Conroy with free ``dust_index``).
    dust_emission : bool
        Draine & Li (2007) dust emission with energy balance, at FSPS's default parameters
        (``duste_umin`` 1, ``duste_qpah`` 3.5, ``duste_gamma`` 0.01, fixed); written into the
        model either way (``add_dust_emission``), so the estimator records it. FSPS, and so
        Prospector, switch it on when the model does not say.
    igm : bool
        Add Prospector's ``"igm"`` template (``add_igm_absorption``, Madau 1995 with
        ``igm_factor`` 1, fixed): the Lyman break every z > 3 galaxy shows in JWST bands.
    logmass : (float, float), optional
        Range of log10 stellar mass formed (Msun) instead of the template's (log-uniform
        ``mass`` 1e8-1e12 for ``parametric_sfh``, uniform ``logmass`` 7-12 for
        ``continuity_sfh``). Pixels of deep imaging need lower masses, e.g. ``(4, 12)``.
    logsfr_ratio_scale : float, optional
        Scale of the Student-t prior (2 degrees of freedom) on ``continuity_sfh``'s
        ``logsfr_ratios`` (dex) instead of Prospector's 0.3 (:data:`LOGSFR_RATIO_SCALE`);
        1.0 is the "bursty" prior of Tacchella et al. (2022), which lets the SFR jump by 10x
        between neighbouring bins.
    burst : bool
        Add Prospector's ``"burst_sfh"`` template to ``parametric_sfh``, with its ``fburst``
        (fraction of the mass formed in a burst, uniform 0-0.5) and ``fage_burst`` (when it
        went off, as a fraction of ``tage``, uniform 0.5-1) free: FSPS's delayed-tau SFH
        plus an instantaneous burst at ``tburst = fage_burst * tage``.

    Returns
    -------
    prospect.models.SpecModel
    """
    from prospect.models import SpecModel, priors
    from prospect.models import transforms as pt
    from prospect.models.templates import TemplateLibrary

    from .transforms import zred_to_agebins

    if template not in MODEL_TEMPLATES:
        raise ValueError(f"unknown template {template!r}; use one of {MODEL_TEMPLATES}")
    if logsfr_ratio_scale is not None:
        if template != "continuity_sfh":
            raise ValueError(f"logsfr_ratio_scale is for continuity_sfh, not {template}")
        if not (np.isfinite(logsfr_ratio_scale) and logsfr_ratio_scale > 0):
            raise ValueError(f"logsfr_ratio_scale={logsfr_ratio_scale}: needs a positive number")
    if burst and template != "parametric_sfh":
        raise ValueError(f"burst=True is for parametric_sfh, not {template}")
    spec = TemplateLibrary[template]
    if burst:
        spec.update(TemplateLibrary["burst_sfh"])
        spec["fburst"].update(isfree=True, init=0.1)
        spec["fage_burst"].update(isfree=True, init=0.9)
    if nebular:
        spec.update(TemplateLibrary["nebular"])
        spec["gas_logz"]["depends_on"] = pt.stellar_logzsol
        spec["gas_logu"].update(isfree=True, prior=priors.TopHat(mini=-4.0, maxi=-1.0))
    if igm:
        spec.update(TemplateLibrary["igm"])
    spec["imf_type"]["init"] = 1
    spec["dust_type"]["init"] = dust_type
    if dust_type == 4:
        spec["dust_index"] = {
            "N": 1,
            "isfree": True,
            "init": 0.0,
            "prior": priors.TopHat(mini=-1.0, maxi=0.4),
        }
    if logmass is not None:
        lo, hi = (float(m) for m in logmass)
        if not lo < hi:
            raise ValueError(f"logmass={logmass}: the lower bound must be below the upper one")
        if template == "parametric_sfh":
            spec["mass"].update(
                init=10 ** (0.5 * (lo + hi)), prior=priors.LogUniform(mini=10**lo, maxi=10**hi)
            )
        else:
            spec["logmass"].update(init=0.5 * (lo + hi), prior=priors.TopHat(mini=lo, maxi=hi))
    spec["add_dust_emission"] = {"N": 1, "isfree": False, "init": bool(dust_emission)}
    if dust_emission:
        for name, value in (("duste_umin", 1.0), ("duste_qpah", 3.5), ("duste_gamma", 0.01)):
            spec[name] = {"N": 1, "isfree": False, "init": value}
    if isinstance(zred, priors.Prior):
        lo, hi = (float(z) for z in zred.range)
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"zred prior {zred!r}: needs finite bounds 0 <= mini < maxi")
        spec["zred"].update(isfree=True, init=0.5 * (lo + hi), prior=zred)
    elif np.ndim(zred) == 0:
        spec["zred"].update(isfree=False, init=float(zred))
    else:
        lo, hi = (float(z) for z in zred)
        prior = priors.TopHat(mini=lo, maxi=hi)
        spec["zred"].update(isfree=True, init=0.5 * (lo + hi), prior=prior)
    if template == "continuity_sfh":
        if nbins < 3:
            raise ValueError(f"nbins={nbins}: a step SFH needs at least 3 bins")
        # zred_to_agebins keeps the first bin and the top of the second, and fills the rest.
        base = np.array([[0.0, 7.5], [7.5, 8.0]] + [[8.0, 9.0]] * (nbins - 2))
        agebins = zred_to_agebins(np.atleast_1d(spec["zred"]["init"]), base)
        spec["agebins"].update(N=nbins, init=agebins, depends_on=zred_to_agebins)
        spec["mass"].update(N=nbins, init=np.full(nbins, 1e6))
        scale = LOGSFR_RATIO_SCALE if logsfr_ratio_scale is None else float(logsfr_ratio_scale)
        spec["logsfr_ratios"].update(
            N=nbins - 1,
            init=np.zeros(nbins - 1),
            prior=priors.StudentT(
                mean=np.zeros(nbins - 1),
                scale=np.full(nbins - 1, scale),
                df=np.full(nbins - 1, 2),
            ),
        )
        # Prospector evaluates dependent parameters in order: bins before the masses.
        spec = {k: spec[k] for k in sorted(spec, key=lambda k: k == "mass")}
    return SpecModel(spec)
