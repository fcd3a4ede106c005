"""One calibration pass: draw once per object, keep what every metric and figure needs."""

from __future__ import annotations

__all__ = ["CalibrationReport", "calibrate"]

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table

from .._steps import step_warnings
from ..posterior.metrics import LEVELS, coverage_from_ranks, coverage_noise, regression_metrics
from ..posterior.observations import total_snr
from ..posterior.plausibility import (
    PriorEdgeWarning,
    count_flags,
    prior_edge_flags,
    warn_prior_edge,
)
from .calibration import (
    TARP_LEVELS,
    outlier_fraction,
    sbc_bins,
    sbc_pvalues,
    sbc_ranks,
    tarp_coverage,
    tarp_fractions,
    tarp_references,
)
from .photoz import photoz_table

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior

#: Posterior draws per object kept for the predictive check's spread term.
SPREAD_DRAWS = 8
#: Total S/N (:func:`~prospect_sbi.posterior.total_snr`) from which a test object counts as
#: detected in :attr:`CalibrationReport.photoz`.
DETECTED_SNR = 10.0


@dataclass
class CalibrationReport:
    """Posterior summaries of B test objects and the calibration metrics built on them.

    D stands for ``len(labels)``, the quantities evaluated (a subset of the estimator's).

    Attributes
    ----------
    name : str
        What the test objects are (``"matched"``, ``"continuity_sfh mocks"``, ...).
    labels : list of str
    truth, p16, p50, p84 : numpy.ndarray, (B, D)
        True values and posterior percentiles.
    ranks : numpy.ndarray, int, (B, D)
        SBC ranks of the truths among ``n_draws`` draws (:func:`sbc_ranks`).
    n_draws : int
    tarp_f : numpy.ndarray, (B,)
        TARP fractions (:func:`tarp_fractions`).
    medians : numpy.ndarray, (B, P), optional
        Posterior medians of all P labels of the estimator (what a posterior-predictive check
        re-simulates).
    spread_draws : numpy.ndarray, (B, k, P), optional
        A few posterior draws per object, for the spread term of the predictive check.
    ood : numpy.ndarray, bool, (B,), optional
        Posterior-predictive out-of-distribution flags, when they were computed.
    chi2_red : numpy.ndarray, (B,), optional
        Reduced chi-square of the posterior-predictive check.
    snr : numpy.ndarray, (B,), optional
        Total S/N of each object's bands (:func:`~prospect_sbi.posterior.total_snr`).
    meta : dict
        Provenance: estimator, test set, seeds.
    """

    name: str
    labels: list[str]
    truth: np.ndarray
    p16: np.ndarray
    p50: np.ndarray
    p84: np.ndarray
    ranks: np.ndarray
    n_draws: int
    tarp_f: np.ndarray
    medians: np.ndarray | None = None
    spread_draws: np.ndarray | None = None
    ood: np.ndarray | None = None
    chi2_red: np.ndarray | None = None
    snr: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.truth)

    @property
    def levels(self) -> np.ndarray:
        """Credibility levels (K,) of :attr:`coverage`."""
        return LEVELS

    @property
    def coverage(self) -> np.ndarray:
        """Expected coverage of central credible intervals, (D, K) at :attr:`levels`."""
        return coverage_from_ranks(self.ranks / self.n_draws, LEVELS)

    @property
    def tarp(self) -> tuple[np.ndarray, np.ndarray]:
        """TARP levels (K,) and expected coverage probability (K,)."""
        return TARP_LEVELS, tarp_coverage(self.tarp_f)[0]

    @property
    def tarp_err(self) -> float:
        """Largest distance of the TARP curve from the diagonal."""
        return tarp_coverage(self.tarp_f)[1]

    @property
    def sbc_bins(self) -> int:
        """Bins of the SBC rank histograms (:func:`sbc_bins`)."""
        return sbc_bins(len(self), self.n_draws)

    @property
    def sbc_p(self) -> np.ndarray:
        """Chi-squared p-values (D,) of the uniformity of the SBC ranks."""
        return sbc_pvalues(self.ranks, self.n_draws)

    @property
    def ood_share(self) -> float | None:
        """Share of objects the posterior-predictive check flags (None if not computed)."""
        return None if self.ood is None else float(np.mean(self.ood))

    @property
    def table(self) -> Table:
        """Metrics per label, with :attr:`summary` in ``meta``.

        Columns: ``name``, ``r2``, ``bias``, ``scatter`` (1.4826 MAD) of the posterior median,
        ``outlier_frac`` (> 3 NMAD), ``coverage_68`` (coverage of the 68% interval),
        ``coverage_err`` (largest ``|coverage - level|``), ``sbc_p``.
        """
        stats = regression_metrics(self.p50, self.truth)
        cov = self.coverage
        i68 = int(np.argmin(np.abs(LEVELS - 0.68)))
        table = Table(
            {
                "name": list(self.labels),
                **stats,
                "outlier_frac": outlier_fraction(self.p50, self.truth),
                "coverage_68": cov[:, i68],
                "coverage_err": np.abs(cov - LEVELS).max(1),
                "sbc_p": self.sbc_p,
            }
        )
        table.meta.update(self.summary)
        return table

    @property
    def photoz(self) -> Table | None:
        """Photometric-redshift statistics of ``zred``'s posterior median; None without it.

        :func:`~prospect_sbi.validate.photoz.photoz_table` over all objects and by true
        redshift, with the coverage of the z posterior's 68% and 95% intervals, for all
        objects and (with :attr:`snr`) for those of total S/N >= :data:`DETECTED_SNR`: faint
        mocks have little more than the prior for their redshift posterior.
        """
        if "zred" not in self.labels:
            return None
        i = self.labels.index("zred")
        subsets = {"all": np.ones(len(self), bool)}
        if self.snr is not None:
            subsets[f"S/N>={DETECTED_SNR:g}"] = np.asarray(self.snr) >= DETECTED_SNR
        rank = self.ranks[:, i] / self.n_draws
        return photoz_table(self.p50[:, i], self.truth[:, i], rank, subsets=subsets)

    @property
    def summary(self) -> dict[str, Any]:
        """Set-level numbers of the test set.

        Keys: ``name``, ``n_objects``, ``n_draws``, ``tarp_err``, ``ood_share``,
        ``chi2_red_median`` (of the posterior-predictive check; None when it was not run) and
        ``coverage_err_noise``: the largest ``coverage_err`` a perfectly calibrated posterior
        reaches by chance on as many objects (95%, :func:`~prospect_sbi.posterior.coverage_noise`).
        """
        chi2 = None if self.chi2_red is None else float(np.median(self.chi2_red))
        noise = coverage_noise(len(self), int(self.n_draws), n_labels=len(self.labels), trials=100)
        return {
            "name": self.name,
            "n_objects": len(self),
            "n_draws": int(self.n_draws),
            "tarp_err": self.tarp_err,
            "ood_share": self.ood_share,
            "chi2_red_median": chi2,
            "coverage_err_noise": noise,
        }

    def row(self, label: str) -> dict[str, float]:
        """Return the :attr:`table` row of one label as a dict."""
        table = self.table
        if label not in table["name"]:
            raise ValueError(f"{label!r} was not evaluated; labels are {self.labels}")
        row = table[list(table["name"]).index(label)]
        return {k: float(row[k]) for k in table.colnames if k != "name"}


def calibrate(
    estimator: AmortizedPosterior,
    flux: np.ndarray,
    err: np.ndarray,
    truth: np.ndarray,
    zred: np.ndarray | None = None,
    labels: list[str] | None = None,
    n: int = 1000,
    *,
    seed: int = 0,
    chunk_size: int = 256,
    name: str = "matched",
    ood: np.ndarray | None = None,
) -> CalibrationReport:
    """Sample the posterior of every test object once and keep what the metrics need.

    Parameters
    ----------
    estimator : AmortizedPosterior
        The estimator (or any object with ``labels`` and ``sample(flux, err, n, zred=,
        seed=)``).
    flux, err : numpy.ndarray, (B, F)
        Noisy observations, maggies.
    truth : numpy.ndarray, (B, D)
        True values of ``labels``.
    zred : numpy.ndarray, (B,), optional
        Redshifts, for an estimator conditioned on them.
    labels : list of str, optional
        Quantities to evaluate, a subset of ``estimator.labels`` (default: all of them).
    n : int
        Draws per object (SBC ranks run from 0 to n).
    seed : int
        Seed of the draws, the TARP reference points and the SBC tie-breaks.
    chunk_size : int
        Objects per batch; memory holds ``chunk_size * n * len(posterior.labels)`` floats.
    name : str
        Name of the test set in tables and figures.
    ood : numpy.ndarray, bool, (B,), optional
        Out-of-distribution flags from a posterior-predictive check (or set ``ood`` and
        ``chi2_red`` on the report later, from its ``medians``).

    Returns
    -------
    CalibrationReport

    Warns
    -----
    UserWarning
        An estimator's input checks (:meth:`~prospect_sbi.posterior.AmortizedPosterior.prepare`)
        and prior-edge warnings, each once for the whole set with its counts over all objects,
        prefixed ``"<name>: "``.
    """
    labels = list(estimator.labels if labels is None else labels)
    missing = [x for x in labels if x not in estimator.labels]
    if missing:
        raise ValueError(f"labels {missing} are not among the estimator's {estimator.labels}")
    truth = np.asarray(truth, dtype=float)
    if truth.shape != (len(flux), len(labels)):
        raise ValueError(f"truth has shape {truth.shape}; expected ({len(flux)}, {len(labels)})")
    cols = [estimator.labels.index(x) for x in labels]
    rng = np.random.default_rng(seed)
    refs = tarp_references(len(truth), len(labels), rng)
    low, high = truth.min(0), truth.max(0)
    out = {k: np.empty(truth.shape) for k in ("p16", "p50", "p84")}
    medians = np.empty((len(truth), len(estimator.labels)))
    spread = np.empty((len(truth), min(SPREAD_DRAWS, n), len(estimator.labels)), np.float32)
    ranks = np.empty(truth.shape, dtype=np.int64)
    tarp_f = np.empty(len(truth))
    prepare = getattr(estimator, "prepare", None)  # an AmortizedPosterior's checks
    edges = np.full(len(truth), "", dtype=object)
    with step_warnings(name):  # each said once for the whole set: "<name>: ..."
        obs = None if prepare is None else prepare(flux, err, zred)
        for start in range(0, len(flux), int(chunk_size)):
            rows = slice(start, start + int(chunk_size))
            if obs is None:
                z = None if zred is None else zred[rows]
                draws = estimator.sample(flux[rows], err[rows], n, seed=seed + start, zred=z)
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", PriorEdgeWarning)  # counted over all below
                    draws = estimator.sample(obs.take(rows), None, n, seed=seed + start)
                edges[rows] = prior_edge_flags(draws, estimator.labels, estimator.space)
            medians[rows] = np.median(draws, 1)
            spread[rows] = draws[:, : spread.shape[1]]  # independent draws: any will do
            draws = draws[..., cols]
            out["p16"][rows], out["p50"][rows], out["p84"][rows] = np.percentile(
                draws, [16, 50, 84], axis=1
            )
            ranks[rows] = sbc_ranks(draws, truth[rows], rng)
            tarp_f[rows] = tarp_fractions(draws, truth[rows], refs[rows], low, high)
        if obs is not None:
            warn_prior_edge(count_flags(edges), len(edges))
    flags = None if ood is None else np.asarray(ood, dtype=bool)
    return CalibrationReport(
        name,
        labels,
        truth,
        ranks=ranks,
        n_draws=int(n),
        tarp_f=tarp_f,
        medians=medians,
        spread_draws=spread,
        ood=flags,
        snr=total_snr(np.asarray(flux, float), np.asarray(err, float)),
        meta={"seed": int(seed)},
        **out,
    )
