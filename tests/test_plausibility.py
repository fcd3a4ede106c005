"""No silent wrong answers: unit slips refused, doubtful objects warned about and flagged.

Faint galaxies (AB 23.5-25.5 in F444W, z 1.5-3) of the pretrained ``jades-parametric`` model,
with catalogue-like errors (10 times the pixel depth, 5% floor), passed with the unit slips
testers made. Real JADES data must pass without a false alarm.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from prospect_sbi import AmortizedPosterior, pretrained_model
from prospect_sbi.posterior.plausibility import (
    NoiseRange,
    ObservationWarning,
    PriorEdgeWarning,
    check_errors,
    flag_observations,
    prior_edge_flags,
)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def post():
    return AmortizedPosterior.pretrained("jades-parametric")


@pytest.fixture(scope="module")
def faint(post, _sps_instance):
    """Ten faint galaxies: (flux, err, zred, log10 formed mass), maggies."""
    from prospect_sbi.forward import ModelPhotometry

    model = pretrained_model("jades-parametric")
    phot = ModelPhotometry(model, _sps_instance, post.filters)
    rng = np.random.default_rng(0)
    idx = model.theta_index
    theta = np.tile(model.theta, (10, 1))
    theta[:, idx["zred"]] = rng.uniform(1.5, 3.0, (10, 1))
    theta[:, idx["tage"]] = 1.0
    theta[:, idx["mass"]] = 1e9
    f444 = post.filters.index("jwst_f444w")
    maggies = phot(theta)[0]
    theta[:, idx["mass"].start] *= 10 ** (-0.4 * rng.uniform(23.5, 25.5, 10)) / maggies[:, f444]
    maggies = phot(theta)[0]
    err = np.hypot(10 * post.noise.depth, 0.05 * maggies)
    flux = maggies + err * rng.standard_normal(maggies.shape)
    return flux, err, theta[:, idx["zred"].start], np.log10(theta[:, idx["mass"].start])


def _quiet(call, *args, **kwargs):
    """Run ``call`` and fail on any ObservationWarning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ObservationWarning)
        return call(*args, **kwargs)


def test_clean_faint_galaxies_pass_unflagged(post, faint):
    flux, err, zred, _ = faint
    table = _quiet(post.summarize, flux, err, zred=zred, n=200, seed=0)
    assert list(table["flag"]) == ["ok"] * 10


def test_jy_as_maggies_one_galaxy_is_warned_about_and_flagged(post, faint):
    flux, err, zred, log_mass = faint
    with pytest.warns(
        ObservationWarning,
        match=r"1 of 1 objects are brighter than 3x the "
        r"training set's 99th-percentile flux .* Jy passed as maggies",
    ):
        table = post.summarize(flux[:1] * 3631, err[:1] * 3631, zred=zred[:1], n=300, seed=0)
    flags = table["flag"][0].split(";")
    assert "bright" in flags and "mass_at_prior_max" in flags, flags
    assert table["mass_p50"][0] > 10**11.5  # what the tester saw: the prior's edge, 10^12
    with pytest.warns(PriorEdgeWarning, match="pile on the upper edge of the mass prior"):
        post.sample(flux[:1] * 3631, err[:1] * 3631, 300, zred=zred[:1], seed=0)


def test_jy_as_maggies_ten_rows_refused(post, faint):
    flux, err, zred, _ = faint
    with pytest.raises(
        ValueError,
        match=r"median flux .* of the 10 objects is brighter than "
        r"99% of the training fluxes.*Jy passed as maggies",
    ):
        post.sample(flux * 3631, err * 3631, 10, zred=zred)


@pytest.mark.parametrize(
    ("factor", "match"),
    [
        (1 / 3631, r"maggies declared as Jy \(x 1/3631\)"),
        (1e-9, r"Jy values read as nJy or uJy \(x 1e-9, x 1e-6\)"),
    ],
)
def test_fluxes_scaled_down_refused(post, faint, factor, match):
    flux, err, zred, _ = faint
    with pytest.raises(ValueError, match=r"of the errors are below the smallest error .*" + match):
        post.sample(flux * factor, err * factor, 10, zred=zred)
    with pytest.raises(ValueError, match=match):  # one galaxy is enough
        post.sample(flux[0] * factor, err[0] * factor, 10, zred=zred[0])


def test_errors_far_below_the_noise_model_refused(post, faint):
    flux, err, zred, _ = faint
    with pytest.raises(
        ValueError,
        match=r"100% of the errors are below the smallest .*median "
        r"S/N 2e\+11.*variances",
    ):
        post.sample(flux, err * 1e-10, 10, zred=zred)


def test_flux_and_err_swapped_refused(post, faint):
    flux, err, zred, _ = faint
    with pytest.raises(ValueError, match=r"flux and err look swapped: in 10 of 10 objects"):
        post.sample(err, flux, 10, zred=zred)
    with pytest.raises(ValueError, match=r"flux and err look swapped: in 1 of 1 objects"):
        post.sample(err[3], flux[3], 10, zred=zred[3])


def test_all_negative_fluxes_refused(post, faint):
    flux, err, zred, _ = faint
    with pytest.raises(
        ValueError,
        match=r"every flux is negative \(median S/N -1[0-9]\.[0-9]\)"
        r": a sign flipped",
    ):
        post.sample(-np.abs(flux), err, 10, zred=zred)


def test_a_flux_far_below_zero_is_flagged(post, faint):
    flux, err, zred, _ = faint
    bad = flux.copy()
    bad[2, 5] = -8 * err[2, 5]
    with pytest.warns(
        ObservationWarning, match="1 of 10 objects have fluxes more than 5 sigma below zero"
    ):
        obs = post.prepare(bad, err, zred)
    assert obs.flags.tolist() == [""] * 2 + ["negative_flux"] + [""] * 7


def test_n_must_be_a_number_of_draws(post, faint):
    flux, err, zred, _ = faint
    with pytest.raises(
        TypeError,
        match=r"n must be an integer number of draws; got 2.3 "
        r"\(float\): a redshift\? pass zred=",
    ):
        post.sample(flux, err, 2.3)


def test_log_prob_refuses_theta_outside_every_prior_box(post, faint):
    flux, err, zred, log_mass = faint
    theta = post.sample(flux, err, 5, zred=zred, seed=0)[:, 0]  # (10, D)
    assert np.all(np.isfinite(post.log_prob(theta, flux, err, zred=zred)))
    theta[:, post.labels.index("mass")] = log_mass  # log10 of the LogUniform mass
    with pytest.raises(
        ValueError,
        match=r"no theta lies inside the prior support: mass = "
        r"[0-9.]+ is outside \[10000, 1e\+12\] \(a log10 of a LogUniform "
        r"parameter\?\)",
    ):
        post.log_prob(theta, flux, err, zred=zred)


def test_noise_range_of_the_jades_noise(post):
    rng = NoiseRange.of(post.noise)
    depth = post.noise.depth
    # the smallest error: a detection just above its limit with a small magnitude error
    # (measured 0.014-0.051 depth; the JOF pixels' errors are 0.115 depth and more); the bound
    # of the flag: one at the limit with the 0.01 mag floor
    assert np.all(rng.err_min > 0.005 * depth) and np.all(rng.err_min < 0.1 * depth)
    np.testing.assert_allclose(rng.err_bound, 0.4 * np.log(10) * 0.01 * depth, rtol=1e-12)
    assert rng.rel_floor == pytest.approx(0.4 * np.log(10) * 0.01, rel=0.1)
    assert np.all(rng.max_err >= 3 * depth)


def test_flag_bound_is_a_bound_of_the_noise_not_a_sample_minimum(post):
    """200,000 objects of the training noise never fall below err_bound (err_min, the minimum
    of the range's own 20,000 draws, flagged 1 pixel in 1000 of a mock map); an error a unit
    slip scaled down is flagged."""
    rng, gen = NoiseRange.of(post.noise), np.random.default_rng(1)
    true = post.noise.depth * 10 ** gen.uniform(-1, 6, (200_000, 14))
    true[:20_000] = post.noise.limits * gen.uniform(1.0, 1.05, (20_000, 14))  # at the limit
    flux, err = post.noise.apply(true, gen)
    assert np.all(err >= rng.err_bound) and np.min(err / rng.err_bound) < 1.5
    assert np.mean(np.any(err < rng.err_min, axis=1)) > 1e-4  # why err_min is not the bound
    assert "err_below_noise" not in set(flag_observations(flux, err, rng, None))
    flags = flag_observations(flux[:3] / 3631, err[:3] / 3631, rng, None)
    assert all("err_below_noise" in f for f in flags)
    # a noise model without a bound of its own: a margin below its draws' minimum
    from prospect_sbi.noise import EmpiricalNoise

    emp = EmpiricalNoise.from_catalog(flux[20_000:60_000], err[20_000:60_000], post.noise.bands)
    assert emp.smallest_error() is None
    e_rng = NoiseRange.of(emp)
    _, e_err = emp.apply(true[20_000:], gen)
    assert np.all(e_err >= e_rng.err_bound) and np.all(e_rng.err_bound > 0)


def test_training_noise_is_neither_refused_nor_flagged(post):
    """2000 prior-like objects through the estimator's own noise: no error, no flag."""
    rng = np.random.default_rng(4)
    true = post.noise.depth * 10 ** rng.uniform(-1, 5, (2000, 1)) * rng.uniform(0.5, 2, (2000, 14))
    flux, err = post.noise.apply(true, rng)
    ranges = NoiseRange.of(post.noise)
    check_errors(flux, err, ranges)
    flags = flag_observations(flux, err, ranges, post.header["flux_stats"])
    assert np.sum(flags != "") <= 2, np.unique(flags, return_counts=True)


def test_prior_edge_flags(post):
    labels, space = post.labels, post.space
    draws = np.zeros((3, 100, len(labels)), dtype=np.float32)
    m = labels.index("mass")
    draws[0, :, m] = 10 ** np.linspace(11.0, 11.5, 100)  # inside
    draws[1, :, m] = 10 ** np.linspace(11.88, 12.0, 100)  # 2/3 of the draws within 0.08 dex
    draws[2, :, m] = 10 ** np.linspace(4.0, 4.1, 100)
    assert prior_edge_flags(draws, labels, space).tolist() == [
        "",
        "mass_at_prior_max",
        "mass_at_prior_min",
    ]


@pytest.mark.data
def test_a_mistyped_data_folder_is_an_error_not_another_folder(tmp_path, monkeypatch):
    import re

    from prospect_sbi.jades_data import find_data_dir

    typo = tmp_path / "nope"
    monkeypatch.setenv("PROSPECT_SBI_DATA", str(typo))
    with pytest.raises(FileNotFoundError, match=re.escape(f"PROSPECT_SBI_DATA={typo} is not")):
        find_data_dir()  # it used to fall back to ../shared/data
    monkeypatch.setenv("PROSPECT_SBI_DATA", str(tmp_path))
    assert find_data_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_data_dir(typo)


def test_real_jades_data_pass_without_alarm(post, shared_data):
    """The 99 spec-z galaxies (5% floor) and the three JOF cutouts' pixels: no flag, no alarm."""
    from prospect_sbi.jades_data import read_jof_cutouts, read_specz_catalogue
    from prospect_sbi.pixels import select_pixels

    cat = read_specz_catalogue(shared_data, post.filters, err_floor=0.05)
    inside = (cat.zred > 0.11) & (cat.zred < 9.9)
    obs = _quiet(post.prepare, cat.flux[inside], cat.err[inside], cat.zred[inside])
    assert len(obs) == 98 and set(obs.flags) == {""}
    for gid, images in read_jof_cutouts(shared_data).items():
        images = images.matched(post.filters)
        flux, err = images.pixels(select_pixels(images))
        obs = _quiet(post.prepare, flux, err, images.zred)
        assert set(obs.flags) == {""}, (gid, np.unique(obs.flags, return_counts=True))
    # the same catalogue in the wrong units is refused
    with pytest.raises(ValueError, match="are these Jy"):
        post.prepare(cat.flux[inside] * 3631, cat.err[inside] * 3631, cat.zred[inside])
    with pytest.raises(ValueError, match="maggies declared as Jy"):
        post.prepare(cat.flux[inside] / 3631, cat.err[inside] / 3631, cat.zred[inside])
