"""Calibration report of an estimator: accuracy, coverage, TARP, SBC, misspecification.

The metrics are measured on held-out mocks, and on mocks from models the estimator was not
trained on (another SFH prior, dust law or nebular setting).

:func:`validate` runs it all and writes PNGs plus a one-page ``report.md``;
:func:`calibrate` evaluates any set of observations with known truths; :func:`photoz_stats`
and :func:`photoz_table` give the photometric-redshift statistics (sigma_NMAD, outliers,
bias) of any redshift estimates, e.g. a catalogue fit's ``zphot_p50`` against spec-z.
"""

from . import calibration, misspecification, mocks, photoz, report, results
from .calibration import *  # noqa: F403
from .misspecification import *  # noqa: F403
from .mocks import *  # noqa: F403
from .photoz import *  # noqa: F403
from .report import *  # noqa: F403
from .results import *  # noqa: F403

__all__ = [
    *report.__all__,
    *results.__all__,
    *calibration.__all__,
    *misspecification.__all__,
    *mocks.__all__,
    *photoz.__all__,
]
