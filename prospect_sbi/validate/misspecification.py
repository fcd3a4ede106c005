"""Misspecification: an estimator tested on mocks from a model it was not trained on.

Three departures from the training model, each changing one ingredient and keeping the rest
(redshift prior, mass range, bands, noise): the other SFH prior (parametric <-> continuity),
the other dust law (power law <-> Calzetti), and nebular emission switched off (or on).
Metrics are computed on the quantities both models share: the derived ones (``log_mstar``,
``log_sfr100``, ``mwa``, ...) and the free parameters with the same name (``logzsol``,
``dust2``).
"""

from __future__ import annotations

__all__ = ["MISSPECIFICATIONS", "misspecified_kwargs", "prior_logmass", "shared_labels"]

from typing import TYPE_CHECKING

import numpy as np

from ..models import MODEL_TEMPLATES

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior

#: Kinds of misspecification and what they change.
MISSPECIFICATIONS = {
    "sfh": "the other SFH prior (parametric_sfh <-> continuity_sfh)",
    "dust": "the other dust law (power law, dust_type=0 <-> Calzetti, dust_type=2)",
    "nebular": "nebular emission off (or on, for an estimator trained without it)",
}


def prior_logmass(estimator: AmortizedPosterior) -> tuple[float, float] | None:
    """Range of log10 stellar mass formed in the estimator's prior (None if not found)."""
    params = estimator.model_spec["params"]
    if "logsfr_ratios" in params:
        prior = params["logmass"].get("prior", {}).get("params", {})
        pair = (prior.get("mini"), prior.get("maxi"))
    else:
        prior = params["mass"].get("prior", {}).get("params", {})
        pair = tuple(np.log10(prior[k]) if k in prior else None for k in ("mini", "maxi"))
    return None if None in pair else (float(pair[0]), float(pair[1]))


def misspecified_kwargs(kwargs: dict, kind: str, logmass: tuple | None = None) -> tuple:
    """Name and :func:`~prospect_sbi.build_model` arguments of a misspecified mock model.

    Parameters
    ----------
    kwargs : dict
        The estimator's model (:func:`~prospect_sbi.validate.estimator_model_kwargs`).
    kind : {"sfh", "dust", "nebular"}
        What to change (:data:`MISSPECIFICATIONS`).
    logmass : (float, float), optional
        Mass-formed range to keep when the SFH template changes (the templates' defaults
        differ).

    Returns
    -------
    name : str
        E.g. ``"continuity_sfh mocks"``, ``"Calzetti dust mocks"``.
    kwargs : dict

    Raises
    ------
    ValueError
        Unknown ``kind``.
    """
    if kind not in MISSPECIFICATIONS:
        raise ValueError(f"unknown misspecification {kind!r}; use {list(MISSPECIFICATIONS)}")
    out = dict(kwargs)
    if kind == "sfh":
        other = [t for t in MODEL_TEMPLATES if t != kwargs["template"]][0]
        out["template"] = other
        out.pop("logsfr_ratio_scale", None)  # the other template's own prior
        out.pop("burst", None)
        if logmass is not None:
            out["logmass"] = logmass
        return f"{other} mocks", out
    if kind == "dust":
        out["dust_type"] = 2 if kwargs.get("dust_type", 0) != 2 else 0
        return ("Calzetti dust mocks" if out["dust_type"] == 2 else "power-law dust mocks"), out
    out["nebular"] = not kwargs.get("nebular", True)
    return ("no-nebular mocks" if not out["nebular"] else "nebular mocks"), out


def shared_labels(estimator: AmortizedPosterior, truth: dict) -> list[str]:
    """Labels of the estimator that the mocks also have (in the estimator's order)."""
    return [name for name in estimator.labels if name in truth]
