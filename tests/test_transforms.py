"""Batched priors, transforms, cosmology tables and derived quantities against references."""

import numpy as np
import pytest
from prospect.models import SpecModel, priors
from prospect.models import transforms as pt
from prospect.sources.constants import cosmo
from scipy.integrate import quad

from prospect_sbi.cosmology import age_of_universe, luminosity_distance
from prospect_sbi.derived import derived_quantities
from prospect_sbi.models import build_model
from prospect_sbi.transforms import (
    _logsfr_ratios_to_agebins,
    _logsfr_ratios_to_masses,
    batch_params,
    draw_theta,
    zred_to_agebins,
)


def test_cosmology_tables_match_astropy(rng):
    z = np.concatenate([[0.0, 1e-4, 30.0], rng.uniform(0, 20, 500)])
    np.testing.assert_allclose(age_of_universe(z), cosmo.age(z).value, rtol=1e-6)
    np.testing.assert_allclose(
        luminosity_distance(z[1:]), cosmo.luminosity_distance(z[1:]).value, rtol=1e-6
    )
    assert luminosity_distance(0.0) == 0.0
    with pytest.raises(ValueError, match=r"zred=31.0 is outside the supported range \[0, 30\]"):
        age_of_universe([1.0, 31.0])


@pytest.mark.parametrize("template", ["continuity_sfh", "parametric_sfh", "burst"])
def test_batched_draws_equal_prospector_row_by_row(template, rng):
    if template == "burst":  # tburst = fage_burst * tage, Prospector's burst_sfh
        model = build_model("parametric_sfh", zred=(0.1, 10.0), burst=True)
        assert {"fburst", "fage_burst"} <= set(model.free_params)
    else:
        model = build_model(template, zred=(0.1, 10.0))
    unit = rng.uniform(size=(40, model.ndim))
    theta = draw_theta(model, unit)
    np.testing.assert_array_equal(theta, [model.prior_transform(u) for u in unit])
    params = batch_params(model, theta)
    for i in range(len(theta)):
        model.set_parameters(theta[i])
        model.propagate_parameter_dependencies()
        for name, value in model.params.items():
            if np.asarray(value).dtype.kind in "biuf":
                np.testing.assert_allclose(
                    params[name][i], np.squeeze(value), rtol=1e-12, err_msg=name
                )


def test_bursty_continuity_prior(rng):
    """logsfr_ratio_scale widens the Student-t (2 dof) prior: quartiles at +-0.8165 scale."""
    for scale, kwargs in ((0.3, {}), (1.0, {"logsfr_ratio_scale": 1.0})):
        model = build_model("continuity_sfh", zred=(0.1, 10.0), **kwargs)
        theta = draw_theta(model, rng.uniform(size=(20_000, model.ndim)))
        ratios = theta[:, model.theta_index["logsfr_ratios"]]
        np.testing.assert_allclose(
            np.percentile(ratios, [25, 75], axis=0),
            np.outer([-1, 1], [0.8165 * scale] * 5),
            rtol=0.05,
        )
    with pytest.raises(
        ValueError, match="logsfr_ratio_scale is for continuity_sfh, not parametric"
    ):
        build_model("parametric_sfh", logsfr_ratio_scale=1.0)
    with pytest.raises(ValueError, match=r"logsfr_ratio_scale=-1: needs a positive number"):
        build_model("continuity_sfh", logsfr_ratio_scale=-1)
    with pytest.raises(ValueError, match="burst=True is for parametric_sfh, not continuity_sfh"):
        build_model("continuity_sfh", burst=True)


def test_batched_transforms_equal_prospector(rng):
    ab = np.array([[0, 7.5], [7.5, 8.5], [8.5, 9], [9, 9.5], [9.5, 10]])
    ratios = rng.normal(0, 0.5, (30, 4))
    masses = [
        pt.logsfr_ratios_to_masses(logmass=np.array([10.0]), logsfr_ratios=r, agebins=ab)
        for r in ratios
    ]
    np.testing.assert_allclose(
        _logsfr_ratios_to_masses(np.full(30, 10.0), ratios, ab), masses, rtol=1e-12
    )
    flex = [pt.logsfr_ratios_to_agebins(logsfr_ratios=r[:2], agebins=ab) for r in ratios]
    np.testing.assert_allclose(_logsfr_ratios_to_agebins(ratios[:, :2], ab), flex, rtol=1e-12)
    # Prospector's zred_to_agebins on a scalar redshift (it fails on Prospector's (1,) arrays).
    for z in (0.5, 3.0, 9.0):
        np.testing.assert_allclose(
            zred_to_agebins(np.array([z]), ab), pt.zred_to_agebins(zred=z, agebins=ab), rtol=1e-6
        )


def test_dependents_listed_before_their_inputs_are_resolved():
    # Prospector's own template puts mass (from agebins) before agebins (from zred).
    from prospect.models.templates import TemplateLibrary

    spec = TemplateLibrary["continuity_sfh"]
    spec["imf_type"]["init"] = 1
    spec["zred"].update(isfree=True, prior=priors.TopHat(mini=0.5, maxi=3.0))
    spec["agebins"].update(init=[[0, 8], [8, 8.5], [8.5, 9.0]], depends_on=zred_to_agebins)
    model = SpecModel(spec)
    theta = draw_theta(model, np.full((1, model.ndim), 0.3))
    params = batch_params(model, theta)
    expect = pt.logsfr_ratios_to_masses(
        logmass=params["logmass"],
        agebins=params["agebins"][0],
        logsfr_ratios=params["logsfr_ratios"][0],
    )
    np.testing.assert_allclose(params["mass"][0], expect, rtol=1e-12)


def _brute_force(sfr, tmax, mfrac):
    """Derived quantities of an SFR(lookback yr) by quadrature."""
    pts = np.logspace(0, np.log10(tmax), 60)
    total = quad(sfr, 0, tmax, points=pts, limit=500)[0]
    mwa = quad(lambda a: a * sfr(a), 0, tmax, points=pts, limit=500)[0] / total / 1e9
    grid = np.linspace(0, tmax, 400001)
    formed_before = 1 - np.cumsum(sfr(grid)) / np.sum(sfr(grid))
    quant = {q: np.interp(q / 100, formed_before[::-1], grid[::-1]) / 1e9 for q in (25, 50, 75)}
    return {
        "log_mstar": np.log10(total * mfrac),
        "log_sfr10": np.log10(quad(sfr, 0, 1e7, limit=200)[0] / 1e7),
        "log_sfr100": np.log10(quad(sfr, 0, 1e8, limit=200)[0] / 1e8),
        "mwa": mwa,
        **{f"t{q}": v for q, v in quant.items()},
    }


def test_derived_quantities_step_sfh():
    agebins = np.array([[0, 7.0], [7.0, 8.0], [8.0, 9.0], [9.0, 9.5]])
    mass = np.array([1e7, 3e8, 2e9, 4e9])
    edges = 10**agebins

    def sfr(a):
        a = np.asarray(a)
        rate = mass / np.diff(edges, axis=1)[:, 0]
        return np.select([(a >= lo) & (a < hi) for lo, hi in edges], rate, 0.0)

    got = derived_quantities(
        {"sfh": 3, "mass": mass[None], "agebins": agebins[None]}, np.array([0.6])
    )
    ref = _brute_force(sfr, edges[-1, 1], 0.6)
    for k, v in ref.items():
        np.testing.assert_allclose(got[k][0], v, rtol=1e-4, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(got["log_ssfr100"], got["log_sfr100"] - got["log_mstar"])


@pytest.mark.parametrize("sfh", [1, 4])
def test_derived_quantities_tau_models(sfh):
    tage, tau = 3.0, 0.7  # Gyr

    def sfr(a):  # lookback a yr -> t = tage - a since the start
        t = np.clip(tage * 1e9 - np.asarray(a), 0, None)
        return (t if sfh == 4 else 1.0) * np.exp(-t / (tau * 1e9)) * (t > 0)

    got = derived_quantities(
        {"sfh": sfh, "mass": np.array([1e10]), "tage": np.array([tage]), "tau": np.array([tau])},
        np.array([0.5]),
    )
    norm = quad(sfr, 0, tage * 1e9, limit=200)[0]
    ref = _brute_force(lambda a: 1e10 * sfr(a) / norm, tage * 1e9, 0.5)
    for k, v in ref.items():
        np.testing.assert_allclose(got[k][0], v, rtol=1e-4, atol=1e-6, err_msg=k)


def test_quiescent_sfr_is_floored():
    got = derived_quantities(
        {"sfh": 4, "mass": np.array([1e10]), "tage": np.array([13.0]), "tau": np.array([0.1])},
        np.array([0.5]),
    )
    np.testing.assert_allclose(got["log_ssfr100"], -14.0)
    assert np.isfinite(got["log_sfr10"]).all()


def test_agebins_in_years_are_refused(jades):
    """Prospector's agebins are log10(yr); edges in years fail in one line on every path (the
    zred transform, the batched source, SpecModel.predict), not as an overflow later on."""
    from prospect_sbi import BC03MilesBasis
    from prospect_sbi.forward import ModelPhotometry

    msg = (
        r"agebins are log10\(age / yr\) edges .* run from 1 to 3.3\d*e\+09; years\? pass np.log10"
    )
    follows = build_model("continuity_sfh", zred=2.0)  # agebins follow zred
    fixed = build_model("continuity_sfh", zred=2.0).config_dict
    fixed["agebins"].pop("depends_on")
    for spec in (follows.config_dict, fixed):
        spec["agebins"]["init"] = 10 ** np.asarray(spec["agebins"]["init"])
        model = SpecModel(spec)
        with pytest.raises(ValueError, match=msg):
            ModelPhotometry(model, BC03MilesBasis(), jades)(model.theta)
    with pytest.raises(ValueError, match=msg):
        model.predict(
            model.theta, obs={"filters": jades, "wavelength": None}, sps=BC03MilesBasis()
        )
    ok = build_model("continuity_sfh", zred=2.0)  # log10(yr), up to the age of the universe
    assert np.all(ModelPhotometry(ok, BC03MilesBasis(), jades)(ok.theta)[0] > 0)
