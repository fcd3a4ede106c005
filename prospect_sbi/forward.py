"""The forward model of a Prospector model for batches of theta vectors: photometry, derived."""

from __future__ import annotations

__all__ = ["ModelPhotometry", "fast_refusal", "predict_each"]

import warnings
import weakref
from collections.abc import Sequence

import numpy as np

from .derived import derived_quantities
from .transforms import batch_params

#: FastPhotometry by source and band names, dropped with the source.
_FAST: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

#: The ``SpecModel`` methods whose photometry the batched path reproduces.
_PHOTOMETRY_METHODS = ("predict", "predict_phot", "nebline_photometry", "flux_norm")


def fast_refusal(model: object) -> str | None:
    """Why the batched path cannot reproduce ``model.predict``'s photometry, or None.

    It computes ``SpecModel``'s. A subclass that changes one of its photometry methods
    (Prospector's ``AGNSpecModel`` adds AGN lines in ``predict_phot``; a user's subclass may
    add any component) needs ``model.predict`` itself. Prospector's older ``SedModel`` takes
    its photometry from ``sps.get_spectrum``, which for a ``BC03MilesBasis`` is the batched
    path's.
    """
    from prospect.models import SpecModel

    if not isinstance(model, SpecModel):
        return None
    cls = type(model)
    changed = [m for m in _PHOTOMETRY_METHODS if getattr(cls, m) is not getattr(SpecModel, m)]
    return f"{cls.__name__} overrides SpecModel.{', '.join(changed)}" if changed else None


class ModelPhotometry:
    """Noiseless photometry (maggies) and derived quantities of theta vectors, batched.

    The same physics that made a training set (:func:`prospect_sbi.simulate`): the model's
    ``depends_on`` transforms (:func:`~prospect_sbi.transforms.batch_params`), then
    :class:`~prospect_sbi.sources.FastPhotometry` for a ``BC03MilesBasis`` (``method="fast"``)
    or ``model.predict`` one vector at a time for any other ``sps`` (``"generic"``, e.g.
    FSPS) or a model class whose photometry is not ``SpecModel``'s (:func:`fast_refusal`;
    with a warning). Used for posterior-predictive checks and for likelihoods (dynesty)
    that must match the simulator. B objects, D = ``model.ndim`` free parameters, F bands.

    Parameters
    ----------
    model : prospect.models.SpecModel
    sps : BC03MilesBasis or any Prospector source
    filters : sequence of sedpy filters or names
    method : {"auto", "fast", "generic"}
        ``"auto"``: fast for a ``BC03MilesBasis``, generic otherwise.

    Examples
    --------
    >>> from prospect_sbi import BC03MilesBasis, build_model, jades_filters
    >>> model = build_model("parametric_sfh", zred=2.0)
    >>> phot = ModelPhotometry(model, BC03MilesBasis(), jades_filters())
    >>> maggies, mfrac = phot(model.theta[None, :])
    >>> maggies.shape  # (objects, bands), maggies
    (1, 14)
    """

    def __init__(
        self, model: object, sps: object, filters: Sequence, method: str = "auto"
    ) -> None:
        from sedpy.observate import load_filters

        from .sources import BC03MilesBasis

        if method not in ("auto", "fast", "generic"):
            raise ValueError(f"method={method!r}: use 'auto', 'fast' or 'generic'")
        why = None if method == "generic" else fast_refusal(model)
        if method == "fast" and why is not None:
            raise ValueError(f"method='fast' computes SpecModel's photometry, but {why}")
        if method == "auto":
            method = "fast" if isinstance(sps, BC03MilesBasis) else "generic"
            if method == "fast" and why is not None:
                warnings.warn(
                    f"{why}: its photometry comes from model.predict, one object at a time "
                    "(about 1000 times slower than the batched path)",
                    stacklevel=2,
                )
                method = "generic"
        if method == "fast" and not isinstance(sps, BC03MilesBasis):
            raise ValueError(f"method='fast' needs a BC03MilesBasis, not {type(sps).__name__}")
        names = tuple(f if isinstance(f, str) else f.name for f in filters)
        self.model, self.sps, self.method = model, sps, method
        self._fast = None
        if method == "fast":
            # built once per source and band list (~1 s), then shared: fits of many objects
            # each make their own ModelPhotometry (a model per redshift)
            cache = _FAST.setdefault(sps, {})
            if names not in cache:
                from .sources.fast import FastPhotometry

                cache[names] = FastPhotometry(load_filters(list(names)), sps=sps)
            self._fast = cache[names]
            self.filters = list(self._fast.filters)
        else:
            self.filters = load_filters(list(names))

    def params(self, theta: np.ndarray) -> dict:
        """Every model parameter for theta (B, D) after the ``depends_on`` transforms."""
        return batch_params(self.model, np.atleast_2d(np.asarray(theta, dtype=float)))

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Photometry and surviving mass fraction.

        Parameters
        ----------
        theta : ndarray, (B, D) or (D,)
            Free parameters in the model's theta order.

        Returns
        -------
        maggies : ndarray, (B, F) (or (F,) for one vector)
        mfrac : ndarray, (B,) (or a float)
        """
        single = np.ndim(theta) == 1
        maggies, mfrac = self._photometry(self._theta(theta), None)
        return (maggies[0], float(mfrac[0])) if single else (maggies, mfrac)

    def _theta(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.shape[1] != self.model.ndim:
            raise ValueError(
                f"theta has {theta.shape[1]} columns; the model's free "
                f"parameters are {self.model.theta_labels()}"
            )
        return theta

    def _photometry(self, theta: np.ndarray, params: dict | None) -> tuple:
        if self._fast is not None:
            params = self.params(theta) if params is None else params
            maggies, mfrac = self._fast(params, n=len(theta))
        else:
            maggies, mfrac = predict_each(self.model, self.sps, self.filters, theta)
        return np.maximum(maggies, 0.0), mfrac

    def derived(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Compute the derived quantities (:mod:`prospect_sbi.derived`) of theta (B, D)."""
        return self.with_derived(theta)[1]

    def with_derived(self, theta: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Photometry (B, F), maggies, and derived quantities of theta (B, D), in one pass."""
        theta = self._theta(theta)
        params = self.params(theta)  # transformed once, for the photometry and the SFH
        maggies, mfrac = self._photometry(theta, params)
        return maggies, derived_quantities(params, mfrac)


def predict_each(model: object, sps: object, filters: list, theta: np.ndarray) -> tuple:
    """Photometry (B, F) and mfrac (B,) from ``model.predict``, one theta row at a time."""
    obs = {"filters": filters, "wavelength": None, "spectrum": None}
    phot = np.empty((len(theta), len(filters)))
    mfrac = np.empty(len(theta))
    for i, th in enumerate(theta):
        model.set_parameters(th)
        model.propagate_parameter_dependencies()  # dependents listed before their inputs
        _, phot[i], mfrac[i] = model.predict(th, obs=obs, sps=sps)
    return phot, mfrac
