"""Importance sampling with the likelihood: the sampler on known targets, then real fits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from prospect_sbi import build_model, fit_model, jades_filters
from prospect_sbi.fitting import (
    adaptive_importance,
    fixed_redshift_model,
    importance_sample,
    write_results,
)
from prospect_sbi.forward import ModelPhotometry

pytestmark = pytest.mark.usefixtures("one_thread")


class KnownTarget:
    """Batched targets of known density (a Gaussian mixture) with a wide, offset first proposal."""

    def __init__(self, means, sds, fracs, q_mean, q_sd, n_objects=1) -> None:
        self.comps = [multivariate_normal(m, s**2) for m, s in zip(means, sds, strict=True)]
        self.log_fracs = np.log(fracs)
        self.q = multivariate_normal(q_mean, q_sd**2)
        self.n_objects = n_objects

    def first(self, rows, n, rng):
        return self.evaluate(rows, self.q.rvs((len(rows), n), random_state=rng), rng)

    def evaluate(self, rows, u, rng):
        u = np.asarray(u).reshape(len(rows), -1, len(self.q.mean))
        logp = logsumexp(
            [f + c.logpdf(u) for f, c in zip(self.log_fracs, self.comps, strict=True)], axis=0
        )
        return {
            "u": u,
            "log_target": logp.reshape(u.shape[:2]),
            "log_first": self.q.logpdf(u).reshape(u.shape[:2]),
        }


def test_adaptation_recovers_a_narrow_offset_gaussian():
    dim, sd = 6, 0.05
    target = KnownTarget([np.full(dim, 0.3)], [sd], [1.0], np.zeros(dim), 0.5, n_objects=2)
    res = adaptive_importance(target, 2000, 8, 1500, seed=1)
    w = np.exp(res.log_weights)
    assert w.sum(1) == pytest.approx(1.0)
    assert np.all(res.history[:, 0] < 20)  # the first proposal alone is useless
    assert np.all(res.ess > 1500) and np.all(res.logz == pytest.approx(0.0, abs=0.1))
    for b in range(2):
        mean = w[b] @ res.points["u"][b]
        d = res.points["u"][b] - mean
        cov = d.T @ (d * w[b][:, None])
        assert np.abs(mean - 0.3).max() < 0.2 * sd
        assert np.sqrt(np.diag(cov)) == pytest.approx(np.full(dim, sd), rel=0.1)


def test_adaptation_keeps_both_modes_with_their_mass():
    # one Student-t over both modes, with the first proposal as the defensive component
    target = KnownTarget([[-1.0, 0.0], [1.0, 0.5]], [0.1, 0.1], [0.3, 0.7], [0.0, 0.0], 1.5)
    res = adaptive_importance(target, 2000, 8, 1500, seed=2)
    right = np.exp(res.log_weights[0])[res.points["u"][0, :, 0] > 0].sum()
    assert right == pytest.approx(0.7, abs=0.03)
    assert res.ess[0] > 1500 and res.khat[0] < 0.7


class TwoTargets(KnownTarget):
    """Object 0's target is close to its first proposal; object 1's is narrow and offset."""

    def __init__(self) -> None:
        super().__init__([np.full(4, 0.3)], [0.05], [1.0], np.zeros(4), 0.5, n_objects=2)
        self.easy = multivariate_normal(np.zeros(4), 0.45**2)

    def evaluate(self, rows, u, rng):
        out = super().evaluate(rows, u, rng)
        easy = rows == 0
        out["log_target"][easy] = self.easy.logpdf(out["u"][easy])
        return out


def test_objects_that_stop_early_keep_their_draws():
    # Object 0 stops after its first round, object 1 goes on: its draws are appended after
    # object 0's padding, and both keep exact weights and evidence (Z = 1).
    res = adaptive_importance(TwoTargets(), 500, 12, 400, seed=3)
    assert res.n_draws[0] == 500 and res.rounds[0] == 1 and res.n_draws[1] >= 1500
    assert np.all(np.isinf(res.log_weights[0, 500:])) and np.isnan(res.points["u"][0, 500:]).all()
    u = res.points["u"][0, :500]  # its weights: target over first proposal, nothing else
    log_w = TwoTargets().easy.logpdf(u) - multivariate_normal(np.zeros(4), 0.25).logpdf(u)
    np.testing.assert_allclose(res.log_weights[0, :500], log_w - logsumexp(log_w), atol=1e-10)
    assert res.ess[1] > 400 and res.logz == pytest.approx(0.0, abs=0.1)
    u = res.points["u"][1]
    assert np.exp(res.log_weights[1]) @ u == pytest.approx(np.full(4, 0.3), abs=0.01)


@pytest.fixture(scope="module")
def bright_mock(_sps_instance, small_estimator):
    """A bright z=1.5 galaxy (10^10 Msun formed) with the estimator's noise, and its truth."""
    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    fixed = fixed_redshift_model(model, 1.5)
    theta = fixed.theta.copy()
    theta[fixed.theta_index["mass"]] = 1e10
    phot = ModelPhotometry(fixed, _sps_instance, jades_filters())
    maggies, _ = phot(theta)
    flux, err = small_estimator.noise.apply(maggies, np.random.default_rng(4))
    truth = {k: float(v[0]) for k, v in phot.derived(theta[None]).items()}
    return model, flux, err, truth


def test_importance_sample_of_a_bright_galaxy(sps, small_estimator, bright_mock):
    model, flux, err, truth = bright_mock
    res = importance_sample(
        small_estimator, model, sps, flux, err, 1.5, n=1000, rounds=8, likelihood="noise", seed=0
    )
    w = res.weights
    assert w.sum() == pytest.approx(1.0) and res.ess > 100 and res.khat < 0.7
    assert res.samples.shape == (len(w), 6) and res.labels[0] == "mass"
    assert res.rounds[0]["proposal"] == "flow" and res.rounds[-1]["ess"] == res.ess
    # the derived quantities are those of each draw, not the flow's
    top = np.argsort(w)[-5:]
    phot = ModelPhotometry(fixed_redshift_model(model, 1.5), sps, jades_filters())
    exact = phot.derived(res.samples[top])
    assert res.derived["log_mstar"][top] == pytest.approx(exact["log_mstar"], abs=1e-9)
    # the exact posterior holds the truth and is narrower than the quick estimator's
    order = np.argsort(res.derived["log_mstar"])
    cdf = np.cumsum(w[order])
    lo, med, hi = np.interp([0.16, 0.5, 0.84], cdf, res.derived["log_mstar"][order])
    assert abs(med - truth["log_mstar"]) < 3 * (hi - lo) / 2
    draws = small_estimator.sample(flux, err, 4000, zred=1.5, seed=0)
    q = np.quantile(draws[:, small_estimator.labels.index("log_mstar")], [0.16, 0.84])
    assert hi - lo < q[1] - q[0]


def test_fit_model_refine_writes_weights_prospector_reads(
    sps, small_estimator, bright_mock, tmp_path
):
    from prospect.io.read_results import results_from

    model, flux, err, _ = bright_mock
    obs = {"maggies": flux, "maggies_unc": err, "filters": jades_filters(), "zred": 1.5}
    out = fit_model(
        obs,
        model,
        sps,
        sbi=True,
        estimator=small_estimator,
        sbi_seed=1,
        sbi_refine=True,
        sbi_refine_ndraws=500,
        sbi_refine_rounds=6,
    )
    result = out["sampling"][0]
    w = result.weights
    assert w.sum() == pytest.approx(1.0) and w.std() > 0  # importance weights, not 1/n
    assert np.all(np.isfinite(result["logl"])) and np.all(np.isfinite(result["logwt"]))
    ess = 1.0 / np.sum(w**2)
    assert float(result["eff"]) == pytest.approx(100 * ess / len(w))
    path = write_results(tmp_path / "refined.h5", out, model, obs)
    res, _, _ = results_from(str(path))
    assert res["weights"] == pytest.approx(w)
    assert res["chain"].shape == (len(w), model.ndim)
    assert res["derived"]["log_mstar"] == pytest.approx(result["derived"]["log_mstar"])
    assert res["logz"][-1] == pytest.approx(result["logz"][-1])


def test_free_redshift_prior_cuts_tage_at_the_age_of_the_universe():
    from prospect_sbi.cosmology import age_of_universe
    from prospect_sbi.posterior.refine import Refiner

    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    idx = model.theta_index
    target = Refiner.__new__(Refiner)  # the prior alone: no estimator needed
    target.model, target.known, target.izred = model, False, idx["zred"].start
    target._tage = (idx["tage"].start, model.config_dict["tage"]["prior"])
    theta = np.repeat(model.theta[None], 2, axis=0)
    theta[:, idx["zred"]] = 3.0
    tuniv = float(age_of_universe(3.0))
    theta[:, idx["tage"].start] = [0.5 * tuniv, 1.1 * tuniv]
    lp = target.log_prior(theta)
    prior = model.config_dict["tage"]["prior"]
    lo, hi = prior.params["mini"], prior.params["maxi"]
    # the TopHat renormalised to [lo, tuniv]
    expected = model.prior_product(theta[:1])[0] + np.log((hi - lo) / (tuniv - lo))
    assert lp[0] == pytest.approx(expected) and lp[1] == -np.inf
    # a known redshift is no parameter: its prior is left out, as in fixed_redshift_model
    target.known = True
    fixed = fixed_redshift_model(model, 3.0)
    without = np.delete(theta[:1], idx["zred"].start, axis=1)
    assert target.log_prior(theta[:1])[0] == pytest.approx(fixed.prior_product(without[0]))
    # a draw the flow blew up (NaN, as a guide draw on a prior bound gave the photo-z
    # refinement) has zero prior; it raised in age_of_universe
    target.known = False
    bad = np.repeat(theta[:1], 3, axis=0)
    bad[1, idx["zred"].start], bad[2, idx["tage"].start] = np.nan, np.inf
    lp = target.log_prior(bad)
    assert lp[0] == pytest.approx(expected) and lp[1] == -np.inf and lp[2] == -np.inf


def test_importance_sample_errors(sps, small_estimator, bright_mock):
    import copy

    model, flux, err, _ = bright_mock
    with pytest.raises(ValueError, match="n must be an integer >= 2; got 1"):
        importance_sample(small_estimator, model, sps, flux, err, 1.5, n=1)
    other = build_model("continuity_sfh", zred=(0.5, 5.0))
    with pytest.raises(ValueError, match="the estimator has no target for the model's"):
        importance_sample(small_estimator, other, sps, flux, err, 1.5, n=10)
    unjittered = copy.copy(small_estimator)
    unjittered.training = {**small_estimator.training, "jitter": 0.0}
    with pytest.raises(ValueError, match="trained with jitter > 0"):
        importance_sample(unjittered, model, sps, flux, err, 1.5, n=10)


def test_adapted_proposal_covariance_is_shrunk_by_its_effective_draws():
    # S from n_eff draws in P dimensions: off-diagonal terms pulled towards 0 by P / (P + n_eff)
    from prospect_sbi.posterior.importance import INFLATE, TMixture, weighted_moments

    rng = np.random.default_rng(4)
    u = rng.multivariate_normal([0.0, 0.0], [[1.0, 0.9], [0.9, 1.0]], size=(2, 4000))
    log_w = np.zeros((2, 4000))
    log_w[1, 6:] = -np.inf  # object 1: six equal draws carry all the weight
    log_w -= np.log(np.exp(log_w).sum(1, keepdims=True))
    fit = TMixture.fit(u, log_w)
    cov = fit.covariance
    w = np.exp(log_w)
    _, sample = weighted_moments(u, w)
    for b, lam in ((0, 2 / (2 + 4000)), (1, 2 / (2 + 6))):
        expected = (1 - lam) * sample[b] + lam * np.diag(np.diag(sample[b]))
        np.testing.assert_allclose(cov[b], expected, rtol=1e-10)
    assert np.all(fit.scale == INFLATE)
    assert abs(cov[1, 0, 1] / np.sqrt(cov[1, 0, 0] * cov[1, 1, 1])) < 0.8 * abs(
        sample[1, 0, 1] / np.sqrt(sample[1, 0, 0] * sample[1, 1, 1])
    )


def test_tempering_reaches_weights_that_span_ten_orders_of_magnitude():
    # Geometric log weights -a k: ESS (1 + r) / (1 - r) with r = exp(-beta a), so ESS 10 at
    # beta a = ln(11 / 9). With a = 1e9 (the chi-square of a bright galaxy without an error
    # floor) that beta is 2e-10, below where the linear bisection stops (2**-25).
    from prospect_sbi.posterior.importance import effective_sample_size, tempered_weights

    log_w = -1e9 * np.arange(300.0)[None]
    log_w[:, 250:] = -np.inf  # zero weights stay zero
    w = tempered_weights(log_w - logsumexp(log_w), 10.0)
    assert np.isfinite(w).all() and w.sum() == pytest.approx(1.0)
    assert np.all(w[:, 250:] == 0)
    assert 10.0 <= effective_sample_size(np.log(w[:, :250]))[0] < 10.01
    assert -np.log(w[0, 1] / w[0, 0]) / 1e9 == pytest.approx(np.log(11 / 9) / 1e9, rel=1e-4)


def test_adaptation_from_far_too_wide_a_first_proposal_runs_and_is_flagged():
    # A target 1e5 times narrower than the first proposal: the first round's log weights span
    # ~1e10. The tempered weights were NaN, so the proposals stayed put (0.1-0.2 off here) or
    # numpy's eigh raised (JADES galaxies without an error floor). Now they close in, and the
    # run says it fell short of its ESS.
    target = KnownTarget([np.full(3, 0.2)], [1e-5], [1.0], np.zeros(3), 1.0, n_objects=2)
    res = adaptive_importance(target, 200, 4, 200, seed=5)
    assert np.isfinite(res.logz).all()
    assert np.all(res.short)
    w = np.exp(res.log_weights)
    assert w.sum(1) == pytest.approx(1.0)
    mean = np.einsum("bn,bnp->bp", w, np.nan_to_num(res.points["u"]))
    assert np.abs(mean - 0.2).max() < 0.05  # the rounds close in on it all the same
