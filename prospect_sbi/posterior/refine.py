"""Exact posteriors on demand: the estimator's draws refined by importance sampling, batched.

The amortised posterior is calibrated, but for detected objects its 68% intervals are wider
than the exact posterior of the likelihood (the shipped estimators': ~1.3 times from total
S/N 5 up, ``benchmarks/sharpness.py``; 2.2 times at S/N >= 20 for the 0.1 estimators).
:class:`Refiner` reweights the estimator's draws by ``prior * likelihood / proposal``
(neural importance sampling, Dax et al. 2023), adapting a per-object Student-t proposal over
a few rounds (:func:`~prospect_sbi.posterior.importance.adaptive_importance`), for every
object of a chunk at once: each round is one flow call and one
:class:`~prospect_sbi.forward.ModelPhotometry` call for all the objects' draws, whatever
their redshifts. The likelihood uses every band given,
the shallow non-detections the estimator does not see included (``Observations.like_flux``):
on the 99 JADES spec-z galaxies (5% error floor, ``jades-parametric-photoz``) they took the
refined photo-z outliers from 20% to 16%, the Lyman breaks of dropouts being in those bands.

The flow models the free parameters *and* the derived quantities (plus the training jitter),
so the target is extended to the same space, ``p(theta | x) N(d; g(theta), jitter^2)`` with
``g(theta)`` the exact derived values (in flow space), whose ``theta`` marginal is the exact
posterior. Weights need only the flow's joint density, and the derived quantities reported for
refined draws are the exact ``g(theta)``. The evidence of the extended target is that of the
likelihood, ``Z = int prior(theta) L(theta) dtheta`` (with ``zred`` fixed when it is known),
comparable with dynesty's ``logz`` for the same likelihood.

``refine="auto"`` (:func:`needs_refinement`) refines an object when its total S/N is at least
:data:`AUTO_SNR` or when even the best of a few of the flow's draws fits its photometry worse
than a chi-square with probability :data:`AUTO_P_VALUE`, with a :data:`AUTO_FLOOR` model
error (where the flow is off).
"""

from __future__ import annotations

__all__ = [
    "AUTO_CHECK_DRAWS",
    "AUTO_FLOOR",
    "AUTO_P_VALUE",
    "AUTO_SNR",
    "DIAGNOSTICS",
    "FIRST_DRAWS",
    "MAX_ROUNDS",
    "REFINE_MODES",
    "ROUND_DRAWS",
    "TARGET_ESS",
    "RefinedDraws",
    "Refinement",
    "RefinementWarning",
    "Refiner",
    "check_refine",
    "check_target_ess",
    "default_sps",
    "needs_refinement",
    "refined_regardless",
    "resume_columns",
    "warn_unconverged",
]

import copy
import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from ..forward import ModelPhotometry
from ..noise.likelihood import NoiseLikelihood, check_likelihood
from ..numeric import is_number
from ..transforms import clip_to_prior, tage_prior_cut
from .importance import ImportanceBatch, adaptive_importance
from .observations import Observations
from .plausibility import MODEL_ERROR_FLOOR
from .target import ExactTarget
from .zguide import RedshiftGuide

#: Values of ``refine=``.
REFINE_MODES = ("never", "always", "auto")
#: Total S/N (:func:`~prospect_sbi.posterior.total_snr`) from which ``refine="auto"`` refines
#: every object. The shipped estimators' 68% intervals are ~1.3 times the exact ones for every
#: detected object (total S/N 5-20 as above it, ``docs/fitting.md``): the threshold is one of
#: cost (most pixels of a map are fainter); ``refine="always"`` for exact posteriors below it.
AUTO_SNR = 20.0
#: ``refine="auto"`` also refines an object whose best chi-square among
#: :data:`AUTO_CHECK_DRAWS` of the flow's draws has a probability below this.
AUTO_P_VALUE = 1e-3
AUTO_CHECK_DRAWS = 8
#: Fractional model error added in quadrature in that chi-square, as in the predictive check
#: (:class:`prospect_sbi.ppc.PredictiveCheck`): without it the model's own shortcomings on real
#: data trigger the check. On the 1039 selected pixels of the three JOF cutouts
#: (``jades-parametric``), pixels below AUTO_SNR were refined for their chi-square: 35% with no
#: floor, 21% with 0.05, 3.3% with 0.10. The same constant as the check's.
AUTO_FLOOR = MODEL_ERROR_FLOOR
#: Defaults of the refinement: draws of the flow in the first round, draws per adapted
#: round, most rounds, and the effective sample size an object is sampled to. (Rounds of 128
#: took 15-25% fewer draws, but the proposals then close in faster than their tails are
#: drawn: log Z fell further below long runs', -0.40 against -0.27 for
#: ``jades-continuity``, ``docs/fitting.md``.)
FIRST_DRAWS, ROUND_DRAWS, MAX_ROUNDS, TARGET_ESS = 256, 256, 24, 200.0
#: Per-object diagnostics of :class:`RefinedDraws` (and summary columns), with their dtypes.
DIAGNOSTICS = {
    "refined": bool,
    "ess": float,
    "khat": float,
    "logz": float,
    "khat_flag": bool,
    "ess_flag": bool,
    "is_draws": float,
}
#: Objects refined together: every round is one flow and one forward-model call for them all
#: (8192 draws), and memory stays below ~100 MB while the objects take a few thousand draws of
#: ~50 numbers each (~400 MB if every object used every round).
_CHUNK = 32


class RefinementWarning(UserWarning):
    """A refined object whose importance weights cannot vouch for its posterior."""


def check_target_ess(target_ess: Any) -> float:
    """Return ``target_ess`` as a float, :data:`TARGET_ESS` for None.

    A one-line ValueError unless it is a finite number > 0: 0 or NaN would let every
    refinement pass as converged (no ``ess_flag``).
    """
    if target_ess is None:
        return TARGET_ESS
    if not (is_number(target_ess) and target_ess > 0):
        raise ValueError(f"target_ess must be a finite number > 0; got {target_ess!r}")
    return float(target_ess)


def check_refine(refine: Any, name: str = "refine") -> str:
    """Return ``refine`` if it is one of :data:`REFINE_MODES`; raise ValueError otherwise.

    ``name``: the option the message names (``photoz_refine`` for the photo-z step's).
    """
    if not isinstance(refine, str) or refine not in REFINE_MODES:
        raise ValueError(f"{name}={refine!r} is unknown; use one of {', '.join(REFINE_MODES)}")
    return refine


@functools.lru_cache(maxsize=1)
def default_sps() -> Any:
    """Return the ``BC03MilesBasis`` shared by refinements without ``sps=`` (built once)."""
    from ..sources import BC03MilesBasis

    return BC03MilesBasis()


class RefinedDraws(np.ndarray):
    """Draws (B, n, D) with per-object refinement diagnostics, from ``sample(refine=...)``.

    An ndarray of :meth:`AmortizedPosterior.sample`'s draws, plus per object (arrays (B,), or
    scalars for one object): ``refined`` (bool), ``ess`` (effective sample size of the
    importance weights), ``khat`` (their Pareto k-hat), ``logz`` (log evidence, natural log,
    of the likelihood in maggies), ``khat_flag`` (k-hat above 0.7 after every round:
    weights that cannot be trusted), ``ess_flag`` (ESS below the target after every
    round: too few effective draws to vouch for the posterior) and ``is_draws`` (the
    importance draws it took, each a flow and a forward-model evaluation: its cost). NaN for
    objects not refined.
    """

    refined: Any = None
    ess: Any = None
    khat: Any = None
    logz: Any = None
    khat_flag: Any = None
    ess_flag: Any = None
    is_draws: Any = None

    def __array_finalize__(self, obj: Any) -> None:
        # views and slices need not hold the same objects: they carry no diagnostics
        for key in DIAGNOSTICS:
            setattr(self, key, None)

    def object(self, i: int) -> RefinedDraws:
        """Return the draws (n, D) of object ``i`` with its own (scalar) diagnostics."""
        out = np.asarray(self)[i].view(RefinedDraws)
        for key in DIAGNOSTICS:
            setattr(out, key, getattr(self, key)[i])
        return out


@dataclass
class Refinement:
    """Refined objects (:meth:`Refiner.run`): weighted draws and equal-weight draws.

    Attributes
    ----------
    draws : numpy.ndarray, float32, (B, n, D)
        Equal-weight draws of the exact posterior, in the estimator's ``labels`` order.
    batch : ImportanceBatch
        The weighted draws; ``points`` hold ``theta`` (model theta order), ``values`` (labels
        order), ``lnlike`` and ``d:<name>`` for every derived quantity of the forward model.
    """

    draws: np.ndarray
    batch: ImportanceBatch

    @property
    def ess(self) -> np.ndarray:
        """Effective sample size per object, (B,)."""
        return self.batch.ess

    def best_fit(self) -> tuple[np.ndarray, np.ndarray]:
        """Return the draw of largest likelihood per object, among those of non-zero weight.

        Returns
        -------
        theta : numpy.ndarray, (B, P)
            Its parameters, in the model's theta order.
        lnlike : numpy.ndarray, (B,)
            Its log-likelihood.
        """
        weighted = np.isfinite(self.batch.log_weights)
        lnl = np.where(weighted, self.batch.points["lnlike"], -np.inf)
        best = np.argmax(lnl, axis=1)
        rows = np.arange(len(best))
        return self.batch.points["theta"][rows, best], lnl[rows, best]


class Refiner:
    """The exact posterior of an estimator's model, forward model and noise, batched.

    Build it with :meth:`AmortizedPosterior.refiner` (cached per source and likelihood).
    B objects, P free parameters (``zred`` left out when the estimator takes it), K derived
    targets, F bands.

    Parameters
    ----------
    post : AmortizedPosterior
    model : prospect.models.SpecModel
        The estimator's model (:meth:`AmortizedPosterior.model`).
    sps : BC03MilesBasis or any Prospector source, optional
        Default :func:`default_sps`.
    likelihood : {"flux", "noise"}
        :class:`~prospect_sbi.noise.NoiseLikelihood`'s kind.
    guide : AmortizedPosterior, optional
        For a photo-z estimator, a known-redshift estimator of the same model whose draws
        at redshifts spread over the range join the first proposal
        (:class:`~prospect_sbi.posterior.zguide.RedshiftGuide`): modes the flow misses.

    Raises
    ------
    ValueError
        A likelihood the noise model does not have, a model free parameter the estimator has
        no target for, an estimator trained without jitter on its derived targets, or a
        guide that does not fit the estimator.
    """

    def __init__(
        self,
        estimator: Any,
        model: Any,
        sps: Any = None,
        likelihood: str = "flux",
        guide: Any = None,
    ) -> None:
        check_likelihood(estimator.noise, likelihood)
        self.post, self.known = estimator, estimator.redshift == "known"
        self.model = _with_free_zred(model, estimator) if self.known else model
        self.guide = None if guide is None else RedshiftGuide(estimator, guide, self.model)
        self.phot = ModelPhotometry(
            self.model, default_sps() if sps is None else sps, estimator.filters
        )
        self.lnl = NoiseLikelihood(self.phot, estimator.noise, likelihood)
        space, self.k, self.jitter = estimator.space, estimator.n_jittered, estimator.jitter
        self.p = len(space) - self.k
        if self.k and self.jitter <= 0:
            raise ValueError(
                "refinement needs an estimator whose derived targets were trained with jitter > 0"
            )
        labels = list(self.model.theta_labels())
        self.izred = labels.index("zred") if "zred" in labels else None
        free = [lab for lab in labels if not (self.known and lab == "zred")]
        missing = [lab for lab in free if lab not in space.names[: self.p]]
        if missing:
            raise ValueError(f"the estimator has no target for the model's {missing}")
        # model theta column -> flow target (zred, when known, from the observation)
        self.cols = [space.names.index(lab) if lab in free else -1 for lab in labels]
        self.free_labels = free
        self.derived_names = list(space.names[self.p :])
        self.derived_keys = list(self.phot.derived(self.model.theta[None]))
        index = self.model.theta_index
        self._tage = None  # training cut tage's prior at the age of the universe
        if "zred" in index and "tage" in index:
            self._tage = (index["tage"].start, self.model.config_dict["tage"]["prior"])

    # -- the target ---------------------------------------------------------------------------

    def theta(self, values: np.ndarray, zred: np.ndarray | None) -> np.ndarray:
        """Model theta (*, ndim) from flow-order physical targets (*, >= P), zred (*,)."""
        out = np.stack(
            [
                values[..., c] if c >= 0 else np.broadcast_to(zred, values.shape[:-1])
                for c in self.cols
            ],
            axis=-1,
        )
        return out.astype(float)

    def log_prior(self, theta: np.ndarray) -> np.ndarray:
        """Log prior (N,) of model theta (N, ndim); a known ``zred`` is not a parameter.

        A ``tage`` older than the universe at the row's ``zred`` has zero prior and the rest
        of its prior is renormalised, as the training sets draw it. A row with a non-finite
        value (a draw the flow blew up) has zero prior.
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = np.zeros(len(theta))
            for name, inds in self.model.theta_index.items():
                if not (self.known and name == "zred"):
                    prior = self.model.config_dict[name]["prior"]
                    lp = lp + np.sum(np.asarray(prior(theta[:, inds]), dtype=float), axis=-1)
            lp = np.where(np.isfinite(theta).all(-1), lp, -np.inf)
            if self._tage is None:
                return lp
            it, prior = self._tage
            # the age of the universe only where the rest of the prior is not zero
            zred = np.where(np.isfinite(lp), theta[:, self.izred], 1.0)
            return lp + tage_prior_cut(prior, theta[:, it], zred)

    def target(self, obs: Observations) -> ExactTarget:
        """Return the batched target of :func:`adaptive_importance` for observations ``obs``."""
        return ExactTarget(self, obs)

    def run(
        self,
        obs: Observations,
        n: int,
        *,
        seed: Any = None,
        first: int = FIRST_DRAWS,
        draws: int = ROUND_DRAWS,
        rounds: int = MAX_ROUNDS,
        target_ess: float | None = None,
        progress: bool = False,
    ) -> Refinement:
        """Sample the exact posterior of every object of ``obs``.

        Parameters
        ----------
        obs : Observations
            From :meth:`AmortizedPosterior.prepare`.
        n : int
            Equal-weight draws returned per object (resampled from the weighted ones).
        seed : int or numpy.random.SeedSequence, optional
        first, draws, rounds, target_ess
            Flow draws of the first round, draws per adapted round, most rounds, ESS to stop
            at (default :data:`TARGET_ESS`); see :func:`adaptive_importance`.
        progress : bool
            Show a progress bar over the rounds.

        Returns
        -------
        Refinement
        """
        rng = np.random.default_rng(seed)
        ess = check_target_ess(target_ess)
        batch = adaptive_importance(
            self.target(obs),
            draws,
            rounds,
            ess,
            first=first,
            seed=rng,
            progress=progress,
        )
        idx = batch.resample(int(n), rng)
        values = np.take_along_axis(batch.points["values"], idx[..., None], axis=1)
        return Refinement(values.astype(np.float32), batch)

    # -- refine="auto" ------------------------------------------------------------------------

    def best_chi2(self, obs: Observations, values: np.ndarray) -> np.ndarray:
        """Smallest chi-square (B,) of the photometry of draws ``values`` (B, k, D) (labels).

        Over every band given (``obs.like_flux``), each band's variance
        ``err^2 + (AUTO_FLOOR model)^2``.
        """
        b, k, _ = values.shape
        zred = None if obs.zred is None else np.repeat(obs.zred, k).reshape(b, k)
        theta = self.theta(values, zred).reshape(b * k, -1)
        model, _ = self.phot(clip_to_prior(self.model, theta))
        model = model.reshape(b, k, -1)
        flux, err = obs.like_flux, obs.like_err  # every band given, as the likelihood's
        use = np.isfinite(flux)
        f, e = np.where(use, flux, 0.0)[:, None], np.where(use, err, 1.0)[:, None]
        var = e**2 + (AUTO_FLOOR * model) ** 2
        chi2 = np.where(use[:, None], (model - f) ** 2 / var, 0.0).sum(-1)
        return chi2.min(1)

    def refine_draws(
        self,
        obs: Observations,
        draws: np.ndarray,
        refine: str,
        *,
        seed: Any = None,
        target_ess: float | None = None,
        progress: bool = False,
    ) -> RefinedDraws:
        """Replace the estimator's draws (B, n, D) of the objects that need it (``refine``).

        Returns
        -------
        RefinedDraws
            ``draws`` (changed in place) with the refined objects' exact draws, and the
            per-object diagnostics.
        """
        mode = check_refine(refine)
        check_target_ess(target_ess)  # also when no object needs refining
        out = np.asarray(draws).view(RefinedDraws)
        b, n = draws.shape[:2]
        for key, kind in DIAGNOSTICS.items():
            setattr(out, key, np.zeros(b, kind) if kind is bool else np.full(b, np.nan))
        todo = (
            np.ones(b, bool)
            if mode == "always"
            else (needs_refinement(self, obs, draws) if mode == "auto" else np.zeros(b, bool))
        )
        rows = np.flatnonzero(todo)
        root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
        seeds = root.spawn(max(1, -(-len(rows) // _CHUNK)))
        from tqdm.auto import tqdm

        for start, sub in zip(
            tqdm(range(0, len(rows), _CHUNK), desc="refine", unit="chunk", disable=not progress),
            seeds,
            strict=False,
        ):
            part = rows[start : start + _CHUNK]
            res = self.run(obs.take(part), n, seed=sub, target_ess=target_ess)
            out[part] = res.draws
            out.refined[part] = True
            for key in ("ess", "khat", "logz"):
                getattr(out, key)[part] = getattr(res.batch, key)
            out.khat_flag[part] = res.batch.flagged
            out.ess_flag[part] = res.batch.short
            out.is_draws[part] = res.batch.n_draws
        return out


def warn_unconverged(
    khat_flag: np.ndarray,
    ess_flag: np.ndarray,
    target_ess: float | None = None,
    stacklevel: int = 3,
    refined: np.ndarray | None = None,
) -> None:
    """Warn (RefinementWarning) when refined objects ended with ``khat_flag`` or ``ess_flag``.

    ``khat_flag``, ``ess_flag`` (B,) bool; ``refined`` (B,) bool, the objects counted
    (default all). Once per call of the user's, after all its chunks, as
    :func:`~.plausibility.warn_prior_edge`: one warning per flag, each count leading its
    message, so that the warnings of several calls (chunks, galaxies) add up when merged.
    """
    khat_flag, ess_flag = np.asarray(khat_flag, bool), np.asarray(ess_flag, bool)
    if refined is not None:
        done = np.asarray(refined, bool)
        khat_flag, ess_flag = khat_flag[done], ess_flag[done]
    if not (khat_flag | ess_flag).any():
        return
    target = check_target_ess(target_ess)
    for flag, what, mask in (
        ("ess", f"an ESS below {target:g}", ess_flag),
        ("khat", "a Pareto k-hat above 0.7", khat_flag),
    ):
        if mask.any():
            warnings.warn(
                f"{int(mask.sum())} of {len(mask)} refined objects ended their rounds with "
                f"{what} (flag '{flag}'): their draws are not vouched for as the exact posterior",
                RefinementWarning,
                stacklevel=stacklevel,
            )


def resume_columns(refine: str) -> dict[str, list[str]]:
    """Return what a resumable job's fingerprint adds for ``refine``: its parts' diagnostics.

    Parts written with other diagnostics (another version's) are refused up front, the change
    named, instead of being mixed with these (``{}`` for ``"never"``: none).
    """
    return {} if check_refine(refine) == "never" else {"refinement_columns": list(DIAGNOSTICS)}


def refined_regardless(obs: Observations, refine: str) -> np.ndarray:
    """Return the objects (B,) bool that ``refine`` refines whatever the flow's draws.

    Every object for ``"always"``, those of total S/N >= :data:`AUTO_SNR` for ``"auto"``, none
    for ``"never"``: their flow draws are discarded, so need not be drawn.
    """
    mode = check_refine(refine)
    if mode == "auto":
        return obs.snr >= AUTO_SNR
    return np.full(len(obs), mode == "always")


def needs_refinement(refiner: Refiner, obs: Observations, draws: np.ndarray) -> np.ndarray:
    """Return which objects ``refine="auto"`` refines, (B,) bool.

    Those with a total S/N of at least :data:`AUTO_SNR`, and those whose best chi-square among
    :data:`AUTO_CHECK_DRAWS` of their draws ``draws`` (B, n, D) exceeds the chi-square
    quantile of probability :data:`AUTO_P_VALUE` for their number of bands: a flow whose
    draws all miss the photometry is off (one forward model per checked draw). The draws of
    the bright objects are not looked at (:func:`refined_regardless`).
    """
    bright = refined_regardless(obs, "auto")
    rest = np.flatnonzero(~bright)
    if len(rest):
        k = min(AUTO_CHECK_DRAWS, draws.shape[1])
        pick = np.linspace(0, draws.shape[1] - 1, k).astype(int)
        part = obs.take(rest)
        chi2 = refiner.best_chi2(part, np.asarray(draws[rest][:, pick], dtype=float))
        n_valid = np.isfinite(part.like_flux).sum(1)
        bright[rest] = chi2 > stats.chi2.isf(AUTO_P_VALUE, np.maximum(n_valid, 1))
    return bright


def _with_free_zred(model: Any, estimator: Any) -> Any:
    """Return ``model`` if its ``zred`` is free, else a copy with ``zred`` free.

    The copy's ``zred`` prior spans the estimator's training range; the observation's ``zred``
    fills that column.
    """
    if "zred" in model.theta_index:
        return model
    from prospect.models import SpecModel, priors

    lo, hi = estimator.header.get("zred_range") or (0.0, 20.0)
    cfg = copy.deepcopy(model.config_dict)
    cfg["zred"].update(isfree=True, prior=priors.TopHat(mini=0.999 * lo, maxi=1.001 * hi))
    return SpecModel(cfg)
