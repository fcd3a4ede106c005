"""A Prospector ``lnprobfn`` with the estimator's physics and noise model, for dynesty."""

from __future__ import annotations

__all__ = ["BARRIER", "LIKELIHOODS", "NoiseLikelihood", "fixed_redshift_model"]

import copy
from typing import Any

import numpy as np
from scipy.special import log_ndtr

from ..cosmology import age_of_universe
from ..forward import ModelPhotometry
from ..noise import NoiseModel
from ..noise.base import _DMAG

#: ``"flux"``: Gaussian in flux given the reported errors (Prospector's photometric chi^2);
#: ``"noise"``: the noise model's full p(flux, err | model), see :class:`NoiseLikelihood`.
LIKELIHOODS = ("flux", "noise")
#: Log-likelihood cost of one band on the wrong side of its detection limit (see
#: :class:`NoiseLikelihood`), plus as much per magnitude from the limit.
BARRIER = 1e4
_LOG_2PI = np.log(2 * np.pi)


class NoiseLikelihood:
    """Log-posterior of photometry for Prospector's fitters, matching the training noise.

    The model flux comes from :class:`~prospect_sbi.forward.ModelPhotometry` (the physics of
    the training sets), not ``model.predict``. Per present band (``obs["phot_mask"]``; a NaN
    band is missing and left out, as the estimator sees it as missing), with F bands:

    - ``"flux"``: ``N(flux | model, err)`` with the reported err. The noise models add
      Gaussian noise to the flux and a non-detection (flux below ``limit_sigma * depth``)
      keeps its noisy value, which the estimator also sees, so a Gaussian on the measured
      value, not a one-sided limit, is the likelihood of a non-detection too.
    - ``"noise"``: also the probability of the reported err, exactly as
      :class:`~prospect_sbi.noise.JadesPixelNoise` draws it: a band whose err equals the
      depth was fainter than ``limit_sigma * depth`` (the model flux must be too); any other
      err is ``0.4 ln(10) flux sigma_mag`` with sigma_mag from the normal of the model
      flux's magnitude bin truncated at ``mag_err_floor``, so the model flux must be above
      the limit and at most ``err / (0.4 ln(10) mag_err_floor)``. This is the
      likelihood the estimator was trained on; for real data, whose errors are not drawn
      from the pixel noise model, use ``"flux"``. Noise models other than JadesPixelNoise
      get ``"flux"``.

    A model flux on the wrong side of a band's limit (or of that upper bound) has zero
    likelihood under ``"noise"``.
    For a faint object that leaves a tiny allowed region (none of 2000 prior draws of a
    z = 6.4 mock): nested sampling spent over 10 minutes finding live points. Instead of
    ``-inf``, each such band costs ``BARRIER`` (1e4) plus 1e4 per magnitude from its limit, so
    the posterior weight there is ``exp(-1e4)``, zero in double precision, while samplers
    climb towards the allowed region. Noise models saved before ``mag_err_floor`` existed have
    a floor of 0 and no upper bound.

    A ``tage`` older than the universe has zero prior, as in training
    (:func:`prospect_sbi.simulate`).

    Parameters
    ----------
    phot : ModelPhotometry
        Forward model of the model being fitted (zred fixed when it is known).
    noise : NoiseModel, optional
        The estimator's noise model (needed for ``"noise"``).
    kind : {"flux", "noise"}

    Examples
    --------
    >>> lnp = NoiseLikelihood(ModelPhotometry(model, sps, filters), post.noise)  # doctest: +SKIP
    >>> out = prospect.fitting.fit_model(obs, model, sps, lnprobfn=lnp)  # doctest: +SKIP
    """

    def __init__(
        self, phot: ModelPhotometry, noise: NoiseModel | None = None, kind: str = "flux"
    ) -> None:
        if kind not in LIKELIHOODS:
            raise ValueError(f"likelihood {kind!r} is unknown; use one of {LIKELIHOODS}")
        if kind == "noise" and noise is None:
            raise ValueError("likelihood 'noise' needs the estimator's noise model")
        self.phot, self.noise, self.kind = phot, noise, kind
        self._err_model = kind == "noise" and hasattr(noise, "mag_err_mean")
        if self._err_model:
            names = [f.name for f in phot.filters]
            self.noise = noise.select(names)

    def lnlike(self, model_flux: np.ndarray, flux: np.ndarray, err: np.ndarray) -> np.ndarray:
        """Log-likelihood of observations given model fluxes.

        Parameters
        ----------
        model_flux : numpy.ndarray, (*, F)
            Noiseless model fluxes, maggies.
        flux, err : numpy.ndarray, (F,)
            Observed fluxes and errors, maggies; NaN in both for a missing band.

        Returns
        -------
        numpy.ndarray, (*)
        """
        use = np.isfinite(flux) & np.isfinite(err) & (err > 0)
        m, f, e = model_flux[..., use], flux[use], err[use]
        out = -0.5 * np.sum(((m - f) / e) ** 2 + np.log(e**2) + _LOG_2PI, axis=-1)
        if self._err_model:
            out = out + self._ln_p_err(m, e, use)
        return out

    def _ln_p_err(self, m: np.ndarray, e: np.ndarray, use: np.ndarray) -> np.ndarray:
        nz = self.noise
        limits, depth = nz.limits[use], nz.depth[use]
        at_depth = np.isclose(e, depth, rtol=1e-6, atol=0.0)
        detected = m > limits
        # err == depth happens only below the limit, any other err only above it
        ok = np.where(at_depth, ~detected, detected)
        safe = np.where(detected, m, 1.0)
        k = nz.magnitude_bin(_expand(safe, use))[..., use]
        band = np.flatnonzero(use)
        mean, std = nz.mag_err_mean[band, k], nz.mag_err_std[band, k]
        floor = nz.mag_err_floor
        s = e / (_DMAG * safe)
        logpdf = (-0.5 * ((s - mean) / std) ** 2 - np.log(std) - 0.5 * _LOG_2PI
                  - log_ndtr((mean - floor) / std) - np.log(_DMAG * safe))  # fmt: skip
        # sigma_mag >= floor bounds a detected model flux from above: m <= err / (0.92 floor)
        m_max = e / (_DMAG * floor) if floor > 0 else np.inf
        too_bright = detected & ~at_depth & (m > m_max)
        edge = np.where(too_bright, m_max, limits)
        ok &= ~too_bright
        per_band = np.where(at_depth | ~ok, 0.0, logpdf)
        mags_off = 2.5 * np.abs(np.log10(np.maximum(m, 1e-300) / edge))
        barrier = np.sum(np.where(ok, 0.0, BARRIER * (1.0 + mags_off)), axis=-1)
        return np.sum(per_band, axis=-1) - barrier

    def __call__(
        self,
        theta: np.ndarray,
        model: Any = None,
        obs: dict | None = None,
        sps: Any = None,
        noise: Any = (None, None),
        nested: bool = False,
        negative: bool = False,
        **extras: Any,
    ) -> float:
        """Log posterior (log likelihood only with ``nested=True``), Prospector's signature.

        Parameters
        ----------
        theta : numpy.ndarray, (D,)
            Free parameters of ``model`` (the model of :attr:`phot`).
        model, obs, sps, noise, nested, negative
            As in ``prospect.fitting.lnprobfn``; ``sps`` and ``noise`` are not used (the
            photometry and noise are this object's).
        """
        model = self.phot.model if model is None else model
        lnp = model.prior_product(theta, nested=nested)
        if np.isfinite(lnp) and _too_old(model, theta):
            lnp = -np.inf
        if np.isfinite(lnp):
            flux, err = _phot_arrays(obs)
            lnp = lnp + float(self.lnlike(self.phot(theta)[0], flux, err))
        if not np.isfinite(lnp):
            lnp = -np.inf
        return -lnp if negative else lnp


def _expand(values: np.ndarray, use: np.ndarray) -> np.ndarray:
    """Put (*, F_used) values back on the full band axis (*, F), 1 maggie elsewhere."""
    out = np.ones(values.shape[:-1] + use.shape)
    out[..., use] = values
    return out


def _phot_arrays(obs: dict | None) -> tuple[np.ndarray, np.ndarray]:
    if obs is None or obs.get("maggies") is None:
        raise ValueError("obs needs 'maggies' and 'maggies_unc' (maggies)")
    flux = np.array(obs["maggies"], dtype=float)
    err = np.array(obs["maggies_unc"], dtype=float)
    mask = np.asarray(obs.get("phot_mask", np.ones(flux.shape, bool)), dtype=bool)
    flux[~mask], err[~mask] = np.nan, np.nan
    return flux, err


def _too_old(model: Any, theta: np.ndarray) -> bool:
    if "tage" not in model.theta_index:
        return False
    zred = float(np.ravel(model.params["zred"])[0])
    return float(np.ravel(theta[model.theta_index["tage"]])[0]) > float(age_of_universe(zred))


def fixed_redshift_model(model: Any, zred: float) -> Any:
    """Copy ``model`` with ``zred`` fixed, for a fit at a known redshift.

    A TopHat ``tage`` prior is cut at the age of the universe at ``zred``, as the training
    sets cut it (:func:`prospect_sbi.simulate` redraws older ages), so that the prior the
    sampler explores is the one the estimator learned.

    Parameters
    ----------
    model : prospect.models.SpecModel
    zred : float

    Returns
    -------
    prospect.models.SpecModel
        Free parameters: those of ``model`` without ``zred``.
    """
    from prospect.models import SpecModel, priors

    cfg = copy.deepcopy(model.config_dict)
    cfg["zred"].update(isfree=False, init=float(zred))
    tage = cfg.get("tage", {})
    tuniv = float(age_of_universe(float(zred)))
    if tage.get("isfree") and isinstance(tage.get("prior"), priors.TopHat):
        lo, hi = tage["prior"].params["mini"], tage["prior"].params["maxi"]
        if hi > tuniv:
            tage["prior"] = priors.TopHat(mini=lo, maxi=tuniv)
            tage["init"] = min(float(np.ravel(tage["init"])[0]), 0.5 * (lo + tuniv))
    return SpecModel(cfg)
