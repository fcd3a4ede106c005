"""Pretrained JADES estimators shipped with the package, and the recipes that made them."""

from __future__ import annotations

__all__ = [
    "PHOTOZ_PRIOR",
    "PRETRAINED",
    "pretrained_model",
    "pretrained_path",
    "pretrained_redshift",
]

from importlib import resources
from pathlib import Path

#: Redshift prior of the photometric-redshift estimators (a Prospector prior, by name): Beta(1, 3)
#: on [0, 20], density falling as (1 - z/20)^2, so that low redshifts weigh as in real samples
#: (median 4.1) while z > 10 keeps 1/8 of the draws.
PHOTOZ_PRIOR = {"name": "Beta", "params": {"alpha": 1.0, "beta": 3.0, "mini": 0.0, "maxi": 20.0}}

#: name -> keyword arguments of :func:`prospect_sbi.build_model` for its training set. All
#: use the 14 JADES bands, ``JadesPixelNoise``, dust emission (DL07, FSPS defaults), and stellar
#: mass formed over 10^4-10^12 Msun so that single pixels of deep JWST imaging and whole
#: galaxies are covered. ``jades-<sfh>`` know the redshift (0.1-15: an input);
#: ``jades-<sfh>-photoz`` infer it (0-20, :data:`PHOTOZ_PRIOR`).
#: ``examples/train_jades_estimators.py`` reproduces them from scratch.
PRETRAINED: dict[str, dict] = {}
for _sfh in ("parametric", "continuity"):
    PRETRAINED[f"jades-{_sfh}"] = {
        "template": f"{_sfh}_sfh",
        "zred": (0.1, 15.0),
        "logmass": (4.0, 12.0),
    }
    PRETRAINED[f"jades-{_sfh}-photoz"] = {
        "template": f"{_sfh}_sfh",
        "zred": PHOTOZ_PRIOR,
        "logmass": (4.0, 12.0),
    }
#: The photo-z continuity model takes the "bursty" SFH prior (Tacchella et al. 2022): on the
#: 99 JADES spec-z galaxies its exact photo-z posteriors scatter less at 1.2 < z < 3.5, where
#: the Balmer break falls between the broad bands (docs/benchmarks.md, session 22).
PRETRAINED["jades-continuity-photoz"]["logsfr_ratio_scale"] = 1.0


def pretrained_redshift(name: str) -> str:
    """``"infer"`` for a photometric-redshift estimator, ``"known"`` otherwise."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained estimator {name!r}; available: {sorted(PRETRAINED)}")
    return "infer" if isinstance(PRETRAINED[name]["zred"], dict) else "known"


def pretrained_path(name: str) -> Path:
    """File of the pretrained estimator ``name`` inside the installed package.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones).
    FileNotFoundError
        The package was installed without its estimator files.
    """
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained estimator {name!r}; available: {sorted(PRETRAINED)}")
    path = Path(str(resources.files("prospect_sbi") / "data" / "pretrained" / f"{name}.sbi"))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: reinstall prospect-sbi, or rebuild it with "
            f"examples/train_jades_estimators.py --only {name} --install"
        )
    return path


def pretrained_model(name: str) -> object:
    """Build the Prospector ``SpecModel`` that the pretrained estimator ``name`` was trained on."""
    from .models import build_model

    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained estimator {name!r}; available: {sorted(PRETRAINED)}")
    kwargs = dict(PRETRAINED[name])
    if isinstance(kwargs["zred"], dict):
        from prospect.models import priors

        kwargs["zred"] = getattr(priors, kwargs["zred"]["name"])(**kwargs["zred"]["params"])
    return build_model(**kwargs)
