"""JADES-like noise, depth limits, non-detections and missing bands, applied on the fly."""

from .base import UJY_TO_MAGGIES, NoiseModel, noise_from_dict
from .empirical import EmpiricalNoise
from .jades import JadesPixelNoise

__all__ = ["UJY_TO_MAGGIES", "EmpiricalNoise", "JadesPixelNoise", "NoiseModel", "noise_from_dict"]
