"""The trained amortised posterior: checked inputs, batched sampling, refinement, summaries.

Saving, loading and provenance checks are :class:`~prospect_sbi.posterior.files.EstimatorFiles`';
the flow's raw draws are made usable in :mod:`~prospect_sbi.posterior.draws`, and refined into
the exact posterior in :mod:`~prospect_sbi.posterior.refine`.
"""

from __future__ import annotations

__all__ = ["AmortizedPosterior", "FORMAT"]

import contextlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from astropy.table import Table

from ..noise import NoiseModel, noise_from_dict
from .bounds import TargetSpace
from .checks import check_observations, check_zred, drop_shallow
from .draws import REDRAW_ROUNDS, deconvolve, redraw_blowups, z_limits
from .encoding import ObservationEncoder
from .files import FORMAT, EstimatorFiles
from .network import PosteriorNetwork
from .observations import Observations
from .plausibility import (
    NoiseRange,
    check_errors,
    count_flags,
    flag_observations,
    join_flags,
    prior_edge_flags,
    warn_flags,
    warn_prior_edge,
)
from .recalibration import Recalibration
from .summary import draw_statistics, summary_table

#: Draws per batch in sample(): small enough to stay in a CPU's cache, large for a GPU.
_ROWS_PER_CHUNK = {"cpu": 8192, "cuda": 1 << 20}


class AmortizedPosterior(EstimatorFiles):
    """A neural posterior estimator for one Prospector model, filter set and noise model.

    Build one with :func:`prospect_sbi.posterior.train` or :meth:`load`. B stands for the
    number of objects (galaxies, pixels), F for the number of bands, n for draws per object,
    D for ``len(labels)``. Fluxes and errors are in maggies (Jy / 3631); a missing band is NaN
    in both.

    Attributes
    ----------
    labels : list of str
        Names of the last axis of :meth:`sample`: the free parameters (theta labels; ``zred``
        only when it is inferred), the derived quantities learned with them, then quantities
        computed from those (``log_ssfr100 = log_sfr100 - log_mstar``).
    filters : list of str
        sedpy names of the F bands, in the order of the flux's last axis.
    redshift : {"known", "infer"}
        Whether ``zred`` is an input (``sample(..., zred=...)``) or a target.
    noise : NoiseModel
        The noise model the estimator was trained with.
    model_spec, model_hash
        The Prospector model the training set came from.
    training : dict
        Training history and settings.
    recalibration : Recalibration or None
        Maps applied to the draws of :meth:`sample` and :meth:`summarize`, fitted on held-out
        simulations by :func:`~prospect_sbi.posterior.recalibrate`; None for none.

    Examples
    --------
    >>> post = AmortizedPosterior.load("parametric.sbi")  # doctest: +SKIP
    >>> samples = post.sample(flux, err, 1000, zred=zred)  # (B, 1000, D)  # doctest: +SKIP
    >>> table = post.summarize(flux, err, zred=zred)  # one row per object  # doctest: +SKIP
    >>> obs = post.prepare(flux, err, zred)  # checked once, reused  # doctest: +SKIP
    >>> exact = post.sample(obs, n=1000, refine="auto")  # doctest: +SKIP
    >>> exact.refined, exact.ess, exact.khat, exact.logz  # (B,) each  # doctest: +SKIP
    """

    def __init__(
        self,
        network: PosteriorNetwork,
        space: TargetSpace,
        encoder: ObservationEncoder,
        header: dict[str, Any],
    ) -> None:
        self.network = network.eval()
        self.space = space
        self.encoder = encoder
        self.header = header
        self.computed: dict[str, list[str]] = dict(header.get("computed", {}))
        self.labels: list[str] = list(space.names) + list(self.computed)
        self.filters: list[str] = list(header["filters"])
        self.redshift: str = header["redshift"]
        self.noise: NoiseModel = noise_from_dict(header["noise"])
        self._noise_range: NoiseRange | None = None  # measured on first use
        self.model_spec: dict = header["model_spec"]
        self.model_hash: str = header["model_hash"]
        self.training: dict = header.get("training", {})
        recal = header.get("recalibration")
        self.recalibration: Recalibration | None = (
            None if recal is None else Recalibration.from_dict(recal)
        )
        # learned derived targets are the last columns of the flow, after the free parameters
        theta = set(self.model_spec.get("theta_labels", ()))
        self._n_jittered = sum(name not in theta for name in space.names)
        self._model: Any = None  # model(), rebuilt once for refinement
        self._refiners: dict = {}  # refiner() by source, likelihood and guide
        #: For a photo-z estimator, a known-redshift estimator of the same model (or a
        #: pretrained name) whose draws at redshifts spread over its range join refinement's
        #: first proposal, so it finds redshift modes the flow misses
        #: (:class:`~prospect_sbi.posterior.zguide.RedshiftGuide`); None for the flow alone.
        #: The pretrained photo-z estimators get their known-redshift twin.
        self.redshift_guide: Any = None

    @property
    def targets(self) -> list[str]:
        """Names of the flow's targets (:attr:`labels` without the computed quantities)."""
        return list(self.space.names)

    @property
    def device(self) -> torch.device:
        """Where the network's weights live."""
        return next(self.network.parameters()).device

    def to(self, device: str | torch.device) -> AmortizedPosterior:
        """Move the network to ``device`` ("cpu", "cuda", ...); returns ``self``."""
        self.network.to(device)
        return self

    def __getstate__(self) -> dict[str, Any]:
        # the refiners hold an SPS source and its photometry tables: rebuilt where unpickled
        return dict(self.__dict__, _model=None, _refiners={})

    # -- the public lower layer -------------------------------------------------------------

    @property
    def n_jittered(self) -> int:
        """Number of learned derived targets (the flow's last axes), trained with jitter."""
        return self._n_jittered

    @property
    def jitter(self) -> float:
        """Standard deviation of the noise added to the derived targets in training, flow units."""
        return float(self.training.get("jitter", 0.0))

    @property
    def noise_range(self) -> NoiseRange:
        """The errors the training noise gives, per band (measured once, a Monte-Carlo draw)."""
        if self._noise_range is None:
            self._noise_range = NoiseRange.of(self.noise)
        return self._noise_range

    def prepare(self, flux: Any, err: Any = None, zred: Any = None) -> Observations:
        """Check observations once, flag what the estimator cannot vouch for, and return them.

        Everything :meth:`sample` checks, in order: shapes, missing bands and signs
        (:func:`~prospect_sbi.posterior.checks.check_observations`); units against the
        training set's fluxes and the noise model's errors (one-line errors for a slip only
        it explains, :mod:`~prospect_sbi.posterior.plausibility`); per-object flags with one
        :class:`~prospect_sbi.posterior.plausibility.ObservationWarning` per reason;
        non-detections shallower than any in training become missing bands; the redshift.

        Parameters
        ----------
        flux, err : array_like, (B, F) or (F,)
            Fluxes and 1-sigma errors, maggies; NaN in both for a missing band. ``flux`` may
            also be an :class:`Observations` already prepared (returned as it is).
        zred : float or array_like, (B,), optional
            Redshifts; required when :attr:`redshift` is ``"known"``, refused otherwise.

        Returns
        -------
        Observations
            Pass it to :meth:`sample`, :meth:`summarize` or :meth:`log_prob` in place of
            ``flux`` (with ``err`` and ``zred`` left None); ``flags`` holds each object's
            reasons.

        Raises
        ------
        ValueError
            Bad observations (see :func:`~prospect_sbi.posterior.checks.check_observations`
            and :func:`~prospect_sbi.posterior.plausibility.check_errors`), a missing or
            unexpected ``zred``, or ``err``/``zred`` given with prepared ones.
        """
        return self._prepared(flux, err, zred, stacklevel=4)

    def _prepared(self, flux: Any, err: Any, zred: Any, stacklevel: int) -> Observations:
        """:meth:`prepare`, with warnings pointing ``stacklevel`` frames up."""
        if isinstance(flux, Observations):
            if err is not None or zred is not None:
                raise ValueError(
                    "err and zred go with raw fluxes; got them with prepared "
                    "Observations, which already hold both"
                )
            return flux
        if err is None:
            raise ValueError(
                "err is missing: pass flux and err (maggies), or the Observations of prepare()"
            )
        single = np.ndim(flux) == 1
        stats = self.header["flux_stats"]
        flux, err = check_observations(flux, err, self.filters, stats)
        ranges = self.noise_range
        check_errors(flux, err, ranges)
        flags = flag_observations(flux, err, ranges, stats)
        warn_flags(flags, ranges, stats, stacklevel=stacklevel)
        seen, seen_err = drop_shallow(flux, err, ranges.max_err, stacklevel=stacklevel)
        zr = self.header.get("zred_range")
        z = check_zred(zred, len(flux), self.redshift == "known", None if zr is None else zr)
        return Observations(seen, seen_err, z, single, flags, flux, err)

    def encode(self, obs: Observations, rows: slice | None = None) -> torch.Tensor:
        """Return the network inputs (B, L) of prepared observations (or of their ``rows``)."""
        rows = slice(None) if rows is None else rows
        zred = None if obs.zred is None else obs.zred[rows]
        return self.encoder.encode(obs.flux[rows], obs.err[rows], zred).to(self.device)

    def flow_draws(
        self, obs: Observations, n: int, *, x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Draws of the flow itself, in its standardised space: (B, n, len(targets)).

        Numerical blow-ups (draws beyond :data:`~prospect_sbi.posterior.draws.MAX_Z` training
        standard deviations) are redrawn, so the draws follow the flow restricted to that
        range. No jitter removal and no recalibration (those are :meth:`sample`'s);
        :meth:`physical` maps the draws to :attr:`labels`. Seed with ``torch.manual_seed``
        (or :meth:`sample`'s ``seed``).

        Parameters
        ----------
        obs : Observations
            From :meth:`prepare`.
        n : int
            Draws per object.
        x : torch.Tensor, (B, L), optional
            :meth:`encode` of ``obs``, if already at hand.

        Returns
        -------
        torch.Tensor, float32, (B, n, D)
        """
        with torch.no_grad():
            x = self.encode(obs) if x is None else x
            return self._redraw_blowups(self.network.sample(x, int(n)), x)[0]

    def _redraw_blowups(self, draws: torch.Tensor, x: torch.Tensor) -> tuple:
        limit = z_limits(self.space.kinds, self._n_jittered, self.device)
        return redraw_blowups(self.network, draws, x, limit)

    def physical(self, z: torch.Tensor) -> torch.Tensor:
        """Map flow-space draws (*, len(targets)) to :attr:`labels` (*, D), physical units."""
        return self.with_computed(self.space.to_physical(z))

    def with_computed(self, x: torch.Tensor) -> torch.Tensor:
        """Append the computed labels to physical targets: (*, len(targets)) -> (*, D)."""
        extra = [
            x[..., self.labels.index(a)] - x[..., self.labels.index(b)]
            for a, b in self.computed.values()
        ]
        return torch.cat([x, torch.stack(extra, -1)], -1) if extra else x

    def refiner(self, sps: Any = None, likelihood: str = "flux") -> Any:
        """Return the exact posterior of this estimator's model and noise, for refinement.

        Parameters
        ----------
        sps : BC03MilesBasis or any Prospector source, optional
            Default: one ``BC03MilesBasis`` shared by every estimator of the process.
        likelihood : {"flux", "noise"}
            See :class:`~prospect_sbi.noise.NoiseLikelihood`: ``"flux"`` for real data,
            ``"noise"`` for mocks of the estimator's noise model.

        Returns
        -------
        prospect_sbi.posterior.refine.Refiner
            Built once per source, likelihood and :attr:`redshift_guide`, from :meth:`model`
            (rebuilt once).

        Raises
        ------
        ValueError
            A likelihood the noise model does not have, an estimator trained without
            jitter on its derived targets, or a :attr:`redshift_guide` that does not fit.
        """
        from .refine import Refiner

        guide = self.redshift_guide
        if isinstance(guide, str):  # a pretrained name or a file, loaded once
            guide = self.redshift_guide = type(self).resolve(guide)
        key = (id(sps), likelihood, id(guide))
        if key not in self._refiners:
            if self._model is None:
                self._model = self.model()
            self._refiners[key] = Refiner(self, self._model, sps, likelihood, guide)
        return self._refiners[key]

    def _refiner_for(self, refine: str, sps: Any, likelihood: str) -> Any:
        """:meth:`refiner` for a ``refine`` other than ``"never"`` (checked), else None."""
        if refine == "never":
            return None
        from .refine import check_refine

        check_refine(refine)
        return self.refiner(sps, likelihood)

    # -- inference ------------------------------------------------------------------------

    def sample(
        self,
        flux: Any,
        err: Any = None,
        n: int = 1000,
        zred: Any = None,
        *,
        seed: int | None = None,
        chunk_size: int | None = None,
        recalibrate: bool = True,
        refine: str = "never",
        sps: Any = None,
        likelihood: str = "flux",
        target_ess: float | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Draw from the posterior of every object, in batches.

        Parameters
        ----------
        flux, err : array_like, (B, F) or (F,)
            Fluxes and 1-sigma errors, maggies; NaN in both for a missing band. ``flux`` may
            be the :class:`Observations` of :meth:`prepare` instead (then no ``err``).
        n : int
            Draws per object (an integer: a float is refused, a redshift passed by position).
        zred : float or array_like, (B,), optional
            Redshifts; required when :attr:`redshift` is ``"known"``, refused otherwise.
        seed : int, optional
            Seed for reproducible draws (the global torch generator is left untouched).
        chunk_size : int, optional
            Objects per batch (default: 8192 draws a batch on CPU, 2^20 on GPU).
        recalibrate : bool
            Apply :attr:`recalibration`, if the estimator has one (False: the flow's draws).
        refine : {"never", "always", "auto"}
            Replace the draws of every object (``"always"``), of the objects that need it
            (``"auto"``: bright ones, and those the flow's draws fit badly, see
            :func:`~prospect_sbi.posterior.refine.needs_refinement`) or of none by draws of
            the exact posterior, by importance sampling with the likelihood
            (:mod:`~prospect_sbi.posterior.refine`; 0.05-0.15 s a bright object on one core).
        sps : BC03MilesBasis or any Prospector source, optional
            Forward model of the refinement (default: a shared ``BC03MilesBasis``).
        likelihood : {"flux", "noise"}
            Likelihood of the refinement (:class:`~prospect_sbi.noise.NoiseLikelihood`):
            ``"flux"`` for real data, ``"noise"`` for mocks of the estimator's noise model.
        target_ess : float, optional
            Effective sample size each refined object is sampled to (default
            :data:`~prospect_sbi.posterior.refine.TARGET_ESS`).
        progress : bool
            Show a progress bar over the refined objects.

        Returns
        -------
        numpy.ndarray, float32, (B, n, D) or (n, D) for one object
            Draws in the order of :attr:`labels`, inside the prior box of every bounded
            parameter. The learned derived quantities are corrected for the jitter they were
            trained with (moment matching per object), and the draws are recalibrated
            (:attr:`recalibration`); :meth:`log_prob` is the flow's density, without either.
            With ``refine`` other than ``"never"``, a
            :class:`~prospect_sbi.posterior.refine.RefinedDraws` (an ndarray) whose refined
            objects hold equal-weight draws of the exact posterior (derived quantities
            computed from each draw, no recalibration), and per object the attributes
            ``refined``, ``ess``, ``khat``, ``logz``, ``khat_flag``, ``ess_flag`` and
            ``is_draws`` (B,).

        Warns
        -----
        ObservationWarning
            Objects outside the training data (:meth:`prepare`); a
            :class:`~prospect_sbi.posterior.plausibility.PriorEdgeWarning` for posteriors
            piled on an edge of the mass prior (brighter or fainter than any training object).

        Raises
        ------
        ValueError
            Bad observations (see :meth:`prepare`), a missing or unexpected ``zred``,
            ``n < 1``, an unknown ``refine`` or ``likelihood``, or a likelihood the noise
            model does not have.
        TypeError
            ``n`` not an integer.
        """
        n = _n_draws(n)
        obs = self._prepared(flux, err, zred, stacklevel=5)
        refiner = self._refiner_for(refine, sps, likelihood)
        with _seeded(seed, self.device):
            out = self._flow_draws(obs, n, refine, chunk_size, recalibrate)
        if refiner is not None:
            from .refine import warn_unconverged

            out = refiner.refine_draws(
                obs, out, refine, seed=seed, target_ess=target_ess, progress=progress
            )
            warn_unconverged(out.khat_flag, out.ess_flag, target_ess, refined=out.refined)
        warn_prior_edge(count_flags(prior_edge_flags(out, self.labels, self.space)), len(out))
        if refiner is not None:
            return out.object(0) if obs.single else out
        return out[0] if obs.single else out

    def _flow_draws(
        self,
        obs: Observations,
        n: int,
        refine: str,
        chunk_size: int | None = None,
        recalibrate: bool = True,
    ) -> np.ndarray:
        """Return the flow's draws (B, n, D); room only for those ``refine`` replaces anyway.

        The objects :func:`~prospect_sbi.posterior.refine.refined_regardless` names (every
        one for ``"always"``, the bright ones for ``"auto"``) get no flow draws: 1000 of them,
        discarded, were ~6% of a refined bright object's time.
        """
        from .refine import refined_regardless

        rows = np.flatnonzero(~refined_regardless(obs, refine))
        if len(rows) == len(obs):
            return self._draw(obs, n, chunk_size, recalibrate)
        out = np.empty((len(obs), _n_draws(n), len(self.labels)), dtype=np.float32)
        if len(rows):
            out[rows] = self._draw(obs.take(rows), n, chunk_size, recalibrate)
        return out

    def _draw(
        self,
        obs: Observations,
        n: int,
        chunk_size: int | None = None,
        recalibrate: bool = True,
    ) -> np.ndarray:
        """Draws (B, n, D) for checked observations."""
        n = _n_draws(n)
        rows_per_chunk = _ROWS_PER_CHUNK.get(self.device.type, _ROWS_PER_CHUNK["cpu"])
        chunk = int(chunk_size or max(1, rows_per_chunk // int(n)))
        out = np.empty((len(obs), int(n), len(self.labels)), dtype=np.float32)
        kept = 0
        recal = self.recalibration if recalibrate else None
        with torch.no_grad():
            for rows in _chunks(len(obs), chunk):
                x = self.encode(obs, rows)
                draws, bad = self._redraw_blowups(self.network.sample(x, int(n)), x)
                kept += int(bad.sum())
                draws = self.physical(deconvolve(draws, self._n_jittered, self.jitter, ~bad))
                if recal is not None:
                    draws = recal.apply(draws, obs.snr[rows])
                out[rows] = draws.cpu().numpy()
        if kept:
            warnings.warn(
                f"{kept} of {out.shape[0] * out.shape[1]} draws stayed beyond the "
                f"flow's range after {REDRAW_ROUNDS} redraws and are kept: these "
                "observations are far from the training set",
                UserWarning,
                stacklevel=4,  # the user's call of sample or summarize
            )
        return out

    def log_prob(
        self,
        theta: Any,
        flux: Any,
        err: Any = None,
        zred: Any = None,
        *,
        chunk_size: int = 4096,
    ) -> np.ndarray:
        """Log posterior density of parameter values, in the physical units of the targets.

        Parameters
        ----------
        theta : array_like, (*, B, D) or (*, B, len(targets))
            Values in the order of :attr:`labels` (computed columns, if given, are ignored:
            they are functions of the targets).
        flux, err, zred
            As in :meth:`sample`.
        chunk_size : int
            Objects per batch.

        Returns
        -------
        numpy.ndarray, float64, (*, B)
            ``log q(theta | x)``, including the Jacobian of the bounded transforms; ``-inf``
            outside the prior support.

        Raises
        ------
        ValueError
            Bad observations (:meth:`prepare`), a wrong shape, or values of which none lies
            inside the prior support (another order, or a log10 mass for a ``LogUniform``
            mass): a table of ``-inf`` would say nothing.
        """
        obs = self._prepared(flux, err, zred, stacklevel=5)
        theta = np.asarray(theta, dtype=float)
        if obs.single:
            theta = theta[..., None, :]
        d = len(self.space)
        if (
            theta.ndim < 2
            or theta.shape[-1] not in (d, len(self.labels))
            or (theta.shape[-2] != len(obs))
        ):
            raise ValueError(
                f"theta has shape {theta.shape}; expected (*, {len(obs)}, {d}) or "
                f"(*, {len(obs)}, {len(self.labels)})"
            )
        x_all = torch.from_numpy(theta[..., :d])
        self._check_support(x_all)
        out = torch.empty(x_all.shape[:-1], dtype=torch.float64)
        with torch.no_grad():
            for rows in _chunks(len(obs), chunk_size):
                x = x_all[..., rows, :]
                inside = self.space.in_support(x)
                safe = torch.where(inside[..., None], x, self._centre(x))
                zt = self.space.to_flow(safe).float().to(self.device)
                lp = self.network.log_prob(zt, self.encode(obs, rows)).double().cpu()
                lp = lp + self.space.log_abs_det(safe)
                out[..., rows] = torch.where(inside, lp, -torch.inf)
        result = out.numpy()
        return result[..., 0] if obs.single else result

    def _check_support(self, x: torch.Tensor) -> None:
        """Refuse values of which not one lies in the prior support: another unit or order."""
        if x.numel() == 0 or bool(self.space.in_support(x).any()):
            return
        rows = x.reshape(-1, x.shape[-1]).numpy()
        kinds = np.asarray(self.space.kinds)
        boxed = np.isin(kinds, ("box", "logbox"))
        with np.errstate(invalid="ignore"):
            out = boxed & ((rows <= self.space.lo) | (rows >= self.space.hi))
        out |= (kinds == "positive") & (rows <= 0) | ~np.isfinite(rows)
        i, j = (int(k[0]) for k in np.nonzero(out)) if out.any() else (0, 0)
        name, value = self.space.names[j], float(rows[i, j])
        hint = " (a log10 of a LogUniform parameter?)" if kinds[j] == "logbox" else ""
        raise ValueError(
            f"no theta lies inside the prior support: {name} = {value:g} is "
            f"outside [{self.space.lo[j]:g}, {self.space.hi[j]:g}]{hint}; theta "
            f"is in the order of labels, in physical units: {self.labels}"
        )

    def _centre(self, like: torch.Tensor) -> torch.Tensor:
        """Return a point inside the support (the flow's origin) for rows that lie outside."""
        return self.space.to_physical(torch.zeros(like.shape[-1], dtype=like.dtype))

    def summarize(
        self,
        flux: Any,
        err: Any = None,
        zred: Any = None,
        n: int = 1000,
        *,
        seed: int | None = None,
        chunk_size: int = 256,
        recalibrate: bool = True,
        predictive_check: Callable | None = None,
        refine: str = "never",
        sps: Any = None,
        likelihood: str = "flux",
        target_ess: float | None = None,
        progress: bool = False,
        on_draws: Callable | None = None,
    ) -> Table:
        """Posterior summaries of every object: one table row each, with a flag.

        Parameters
        ----------
        flux, err, zred, seed, recalibrate, refine, sps, likelihood, target_ess, progress
            As in :meth:`sample` (``flux`` may be the :class:`Observations` of :meth:`prepare`).
        n : int
            Draws per object behind each summary.
        chunk_size : int
            Objects per batch: memory is bounded by ``chunk_size * n * D`` floats whatever B.
        predictive_check : callable, optional
            ``check(flux, err, zred, draws) -> (chi2_red, ood)`` for each batch, e.g. a
            :class:`~prospect_sbi.ppc.PredictiveCheck`: adds ``chi2_red`` and ``ood`` columns,
            and the reason ``ood`` to the flag of the objects it flags.
        on_draws : callable, optional
            ``on_draws(rows, draws)`` for each batch: ``rows`` a slice of the objects,
            ``draws`` (b, n, D) the equal-weight draws (refined ones too) in :attr:`labels`
            order behind the summaries (e.g. to keep them).

        Returns
        -------
        astropy.table.Table
            B rows; per name in :attr:`labels`, columns ``<name>_p50``, ``<name>_p16``,
            ``<name>_p84``, ``<name>_mean``, ``<name>_std``; then ``flag``: ``ok``, or the
            reasons the estimator cannot vouch for the row, ``;``-joined (those of
            :meth:`prepare`, ``<param>_at_prior_max``/``_min`` for a posterior piled on an
            edge of the mass prior, ``khat`` and ``ess`` for a refinement whose weights cannot
            be trusted or are too few); with ``predictive_check``, ``chi2_red`` and ``ood``.
            With ``refine`` other than ``"never"`` also ``refined``, ``ess``, ``khat``,
            ``logz``, ``khat_flag``, ``ess_flag`` and ``is_draws``
            (:class:`~prospect_sbi.posterior.refine.RefinedDraws`; NaN for objects not
            refined).
        """
        n = _n_draws(n)
        obs = self._prepared(flux, err, zred, stacklevel=5)
        refiner = self._refiner_for(refine, sps, likelihood)
        if refiner is not None:
            from .refine import DIAGNOSTICS, warn_unconverged

            extra = {k: np.zeros(len(obs), dtype=t) for k, t in DIAGNOSTICS.items()}
        stats = np.empty((len(obs), len(self.labels), 5))
        edge = np.full(len(obs), "", dtype=object)
        chi2 = np.full(len(obs), np.nan) if predictive_check is not None else None
        ood = np.zeros(len(obs), bool)
        rng = np.random.SeedSequence(seed)
        with _seeded(seed, self.device):
            for rows in _chunks(len(obs), int(chunk_size)):
                part = obs.take(rows)
                draws = self._flow_draws(part, n, refine, recalibrate=recalibrate)
                if refiner is not None:
                    draws = refiner.refine_draws(
                        part,
                        draws,
                        refine,
                        seed=rng.spawn(1)[0],
                        target_ess=target_ess,
                        progress=progress,
                    )
                    for key in extra:
                        extra[key][rows] = getattr(draws, key)
                stats[rows] = draw_statistics(draws)
                if on_draws is not None:
                    on_draws(rows, np.asarray(draws))
                edge[rows] = prior_edge_flags(draws, self.labels, self.space)
                if chi2 is not None:
                    chi2[rows], ood[rows] = predictive_check(part.flux, part.err, part.zred, draws)
        warn_prior_edge(count_flags(edge), len(obs))
        weight_flags = []
        if refiner is not None:
            khat, ess = extra["khat_flag"], extra["ess_flag"]
            warn_unconverged(khat, ess, target_ess, refined=extra["refined"])
            weight_flags = [("khat", khat), ("ess", ess)]
        flags = join_flags(len(obs), weight_flags, obs.flags, edge, np.where(ood, "ood", ""))
        table = summary_table(self.labels, stats, meta={"n_draws": n, "seed": seed})
        table["flag"] = np.where(flags == "", "ok", flags).astype(str)
        if chi2 is not None:
            table["chi2_red"], table["ood"] = chi2, ood
        if refiner is not None:
            table.meta["refine"] = refine
            for key, values in extra.items():
                table[key] = values
        return table

    def __repr__(self) -> str:
        recal = "recalibrated" if self.recalibration is not None else "not recalibrated"
        return (
            f"AmortizedPosterior({self.network.config['flow']}, {len(self.labels)} labels, "
            f"{len(self.filters)} bands, redshift={self.redshift!r}, "
            f"model {self.model_hash}, {recal})"
        )


def _chunks(n: int, size: int) -> Iterator[slice]:
    size = max(1, int(size))
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _n_draws(n: Any) -> int:
    """Check a number of draws: an integer >= 1 (a float is a redshift passed by position)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        hint = ": a redshift? pass zred=" if isinstance(n, float | np.floating) else ""
        raise TypeError(
            f"n must be an integer number of draws; got {n!r} ({type(n).__name__}){hint}"
        )
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    return int(n)


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    if seed is None:
        yield
        return
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield
