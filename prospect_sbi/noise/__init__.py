"""JADES-like noise, depth limits, non-detections and missing bands, applied on the fly."""

from .base import UJY_TO_MAGGIES, NoiseModel, match_bands, noise_from_dict
from .empirical import EmpiricalNoise
from .jades import JadesPixelNoise
from .likelihood import BARRIER, LIKELIHOODS, NoiseLikelihood, check_likelihood

__all__ = [
    "BARRIER",
    "LIKELIHOODS",
    "UJY_TO_MAGGIES",
    "EmpiricalNoise",
    "JadesPixelNoise",
    "NoiseLikelihood",
    "NoiseModel",
    "check_likelihood",
    "match_bands",
    "noise_from_dict",
]
