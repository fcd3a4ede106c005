"""Importance sampling with the likelihood: the sampler on known targets, then real fits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from prospect_sbi import build_model, fit_model, jades_filters
from prospect_sbi.fitting import fixed_redshift_model, importance_sample, write_results
from prospect_sbi.fitting.importance import _KernelMixture, adaptive_importance
from prospect_sbi.forward import ModelPhotometry

pytestmark = pytest.mark.usefixtures("one_thread")


class KnownTarget:
    """A target with a known density (a Gaussian mixture) and a wide, offset first proposal."""

    def __init__(self, means, sds, fracs, q_mean, q_sd) -> None:
        self.comps = [multivariate_normal(m, s**2) for m, s in zip(means, sds, strict=True)]
        self.log_fracs = np.log(fracs)
        self.q = multivariate_normal(q_mean, q_sd**2)

    def first(self, n, rng):
        return self.evaluate(self.q.rvs(n, random_state=rng), rng)

    def evaluate(self, u, rng):
        u = np.atleast_2d(u)
        logp = logsumexp([f + c.logpdf(u) for f, c in zip(self.log_fracs, self.comps,
                                                           strict=True)], axis=0)  # fmt: skip
        return {"u": u, "log_target": logp, "log_first": self.q.logpdf(u)}

    def log_q(self, comp, pts):
        return pts["log_first"] if comp is None else comp.logpdf(pts["u"])


def test_adaptation_recovers_a_narrow_offset_gaussian():
    dim, sd = 6, 0.05
    target = KnownTarget([np.full(dim, 0.3)], [sd], [1.0], np.zeros(dim), 0.5)
    pts, log_w, ess, history = adaptive_importance(target, 2000, 6, 1500, seed=1)
    w = np.exp(log_w)
    assert w.sum() == pytest.approx(1.0)
    assert history[0]["ess"] < 20  # the first proposal alone is useless
    assert ess > 500
    mean = w @ pts["u"]
    cov = (pts["u"] - mean).T @ ((pts["u"] - mean) * w[:, None])
    assert np.abs(mean - 0.3).max() < 0.2 * sd
    assert np.sqrt(np.diag(cov)) == pytest.approx(np.full(dim, sd), rel=0.1)


def test_adaptation_keeps_both_modes_with_their_mass():
    target = KnownTarget([[-1.0, 0.0], [1.0, 0.5]], [0.1, 0.1], [0.3, 0.7], [0.0, 0.0], 1.5)
    pts, log_w, ess, _ = adaptive_importance(target, 2000, 5, 1500, seed=2)
    right = np.exp(log_w)[pts["u"][:, 0] > 0].sum()
    assert right == pytest.approx(0.7, abs=0.03)
    assert ess > 1000


def test_kernel_mixture_is_normalised_and_draws_from_itself():
    rng = np.random.default_rng(0)
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    mix = _KernelMixture(np.array([[0.0, 0.0], [1.0, -1.0]]), np.array([0.25, 0.75]), cov)
    x = mix.rvs(200_000, rng)
    assert x.mean(0) == pytest.approx([0.75, -0.75], abs=0.01)
    grid = np.stack(np.meshgrid(np.linspace(-2, 3, 251), np.linspace(-3, 2, 251)), -1)
    dens = np.exp(mix.logpdf(grid.reshape(-1, 2)))
    assert dens.sum() * 0.02**2 == pytest.approx(1.0, abs=1e-3)
    ref = 0.25 * multivariate_normal([0, 0], cov).pdf([0.5, 0.2]) + 0.75 * multivariate_normal(
        [1, -1], cov).pdf([0.5, 0.2])  # fmt: skip
    assert np.exp(mix.logpdf(np.array([[0.5, 0.2]])))[0] == pytest.approx(ref, rel=1e-10)


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
    res = importance_sample(small_estimator, model, sps, flux, err, 1.5, n=1000, rounds=5,
                            likelihood="noise", seed=0)  # fmt: skip
    w = res.weights
    assert w.sum() == pytest.approx(1.0) and res.ess > 100
    assert res.samples.shape == (len(w), 6) and res.labels[0] == "mass"
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
    out = fit_model(obs, model, sps, sbi=True, estimator=small_estimator, sbi_seed=1,
                    sbi_refine=True, sbi_refine_ndraws=1000, sbi_refine_rounds=4)  # fmt: skip
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
    with pytest.raises(ValueError, match="sbi_refine=True needs sps"):
        fit_model(obs, model, None, sbi=True, estimator=small_estimator, sbi_refine=True)


def test_free_redshift_prior_cuts_tage_at_the_age_of_the_universe():
    from prospect_sbi.cosmology import age_of_universe
    from prospect_sbi.fitting.importance import _Target

    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    target = _Target.__new__(_Target)  # the prior alone: no estimator needed
    target.model, idx = model, model.theta_index
    target._tage = (idx["zred"].start, idx["tage"].start, model.config_dict["tage"]["prior"])
    theta = np.repeat(model.theta[None], 2, axis=0)
    theta[:, idx["zred"]] = 3.0
    tuniv = float(age_of_universe(3.0))
    theta[:, idx["tage"].start] = [0.5 * tuniv, 1.1 * tuniv]
    lp = target._log_prior(theta)
    prior = model.config_dict["tage"]["prior"]
    lo, hi = prior.params["mini"], prior.params["maxi"]
    # the TopHat renormalised to [lo, tuniv]
    expected = model.prior_product(theta[:1])[0] + np.log((hi - lo) / (tuniv - lo))
    assert lp[0] == pytest.approx(expected) and lp[1] == -np.inf


def test_importance_sample_errors(sps, small_estimator, bright_mock):
    import copy

    model, flux, err, _ = bright_mock
    with pytest.raises(ValueError, match="n must be >= 2 and rounds >= 1; got n=1"):
        importance_sample(small_estimator, model, sps, flux, err, 1.5, n=1)
    other = build_model("continuity_sfh", zred=(0.5, 5.0))
    with pytest.raises(ValueError, match="the estimator has no target for the model's"):
        importance_sample(small_estimator, other, sps, flux, err, 1.5, n=10)
    unjittered = copy.copy(small_estimator)
    unjittered.training = {**small_estimator.training, "jitter": 0.0}
    with pytest.raises(ValueError, match="trained with jitter > 0"):
        importance_sample(unjittered, model, sps, flux, err, 1.5, n=10)
