"""prospect-sbi: amortised simulation-based inference for Prospector SED models.

Importing the package lets Prospector's ``SpecModel`` build without ``$SPS_HOME`` (see
:mod:`prospect_sbi.sources.emlines`); nothing else happens at import time.
"""

from .filters import JADES_BANDS, JADES_MEDIUM_BANDS, jades_filters, resolve_band_names
from .models import build_model
from .noise import EmpiricalNoise, JadesPixelNoise, NoiseModel, noise_from_dict
from .pretrained import PRETRAINED, pretrained_model
from .simulate import simulate
from .sources import BC03MilesBasis, FastPhotometry, emission_line_info
from .sources.emlines import patch_specmodel as _patch_specmodel
from .trainingset import TrainingSet

__version__ = "0.1.0"

__all__ = [
    "AmortizedPosterior",
    "BC03MilesBasis",
    "EmpiricalNoise",
    "FastPhotometry",
    "JADES_BANDS",
    "JADES_MEDIUM_BANDS",
    "JadesPixelNoise",
    "NoiseModel",
    "PRETRAINED",
    "TrainingSet",
    "__version__",
    "build_model",
    "emission_line_info",
    "jades_filters",
    "noise_from_dict",
    "pretrained_model",
    "resolve_band_names",
    "simulate",
    "train",
]

_patch_specmodel()


def __getattr__(name: str) -> object:
    # The estimator needs torch; import it only when asked for, so that simulating, the
    # sources and the command line start quickly.
    if name in ("AmortizedPosterior", "train"):
        from . import posterior

        return getattr(posterior, name)
    raise AttributeError(f"module 'prospect_sbi' has no attribute {name!r}")

