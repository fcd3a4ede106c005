"""Drop-in fit_model, SBI results through Prospector's HDF5 writer and reader, the registry."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
from conftest import MOCK_ZRED

from prospect_sbi import build_model, jades_filters
from prospect_sbi.fitting import (
    BARRIER,
    ENTRY_POINT_GROUP,
    NoiseLikelihood,
    available_fitters,
    fit_model,
    fixed_redshift_model,
    get_fitter,
    obs_inputs,
    register_fitter,
    resolve_fitter,
    write_results,
)
from prospect_sbi.forward import ModelPhotometry

ZRED = MOCK_ZRED  # the redshift of the z2_mock fixture


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(z2_model):
    return z2_model


@pytest.fixture(scope="module")
def mock(z2_mock):
    """A galaxy of 10^10.5 Msun at z=2 with the estimator's noise: (obs, theta)."""
    return z2_mock


def test_sbi_round_trip_through_prospector_hdf5(model, sps, mock, small_estimator, tmp_path):
    from prospect.io.read_results import results_from

    obs, _ = mock
    out = fit_model(
        dict(obs),
        model,
        sps,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=500,
        sbi_seed=3,
        refine="never",
    )
    res, duration = out["sampling"]
    assert out["optimization"] == (None, 0.0) and duration > 0
    draws = small_estimator.sample(obs["maggies"], obs["maggies_unc"], 500, zred=ZRED, seed=3)
    labels = small_estimator.labels
    for i, name in enumerate(model.theta_labels()):
        want = ZRED if name == "zred" else draws[:, labels.index(name)]
        np.testing.assert_allclose(res["samples"][:, i], want, rtol=1e-6)
    path = write_results(tmp_path / "fit.h5", out, model, obs, {"fitter": "sbi"})
    back, obs_back, _ = results_from(str(path), dangerous=False)
    assert back["theta_labels"] == model.theta_labels()
    np.testing.assert_allclose(back["chain"], res["samples"])
    assert back["weights"].shape == (500,)
    assert back["weights"].sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(back["weights"], 1 / 500)
    for name in ("log_mstar", "log_sfr100", "mwa"):
        np.testing.assert_allclose(back["derived"][name], draws[:, labels.index(name)])
    assert np.all(np.isfinite(back["lnlikelihood"])) and back["run_params"]["fitter"] == "sbi"
    np.testing.assert_allclose(obs_back["maggies"], obs["maggies"])
    with pytest.raises(FileExistsError, match="exists"):
        write_results(path, out, model, obs)


def test_write_results_in_prospector_order_or_refused(model, sps, mock, small_estimator, tmp_path):
    """write_hdf5's order (path, run_params, model, obs, output) works; others are refused."""
    from prospect.io.read_results import results_from

    obs, _ = mock
    out = fit_model(
        dict(obs),
        model,
        sps,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=200,
        sbi_seed=1,
        sbi_lnlike=False,
    )
    run_params = {"fitter": "sbi", "outfile": "x"}
    for i, args in enumerate(
        [
            (out, model, obs, run_params),  # ours
            (run_params, model, obs, out),  # Prospector's
            (run_params, model, obs),
        ]
    ):
        kwargs = {"sampler": out["sampling"][0], "tsample": 1.0} if len(args) == 3 else {}
        back, _, _ = results_from(
            str(write_results(tmp_path / f"f{i}.h5", *args, **kwargs)), dangerous=False
        )
        np.testing.assert_allclose(back["chain"], out["sampling"][0]["samples"])
        assert back["run_params"]["fitter"] == "sbi"
    with pytest.raises(
        ValueError,
        match=r"no fit to write: the 2nd argument holds no "
        r"'sampling' or 'optimization' \(keys 'fitter', 'outfile'\)",
    ):
        write_results(tmp_path / "g.h5", run_params, model, obs)
    with pytest.raises(
        ValueError,
        match=r"model \(3rd argument\) is a dict, not a Prospector "
        r"model",
    ):
        write_results(tmp_path / "g.h5", out, obs, model)
    assert not (tmp_path / "g.h5").exists()


def test_sbi_result_says_what_it_cannot_vouch_for(model, sps, mock, small_estimator, tmp_path):
    """Flags, predictive check and notes in the result and in its HDF5 file."""
    from prospect.io.read_results import results_from

    obs, _ = mock
    # the predictive check is that of the amortised draws (refined ones have ESS and k-hat)
    out = fit_model(
        dict(obs),
        model,
        sps,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=300,
        sbi_seed=3,
        sbi_refine=False,
    )
    res = out["sampling"][0]
    assert res["flags"] == [] and res["notes"] == [] and not res["ood"]
    assert 0 < res["chi2_red"] < 3
    spectrum = dict(obs, wavelength=np.linspace(1e4, 5e4, 50), spectrum=np.ones(50))
    with pytest.warns(
        UserWarning,
        match="obs\\['spectrum'\\] is ignored: the sbi fitter uses the photometry only",
    ):
        out = fit_model(
            spectrum, model, sps, sbi=True, estimator=small_estimator, sbi_ndraws=300, sbi_seed=3
        )
    assert out["sampling"][0]["notes"] == ["spectrum ignored: the estimator uses photometry only"]
    # Jy passed as maggies (a 10^9.5 Msun galaxy; 10^10.5 in Jy is brighter than every
    # training flux and refused): warned about, flagged, and the flag travels to the file
    faint = 0.1 * obs["maggies"]
    err = np.hypot(10 * small_estimator.noise.depth, 0.05 * faint)
    jy = dict(obs, maggies=faint * 3631, maggies_unc=err * 3631)
    with pytest.warns(UserWarning, match="Jy passed as maggies"):
        out = fit_model(
            jy,
            model,
            sps,
            sbi=True,
            estimator=small_estimator,
            sbi_ndraws=300,
            sbi_seed=3,
            sbi_refine=False,
        )
    res = out["sampling"][0]
    assert {"bright", "mass_at_prior_max", "ood"} <= set(res["flags"]), res["flags"]
    back, _, _ = results_from(
        str(write_results(tmp_path / "jy.h5", out, model, jy)), dangerous=False
    )
    assert back["flags"] == res["flags"] and back["ood"] and back["chi2_red"] > 10


def test_run_params_dispatch_by_name(model, sps, mock, small_estimator, tmp_path):
    small_estimator.save(tmp_path / "est.sbi")
    run_params = {
        "fitter": "sbi",
        "sbi_estimator": str(tmp_path / "est.sbi"),
        "sbi_ndraws": 200,
        "sbi_seed": 1,
        "outfile": "x",
        "verbose": False,
        "sbi_refine": "never",
    }
    out = fit_model(dict(mock[0]), model, sps, **run_params)
    assert out["sampling"][0]["samples"].shape == (200, model.ndim)
    mstar = np.median(out["sampling"][0]["derived"]["log_mstar"])
    assert 9.8 < mstar < 10.7  # a 10^10.5 Msun formed galaxy keeps ~60% of it


def test_resolve_fitter_flags():
    assert resolve_fitter() == "dynesty"
    assert resolve_fitter(sbi=True) == "sbi"
    assert resolve_fitter(emcee=True, dynesty=False) == "emcee"
    assert resolve_fitter(optimize=True, dynesty=False) == "optimize"
    assert resolve_fitter(emcee=True, fitter="sbi") == "sbi"
    with pytest.raises(ValueError, match="pick one sampler"):
        resolve_fitter(emcee=True, dynesty=True)
    with pytest.raises(ValueError, match="cannot be combined"):
        resolve_fitter(sbi=True, optimize=True)
    with pytest.raises(ValueError, match="no fitter chosen"):
        resolve_fitter(dynesty=False)
    with pytest.raises(ValueError, match="unknown fitter 'nope'"):
        get_fitter("nope")
    assert {"sbi", "dynesty", "emcee", "optimize"} <= set(available_fitters())


def test_entry_point_fitter(tmp_path, monkeypatch):
    """A package adds a fitter through the entry-point group, found by name."""
    dist = tmp_path / "myfit-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: myfit\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nconst = myfit_mod:run\n")
    (tmp_path / "myfit_mod.py").write_text(
        textwrap.dedent("""
        def run(obs, model, sps, noise=(None, None), **kw):
            return {"optimization": (None, 0.0), "sampling": ({"value": 42}, 1.5)}
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "const" in available_fitters()
    out = fit_model({}, None, None, fitter="const")
    assert out["sampling"] == ({"value": 42}, 1.5)
    register_fitter("const", lambda *a, **k: {"sampling": (None, 7.0)}, overwrite=True)
    assert fit_model({}, None, None, fitter="const")["sampling"][1] == 7.0
    with pytest.raises(ValueError, match="exists"):
        register_fitter("sbi", print)
    from prospect_sbi.fitting import registry

    registry._FITTERS.pop("const")
    sys.modules.pop("myfit_mod", None)
    assert fit_model({}, None, None, fitter="const")["sampling"][1] == 1.5  # the entry point


def test_prospector_backend_unchanged(model, sps, mock):
    """fitter='optimize' runs Prospector's own least-squares (with its lnprobfn)."""
    fixed = fixed_redshift_model(model, ZRED)
    obs, theta = mock
    lnp = NoiseLikelihood(ModelPhotometry(fixed, sps, jades_filters()))
    fixed.set_parameters(theta)
    pobs = dict(obs, wavelength=None, spectrum=None)
    pobs.pop("zred")
    out = fit_model(
        pobs,
        fixed,
        sps,
        lnprobfn=lnp,
        optimize=True,
        dynesty=False,
        min_method="powell",
        min_opts={"options": {"maxfev": 30}},
    )
    results, t = out["optimization"]
    assert out["sampling"] == (None, 0.0) and t > 0 and len(results) == 1
    assert results[0].fun <= -lnp(theta, model=fixed, obs=pobs) + 1e-6


def test_obs_mismatches_raise(model, mock, small_estimator):
    obs, _ = mock
    flux, err, z = obs_inputs(obs, small_estimator, model)
    assert z == ZRED and flux.shape == (14,)
    with pytest.raises(ValueError, match="filters differ .* position 0"):
        obs_inputs(dict(obs, filters=jades_filters()[::-1]), small_estimator)
    with pytest.raises(ValueError, match="model differs"):
        obs_inputs(obs, small_estimator, build_model("parametric_sfh", zred=(0.5, 5.0)))
    with pytest.raises(ValueError, match="convert Jy"):
        obs_inputs(
            dict(
                obs,
                maggies=obs["maggies"] * 3631 * 1e6,
                maggies_unc=obs["maggies_unc"] * 3631 * 1e6,
            ),
            small_estimator,
        )
    with pytest.raises(ValueError, match="units.*'Jy'"):
        obs_inputs(dict(obs, units="Jy"), small_estimator)
    with pytest.raises(ValueError, match="set obs\\['zred'\\]"):
        obs_inputs({k: v for k, v in obs.items() if k != "zred"}, small_estimator)
    with pytest.raises(ValueError, match="obs\\['zred'\\]: zred 13.2 is outside the training"):
        obs_inputs(dict(obs, zred=13.2), small_estimator)
    with pytest.raises(ValueError, match="no 'maggies_unc'"):
        obs_inputs({k: v for k, v in obs.items() if k != "maggies_unc"}, small_estimator)
    with pytest.raises(ValueError, match="neither a file nor a pretrained"):
        fit_model(obs, model, None, sbi=True, estimator="/no/such.sbi")
    # what a slip of Prospector's obs conventions gives, refused in one line each
    with pytest.raises(
        ValueError,
        match=r"obs\['maggies'\] has shape \(2, 14\): the sbi "
        r"fitter fits one object",
    ):
        two = {k: np.stack([obs[k]] * 2) for k in ("maggies", "maggies_unc")}
        obs_inputs(dict(obs, **two), small_estimator)
    with pytest.raises(
        ValueError,
        match=r"obs\['phot_mask'\] holds 3, 7: .*True where a band "
        r"is fitted",
    ):
        obs_inputs(dict(obs, phot_mask=np.array([3, 7] + [1] * 12)), small_estimator)
    with pytest.raises(ValueError, match=r"obs\['zred'\] has 14 values; one redshift"):
        obs_inputs(dict(obs, zred=np.full(14, ZRED)), small_estimator)
    with pytest.raises(
        ValueError,
        match=r"obs\['zred'\] = 2 and obs\['redshift'\] = 2.5 "
        r"differ",
    ):
        obs_inputs(dict(obs, redshift=2.5), small_estimator)
    with pytest.raises(ValueError, match="flux and err look swapped"):
        obs_inputs(
            dict(obs, maggies=obs["maggies_unc"], maggies_unc=obs["maggies"]), small_estimator
        )


def test_masked_bands_become_missing(model, mock, small_estimator):
    obs, _ = mock
    mask = np.ones(14, bool)
    mask[[0, 5]] = False
    maggies = obs["maggies"].copy()
    maggies[3] = np.nan
    flux, err, _ = obs_inputs(dict(obs, phot_mask=mask, maggies=maggies), small_estimator)
    assert np.flatnonzero(np.isnan(flux)).tolist() == [0, 3, 5]
    assert np.array_equal(np.isnan(flux), np.isnan(err))


@pytest.fixture
def likelihoods(model, sps, small_estimator):
    """The estimator's noise model and its 'flux' and 'noise' likelihoods at ZRED."""
    phot = ModelPhotometry(fixed_redshift_model(model, ZRED), sps, jades_filters())
    noise = small_estimator.noise
    return noise, NoiseLikelihood(phot, noise, "flux"), NoiseLikelihood(phot, noise, "noise")


def test_noise_likelihood_matches_noise_model(likelihoods):
    """'noise' adds the pdf of err: bands at err == depth need a model flux below the limit."""
    noise, flat, full = likelihoods
    faint = noise.limits * 0.5
    flux, err = noise.apply(faint, np.random.default_rng(1))
    np.testing.assert_allclose(err, noise.depth)  # faint bands: err is the depth
    gauss = -0.5 * np.sum(((faint - flux) / err) ** 2 + np.log(2 * np.pi * err**2))
    assert flat.lnlike(faint, flux, err) == pytest.approx(gauss)
    assert full.lnlike(faint, flux, err) == pytest.approx(gauss)  # err at depth has p = 1
    # a model above the limit where err == depth costs a barrier (weight exp(-1e4) per band
    # and magnitude), not -inf, so that samplers climb towards the allowed region
    far, near = (full.lnlike(noise.limits * k, flux, err) for k in (2.0, 1.1))
    barrier = 14 * BARRIER * (1 + 2.5 * np.log10(2.0))
    assert far == pytest.approx(flat.lnlike(noise.limits * 2.0, flux, err) - barrier)
    assert far < near < -14 * BARRIER
    assert np.isfinite(flat.lnlike(noise.limits * 2.0, flux, err))
    with pytest.raises(ValueError, match="likelihood 'chi2' is unknown"):
        NoiseLikelihood(flat.phot, noise, "chi2")


def test_noise_likelihood_of_detected_bands(likelihoods):
    """Detected bands: the pdf of sigma_mag truncated at the floor, and m <= err / (0.92 floor)."""
    from scipy import stats

    noise, flat, full = likelihoods
    bright = noise.limits * 300.0
    flux, err = noise.apply(bright, np.random.default_rng(2))
    dmag, floor = 0.4 * np.log(10.0), noise.mag_err_floor
    k = noise.magnitude_bin(bright)
    mean, std = noise.mag_err_mean[np.arange(14), k], noise.mag_err_std[np.arange(14), k]
    pdf = stats.truncnorm((floor - mean) / std, np.inf, loc=mean, scale=std)
    expected = np.sum(pdf.logpdf(err / (dmag * bright)) - np.log(dmag * bright))
    got = full.lnlike(bright, flux, err) - flat.lnlike(bright, flux, err)
    assert got == pytest.approx(expected, rel=1e-9)
    # a model too bright for the reported err (sigma_mag below the floor) is excluded
    too_bright = err / (dmag * floor) * 1.5
    assert full.lnlike(too_bright, flux, err) < -14 * BARRIER


def test_real_jades_catalogue_rows(shared_data, model, sps, small_estimator):
    """Real galaxies (Jy / 3631 -> maggies) through fit_model; a NaN band stays missing."""
    from prospect_sbi.jades_data import read_specz_catalogue

    catalogue = read_specz_catalogue(shared_data, small_estimator.filters)
    cat, flux, err = catalogue.table, catalogue.flux, catalogue.err
    assert len(cat) == 99 and flux.shape == (99, 14)
    # the README's 54 NaN entries: 27 fluxes and their 27 errors, in 23 rows
    assert np.isnan(flux).sum() == 27 and np.isnan(flux).any(axis=1).sum() == 23
    assert np.array_equal(np.isnan(flux), np.isnan(err))
    assert np.nanmax(flux) < 1e-4 / 3631 * 1.01  # Jy -> maggies
    # the 5% floor of SED fits (quickstart, the example): S/N at most 20, NaN kept
    floored = read_specz_catalogue(shared_data, small_estimator.filters, err_floor=0.05)
    assert np.nanmax(np.abs(flux) / err) > 1000 and np.nanmax(flux / floored.err) <= 20.0
    assert np.array_equal(np.isnan(floored.err), np.isnan(err))
    zred = np.asarray(cat["redshift"], float)
    rows = [i for i in range(99) if np.isnan(flux[i]).any() and 0.5 <= zred[i] <= 5.0][:2]
    rows += [i for i in range(99) if not np.isnan(flux[i]).any() and 0.5 <= zred[i] <= 5.0][:2]
    for i in rows:
        obs = {
            "maggies": flux[i],
            "maggies_unc": err[i],
            "filters": small_estimator.filters,
            "zred": zred[i],
        }
        out = fit_model(
            obs,
            model,
            sps,
            sbi=True,
            estimator=small_estimator,
            sbi_ndraws=300,
            sbi_seed=0,
            refine="never",
        )
        mstar = out["sampling"][0]["derived"]["log_mstar"]
        assert np.all(np.isfinite(mstar)) and 6 < np.median(mstar) < 12.5
