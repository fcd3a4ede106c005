"""Physics to z = 20 against analytic forms: IGM, cosmology, step-SFH bins, photometry, refusals.

The IGM optical depths are re-implemented here from the papers' formulas (Madau 1995, ApJ 441,
18, eqs. 12-13 and footnote 3, with the Lyman series extended to 17 lines as FSPS does; Inoue
et al. 2014, MNRAS 442, 1805, eqs. 21-29 with their Table 2) and compared with
:mod:`prospect_sbi.sources.igm`; the cosmology with astropy's WMAP9, which Prospector uses.
"""

import numpy as np
import pytest
from astropy.cosmology import WMAP9

from prospect_sbi import build_model, simulate
from prospect_sbi.cosmology import age_of_universe, luminosity_distance
from prospect_sbi.sources.fast import FastPhotometry
from prospect_sbi.sources.grids import inoue_coefficients
from prospect_sbi.sources.igm import igm_transmission
from prospect_sbi.transforms import batch_params, draw_theta, zred_to_agebins

HIGH_Z = (10.0, 14.3, 20.0)
# the optical depth is read back through ``factor``: exp(-FACTOR * tau) does not underflow
FACTOR = 1e-4
LYA, LYLIM_MADAU, LYLIM_INOUE = 1215.67, 911.75, 911.8

# Madau (1995): Lyman-alpha to -delta from the paper, higher lines as FSPS (igm_absorb.f90)
MADAU_LINES = [
    (1215.67, 3.6e-3),
    (1025.72, 1.7e-3),
    (972.537, 1.2e-3),
    (949.743, 9.3e-4),
    (937.803, 7.960e-4),
    (930.748, 6.967e-4),
    (926.226, 6.236e-4),
    (923.150, 5.665e-4),
    (920.963, 5.200e-4),
    (919.352, 4.817e-4),
    (918.129, 4.487e-4),
    (917.181, 4.200e-4),
    (916.429, 3.947e-4),
    (915.824, 3.720e-4),
    (915.329, 3.520e-4),
    (914.919, 3.334e-4),
    (914.576, 3.1644e-4),
]
# Inoue et al. (2014) Table 2, first rows: j, lambda_j, A_LAF (3), A_DLA (2)
INOUE_ROWS = [
    (2, 1215.67, 1.690e-2, 2.354e-3, 1.026e-4, 1.617e-4, 5.390e-5),
    (3, 1025.72, 4.692e-3, 6.536e-4, 2.849e-5, 1.545e-4, 5.151e-5),
]


def madau_tau(rest: np.ndarray, z: float, lines=MADAU_LINES) -> np.ndarray:
    """Madau (1995) effective optical depth at rest wavelengths ``rest`` (AA), uncapped."""
    obs = rest * (1 + z)
    tau = np.zeros_like(rest)
    for k, (lam, coef) in enumerate(lines):
        tau += np.where(rest < lam, coef * (obs / lam) ** 3.46, 0.0)
        if k == 0:  # footnote: metal lines in the Lyman-alpha forest
            tau += np.where(rest < lam, 1.7e-3 * (obs / lam) ** 1.68, 0.0)
    xc, z1 = obs / LYLIM_MADAU, 1 + z
    lyc = (
        0.25 * xc**3 * (z1**0.46 - xc**0.46)
        + 9.4 * xc**1.5 * (z1**0.18 - xc**0.18)
        - 0.7 * xc**3 * (xc**-1.32 - z1**-1.32)
        - 0.023 * (z1**1.68 - xc**1.68)
    )
    return tau + np.where(rest < LYLIM_MADAU, lyc, 0.0)


def madau_tau_fsps(rest: np.ndarray, z: float) -> np.ndarray:
    """Madau (1995) with FSPS's cap: tau held at its largest value blueward of its peak."""
    dense = np.linspace(1.0, LYLIM_MADAU, 50_001)
    tau = madau_tau(dense, z, MADAU_FSPS)
    peak = int(np.argmax(tau))
    return np.where(rest < dense[peak], tau[peak], madau_tau(rest, z, MADAU_FSPS))


# FSPS's coefficients of Lyman-gamma and -delta (refined from the paper's 1.2e-3, 9.3e-4)
MADAU_FSPS = [*MADAU_LINES[:2], (972.537, 1.1846e-3), (949.743, 9.410e-4), *MADAU_LINES[4:]]


def inoue_tau(rest: np.ndarray, z: float) -> np.ndarray:
    """Inoue et al. (2014) eqs. 21-22 (Lyman series) and 25-29 (Lyman continuum)."""
    obs, z1 = rest * (1 + z), 1 + z
    tau = np.zeros_like(rest)
    for _, lam, a1, a2, a3, d1, d2 in inoue_coefficients():
        x = obs / lam
        inside = (x > 1) & (x < z1)
        laf = np.select([x < 2.2, x < 5.7], [a1 * x**1.2, a2 * x**3.7], a3 * x**5.5)
        dla = np.where(x < 3.0, d1 * x**2, d2 * x**3)
        tau += np.where(inside, laf + dla, 0.0)
    x = obs / LYLIM_INOUE
    if z < 1.2:
        laf = 0.325 * (x**1.2 - z1**-0.9 * x**2.1)
    elif z < 4.7:
        laf = np.where(
            x < 2.2,
            2.55e-2 * z1**1.6 * x**2.1 + 0.325 * x**1.2 - 0.250 * x**2.1,
            2.55e-2 * (z1**1.6 * x**2.1 - x**3.7),
        )
    else:
        laf = np.select(
            [x < 2.2, x < 5.7],
            [
                5.22e-4 * z1**3.4 * x**2.1 + 0.325 * x**1.2 - 3.14e-2 * x**2.1,
                5.22e-4 * z1**3.4 * x**2.1 + 0.218 * x**2.1 - 2.55e-2 * x**3.7,
            ],
            5.22e-4 * (z1**3.4 * x**2.1 - x**5.5),
        )
    if z < 2.0:
        dla = 0.211 * z1**2 - 7.66e-2 * z1**2.3 * x**-0.3 - 0.135 * x**2
    else:
        dla = np.where(
            x < 3.0,
            0.634 + 4.70e-2 * z1**3 - 1.78e-2 * z1**3.3 * x**-0.3 - 0.135 * x**2 - 0.291 * x**-0.3,
            4.70e-2 * z1**3 - 1.78e-2 * z1**3.3 * x**-0.3 - 2.92e-2 * x**3,
        )
    return tau + np.where((x > 1) & (x < z1), laf + dla, 0.0)


def module_tau(rest: np.ndarray, z: float, model: str) -> np.ndarray:
    """-ln(transmission) / FACTOR of :func:`igm_transmission`."""
    return -np.log(igm_transmission(rest, np.array([z]), model, factor=FACTOR)[0]) / FACTOR


REST = np.concatenate([np.geomspace(100.0, 1215.0, 400), [911.0, 911.9, 1025.0, 1026.0]])


def test_inoue_table_is_the_papers():
    table = inoue_coefficients()
    assert table.shape == (39, 7)
    np.testing.assert_array_equal(table[:, 0], np.arange(2, 41))
    np.testing.assert_allclose(table[:2], np.array(INOUE_ROWS), rtol=1e-12)
    assert np.all(np.diff(table[:, 1]) < 0) and table[-1, 1] > LYLIM_INOUE


@pytest.mark.parametrize("z", HIGH_Z)
def test_igm_matches_the_papers(z):
    np.testing.assert_allclose(module_tau(REST, z, "inoue2014"), inoue_tau(REST, z), rtol=1e-6)
    # FSPS's cap comes from a table in z (step 0.01): the peak's tau to ~1e-6
    np.testing.assert_allclose(
        module_tau(REST, z, "madau1995"), madau_tau_fsps(REST, z), rtol=1e-4
    )
    # redward of Lyman-gamma the paper's coefficients are FSPS's
    red = REST > 972.6
    np.testing.assert_allclose(
        module_tau(REST[red], z, "madau1995"), madau_tau(REST[red], z), rtol=1e-9
    )


@pytest.mark.parametrize("model", ["madau1995", "inoue2014"])
def test_igm_limits_to_z20(model):
    z = np.array(HIGH_Z)
    red = np.array([1215.7, 1300.0, 3000.0, 1e4])
    np.testing.assert_array_equal(igm_transmission(red, z, model), 1.0)
    # what a filter can see (observed > 3000 AA); far bluer, Inoue's tau falls again, as only
    # the nearest absorbers still see those photons beyond their Lyman limit
    lyc = np.array([300.0, 500.0, 800.0, 900.0])
    assert igm_transmission(lyc, z, model).max() < 1e-15
    # at fixed observed wavelength, a farther source is never less absorbed
    z_fine = np.linspace(0.0, 20.0, 401)
    obs = np.geomspace(3000.0, 1215.0 * 21, 300)
    tau = np.stack([module_tau(obs / (1 + zz), zz, model) for zz in z_fine])
    assert np.all(np.diff(tau, axis=0) >= -1e-9 * np.abs(tau[1:])), "tau falls with z somewhere"


def test_cosmology_matches_astropy_wmap9():
    z = np.array([10.0, 15.0, 20.0])
    np.testing.assert_allclose(age_of_universe(z), WMAP9.age(z).to("Gyr").value, rtol=1e-6)
    np.testing.assert_allclose(
        luminosity_distance(z), WMAP9.luminosity_distance(z).to("Mpc").value, rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"^zred=31.0 is outside the supported range \[0, 30\]$"):
        age_of_universe(31.0)


def test_step_bins_at_high_z():
    model = build_model("continuity_sfh", zred=(0.0, 20.0))
    template = model.config_dict["agebins"]["init"]
    z = np.array([12.0, 15.0, 20.0])
    bins = zred_to_agebins(z, template)
    assert bins.shape == (3, 6, 2)
    np.testing.assert_array_equal(bins[:, :, 1][:, :-1], bins[:, 1:, 0])  # contiguous
    assert np.all(np.diff(bins, axis=-1) > 0.01)  # increasing, no bin empty (> 2% in age)
    np.testing.assert_allclose(bins[:, -1, 1], np.log10(WMAP9.age(z).to("yr").value), rtol=1e-7)
    np.testing.assert_array_equal(
        bins[:, :2], np.broadcast_to([[0.0, 7.5], [7.5, 8.0]], (3, 2, 2))
    )
    # beyond z ~ 27 the universe is younger than the kept bins: refused, not inverted bins
    with pytest.raises(
        ValueError, match=r"^zred=28 is too high for these step-SFH bins: .* 118 Myr"
    ):
        zred_to_agebins(np.array([5.0, 28.0]), template)


@pytest.fixture(scope="module")
def fast20(jades):
    return FastPhotometry(jades, zmax=20.0)


def test_fast_matches_exact_to_z20(fast20, sps, jades):
    from test_fast import DROPOUT, MEDIAN, WORST

    model = build_model("continuity_sfh", zred=(0.0, 20.0), logmass=(7.0, 10.0))
    z = np.repeat([11.0, 14.3, 17.0, 20.0], 3)
    theta = draw_theta(model, np.random.default_rng(7).random((len(z), model.ndim)))
    theta[:, model.theta_index["zred"]] = z[:, None]
    params = batch_params(model, theta)
    assert np.all(params["add_igm_absorption"])  # build_model adds Prospector's "igm" template
    exact, _ = sps.photometry(params, jades)
    approx, _ = fast20(params)
    edge = np.array(
        [f.wavelength[f.transmission > 0.01 * f.transmission.max()].min() for f in jades]
    )
    ok = edge[None, :] > LYA * (1 + z[:, None])
    rel = np.abs(approx / exact - 1)[ok]
    assert rel.max() < WORST and np.median(rel) < MEDIAN
    assert (np.abs(approx - exact) / exact.max(1, keepdims=True))[~ok].max() < DROPOUT
    # the Lyman break: a z = 14.3 source is dark in F090W-F150W, bright from F200W on
    names = [f.name for f in jades]
    at14 = exact[z == 14.3] / exact[z == 14.3, names.index("jwst_f277w")][:, None]
    dark = [names.index(b) for b in ("jwst_f090w", "jwst_f115w", "jwst_f150w")]
    assert at14[:, dark].max() < 1e-6
    assert at14[:, names.index("jwst_f200w") :].min() > 0.1


def test_build_model_has_the_lyman_break(sps, jades):
    """A z = 14.3 galaxy of ``build_model`` is dark blueward of Lyman-alpha (F150W at 1.5 um)."""
    model = build_model("parametric_sfh", zred=14.3)
    _, phot, _ = model.predict(
        model.theta.copy(), obs={"filters": jades, "wavelength": None}, sps=sps
    )
    names = [f.name for f in jades]
    phot = np.asarray(phot) / phot[names.index("jwst_f277w")]
    assert phot[names.index("jwst_f150w")] < 1e-6, (
        f"F150W / F277W = {phot[names.index('jwst_f150w')]:.3g}"
    )


def test_simulate_to_z20_and_refusals(fast20, sps, jades, tmp_path):
    model = build_model("continuity_sfh", zred=14.3)
    assert model.params["zred"][0] == 14.3 and model.params["agebins"][-1, 1] > 8.4
    high = build_model("parametric_sfh", zred=(10.0, 20.0))
    with simulate(high, sps, jades, 16, tmp_path / "a.h5", seed=1, progress=False) as ts:
        data = ts[slice(0, 16)]
    assert data["zred"].min() >= 10 and data["zred"].max() <= 20
    assert np.all(np.isfinite(data["photometry"])) and np.all(data["photometry"].max(1) > 0)
    with pytest.raises(
        ValueError, match=r"^the zred prior reaches 25, beyond FastPhotometry zmax=20"
    ):
        simulate(
            build_model("parametric_sfh", zred=(10.0, 25.0)), sps, jades, 4, tmp_path / "b.h5"
        )
    at21 = build_model("parametric_sfh", zred=21.0)
    with pytest.raises(ValueError, match=r"^zred=21 is beyond FastPhotometry zmax=20"):
        fast20(batch_params(at21, at21.theta[None]))


def test_estimator_refuses_a_redshift_beyond_its_range():
    from prospect_sbi import AmortizedPosterior

    post = AmortizedPosterior.pretrained("jades-parametric")
    flux = np.full(len(post.filters), 1e-9)
    with pytest.raises(ValueError) as info:
        post.sample(flux, 0.1 * flux, 10, zred=16.5)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("zred 16.5 is outside the training range [0.1, 15] of this estimator"), (
        msg
    )
    assert "redshift='infer'" in msg
