"""A galaxy's redshift posterior, its modes, and its propagation into pixel maps."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from prospect_sbi.fitting.redshift import (
    RedshiftPosterior,
    count_modes,
    marginal_draws,
    redshift_posterior,
    zred_given,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_count_modes_finds_two_breaks_and_one_peak():
    rng = np.random.default_rng(0)
    # a Balmer break at z ~ 0.3 (35%) against a Lyman break at z ~ 3 (65%)
    z = np.concatenate(
        [
            np.expm1(rng.normal(np.log(1.3), 0.03, 350)),
            np.expm1(rng.normal(np.log(4.0), 0.04, 650)),
        ]
    )
    modes, masses = count_modes(z)
    assert len(modes) == 2
    assert modes[0] == pytest.approx(3.0, abs=0.15) and modes[1] == pytest.approx(0.3, abs=0.05)
    assert masses == pytest.approx([0.65, 0.35], abs=0.03)
    # one broad peak: its wiggles are not modes; a 2% bump is dropped by min_mass
    one = np.expm1(rng.normal(np.log(3.0), 0.1, 1000))
    assert len(count_modes(one)[0]) == 1
    bump = np.concatenate([one, np.full(20, 0.2) + rng.normal(0, 0.005, 20)])
    assert len(count_modes(bump)[0]) == 1
    assert len(count_modes(bump, min_mass=0.01)[0]) == 2
    post = RedshiftPosterior(z, "test")
    assert post.multimodal and post.summary()["zphot_nmodes"] == 2
    assert post.header()["ZMULTI"][0] is True
    assert not RedshiftPosterior(one).multimodal
    with pytest.raises(ValueError, match="no finite redshift draw"):
        count_modes([np.nan])


def test_redshift_posterior_grid_and_ruled_out():
    z = np.linspace(1.0, 2.0, 1001)
    post = RedshiftPosterior(z, "uniform")
    assert post.median == pytest.approx(1.5) and post.p16 == pytest.approx(1.16, abs=1e-3)
    np.testing.assert_allclose(post.grid(4), [1.125, 1.375, 1.625, 1.875], atol=1e-3)
    lo, hi = post.interval(0.997)
    assert lo == pytest.approx(1.0015, abs=1e-3) and hi == pytest.approx(1.9985, abs=1e-3)
    np.testing.assert_array_equal(post.ruled_out([0.9, 1.5, 2.1]), [True, False, True])
    counts, edges = post.histogram(10)
    assert counts.sum() == 1001 and edges[0] == pytest.approx(1.0)


def test_zred_given_forms(tmp_path, small_estimator, small_photoz):
    assert zred_given(2.0).value == 2.0
    t = zred_given({3: 1.5, 4: 2.5})
    assert t.kind == "table" and t.of(4) == 2.5 and np.isnan(t.of(9))
    Table({"id": [1, 2], "z": [0.7, -1.0]}).write(tmp_path / "z.csv")
    f = zred_given(tmp_path / "z.csv")
    assert f.of(1) == 0.7 and np.isnan(f.of(2))  # z <= 0: no usable redshift
    g = zred_given("infer", small_estimator, small_photoz, n_zred=10)
    assert g.kind == "infer" and g.photoz is small_photoz and g.n_zred == 10
    with pytest.raises(ValueError, match="none is shipped for 'my.sbi'"):
        zred_given("infer", "my.sbi")
    with pytest.raises(ValueError, match="is conditioned on the redshift"):
        zred_given("infer", small_estimator, small_estimator)
    with pytest.raises(ValueError, match="zred must be a redshift, a table"):
        zred_given([1.0, 2.0])
    with pytest.raises(ValueError, match="finite redshift > 0"):
        zred_given(-1.0)


def test_photoz_posterior_and_marginal_draws(small_estimator, small_photoz, z2_mock):
    obs, _ = z2_mock
    flux, err = obs["maggies"], obs["maggies_unc"]
    zp = redshift_posterior(small_photoz, flux, err, 1000, seed=1)
    assert isinstance(zp, RedshiftPosterior)
    assert 1.2 < zp.median < 3.0 and zp.p16 < 2.0 < zp.p84 + 0.3
    draws, diag = marginal_draws(small_estimator, flux[None], err[None], zp.grid(10), 200, seed=3)
    assert draws.shape == (1, 200, len(small_estimator.labels)) and diag is None
    k = small_estimator.labels.index("log_mstar")
    assert abs(np.median(draws[0, :, k]) - 10.5) < 0.4
    with pytest.raises(ValueError, match="multiple of the 10 redshifts"):
        marginal_draws(small_estimator, flux[None], err[None], zp.grid(10), 205)
