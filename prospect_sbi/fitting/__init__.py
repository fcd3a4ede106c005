"""Fitting with Prospector's interface: drop-in ``fit_model``, fitter registry, comparisons.

:func:`fit_model` keeps ``prospect.fitting.fit_model``'s signature and output and adds the
``sbi`` fitter; :func:`write_results` writes any fit with Prospector's ``write_hdf5``;
:func:`compare` checks an SBI posterior against dynesty on the same object;
:func:`importance_sample` turns the estimator's draws into the exact posterior of the likelihood;
:func:`fit_catalog` and :func:`write_catalog_fit` fit every row of a catalogue (keeping
its draws with ``draws_file=``, read by :func:`read_catalog_draws`); :func:`zred_given` decides
how a redshift is given (a number, a table, ``"infer"``: :func:`redshift_posterior`);
:func:`calibrate_zeropoints` corrects a catalogue's bands from its spectroscopic redshifts.
"""

from . import (
    catalog,
    comparison,
    draws,
    fit,
    importance,
    likelihood,
    obs,
    redshift,
    registry,
    results,
    zeropoints,
)
from .catalog import *  # noqa: F403
from .comparison import *  # noqa: F403
from .draws import *  # noqa: F403
from .fit import *  # noqa: F403
from .importance import *  # noqa: F403
from .likelihood import *  # noqa: F403
from .obs import *  # noqa: F403
from .redshift import *  # noqa: F403
from .registry import *  # noqa: F403
from .results import *  # noqa: F403
from .zeropoints import *  # noqa: F403

__all__ = [
    *fit.__all__,
    *registry.__all__,
    *results.__all__,
    *obs.__all__,
    *likelihood.__all__,
    *importance.__all__,
    *comparison.__all__,
    *catalog.__all__,
    *draws.__all__,
    *redshift.__all__,
    *zeropoints.__all__,
]
