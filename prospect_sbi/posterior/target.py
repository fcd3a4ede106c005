"""The exact posterior of an estimator's objects as a batched importance-sampling target.

:class:`ExactTarget` is what :class:`~prospect_sbi.posterior.refine.Refiner` hands to
:func:`~prospect_sbi.posterior.importance.adaptive_importance`: for the draws of every object
of a chunk at once, one pass through the flow and one through the forward model.
"""

from __future__ import annotations

__all__ = ["ExactTarget"]

from typing import Any

import numpy as np
import torch

from .observations import Observations
from .zguide import GUIDE_SHARE

_LOG_2PI = float(np.log(2 * np.pi))


class ExactTarget:
    """Batched extended target of ``adaptive_importance`` for the objects of ``obs``.

    ``refiner`` (a :class:`~prospect_sbi.posterior.refine.Refiner`) holds the estimator, the
    model's prior and the forward model; ``obs`` the prepared observations (B objects).

    Its coordinates ``u`` are the flow's standard-normal base variables (all D of them, the
    derived targets' too), so an adapted proposal is a Student-t mixture in base space pushed
    through the flow, with density ``t(u) |du/dz|`` at ``z = flow(u)``; ``log_aux`` is
    ``log |du/dz| = log q(z) - log N(u; 0, I)``. The posteriors of bright objects are thin,
    curved ridges (mass, age, dust and metallicity trade off along curves) that no Gaussian
    follows in the flow's target space; the flow has learned their shape, only too wide, so
    in its base space they are closer to Gaussian. Measured on bright ``jades-parametric``
    mocks with 2000 draws, a Student-t with the exact posterior's mean and covariance had 1-7%
    efficiency in target space, 9-19% in base space (over 20,000 draws the latter falls to
    3-5%: the weights keep a heavy tail, k-hat ~0.6). The sharper the flow, the closer to
    ``N(0, I)`` the posterior is in its base space, and the fewer draws refinement needs.
    """

    def __init__(self, refiner: Any, obs: Observations) -> None:
        self.r, self.obs, self.post = refiner, obs, refiner.post
        self.n_objects = len(obs)
        self.x = self.post.encode(obs)
        self.guide = refiner.guide  # a RedshiftGuide or None
        self.share = GUIDE_SHARE  # the guide's share of the first proposal, set by first()

    def first(self, rows: np.ndarray, n: int, rng: np.random.Generator) -> dict:
        """``n`` draws of the first proposal per object, evaluated.

        The flow's (standard-normal base variables); with a redshift guide
        (:class:`~prospect_sbi.posterior.zguide.RedshiftGuide`), its share of them from the
        guide instead, mapped to the flow's base variables.
        """
        d = len(self.post.space)
        if self.guide is None:
            return self.evaluate(rows, rng.standard_normal((len(rows), n, d)), rng)
        k = min(n - 1, max(1, round(GUIDE_SHARE * n)))
        self.share = k / n  # the mixture's weight is the share actually drawn
        phys = self.guide.draw(self.obs, rows, k, rng)  # (b, k, D)
        y = self.post.space.to_flow(phys).float().transpose(0, 1).to(self.x.device)
        with torch.no_grad():
            u = self.post.network.to_base(y, self.x[rows]).transpose(0, 1).double().cpu()
        u = np.concatenate([rng.standard_normal((len(rows), n - k, d)), u.numpy()], axis=1)
        return self.evaluate(rows, u, rng)

    def evaluate(self, rows: np.ndarray, u: np.ndarray, rng: np.random.Generator) -> dict:
        """Draws at base variables ``u`` (b, m, D): through the flow, then the target."""
        net, x = self.post.network, self.x[rows]
        u = np.asarray(u, dtype=float)
        with torch.no_grad():
            base = torch.from_numpy(u.astype(np.float32)).transpose(0, 1).to(x.device)
            z, log_flow = net.sample_and_log_prob(x, base)  # (b, m, D), (b, m)
            log_flow = log_flow.double().cpu().numpy()
        log_base = -0.5 * np.sum(u**2, -1) - 0.5 * u.shape[-1] * _LOG_2PI
        z = z.double().cpu()
        phys = self.post.space.to_physical(z)
        out = self._at(rows, z, phys)
        with np.errstate(invalid="ignore"):  # a blown-up draw has zero weight, not NaN
            log_aux = np.where(np.isfinite(log_flow), log_flow - log_base, 0.0)
        log_first = np.where(np.isnan(log_flow), -np.inf, log_flow)
        if self.guide is not None:  # the first proposal is the mixture of flow and guide
            log_guide = self.guide.log_density(self.obs, rows, phys)
            log_first = np.logaddexp(
                np.log1p(-self.share) + log_first, np.log(self.share) + log_guide
            )
        out.update(u=u, log_first=log_first, log_aux=log_aux)
        return out

    def _at(self, rows: np.ndarray, z: torch.Tensor, phys: torch.Tensor) -> dict:
        """Log target and what goes with it at flow-space points ``z`` (b, m, D).

        ``phys`` are the same points' physical targets.
        """
        r, space, p, k = self.r, self.post.space, self.r.p, self.r.k
        b, m = z.shape[:2]
        zred = None if self.obs.zred is None else np.repeat(self.obs.zred[rows], m)
        theta = r.theta(phys.numpy().reshape(b * m, -1), zred)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_jac = -space.log_abs_det(phys, per_target=True)[..., :p].sum(-1).numpy()
            log_prior = r.log_prior(theta) + log_jac.ravel()
        ok = np.isfinite(log_prior)
        maggies = np.full((b * m, len(r.phot.filters)), np.nan)
        derived = {key: np.full(b * m, np.nan) for key in r.derived_keys}
        if ok.any():  # one forward-model call for every object's draws
            maggies[ok], values = r.phot.with_derived(theta[ok])
            for key in r.derived_keys:
                derived[key][ok] = values[key]
        lnlike = r.lnl.lnlike(
            maggies.reshape(b, m, -1),
            self.obs.like_flux[rows][:, None],
            self.obs.like_err[rows][:, None],
        ).ravel()
        full = phys.reshape(b * m, -1).clone()
        lnn = np.zeros(b * m)
        if k:  # the flow's derived targets against the exact ones: N(d; g(theta), jitter^2)
            exact = np.stack([derived[key] for key in r.derived_names], -1)
            full[:, p:] = torch.from_numpy(np.where(ok[:, None], exact, 1.0))
            g = space.to_flow(full)[:, p:].numpy()
            res = (z.reshape(b * m, -1)[:, p:].numpy() - g) / r.jitter
            lnn = -0.5 * np.sum(res**2, -1) - k * (np.log(r.jitter) + 0.5 * _LOG_2PI)
        with np.errstate(invalid="ignore"):
            log_target = np.where(ok, log_prior + lnlike + lnn, -np.inf)
        log_target = np.where(np.isfinite(log_target), log_target, -np.inf)
        full[~torch.from_numpy(ok)] = float("nan")
        labels = self.post.with_computed(full).numpy().reshape(b, m, -1)
        out = {
            "log_target": log_target.reshape(b, m),
            "values": labels,
            "theta": theta.reshape(b, m, -1),
            "lnlike": np.where(ok, lnlike, -np.inf).reshape(b, m),
        }
        out.update({f"d:{key}": v.reshape(b, m) for key, v in derived.items()})
        return out
