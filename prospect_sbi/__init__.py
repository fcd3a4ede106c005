"""prospect-sbi: amortised simulation-based inference for Prospector SED models.

Importing the package lets Prospector's ``SpecModel`` build without ``$SPS_HOME`` (see
:mod:`prospect_sbi.sources.emlines`); nothing else happens at import time.
"""

from ._version import __version__
from .catalog import read_catalog
from .filters import JADES_BANDS, JADES_MEDIUM_BANDS, jades_filters, resolve_band_names
from .forward import ModelPhotometry
from .models import build_model
from .noise import EmpiricalNoise, JadesPixelNoise, NoiseModel, noise_from_dict
from .paramfile import ParamFile, load_param_file
from .pretrained import PRETRAINED, pretrained_model
from .simulation import simulate
from .sources import BC03MilesBasis, FastPhotometry, emission_line_info
from .sources.emlines import patch_specmodel as _patch_specmodel
from .trainingset import TrainingSet

#: Public names that need torch or Prospector's fitting code: imported on first use.
_LAZY = {
    "AmortizedPosterior": "posterior",
    "train": "posterior",
    "ObservationWarning": "posterior",
    "fit_model": "fitting",
    "compare": "fitting",
    "write_results": "fitting",
    "fit_catalog": "fitting",
    "importance_sample": "fitting",
    "register_fitter": "fitting",
    "get_fitter": "fitting",
    "available_fitters": "fitting",
    "calibrate_zeropoints": "fitting",
    "ZeroPoints": "fitting",
    "fit_pixels": "pixels",
    "make_maps": "pixels",
    "load_fits": "pixels",
    "load_cube": "pixels",
    "select_pixels": "pixels",
    "outshining": "pixels",
    "map_galaxy": "pixels",
    "predictive_check": "ppc",
    "ValidationReport": "validate",
}

__all__ = [
    "BC03MilesBasis",
    "EmpiricalNoise",
    "FastPhotometry",
    "JADES_BANDS",
    "JADES_MEDIUM_BANDS",
    "JadesPixelNoise",
    "ModelPhotometry",
    "NoiseModel",
    "PRETRAINED",
    "ParamFile",
    "TrainingSet",
    "__version__",
    "build_model",
    "emission_line_info",
    "jades_filters",
    "load_param_file",
    "noise_from_dict",
    "pretrained_model",
    "read_catalog",
    "resolve_band_names",
    "simulate",
    *_LAZY,
]

_patch_specmodel()


def __getattr__(name: str) -> object:
    # The estimator needs torch; import it only when asked for, so that simulating, the
    # sources and the command line start quickly.
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'prospect_sbi' has no attribute {name!r}")
