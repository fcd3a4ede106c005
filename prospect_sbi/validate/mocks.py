"""Held-out mocks for an estimator: its model rebuilt from its header, simulated, made noisy."""

from __future__ import annotations

__all__ = [
    "estimator_model_kwargs",
    "misspecified_model",
    "mock_observations",
    "mock_seed",
    "test_set_observations",
]

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..models import LOGSFR_RATIO_SCALE, MODEL_TEMPLATES, build_model
from ..posterior.checks import outside_zred_range
from ..provenance import model_hash, model_spec

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior


def estimator_model_kwargs(estimator: AmortizedPosterior) -> dict:
    """Arguments of :func:`prospect_sbi.build_model` that rebuild the estimator's model.

    Read from the model specification stored in the estimator, and accepted only when the
    rebuilt model has the same hash, so the mocks come from exactly the training prior.

    Parameters
    ----------
    estimator : AmortizedPosterior

    Returns
    -------
    dict
        ``template``, ``zred`` (a number, a range, or the redshift prior itself when it is
        not uniform), ``nbins``, ``nebular``, ``dust_type``, ``logmass`` and, for a
        continuity SFH prior other than Prospector's, ``logsfr_ratio_scale``; ``burst`` for
        a parametric SFH with a free burst.

    Raises
    ------
    ValueError
        The estimator's model was not made by :func:`prospect_sbi.build_model` (pass the
        model, or a held-out training set, instead).
    """
    from prospect.models import priors

    params = estimator.model_spec["params"]
    template = "continuity_sfh" if "logsfr_ratios" in params else "parametric_sfh"
    zspec = params["zred"]
    zred = zspec["init"]
    if zspec["isfree"]:  # a uniform range, or the prior itself (a photo-z estimator's Beta)
        prior = zspec["prior"]
        zred = tuple(prior["params"][k] for k in ("mini", "maxi"))
        if prior.get("name") != "TopHat":
            zred = getattr(priors, prior["name"])(**prior["params"])
    kwargs = {
        "template": template,
        "zred": zred,
        "nebular": "gas_logu" in params,
        "dust_type": int(np.ravel(params["dust_type"]["init"])[0]),
    }
    if template == "continuity_sfh":
        kwargs["nbins"] = int(params["agebins"]["N"])
        scale = params["logsfr_ratios"].get("prior", {}).get("params", {}).get("scale")
        if scale is not None and not np.allclose(scale, LOGSFR_RATIO_SCALE):
            kwargs["logsfr_ratio_scale"] = float(np.ravel(scale)[0])
        prior = params["logmass"].get("prior", {}).get("params", {})
        logmass = (prior.get("mini"), prior.get("maxi"))
    else:
        if params.get("fburst", {}).get("isfree"):
            kwargs["burst"] = True
        prior = params["mass"].get("prior", {}).get("params", {})
        logmass = tuple(np.log10(prior[k]) if k in prior else None for k in ("mini", "maxi"))
    candidates = [kwargs]
    if None not in logmass:
        candidates.insert(0, dict(kwargs, logmass=tuple(float(m) for m in logmass)))
    for candidate in candidates:
        try:
            model = build_model(**candidate)
        except (ValueError, KeyError, TypeError):
            continue
        if model_hash(model_spec(model)) == estimator.model_hash:
            return candidate
    raise ValueError(
        f"the estimator's model (hash {estimator.model_hash}) is not one that "
        f"build_model makes from {MODEL_TEMPLATES}; pass model= or "
        "testset="
    )


def misspecified_model(
    estimator: AmortizedPosterior, model: object, kind: str
) -> tuple[str, object]:
    """Make a misspecified mock model of ``kind`` from the estimator's own model.

    An estimator of a :func:`~prospect_sbi.build_model` model gets the template's other
    SFH, dust law or nebular setting (:func:`~prospect_sbi.validate.misspecified_kwargs`).
    Any other model (a Prospector parameter file's) is edited where it says so itself:
    ``dust_type`` 0 or 4 <-> 2 (Calzetti), nebular emission switched off (its
    ``add_neb_emission`` and ``add_neb_continuum``) or on (Prospector's ``"nebular"``
    template); for ``"sfh"`` the other SFH family is :func:`~prospect_sbi.build_model`'s
    template with the model's redshift (its prior itself), dust law, nebular setting and mass
    range.

    Parameters
    ----------
    estimator : AmortizedPosterior
    model : prospect.models.SpecModel
        The estimator's model (:meth:`~prospect_sbi.posterior.AmortizedPosterior.model`).
    kind : {"sfh", "dust", "nebular"}

    Returns
    -------
    name : str
        E.g. ``"Calzetti dust mocks"``.
    model : prospect.models.SpecModel
    """
    import copy

    from prospect.models import SpecModel
    from prospect.models import transforms as pt
    from prospect.models.templates import TemplateLibrary

    from .misspecification import misspecified_kwargs, prior_logmass

    try:
        base = estimator_model_kwargs(estimator)
    except ValueError:
        base = None
    if base is not None:
        label, kwargs = misspecified_kwargs(base, kind, prior_logmass(estimator))
        return label, build_model(**kwargs)
    config = copy.deepcopy(model.config_dict)
    nebular = bool(np.ravel(config.get("add_neb_emission", {}).get("init", False))[0])
    dust_type = int(np.ravel(config.get("dust_type", {}).get("init", 0))[0])
    if kind == "dust":
        new = 2 if dust_type != 2 else 0
        config["dust_type"] = dict(config.get("dust_type", {"N": 1, "isfree": False}), init=new)
        return ("Calzetti dust mocks" if new == 2 else "power-law dust mocks"), SpecModel(config)
    if kind == "nebular":
        if nebular:
            for name in ("add_neb_emission", "add_neb_continuum"):
                if name in config:
                    config[name] = dict(config[name], init=False)
            return "no-nebular mocks", SpecModel(config)
        config.update(TemplateLibrary["nebular"])
        config["gas_logz"]["depends_on"] = pt.stellar_logzsol
        return "nebular mocks", SpecModel(config)
    if kind != "sfh":
        raise ValueError(f"unknown misspecification {kind!r}; use sfh, dust, nebular")
    sfh = int(np.ravel(config.get("sfh", {}).get("init", 0))[0])
    template = "parametric_sfh" if sfh == 3 else "continuity_sfh"
    # the model's own redshift prior (a Beta, say), not a TopHat over its range
    zspec = config.get("zred", {})
    zred = zspec["prior"] if zspec.get("isfree") else float(np.ravel(zspec.get("init", 0.0))[0])
    other = build_model(
        template,
        zred=zred,
        nebular=nebular,
        dust_type=dust_type if dust_type in (0, 2, 4) else 0,
        logmass=prior_logmass(estimator),
    )
    return f"{template} mocks", other


def mock_seed(estimator: AmortizedPosterior, seed: int) -> int:
    """Seed of mock simulations, never that of the estimator's training set.

    Two simulations of one model with one seed share their rows, so mocks drawn with the
    training seed would be training objects.
    """
    train = estimator.training.get("trainingset", {}).get("seed")
    mock = 1_000_003 + int(seed)
    return mock + 1 if train is not None and mock == int(train) else mock


def mock_observations(
    estimator: AmortizedPosterior,
    model: object,
    sps: object,
    n: int,
    path: str | os.PathLike,
    seed: int = 0,
) -> dict[str, Any]:
    """Simulate ``n`` mocks of ``model`` in the estimator's bands and add its noise.

    Parameters
    ----------
    estimator : AmortizedPosterior
        Gives the bands, the noise model and the redshift range.
    model : prospect.models.SpecModel
        The model the mocks come from: the estimator's, or another one (misspecification).
    sps : BC03MilesBasis or any Prospector source
    n : int
        Number of mocks.
    path : path-like
        HDF5 file of the simulations (an existing one made the same way is reused).
    seed : int
        Seed of the simulation (through :func:`mock_seed`) and of the noise.

    Returns
    -------
    dict
        ``flux``, ``err`` (B, F) maggies; ``zred`` (B,) or None for an estimator that infers
        it; ``truth`` dict of (B,) arrays: the free parameters, ``zred`` and the derived
        quantities. Mocks whose redshift lies outside the estimator's training range are
        dropped, so B <= n.
    """
    from ..simulation import simulate

    s = mock_seed(estimator, seed)
    path = Path(path)
    try:
        ts = simulate(model, sps, estimator.filters, int(n), path, seed=s, progress=False)
    except ValueError as err:  # kept mocks of another model (an edited one, an older version)
        if not path.exists() or str(path) not in str(err):  # not about the kept file
            raise
        raise ValueError(
            f"{err}; {path.parent} keeps earlier mocks: delete {path.name} to simulate them again"
        ) from None
    with ts:
        data = ts[slice(0, int(n))]
        labels = list(ts.labels)
    maggies = np.maximum(data["photometry"], 0.0)
    flux, err = estimator.noise.apply(maggies, np.random.default_rng(s))
    truth = {name: data["theta"][:, i] for i, name in enumerate(labels)}
    truth |= {k: v for k, v in data.items() if k not in ("theta", "photometry")}
    keep = ~outside_zred_range(data["zred"], estimator.header.get("zred_range"))
    zred = data["zred"][keep] if estimator.redshift == "known" else None
    return {
        "flux": flux[keep],
        "err": err[keep],
        "zred": zred,
        "truth": {k: np.asarray(v)[keep] for k, v in truth.items()},
    }


def test_set_observations(
    estimator: AmortizedPosterior, testset: str | os.PathLike | Any, n: int, seed: int = 0
) -> tuple[dict[str, Any], Path]:
    """Noisy observations of the first ``n`` rows of a test set, and the set's path.

    Parameters
    ----------
    estimator : AmortizedPosterior
    testset : path-like or TrainingSet
        Simulations of the estimator's model never used in training (a file is opened and
        closed again here).
    n : int
        Rows used.
    seed : int
        Seed of the noise (:func:`~prospect_sbi.posterior.held_out`).

    Raises
    ------
    ValueError
        The set has fewer than ``n`` rows, or another model or filter set.
    """
    from ..posterior import held_out
    from ..trainingset import TrainingSet

    opened = not isinstance(testset, TrainingSet)
    ts = TrainingSet.open(testset) if opened else testset
    try:
        if len(ts) < n:
            raise ValueError(f"test set {ts.path} has {len(ts)} rows; n_mocks={n}")
        return held_out(estimator, ts, slice(0, int(n)), seed=seed), Path(ts.path)
    finally:
        if opened:
            ts.close()
