"""Figures (matplotlib, no pyplot): validation, pixel maps, one object's SED, training loss.

The science behind them lives in the library (the forward model, the SFH code); these
modules evaluate it and draw.
"""

from . import sed, training
from .sed import *  # noqa: F403
from .training import *  # noqa: F403

__all__ = [*sed.__all__, *training.__all__]
