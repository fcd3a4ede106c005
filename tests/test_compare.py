"""SBI vs dynesty comparison: metrics on known distributions, and a short real run."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from astropy.table import Table

from prospect_sbi import build_model, jades_filters
from prospect_sbi.cosmology import age_of_universe
from prospect_sbi.fitting import Comparison, compare, fixed_redshift_model, posterior_metrics
from prospect_sbi.forward import ModelPhotometry
from prospect_sbi.plotting.corner import overlay_corner

pytestmark = pytest.mark.usefixtures("one_thread")


def test_metrics_of_known_gaussians():
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, 200_000)
    shifted = rng.normal(0.5, 1.0, 200_000)
    m = posterior_metrics(shifted, ref)
    assert m["dmed_over_sigma"] == pytest.approx(0.5, abs=0.02)
    assert m["width_ratio"] == pytest.approx(1.0, abs=0.02)
    assert m["wasserstein"] == pytest.approx(0.5, abs=0.02)  # W1 of a pure shift = the shift
    wide = posterior_metrics(rng.normal(0.0, 2.0, 200_000), ref)
    assert wide["width_ratio"] == pytest.approx(2.0, abs=0.04)
    assert wide["dmed_over_sigma"] == pytest.approx(0.0, abs=0.03)
    # weights: the reference as a weighted uniform grid equals the normal
    grid = np.linspace(-6, 6, 4001)
    w = np.exp(-0.5 * grid**2)
    mw = posterior_metrics(shifted, grid, w / w.sum())
    assert mw["dmed_over_sigma"] == pytest.approx(0.5, abs=0.02)
    assert mw["wasserstein"] == pytest.approx(0.5, abs=0.02)


def _compare_saying(*args, **kwargs) -> tuple:
    """:func:`compare` and the messages of every warning it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = compare(*args, **kwargs)
    return out, [str(w.message) for w in caught]


def test_compare_short_dynesty_run(sps, small_estimator, tmp_path):
    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    fixed = fixed_redshift_model(model, 1.5)
    theta = fixed.theta.copy()
    theta[fixed.theta_index["mass"]] = 10**11
    maggies, _ = ModelPhotometry(fixed, sps, jades_filters())(theta)
    flux, err = small_estimator.noise.apply(maggies, np.random.default_rng(2))
    obs = {"maggies": flux, "maggies_unc": err, "filters": jades_filters(), "zred": 1.5}
    out, said = _compare_saying(
        obs,
        model,
        sps,
        small_estimator,
        n_draws=1000,
        seed=0,
        plot=tmp_path / "corner.png",
        refine=True,
        refine_ndraws=500,
        nested_nlive_init=30,
        nested_maxiter_init=300,
        nested_sample="rwalk",
        nested_walks=5,
    )
    names = list(out.table["param"])
    assert names[: fixed.ndim] == fixed.theta_labels()  # zred is known: not compared
    assert {"log_mstar", "log_sfr100", "mwa"} <= set(names)
    assert np.all(np.isfinite(out.table["dmed_over_sigma"]))
    assert np.all(out.table["width_ratio"] > 0) and np.all(out.table["wasserstein"] >= 0)
    assert out.samples["weights"].sum() == pytest.approx(1.0)
    assert out.speedup == pytest.approx(out.t_dynesty / out.t_sbi) and out.speedup > 1
    row = names.index("log_mstar")
    assert abs(out.table["sbi_p50"][row] - out.table["dynesty_p50"][row]) < 0.5
    assert (tmp_path / "corner.png").stat().st_size > 10_000
    sed = tmp_path / "corner_sed.png"  # the observed vs model SED with the SFH, beside it
    assert out.sed_plot == str(sed) and sed.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sed.stat().st_size > 10_000
    # the refined draws: their own columns, weights and ESS
    assert np.all(np.isfinite(out.table["is_dmed_over_sigma"]))
    assert abs(out.table["is_p50"][row] - out.table["dynesty_p50"][row]) < 0.5
    assert out.samples["refined_weights"].sum() == pytest.approx(1.0)
    assert out.ess > 10 and out.t_refine > out.t_sbi
    # the same evidence convention as dynesty's, end to end (the likelihood's normalisation is
    # ~+300 here). A 300-iteration, 30-point run is a rough reference: on this object its logz
    # scattered from 25.9 below to 3.8 above the refined one between runs that differed only
    # in BLAS threads or in the photometry's float32 rounding, while the refined logz stayed
    # within 0.1. So this bound catches a likelihood normalisation left out (~300), and the
    # prior's convention (a density in log M* would be off by ~26) is checked exactly in
    # test_refined_prior_is_the_one_dynesty_integrates
    assert abs(out.logz_refined - out.logz_dynesty) < 50 and out.khat < 1.0
    # the best fit each found, of the same likelihood (normalisation included): the refined
    # draws reach 602.3, this 300-iteration run stops at 595.0 (short of the peak)
    assert out.best_lnlike_refined == out.refined["sampling"][0]["logl"].max()
    assert out.best_lnlike_dynesty == out.dynesty["sampling"][0]["logl"].max()
    gap = out.best_lnlike_refined - out.best_lnlike_dynesty
    assert -2 < gap < 50
    # a run cut short of the peak by more than 2 is named as the side that is off, once
    said = [m for m in said if "best fit is" in m]
    assert out.missed == ("dynesty" if gap > 2 else "")
    assert said == ([out.missed_message()] if gap > 2 else []), said
    assert out.title.endswith("dynesty missed the mode") == (gap > 2)


def test_slice_samplers_get_no_random_walk_steps(sps, small_estimator, z2_mock):
    """compare's default nested_walks (16) is rwalk's: passed to a slice sampler, dynesty
    warned "Specifying walks option while using slice sampler does not make sense"."""
    obs, _ = z2_mock
    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    out, said = _compare_saying(
        obs,
        model,
        sps,
        small_estimator,
        n_draws=200,
        nested_sample="rslice",
        nested_nlive_init=20,
        nested_maxiter_init=40,
    )
    assert not [m for m in said if "walks" in m]
    assert len(out.dynesty["sampling"][0]["logl"]) >= 40


def test_comparison_names_the_sampler_that_missed_the_mode():
    """The sampler whose best ln L is below the other's by more than MISSED_LNL = 2 is named
    (the numbers of real galaxy 167571 when dynesty's prior was wrong, session 21)."""
    c = Comparison(Table(), 158.2, 0.57, {}, {}, {})
    assert c.missed == "" and c.missed_message() == ""  # without refine: no verdict
    c.best_lnlike_dynesty, c.best_lnlike_refined = 303.89, 323.26
    assert c.missed == "dynesty"
    assert c.missed_message().startswith("dynesty's best fit is 19.4 below the importance")
    c.best_lnlike_refined = 300.0
    assert c.missed == "refined" and " 3.9 below dynesty's" in c.missed_message()
    c.best_lnlike_refined = 305.8  # within MISSED_LNL = 2: both reached the peak
    assert c.missed == "" and c.missed_message() == ""


def test_refined_prior_is_the_one_dynesty_integrates(sps, small_estimator):
    """The refinement's log prior equals Prospector's ``prior_product`` of the model dynesty
    samples at a known redshift (tage cut at the age of the universe), so the two evidences
    are of one prior: a density in log M* instead of M* would differ by ln(M ln 10), ~26."""
    from prospect_sbi.cosmology import age_of_universe
    from prospect_sbi.transforms import draw_theta

    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    fixed = fixed_redshift_model(model, 1.5)
    refiner = small_estimator.refiner(sps, "noise")
    theta = draw_theta(refiner.model, np.random.default_rng(0).uniform(size=(1000, 7)))
    theta[:, refiner.izred] = 1.5
    theta = theta[theta[:, refiner.model.theta_index["tage"].start] < age_of_universe(1.5)]
    free = np.delete(theta, refiner.izred, axis=1)
    ours = refiner.log_prior(theta)
    theirs = np.array([fixed.prior_product(t) for t in free])
    assert len(theta) > 200 and np.all(np.isfinite(theirs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


def test_free_redshift_prior_is_the_one_dynesty_integrates(sps, small_photoz):
    """With the redshift free, the prior dynesty samples (NoiseLikelihood with
    ``nested=True`` over the model's unit cube) is the refinement's, the training sets': tage
    cut at the age of the universe at each draw's own zred, the rest renormalised. The old
    code read the zred of the model's previous call (at first its init): a photo-z model
    starting at zred 10 (0.47 Gyr) refused every older tage, and dynesty stayed young (real
    galaxy 167571: best ln L 19 below the exact posterior's at any nlive or sampler; now
    both agree, log Z 301.2 and 301.3)."""
    from prospect_sbi.noise import NoiseLikelihood
    from prospect_sbi.transforms import draw_theta

    refiner = small_photoz.refiner(sps, "flux")
    model = refiner.model
    lnp = NoiseLikelihood(ModelPhotometry(model, sps, small_photoz.filters))
    blank = {"maggies": np.full(14, np.nan), "maggies_unc": np.full(14, np.nan)}  # ln L = 0
    theta = draw_theta(model, np.random.default_rng(1).uniform(size=(300, model.ndim)))
    ours = refiner.log_prior(theta)
    theirs = np.array([lnp(t, model, blank) for t in theta])
    nested = np.array([lnp(t, model, blank, nested=True) for t in theta])
    assert 50 < np.sum(np.isinf(ours)) < 250  # tage older than the universe: zero prior
    np.testing.assert_array_equal(np.isinf(theirs), np.isinf(ours))
    ok = np.isfinite(ours)
    np.testing.assert_allclose(theirs[ok], ours[ok], rtol=1e-10, atol=1e-10)
    # the renormalisation depends on zred, so dynesty's likelihood carries it
    it, iz = model.theta_index["tage"].start, model.theta_index["zred"].start
    lo, hi = (model.config_dict["tage"]["prior"].params[k] for k in ("mini", "maxi"))
    cut = -np.log((age_of_universe(theta[ok, iz]) - lo) / (hi - lo))  # a TopHat's CDF
    np.testing.assert_allclose(nested[ok], cut, rtol=1e-10)
    assert np.all(theta[~ok, it] > age_of_universe(theta[~ok, iz]))


def test_overlay_corner_shape_error(tmp_path):
    with pytest.raises(ValueError, match="expected \\(n, 2\\)"):
        overlay_corner(tmp_path / "x.png", np.zeros((5, 3)), np.zeros((5, 2)), ["a", "b"])
