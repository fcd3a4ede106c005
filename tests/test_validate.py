"""Calibration report: TARP, SBC and coverage on exact posteriors; the report on a real estimator;
misspecified mocks."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from conftest import one_torch_thread

import prospect_sbi.validate as pv
from prospect_sbi.posterior.metrics import LEVELS, coverage, coverage_noise
from prospect_sbi.validate import (
    calibrate,
    estimator_model_kwargs,
    misspecified_kwargs,
    mock_seed,
    outlier_fraction,
    photoz_stats,
    photoz_table,
    sbc_pvalues,
    sbc_ranks,
    tarp_coverage,
    tarp_fractions,
    tarp_references,
    validate,
)


# ---------------------------------------------------------------- exact Gaussian posteriors
def gaussian_case(
    rng: np.random.Generator,
    width: float = 1.0,
    shift: float = 0.0,
    b: int = 1000,
    n: int = 500,
    d: int = 2,
) -> tuple:
    """Posteriors N(mu_i, s_i^2) per object, truths drawn from them; draws of width * s_i."""
    mu = rng.normal(0, 3, size=(b, d))
    s = rng.uniform(0.3, 1.0, size=(b, d))
    truth = mu + s * rng.normal(size=(b, d))
    draws = mu[:, None] + shift * s[:, None] + width * s[:, None] * rng.normal(size=(b, n, d))
    return draws, truth


def tarp_error(draws: np.ndarray, truth: np.ndarray, rng: np.random.Generator) -> tuple:
    refs = tarp_references(len(truth), truth.shape[1], rng)
    f = tarp_fractions(draws, truth, refs, truth.min(0), truth.max(0))
    return tarp_coverage(f)


def test_calibrated_posterior_passes(rng):
    draws, truth = gaussian_case(rng)
    ecp, err = tarp_error(draws, truth, rng)
    assert ecp[0] == 0.0 and ecp[-1] == 1.0
    assert err < 0.06  # measured 0.026
    assert np.abs(ecp[[5, 25, 45]] - [0.1, 0.5, 0.9]).max() < 0.03
    cov_err = np.abs(coverage(draws, truth) - LEVELS).max(1)
    assert cov_err.max() < 0.06  # measured 0.03
    p = sbc_pvalues(sbc_ranks(draws, truth), draws.shape[1])
    assert p.shape == (2,) and p.min() > 1e-3  # measured 0.40, 0.35


def test_overconfident_posterior_fails(rng):
    draws, truth = gaussian_case(rng, width=0.3)
    ecp, err = tarp_error(draws, truth, rng)
    assert err > 0.2  # measured 0.29
    assert ecp[5] > 0.25 and ecp[45] < 0.75  # flatter than the diagonal: 0.34 at 0.1, 0.62 at 0.9
    cov_err = np.abs(coverage(draws, truth) - LEVELS).max(1)
    assert cov_err.min() > 0.3  # measured 0.52
    assert sbc_pvalues(sbc_ranks(draws, truth), draws.shape[1]).max() < 1e-10


def test_coverage_noise_bounds_calibrated_and_flags_miscalibrated():
    # exact posteriors: the measured coverage error stays under the chance level, in 19 of 20
    # test sets by construction (measured 0.020-0.045 against 0.047); 8% too wide a posterior
    # exceeds it on 4000 objects (0.038 against 0.024)
    rng = np.random.default_rng(5)
    noise = coverage_noise(1000, 500, n_labels=2)
    assert 0.025 < noise < 0.06, noise  # ~1.4 / sqrt(1000) for the largest of 2 x 49 levels
    errors = [np.abs(coverage(*gaussian_case(rng)) - LEVELS).max() for _ in range(10)]
    assert sum(e > noise for e in errors) <= 2, (errors, noise)
    # the chance level falls as 1 / sqrt(objects)
    assert coverage_noise(4000, 500, n_labels=2) == pytest.approx(noise / 2, rel=0.2)
    wide = np.abs(coverage(*gaussian_case(rng, width=1.08, b=4000)) - LEVELS).max()
    assert wide > coverage_noise(4000, 500, n_labels=2), wide
    with pytest.raises(ValueError, match="n_objects"):
        coverage_noise(0)


def test_underconfident_and_biased_posteriors(rng):
    draws, truth = gaussian_case(rng, width=2.5)
    ecp, err = tarp_error(draws, truth, rng)
    assert err > 0.15 and ecp[5] < 0.05 and ecp[45] > 0.95  # steeper: measured 0.24
    assert sbc_pvalues(sbc_ranks(draws, truth), draws.shape[1]).max() < 1e-10
    draws, truth = gaussian_case(rng, shift=1.0)
    assert sbc_pvalues(sbc_ranks(draws, truth), draws.shape[1]).max() < 1e-10


def test_sbc_ranks_ties_and_uniform_pvalue(rng):
    draws = np.zeros((2000, 9, 1))
    truth = np.zeros((2000, 1))  # every draw ties with the truth: ranks spread over 0..9
    ranks = sbc_ranks(draws, truth, rng)
    assert ranks.min() == 0 and ranks.max() == 9
    assert sbc_pvalues(ranks, 9)[0] > 1e-3
    # 1001 possible ranks in 20 bins: the expected counts account for the uneven bins.
    uniform = rng.integers(0, 1001, size=(50_000, 1))
    assert sbc_pvalues(uniform, 1000)[0] > 1e-3
    assert sbc_pvalues(np.full((500, 1), 3), 1000)[0] < 1e-50


def test_coverage_of_a_quantity_with_a_floor(rng):
    """A calibrated posterior whose truth and draws sit on a floor half the time (log_ssfr100
    at -14): ties split at random keep the coverage exact; counting them half does not."""

    def floored(shape):
        x = rng.normal(size=shape)
        return np.where(rng.random(shape) < 0.5, -14.0, x)

    truth, draws = floored((4000, 1)), floored((4000, 400, 1))
    err = np.abs(coverage(draws, truth) - LEVELS).max()
    assert err < 0.03
    half = (draws < truth[:, None]).mean(1) + 0.5 * (draws == truth[:, None]).mean(1)
    half_cov = (np.abs(half - 0.5)[..., None] <= LEVELS / 2).mean(0)
    assert np.abs(half_cov - LEVELS).max() > 0.2


def test_outlier_fraction():
    rng = np.random.default_rng(3)
    truth = rng.normal(size=(2000, 1))
    est = truth + 0.1 * rng.normal(size=(2000, 1))
    est[:200] += 5.0  # 10% catastrophic failures
    frac = outlier_fraction(est, truth)
    assert frac[0] == pytest.approx(0.1 + 0.9 * 0.0027, abs=0.01)


class GaussianPosterior:
    """Exact posterior of x = theta + N(0, 1) with a N(0, 3^2) prior, per coordinate."""

    labels = ["a", "b"]

    def __init__(self, width: float = 1.0) -> None:
        self.width = width

    def sample(self, flux, err, n, zred=None, seed=None):
        rng = np.random.default_rng(seed)
        var = 1.0 / (1.0 + 1.0 / 9.0)
        mu = var * flux
        return mu[:, None] + self.width * np.sqrt(var) * rng.normal(size=(len(flux), n, 2))


def gaussian_observations(b: int = 800) -> tuple:
    rng = np.random.default_rng(7)
    theta = 3.0 * rng.normal(size=(b, 2))
    return theta + rng.normal(size=(b, 2)), theta


def test_calibrate_report_and_files(tmp_path):
    flux, truth = gaussian_observations()
    good = calibrate(GaussianPosterior(), flux, np.ones_like(flux), truth, n=300, chunk_size=100)
    bad = calibrate(
        GaussianPosterior(0.4), flux, np.ones_like(flux), truth, n=300, name="too narrow"
    )
    t_good, t_bad = good.table, bad.table
    assert list(t_good["name"]) == ["a", "b"]
    assert np.all(t_good["r2"] > 0.85)  # 1 - 1/9 / (1 + 1/9) ~ 0.9
    assert np.all(np.abs(t_good["coverage_68"] - 0.68) < 0.05)
    assert np.all(t_bad["coverage_68"] < 0.4)
    assert good.tarp_err < 0.07 < 0.2 < bad.tarp_err
    assert np.all(t_bad["sbc_p"] < 1e-6) and np.all(t_good["sbc_p"] > 1e-3)
    assert good.medians.shape == (800, 2) and good.ood_share is None
    report = pv.ValidationReport("gaussian", good, {"narrow": bad})
    md = report.write(tmp_path).read_text()
    for name in (
        "tarp.png",
        "sbc_matched.png",
        "coverage_too_narrow.png",
        "predicted_matched.png",
    ):
        assert (tmp_path / name).stat().st_size > 5_000, name
    from astropy.table import Table

    back = Table.read(tmp_path / "metrics_too_narrow.ecsv")
    assert np.allclose(back["sbc_p"], t_bad["sbc_p"]) and back.meta["name"] == "too narrow"
    assert f"{t_good['r2'][0]:.3f}" in md and f"{bad.tarp_err:.3f}" in md
    assert "Summary: held-out and misspecified mocks" in md


def test_calibrate_checks_labels_and_shapes():
    flux, truth = gaussian_observations(10)
    with pytest.raises(ValueError, match="not among the estimator's"):
        calibrate(GaussianPosterior(), flux, flux, truth, labels=["a", "zz"], n=10)
    with pytest.raises(ValueError, match=r"expected \(10, 1\)"):
        calibrate(GaussianPosterior(), flux, flux, truth, labels=["a"], n=10)


def test_public_names_exist():
    for name in pv.__all__:
        assert hasattr(pv, name), name


def test_photoz_stats_on_known_numbers():
    z_true = np.array([0.5, 1.0, 2.0, 3.0, 7.0])
    dz = np.array([0.01, -0.02, 0.03, 0.2, -0.3])  # two outliers
    stats = photoz_stats(z_true + dz * (1 + z_true), z_true)
    assert stats["n"] == 5 and stats["bias"] == pytest.approx(0.01)
    assert stats["sigma_nmad"] == pytest.approx(1.48 * np.median(np.abs(dz - 0.01)))
    assert stats["outlier_frac"] == pytest.approx(0.4)
    assert np.isnan(photoz_stats(np.array([]), np.array([]))["sigma_nmad"])
    with pytest.raises(ValueError, match=r"z_phot \(3,\) and z_true \(2,\)"):
        photoz_stats(np.zeros(3), np.zeros(2))


def test_photoz_table_by_bin_subset_and_coverage():
    z_true = np.array([0.2, 0.8, 1.5, 2.5, 4.0, 20.0])  # 20 falls in the last bin, 6-10 empty
    dz = np.array([0.01, 0.3, -0.02, 0.0, 0.02, -0.5])
    rank = np.array([0.5, 0.99, 0.2, 0.5, 0.9, 0.0])  # inside the 68% interval: 0.5, 0.5
    bright = np.array([True, True, False, True, True, False])
    t = photoz_table(
        z_true + dz * (1 + z_true), z_true, rank, subsets={"all": True | bright, "bright": bright}
    )
    assert list(t["z_bin"][:6]) == ["all", "0-1", "1-3", "3-6", "6-10", "10-20"]
    assert list(t["subset"]) == ["all"] * 6 + ["bright"] * 6
    assert list(t["n"]) == [6, 2, 2, 1, 0, 1, 4, 2, 1, 1, 0, 0]
    np.testing.assert_allclose(t["outlier_frac"][:6], [2 / 6, 0.5, 0, 0, np.nan, 1])
    assert t["bias"][3] == pytest.approx(0.02) and np.isnan(t["sigma_nmad"][4])
    # central 68%: |rank - 0.5| <= 0.34 (0.5, 0.2, 0.5); 95%: <= 0.475 (and 0.9)
    assert t["coverage_68"][0] == pytest.approx(3 / 6) and t["coverage_95"][0] == 4 / 6
    assert t["coverage_68"][7] == pytest.approx(0.5)  # bright, 0-1: ranks 0.5, 0.99
    assert "coverage_68" not in photoz_table(z_true, z_true).colnames
    with pytest.raises(ValueError, match=r"subset 'x' has shape \(2,\); expected \(6,\)"):
        photoz_table(z_true, z_true, subsets={"x": np.ones(2, bool)})


def test_misspecified_kwargs():
    base = {"template": "parametric_sfh", "zred": (0.5, 5.0), "nebular": True, "dust_type": 0}
    name, kw = misspecified_kwargs(base, "sfh", (5.0, 12.0))
    assert name == "continuity_sfh mocks" and kw["logmass"] == (5.0, 12.0)
    assert misspecified_kwargs(base, "dust")[1]["dust_type"] == 2
    assert misspecified_kwargs(base, "nebular") == ("no-nebular mocks", dict(base, nebular=False))
    with pytest.raises(ValueError, match="unknown misspecification 'agn'"):
        misspecified_kwargs(base, "agn")
    bursty = {"template": "continuity_sfh", "zred": (0.5, 5.0), "logsfr_ratio_scale": 1.0}
    name, kw = misspecified_kwargs(bursty, "sfh")
    assert name == "parametric_sfh mocks" and "logsfr_ratio_scale" not in kw
    assert misspecified_kwargs(bursty, "dust")[1]["logsfr_ratio_scale"] == 1.0


def test_bursty_continuity_model_is_rebuilt():
    """A build_model model with the bursty SFH prior is found again from its specification."""
    from types import SimpleNamespace

    from prospect_sbi import build_model
    from prospect_sbi.provenance import model_hash, model_spec

    kwargs = {"template": "continuity_sfh", "zred": (0.5, 5.0), "logmass": (5.0, 12.0)}
    for extra in ({}, {"logsfr_ratio_scale": 1.0}):
        spec = model_spec(build_model(**kwargs, **extra))
        found = SimpleNamespace(model_spec=spec, model_hash=model_hash(spec))
        assert estimator_model_kwargs(found) == dict(
            kwargs, nbins=6, nebular=True, dust_type=0, **extra
        )


def test_burst_model_is_rebuilt():
    """A build_model parametric model with a free burst is found again from its specification."""
    from types import SimpleNamespace

    from prospect_sbi import build_model
    from prospect_sbi.provenance import model_hash, model_spec

    kwargs = {"template": "parametric_sfh", "zred": (0.5, 5.0), "logmass": (5.0, 12.0)}
    for extra in ({}, {"burst": True}):
        spec = model_spec(build_model(**kwargs, **extra))
        found = SimpleNamespace(model_spec=spec, model_hash=model_hash(spec))
        assert estimator_model_kwargs(found) == dict(kwargs, nebular=True, dust_type=0, **extra)


# ---------------------------------------------------------------- a real estimator
def test_sfh_misspecification_keeps_the_redshift_prior_of_a_photoz_estimator():
    """jades-parametric-photoz draws z from Beta(1, 3) on 0-20; its continuity_sfh mocks were
    drawn from a TopHat on 0-20 instead (483 of 1000 at z > 10, against 127 in its own)."""
    from prospect_sbi import AmortizedPosterior

    post = AmortizedPosterior.pretrained("jades-parametric-photoz")
    model = post.model()
    # rebuilt by build_model, its Beta redshift prior included
    kwargs = estimator_model_kwargs(post)
    assert kwargs["zred"].params == model.config_dict["zred"]["prior"].params
    name, other = pv.misspecified_model(post, model, "sfh")
    prior, ours = other.config_dict["zred"]["prior"], model.config_dict["zred"]["prior"]
    assert name == "continuity_sfh mocks" and "logsfr_ratios" in other.free_params
    assert type(prior) is type(ours) and prior.params == ours.params
    z = prior.unit_transform(np.random.default_rng(0).uniform(size=20_000))
    assert np.mean(z > 10) == pytest.approx(0.5**3, abs=0.01)  # P(z > 10) of Beta(1, 3)


def test_estimator_model_is_rebuilt(small_estimator):
    assert estimator_model_kwargs(small_estimator) == {
        "template": "parametric_sfh",
        "zred": (0.5, 5.0),
        "nebular": True,
        "dust_type": 0,
        "logmass": (5.0, 12.0),
    }
    assert mock_seed(small_estimator, 0) != small_estimator.training["trainingset"]["seed"]
    other = copy.copy(small_estimator)
    other.model_hash = "0000000000000000"
    with pytest.raises(ValueError, match="pass model= or testset="):
        estimator_model_kwargs(other)


@pytest.fixture(scope="module")
def small_report(small_estimator, tmp_path_factory):
    with one_torch_thread():
        folder = tmp_path_factory.mktemp("validate")
        report = validate(
            small_estimator,
            folder,
            n_mocks=300,
            draws=200,
            seed=1,
            misspecification=["dust", "nebular"],
        )
    return report, folder


def test_report_on_small_estimator(small_report):
    report, folder = small_report
    row = report.matched.row("log_mstar")
    assert row["r2"] > 0.95  # measured 0.987
    assert abs(row["bias"]) < 0.05 and row["scatter"] < 0.3  # 0.012, 0.18
    assert row["coverage_err"] < 0.1 and row["sbc_p"] > 1e-3  # 0.057, 0.010
    assert report.matched.tarp_err < 0.1
    assert 0.0 <= report.matched.ood_share <= 1.0
    md = (folder / "report.md").read_text()
    assert f"| log_mstar | {row['r2']:.3f} | {row['bias']:+.3f} | {row['scatter']:.3f} |" in md
    for name in (
        "tarp.png",
        "predicted_held_out_mocks.png",
        "coverage_held_out_mocks.png",
        "sbc_held_out_mocks.png",
        "predicted_calzetti_dust_mocks.png",
        "metrics_no_nebular_mocks.ecsv",
    ):
        assert (folder / name).stat().st_size > 1000, name
    assert (folder / "mocks" / "matched.h5").exists()
    # a known-redshift estimator: no photometric-redshift section
    assert report.matched.photoz is None and not list(folder.glob("photoz_*"))
    assert "Photometric redshift" not in md and "z_phot" not in md
    assert np.isnan(report.summary_table()["zphot_sigma_nmad"]).all()


def test_report_of_a_photoz_estimator(small_photoz, tmp_path):
    with one_torch_thread():
        report = validate(small_photoz, tmp_path, n_mocks=200, draws=200, seed=3, ppc=False)
    rep = report.matched
    i = rep.labels.index("zred")
    table = rep.photoz
    assert list(table["subset"][[0, 6]]) == ["all", "S/N>=10"]
    stats = photoz_stats(rep.p50[:, i], rep.truth[:, i])
    assert table["n"][0] == 200 and table["sigma_nmad"][0] == pytest.approx(stats["sigma_nmad"])
    assert table["n"][6] == np.sum(rep.snr >= 10) and 0 < table["n"][6] < 200
    # the rank coverage the report's coverage curves show, at 68%
    i68 = int(np.argmin(np.abs(rep.levels - 0.68)))
    assert table["coverage_68"][0] == pytest.approx(rep.coverage[i, i68])
    # the bright mocks' redshifts are the better measured (measured 0.04 / 0.10 sigma_NMAD)
    assert table["sigma_nmad"][6] < table["sigma_nmad"][0]
    md = (tmp_path / "report.md").read_text()
    r = table[6]
    assert (
        f"| S/N>=10 | all | {r['n']} | {r['sigma_nmad']:.3f} | {100 * r['outlier_frac']:.1f}% |"
    ) in md
    assert (tmp_path / "photoz_held_out_mocks.png").stat().st_size > 5_000
    from astropy.table import Table

    back = Table.read(tmp_path / "photoz_held_out_mocks.ecsv")
    np.testing.assert_allclose(back["bias"], table["bias"])
    summary = report.summary_table()
    assert summary["zphot_outlier_frac"][0] == pytest.approx(table["outlier_frac"][0])


def test_misspecified_mocks_are_worse(small_report):
    report, _ = small_report
    assert set(report.misspecified) == {"dust", "nebular"}
    # where each misspecification acts: the Calzetti law biases the mass high (+0.17 / +0.14
    # dex, coverage error 0.22 / 0.14, SBC p 1e-62 / 1e-39; matched +0.018 / +0.012, 0.06 /
    # 0.07, 0.014 / 0.32); without nebular emission the SFR comes out low (-0.06 / -0.08 dex;
    # matched +0.02 / +0.03), a weaker miscalibration whose size depends on the small
    # estimator, which trains differently on different CPUs (coverage error 0.09 against
    # 0.07, SBC p 0.006 against 0.08 on one host; 1e-6 or less against 1e-3 or more on another)
    for kind, label, sign in (("dust", "log_mstar", 1), ("nebular", "log_sfr100", -1)):
        rep = report.misspecified[kind]
        assert "gas_logu" not in rep.labels or kind != "nebular"
        row, matched = rep.row(label), report.matched.row(label)
        assert sign * (row["bias"] - matched["bias"]) > 0.05, (kind, row, matched)
        if kind == "dust":
            assert row["coverage_err"] > matched["coverage_err"] + 0.05, (kind, row, matched)
            assert row["sbc_p"] < 1e-6 and matched["sbc_p"] > 1e-3, (kind, row, matched)
        else:
            assert row["coverage_err"] > matched["coverage_err"], (kind, row, matched)
            assert row["sbc_p"] < matched["sbc_p"] / 5, (kind, row, matched)
        assert rep.ood is not None and rep.ood.shape == (len(rep),)
    summary = report.summary_table()
    assert list(summary["test_set"]) == [
        "held-out mocks",
        "Calzetti dust mocks",
        "no-nebular mocks",
    ]


def test_kept_mocks_of_another_model_name_the_file_to_delete(small_estimator, sps, tmp_path):
    from prospect_sbi import build_model

    path = tmp_path / "mocks" / "matched.h5"
    path.parent.mkdir()
    other = build_model("parametric_sfh", zred=(0.5, 4.0), logmass=(5.0, 12.0))
    pv.mock_observations(small_estimator, other, sps, 8, path)
    with pytest.raises(ValueError) as err:
        pv.mock_observations(small_estimator, small_estimator.model(), sps, 8, path)
    assert str(err.value).startswith("model differs from that of ") and str(err.value).endswith(
        f"; {path.parent} keeps earlier mocks: delete matched.h5 to simulate them again"
    )


def test_validate_errors(small_estimator, tmp_path):
    with pytest.raises(FileNotFoundError, match="no estimator file"):
        validate(tmp_path / "missing.sbi")
    with pytest.raises(ValueError, match="unknown misspecification"):
        validate(small_estimator, misspecification=["agn"])
    from prospect_sbi import build_model

    with pytest.raises(ValueError, match="model differs"):
        validate(small_estimator, model=build_model("continuity_sfh", zred=(0.5, 5.0)))
