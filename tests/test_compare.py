"""SBI vs dynesty comparison: metrics on known distributions, and a short real run."""

from __future__ import annotations

import numpy as np
import pytest

from prospect_sbi import build_model, jades_filters
from prospect_sbi.fitting import compare, fixed_redshift_model, posterior_metrics
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


def test_compare_short_dynesty_run(sps, small_estimator, tmp_path):
    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    fixed = fixed_redshift_model(model, 1.5)
    theta = fixed.theta.copy()
    theta[fixed.theta_index["mass"]] = 10**11
    maggies, _ = ModelPhotometry(fixed, sps, jades_filters())(theta)
    flux, err = small_estimator.noise.apply(maggies, np.random.default_rng(2))
    obs = {"maggies": flux, "maggies_unc": err, "filters": jades_filters(), "zred": 1.5}
    out = compare(obs, model, sps, small_estimator, n_draws=1000, seed=0,
                  plot=tmp_path / "corner.png", refine=True, refine_ndraws=500,
                  nested_nlive_init=30, nested_maxiter_init=300, nested_sample="rwalk",
                  nested_walks=5)  # fmt: skip
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
    # the refined draws: their own columns, weights and ESS
    assert np.all(np.isfinite(out.table["is_dmed_over_sigma"]))
    assert abs(out.table["is_p50"][row] - out.table["dynesty_p50"][row]) < 0.5
    assert out.samples["refined_weights"].sum() == pytest.approx(1.0)
    assert out.ess > 10 and out.t_refine > out.t_sbi
    # the same evidence convention as dynesty's (the likelihood's normalisation, ~+300 here,
    # and the prior's: a density in log M* instead of M* would shift it by ~26). A short run
    # stopped at 300 iterations has not reached the peak and underestimates its evidence
    # (seen: 4-12 below), never overestimates it by more than its error
    assert -3 < out.logz_refined - out.logz_dynesty < 20 and out.khat < 1.0


def test_overlay_corner_shape_error(tmp_path):
    with pytest.raises(ValueError, match="expected \\(n, 2\\)"):
        overlay_corner(tmp_path / "x.png", np.zeros((5, 3)), np.zeros((5, 2)), ["a", "b"])
