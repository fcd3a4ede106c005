"""A Prospector ``lnprobfn`` with the estimator's physics and noise model, for dynesty.

:class:`NoiseLikelihood` lives with the noise models (:mod:`prospect_sbi.noise.likelihood`,
so the estimator's refinement can use it too) and is importable from here as before.
"""

from __future__ import annotations

__all__ = ["BARRIER", "LIKELIHOODS", "NoiseLikelihood", "check_likelihood", "fixed_redshift_model"]

import copy
from typing import Any

import numpy as np

from ..cosmology import age_of_universe
from ..noise.likelihood import BARRIER, LIKELIHOODS, NoiseLikelihood, check_likelihood


def fixed_redshift_model(model: Any, zred: float) -> Any:
    """Copy ``model`` with ``zred`` fixed, for a fit at a known redshift.

    A TopHat ``tage`` prior is cut at the age of the universe at ``zred``, as the training
    sets cut it (:func:`prospect_sbi.simulate` redraws older ages), so that the prior the
    sampler explores is the one the estimator learned.

    Parameters
    ----------
    model : prospect.models.SpecModel
    zred : float

    Returns
    -------
    prospect.models.SpecModel
        Free parameters: those of ``model`` without ``zred``.
    """
    from prospect.models import SpecModel, priors

    cfg = copy.deepcopy(model.config_dict)
    cfg["zred"].update(isfree=False, init=float(zred))
    tage = cfg.get("tage", {})
    tuniv = float(age_of_universe(float(zred)))
    if tage.get("isfree") and isinstance(tage.get("prior"), priors.TopHat):
        lo, hi = tage["prior"].params["mini"], tage["prior"].params["maxi"]
        if hi > tuniv:
            tage["prior"] = priors.TopHat(mini=lo, maxi=tuniv)
            tage["init"] = min(float(np.ravel(tage["init"])[0]), 0.5 * (lo + tuniv))
    return SpecModel(cfg)
