"""Pretrained JADES estimators shipped with the package, and the recipes that made them."""

from __future__ import annotations

__all__ = ["PRETRAINED", "pretrained_model", "pretrained_path"]

from importlib import resources
from pathlib import Path

#: name -> keyword arguments of :func:`prospect_sbi.build_model` for its training set. All
#: use the 14 JADES bands, ``JadesPixelNoise`` and a known redshift; stellar mass formed spans
#: 10^4-10^12 Msun so that single pixels of deep JWST imaging and whole galaxies are covered.
#: ``examples/train_jades_estimators.py`` reproduces them from scratch.
PRETRAINED: dict[str, dict] = {
    f"jades-{sfh}": {"template": f"{sfh}_sfh", "zred": (0.1, 10.0), "logmass": (4.0, 12.0)}
    for sfh in ("parametric", "continuity")
}


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
    return build_model(**PRETRAINED[name])
