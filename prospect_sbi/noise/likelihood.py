"""The likelihood of photometry under a noise model, batched, and as a Prospector ``lnprobfn``."""

from __future__ import annotations

__all__ = ["BARRIER", "LIKELIHOODS", "NoiseLikelihood", "check_likelihood"]

from typing import Any

import numpy as np
from scipy.special import log_ndtr

from ..constants import DMAG
from ..cosmology import age_of_universe
from ..transforms import tage_prior_cut
from .base import NoiseModel

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
    (:func:`prospect_sbi.simulate`), at the redshift of ``theta`` when it is free, with the
    rest of the ``tage`` prior renormalised as training draws it
    (:func:`~prospect_sbi.transforms.tage_prior_cut`: the prior of the refinement too).

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

    def __init__(self, phot: Any, noise: NoiseModel | None = None, kind: str = "flux") -> None:
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
        """Log-likelihood of observations given model fluxes, for any batch of both.

        Parameters
        ----------
        model_flux : numpy.ndarray, (*, F)
            Noiseless model fluxes, maggies.
        flux, err : numpy.ndarray, (F,) or broadcastable to (*, F)
            Observed fluxes and errors, maggies; NaN in both for a missing band. E.g. one
            object's (F,) against its draws' (n, F), or objects' (B, 1, F) against (B, n, F).

        Returns
        -------
        numpy.ndarray, (*)
        """
        flux, err = np.asarray(flux, dtype=float), np.asarray(err, dtype=float)
        with np.errstate(invalid="ignore"):
            use = np.isfinite(flux) & np.isfinite(err) & (err > 0)
        f, e = np.where(use, flux, 0.0), np.where(use, err, 1.0)
        terms = ((model_flux - f) / e) ** 2 + np.log(e**2) + _LOG_2PI
        out = -0.5 * np.sum(np.where(use, terms, 0.0), axis=-1)
        if self._err_model:
            out = out + self._ln_p_err(model_flux, e, use)
        return out

    def _ln_p_err(self, m: np.ndarray, e: np.ndarray, use: np.ndarray) -> np.ndarray:
        """Log p(err | model flux) summed over the bands ``use``; (*, F) in, (*) out."""
        nz = self.noise
        limits, depth = nz.limits, nz.depth
        at_depth = np.isclose(e, depth, rtol=1e-6, atol=0.0)
        detected = m > limits
        # err == depth happens only below the limit, any other err only above it
        ok = np.where(at_depth, ~detected, detected)
        safe = np.where(detected & use, m, 1.0)
        k = nz.magnitude_bin(safe)
        band = np.arange(len(limits))
        mean, std = nz.mag_err_mean[band, k], nz.mag_err_std[band, k]
        floor = nz.mag_err_floor
        s = e / (DMAG * safe)
        logpdf = (
            -0.5 * ((s - mean) / std) ** 2
            - np.log(std)
            - 0.5 * _LOG_2PI
            - log_ndtr((mean - floor) / std)
            - np.log(DMAG * safe)
        )
        # sigma_mag >= floor bounds a detected model flux from above: m <= err / (0.92 floor)
        m_max = e / (DMAG * floor) if floor > 0 else np.inf
        too_bright = detected & ~at_depth & (m > m_max)
        edge = np.where(too_bright, m_max, limits)
        ok &= ~too_bright
        per_band = np.where(at_depth | ~ok | ~use, 0.0, logpdf)
        mags_off = 2.5 * np.abs(np.log10(np.maximum(m, 1e-300) / edge))
        barrier = np.sum(np.where(ok | ~use, 0.0, BARRIER * (1.0 + mags_off)), axis=-1)
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
        lnp = model.prior_product(theta, nested=nested) + _tage_cut(model, theta)
        if np.isfinite(lnp):
            flux, err = _phot_arrays(obs)
            lnp = lnp + float(self.lnlike(self.phot(theta)[0], flux, err))
        if not np.isfinite(lnp):
            lnp = -np.inf
        return -lnp if negative else lnp


def _phot_arrays(obs: dict | None) -> tuple[np.ndarray, np.ndarray]:
    if obs is None or obs.get("maggies") is None:
        raise ValueError("obs needs 'maggies' and 'maggies_unc' (maggies)")
    flux = np.array(obs["maggies"], dtype=float)
    err = np.array(obs["maggies_unc"], dtype=float)
    mask = np.asarray(obs.get("phot_mask", np.ones(flux.shape, bool)), dtype=bool)
    flux[~mask], err[~mask] = np.nan, np.nan
    return flux, err


def _tage_cut(model: Any, theta: np.ndarray) -> float:
    """Return the training sets' cut of ``tage`` at the age of the universe at ``theta``'s z.

    With ``zred`` free, :func:`~prospect_sbi.transforms.tage_prior_cut` of ``theta``'s own
    ``zred`` (the model's parameters hold the previous call's); with ``zred`` fixed, zero
    prior beyond the age of the universe there (the renormalisation is a constant).
    """
    if "tage" not in model.theta_index:
        return 0.0
    tage = float(np.ravel(theta[model.theta_index["tage"]])[0])
    if "zred" not in model.theta_index:
        zred = float(np.ravel(model.params["zred"])[0])
        return -np.inf if tage > float(age_of_universe(zred)) else 0.0
    zred = float(np.ravel(theta[model.theta_index["zred"]])[0])
    if not np.isfinite(zred):
        return -np.inf
    prior = model.config_dict["tage"]["prior"]
    return float(tage_prior_cut(prior, np.array([tage]), np.array([zred]))[0])


def check_likelihood(noise: NoiseModel | None, kind: str) -> None:
    """Raise unless :class:`NoiseLikelihood` of ``kind`` is the likelihood of ``noise``.

    ``"flux"`` is exact for every noise model that adds Gaussian noise to the flux (those
    that keep :meth:`NoiseModel.apply <prospect_sbi.noise.NoiseModel.apply>`); ``"noise"``
    needs a noise model whose errors are drawn from a known distribution
    (:class:`~prospect_sbi.noise.JadesPixelNoise`). A noise model that draws its fluxes its
    own way has neither.

    Raises
    ------
    ValueError
        An unknown ``kind``, or a noise model ``kind`` is not the likelihood of.
    """
    if kind not in LIKELIHOODS:
        raise ValueError(f"likelihood {kind!r} is unknown; use one of {LIKELIHOODS}")
    name = type(noise).__name__
    if noise is not None and type(noise).apply is not NoiseModel.apply:
        raise ValueError(
            f"the noise model {name} draws fluxes its own way, so no likelihood "
            f"is known for it; refinement needs one whose apply is "
            f"NoiseModel.apply (JadesPixelNoise, EmpiricalNoise)"
        )
    if kind == "noise" and not hasattr(noise, "mag_err_mean"):
        raise ValueError(
            f"likelihood 'noise' is known only for JadesPixelNoise, not for the "
            f"noise model {name}; use likelihood='flux'"
        )
