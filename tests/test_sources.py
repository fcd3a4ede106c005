"""Physics of BC03MilesBasis through Prospector's SpecModel, with the 14 JADES bands.

Everything here runs the real source, real Prospector and real sedpy filters; every test
asserts on numbers.
"""

import numpy as np
import pytest
from prospect.models import SpecModel
from prospect.models.priors import TopHat
from prospect.sources.constants import cosmo

import prospect_sbi
from prospect_sbi import JADES_BANDS, BC03MilesBasis
from prospect_sbi.derived import derived_quantities
from prospect_sbi.sources.grids import load_line_list

BAND = {name: i for i, name in enumerate(JADES_BANDS)}
LIGHTSPEED = 2.998e18  # AA/s
LYA = 1215.67
LYLIM = 911.75


def band_edges(filt):
    """Observed wavelength range (AA) where the filter transmits."""
    w = filt.wavelength[filt.transmission > 0]
    return w.min(), w.max()


# --------------------------------------------------------------------- scaling and colours
def test_photometry_linear_in_mass(sps, jades, make_model, predict):
    kw = dict(zred=1.3, tage=2.0, tau=0.7, dust2=0.3, logzsol=-0.4)
    low, mf_low = predict(make_model("parametric_sfh", "nebular", mass=1e9, **kw), sps, jades)
    high, mf_high = predict(make_model("parametric_sfh", "nebular", mass=1e10, **kw), sps, jades)
    assert np.all(low > 0)
    np.testing.assert_allclose(high / low, 10.0, rtol=1e-10, atol=0)
    assert mf_low == pytest.approx(mf_high, rel=1e-12)  # mass fraction does not scale


def test_dust_reddens_and_dims(sps, jades, make_model, predict):
    # attenuation alone: dust emission (which brightens F444W at z = 0.5) is tested below
    kw = dict(zred=0.5, tage=1.0, tau=1.0, logzsol=-0.3, mass=1e10, add_dust_emission=False)
    clear, _ = predict(make_model("parametric_sfh", dust2=0.0, **kw), sps, jades)
    dusty, _ = predict(make_model("parametric_sfh", dust2=1.0, **kw), sps, jades)
    # fainter in every band ...
    assert np.all(dusty < clear)
    # ... and more so in the blue: attenuation (mag) decreases with wavelength
    att = -2.5 * np.log10(dusty / clear)
    assert att[BAND["acs_wfc_f435w"]] > att[BAND["jwst_f444w"]] + 0.5
    # F150W (rest ~1 um at z=0.5) loses >15% more than F444W (rest ~3 um)
    ratio = lambda p: p[BAND["jwst_f150w"]] / p[BAND["jwst_f444w"]]  # noqa: E731
    assert ratio(dusty) < 0.85 * ratio(clear)


def test_older_is_redder(sps, jades, make_model, predict):
    kw = dict(zred=0.5, tau=1.0, dust2=0.0, logzsol=0.0, mass=1e10)
    young, mf_young = predict(make_model("parametric_sfh", tage=0.3, **kw), sps, jades)
    old, mf_old = predict(make_model("parametric_sfh", tage=5.0, **kw), sps, jades)
    colour = lambda p: -2.5 * np.log10(p[BAND["acs_wfc_f435w"]] / p[BAND["jwst_f200w"]])  # noqa: E731
    assert colour(old) > colour(young) + 1.0
    # F435W at z=0.5 samples rest ~2900 AA: same mass formed, far fainter when old
    assert old[BAND["acs_wfc_f435w"]] < 0.2 * young[BAND["acs_wfc_f435w"]]
    assert mf_old < mf_young


# --------------------------------------------------------------------- IGM
def test_igm_at_z6(sps, jades, make_model, predict):
    z = 6.0
    kw = dict(zred=z, tage=0.3, tau=1.0, dust2=0.0, logzsol=-1.0, mass=1e9)
    on, _ = predict(make_model("parametric_sfh", "igm", add_igm_absorption=True, **kw), sps, jades)
    off, _ = predict(
        make_model("parametric_sfh", "igm", add_igm_absorption=False, **kw), sps, jades
    )
    edges = np.array([band_edges(f) for f in jades])
    below_lylim = edges[:, 1] < LYLIM * (1 + z)
    below_lya = edges[:, 1] < LYA * (1 + z)
    redward = edges[:, 0] > LYA * (1 + z)
    names = np.array(JADES_BANDS)
    # the set of bands is what the filter curves say it is
    assert list(names[below_lylim]) == ["acs_wfc_f435w"]
    assert list(names[below_lya]) == ["acs_wfc_f435w", "acs_wfc_f606w"]
    assert list(names[redward]) == list(JADES_BANDS[6:])  # F115W and redder
    ratio = on / off
    # Lyman continuum at z=6 is opaque
    assert np.all(ratio[below_lylim] < 1e-4)
    # Madau (1995) Lyman-series blanketing at z=6 transmits ~5%: a >10x drop wholly blueward
    # of Lyman-alpha (F606W samples rest 650-1070 AA)
    assert np.all(ratio[below_lya] < 0.1)
    # bands straddling Lyman-alpha drop partly, never brighten
    straddle = ~below_lya & ~redward
    assert np.all(ratio[straddle] < 0.95)
    assert np.all(ratio[straddle] > ratio[below_lya].max())
    # bands redward of Lyman-alpha are untouched
    np.testing.assert_allclose(ratio[redward], 1.0, rtol=1e-10, atol=0)


def test_igm_factor_scales_optical_depth(sps, jades, make_model, predict):
    kw = dict(zred=6.0, tage=0.3, tau=1.0, dust2=0.0, logzsol=-1.0, mass=1e9)
    spec = dict(add_igm_absorption=True)
    base, _ = predict(
        make_model("parametric_sfh", "igm", igm_factor=1.0, **spec, **kw), sps, jades
    )
    weak, _ = predict(
        make_model("parametric_sfh", "igm", igm_factor=0.5, **spec, **kw), sps, jades
    )
    i = BAND["acs_wfc_f606w"]
    assert weak[i] > 2 * base[i]  # half the optical depth transmits much more
    np.testing.assert_allclose(weak[6:], base[6:], rtol=1e-10)


# --------------------------------------------------------------------- SFH
def _delayed_tau_bin_masses(edges_yr, tage_gyr, tau_gyr):
    """Mass formed in each lookback-age bin for SFR ~ t exp(-t/tau), t = tage - age."""
    tau = tau_gyr * 1e9
    tage = tage_gyr * 1e9

    def formed_by(t):  # integral_0^t t' exp(-t'/tau) dt'
        x = np.clip(t, 0, None) / tau
        return tau**2 * -np.expm1(-x) - tau**2 * x * np.exp(-x)

    t_young_edge = tage - edges_yr[:-1]
    t_old_edge = tage - edges_yr[1:]
    return formed_by(t_young_edge) - formed_by(t_old_edge)


@pytest.mark.parametrize("nebular", [False, True], ids=["stars", "nebular"])
def test_delayed_tau_equals_fine_step_sfh(sps, jades, make_model, predict, nebular):
    z, tage, tau, mtot = 1.0, 3.0, 1.5, 1e10
    templates = ("parametric_sfh", "nebular") if nebular else ("parametric_sfh",)
    common = dict(zred=z, dust2=0.2, logzsol=-0.5)
    smooth, _ = predict(
        make_model(*templates, sfh=4, tage=tage, tau=tau, mass=mtot, **common), sps, jades
    )

    log_edges = np.concatenate([[0.0], np.linspace(5.0, np.log10(tage * 1e9), 50)])
    agebins = np.column_stack([log_edges[:-1], log_edges[1:]])  # 50 bins, 1 yr .. tage
    masses = _delayed_tau_bin_masses(10**log_edges, tage, tau)
    masses *= mtot / masses.sum()
    assert np.all(masses > 0)
    step, _ = predict(
        make_model(*templates, sfh=3, agebins=agebins, mass=masses, tage=None, tau=None, **common),
        sps,
        jades,
    )
    np.testing.assert_allclose(step, smooth, rtol=0.01, atol=0)


@pytest.mark.parametrize("fage_burst", [0.97, 0.9995], ids=["older-than-tesc", "ionising"])
def test_burst_is_the_tau_model_plus_an_ssp(sps, jades, make_model, predict, fage_burst):
    # FSPS's burst through Prospector's burst_sfh template (tburst = fage_burst * tage):
    # fburst of the mass formed at once, tage - tburst ago, the rest by the delayed-tau SFH.
    # Every step after the SSP weights is linear in them (young/old split, nebula, dust and
    # its emission), so the photometry and mfrac are that mix of the two models' exactly.
    tage, fburst = 1.5, 0.3
    common = dict(zred=2.0, dust2=0.4, logzsol=-0.5, mass=1e10, tau=0.8)
    parts = ("parametric_sfh", "nebular", "dust_emission")
    ssp, mfrac_ssp = predict(
        make_model(*parts, sfh=0, tage=tage * (1 - fage_burst), **common), sps, jades
    )
    smooth, mfrac_smooth = predict(make_model(*parts, tage=tage, **common), sps, jades)
    burst, mfrac = predict(
        make_model(*parts, "burst_sfh", tage=tage, fburst=fburst, fage_burst=fage_burst, **common),
        sps,
        jades,
    )
    np.testing.assert_allclose(burst, (1 - fburst) * smooth + fburst * ssp, rtol=1e-10)
    assert mfrac == pytest.approx((1 - fburst) * mfrac_smooth + fburst * mfrac_ssp, rel=1e-12)
    assert np.abs(burst / smooth - 1).max() > 0.2  # the burst shows


def test_mfrac_range_and_monotonic_in_age(sps, jades, make_model, predict):
    ages = [0.003, 0.03, 0.3, 1.0, 3.0, 10.0]
    for sfh in (0, 4):
        mfrac = [
            predict(
                make_model("parametric_sfh", sfh=sfh, tage=t, tau=1.0, zred=0.1, dust2=0.0),
                sps,
                jades,
            )[1]
            for t in ages
        ]
        mfrac = np.array(mfrac)
        assert np.all((mfrac > 0.3) & (mfrac <= 1.0)), mfrac
        assert np.all(np.diff(mfrac) < 0), (sfh, mfrac)
        # a 10 Gyr old Chabrier SSP keeps ~40-50% of its mass in living stars (the source has
        # no remnants: add_stellar_remnants=False is the only value it accepts)
        if sfh == 0:
            assert 0.38 < mfrac[-1] < 0.52


# --------------------------------------------------------------------- nebular emission
def test_halpha_in_f444w_at_z58(sps, jades, make_model, predict):
    kw = dict(zred=5.8, sfh=1, tage=0.03, tau=100.0, dust2=0.0, logzsol=-1.0, mass=1e9)
    assert (
        band_edges(jades[BAND["jwst_f444w"]])[0]
        < 6564.6 * 6.8
        < band_edges(jades[BAND["jwst_f444w"]])[1]
    )
    on, _ = predict(make_model("parametric_sfh", "nebular", **kw), sps, jades)
    off, _ = predict(
        make_model("parametric_sfh", "nebular", add_neb_emission=False, **kw), sps, jades
    )
    gain = on / off - 1
    f444w, f200w = gain[BAND["jwst_f444w"]], gain[BAND["jwst_f200w"]]
    assert f444w > 0.5  # H-alpha (+[NII], [SII]) and nebular continuum
    # F200W (rest 2480-3380 AA) has no strong line: nebular continuum only
    assert 0 < f200w < 0.5 * f444w
    # [OIII]+H-beta land in F335M
    assert gain[BAND["jwst_f335m"]] > f444w


def test_nebemlineinspec_false_matches_true(sps, jades, make_model, predict):
    """Lines added to the spectrum vs. added analytically by SpecModel.nebline_photometry."""
    kw = dict(sfh=1, tage=0.02, tau=100.0, dust2=0.3, logzsol=-1.0, mass=1e9)
    for z in (2.0, 5.8):
        inspec, _ = predict(make_model("parametric_sfh", "nebular", zred=z, **kw), sps, jades)
        model = make_model("parametric_sfh", "nebular", zred=z, nebemlineinspec=False, **kw)
        analytic, _ = predict(model, sps, jades)
        # the analytic path really ran: SpecModel cached the line fluxes
        assert model._want_lines and model._need_lines
        assert np.all(np.isfinite(model.line_norm)) and model.line_norm > 0
        # lines deposited on the pixel grid vs. exact line wavelengths: ~1e-4 in practice
        np.testing.assert_allclose(analytic, inspec, rtol=0.01, atol=0)


def test_elines_to_ignore_is_left_out_by_every_path(sps, jades, make_model, predict):
    """Prospector's ``elines_to_ignore`` (lines added by SpecModel, ``nebemlineinspec`` False):
    SpecModel, the batch source, FastPhotometry and a stored-and-rebuilt model all leave
    Lyman-alpha out; with the lines in the spectrum it has no effect, as in Prospector, and
    a warning says so."""
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.provenance import model_from_spec, model_spec

    def model(inspec=False, ignore=("H  1  1215.67A",)):
        kw = dict(zred={"isfree": True, "prior": TopHat(mini=2.0, maxi=5.0)}, tage=0.3)
        if ignore:
            kw["elines_to_ignore"] = list(ignore)
        return make_model("parametric_sfh", "nebular", "igm", nebemlineinspec=inspec, **kw)

    ignored, full = model(), model(ignore=())
    theta = np.repeat(ignored.theta[None], 3, axis=0)
    theta[:, ignored.theta_labels().index("zred")] = [2.5, 3.5, 4.5]
    pro = np.array([predict(ignored, sps, jades, t)[0] for t in theta])
    with_lya = np.array([predict(full, sps, jades, t)[0] for t in theta])
    # Lyman-alpha's band loses its line and no other band changes
    lya_band = np.array(
        [
            [lo < 1215.67 * (1 + z) < hi for lo, hi in map(band_edges, jades)]
            for z in (2.5, 3.5, 4.5)
        ]
    )
    changed = ~np.isclose(pro, with_lya, rtol=1e-10, atol=0)
    np.testing.assert_array_equal(changed, lya_band)
    assert np.all((pro / with_lya).min(axis=1) < 0.9)  # 19-43% of that band, this young

    batch = ModelPhotometry(ignored, sps, jades)
    exact, _ = sps.photometry(batch.params(theta), jades)
    np.testing.assert_allclose(exact, pro, rtol=1e-8)
    for m in (ignored, model_from_spec(model_spec(ignored))):
        fast, _ = ModelPhotometry(m, sps, jades)(theta)
        assert np.max(np.abs(fast - pro) / pro.max(1, keepdims=True)) < 2e-3

    with pytest.raises(ValueError, match=r"\['Ly alpha'\] are not lines of .* 'H  1  1215.67A'"):
        ModelPhotometry(model(ignore=("Ly alpha",)), sps, jades)(theta)
    with pytest.warns(UserWarning, match="has no effect with nebemlineinspec=True"):
        inspec, _ = ModelPhotometry(model(inspec=True), sps, jades)(theta)
    in_full, _ = ModelPhotometry(model(inspec=True, ignore=()), sps, jades)(theta)
    np.testing.assert_array_equal(inspec, in_full)


def test_emline_info_without_sps_home(sps, jades, make_model, predict):
    import os

    assert os.getenv("SPS_HOME") is None
    model = make_model("parametric_sfh", "nebular")
    assert isinstance(model, SpecModel)
    info = model.emline_info
    assert isinstance(info, np.ndarray) and info.dtype.names == ("wave", "name")
    wave, names = load_line_list()
    assert len(info) == len(wave) > 50
    np.testing.assert_array_equal(info["wave"], wave)
    assert list(info["name"]) == list(names)
    # the classic lines are there, at vacuum wavelengths
    for lam in (4862.7, 5008.2, 6564.6):
        assert np.min(np.abs(info["wave"] - lam)) < 0.5
    # the source reports luminosities in exactly that layout
    predict(model, sps, jades)
    ewave, elum = sps.get_galaxy_elines()
    np.testing.assert_array_equal(ewave, info["wave"])
    assert elum.shape == (len(info),)
    ha = np.argmin(np.abs(ewave - 6564.6))
    hb = np.argmin(np.abs(ewave - 4862.7))
    assert elum[ha] > 0 and elum[hb] > 0
    # Case B Balmer decrement for dust2=0.6 power-law dust: above 2.86
    assert elum[ha] / elum[hb] > 2.86


FAKE_TABLE = "4862.71,H beta 4861\n5008.24,[OIII]5007\n6564.6,H alpha 6563\n"


def test_emline_info_from_fake_sps_home(tmp_path, monkeypatch, jades, make_model, predict, sps):
    data = tmp_path / "data"
    data.mkdir()
    (data / "emlines_info.dat").write_text(FAKE_TABLE)

    # reference luminosities with the Cloudy table (no SPS_HOME)
    kw = dict(zred=1.0, sfh=1, tage=0.02, tau=100.0, dust2=0.0, logzsol=-0.5)
    ref_model = make_model("parametric_sfh", "nebular", **kw)
    predict(ref_model, sps, jades)
    ref_wave, ref_lum = sps.get_galaxy_elines()

    monkeypatch.setenv("SPS_HOME", str(tmp_path))
    model = make_model("parametric_sfh", "nebular", **kw)
    assert len(model.emline_info) == 3
    np.testing.assert_allclose(model.emline_info["wave"], [4862.71, 5008.24, 6564.6])
    assert list(model.emline_info["name"]) == ["H beta 4861", "[OIII]5007", "H alpha 6563"]
    np.testing.assert_allclose(
        prospect_sbi.emission_line_info()["wave"], [4862.71, 5008.24, 6564.6]
    )

    fresh = BC03MilesBasis()  # a source instance reads the line table once
    with pytest.warns(UserWarning, match="no counterpart"):
        predict(model, fresh, jades)
        ewave, elum = fresh.get_galaxy_elines()
    assert ewave.shape == (3,) and elum.shape == (3,)
    np.testing.assert_allclose(ewave, [4862.71, 5008.24, 6564.6])
    assert np.all(elum > 0)
    assert elum[2] > elum[0]  # H-alpha > H-beta
    for k, lam in enumerate(ewave):
        j = np.argmin(np.abs(ref_wave - lam))
        assert elum[k] == pytest.approx(ref_lum[j], rel=1e-10)


# --------------------------------------------------------------------- distances
def test_lumdist_inverse_square(sps, jades, make_model, predict):
    kw = dict(zred=2.0, tage=1.0, tau=1.0, dust2=0.2, mass=1e10)
    near, _ = predict(make_model("parametric_sfh", "nebular", lumdist=5000.0, **kw), sps, jades)
    far, _ = predict(make_model("parametric_sfh", "nebular", lumdist=10000.0, **kw), sps, jades)
    np.testing.assert_allclose(near / far, 4.0, rtol=1e-10, atol=0)


@pytest.mark.parametrize("zred", [0.3, 2.0, 7.0])
def test_default_distance_is_prospector_cosmology(sps, jades, make_model, predict, zred):
    kw = dict(zred=zred, tage=0.5, tau=1.0, dust2=0.2, mass=1e10)
    d_ref = 1000.0
    auto, _ = predict(make_model("parametric_sfh", "nebular", **kw), sps, jades)
    fixed, _ = predict(make_model("parametric_sfh", "nebular", lumdist=d_ref, **kw), sps, jades)
    d_l = cosmo.luminosity_distance(zred).to("Mpc").value
    ok = fixed > 1e-8 * fixed.max()
    np.testing.assert_allclose(auto[ok] * (d_l / d_ref) ** 2, fixed[ok], rtol=1e-10)
    # and that cosmology is WMAP9, as Prospector documents
    assert cosmo.name == "WMAP9"


# --------------------------------------------------------------------- batched == single
def _stack_params(param_dicts):
    """Stack per-object Prospector ``model.params`` into a batch for sps.photometry."""
    out = {}
    for key in param_dicts[0]:
        vals = [np.asarray(p[key]) for p in param_dicts]
        if key == "agebins":
            assert all(np.array_equal(v, vals[0]) for v in vals)
            out[key] = vals[0]  # shared (nbin, 2)
            continue
        arr = np.stack(vals)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]  # scalar parameters -> (B,); continuity mass stays (B, nbin)
        out[key] = arr
    return out


BATCH_CASES = {
    "parametric": (("parametric_sfh", "nebular", "igm"), {}),
    "continuity": (("continuity_sfh", "nebular", "igm"), {}),
    "continuity-lines-analytic": (
        ("continuity_sfh", "nebular", "igm"),
        {"nebemlineinspec": False, "dust_type": 4, "dust_index": -0.3, "dust1": 0.5},
    ),
    "parametric-calzetti-lumdist": (
        ("parametric_sfh", "nebular"),
        {"dust_type": 2, "lumdist": 3000.0},
    ),
}


@pytest.mark.parametrize("case", list(BATCH_CASES))
def test_batch_photometry_equals_single_predict(sps, jades, make_model, predict, rng, case):
    templates, extra = BATCH_CASES[case]
    model = make_model(
        *templates,
        zred={"isfree": True, "init": 1.0, "prior": TopHat(mini=0.2, maxi=8.0)},
        **extra,
    )
    nobj = 20
    singles, mfracs, params = [], [], []
    for _ in range(nobj):
        theta = model.prior_transform(rng.uniform(0.02, 0.98, size=len(model.theta)))
        phot, mfrac = predict(model, sps, jades, theta)
        singles.append(phot)
        mfracs.append(mfrac)
        params.append({k: np.copy(v) for k, v in model.params.items()})
    singles = np.array(singles)
    batch = _stack_params(params)
    if "continuity" in case:
        assert batch["mass"].shape == (nobj, 3) and batch["agebins"].shape == (3, 2)
    assert batch["zred"].shape == (nobj,)
    assert np.ptp(batch["zred"]) > 3  # the redshifts really vary

    maggies, mfrac = sps.photometry(batch, jades)
    assert maggies.shape == (nobj, 14) and mfrac.shape == (nobj,)
    ok = singles > 1e-6 * singles.max(axis=1, keepdims=True)
    assert ok.sum() > 0.7 * ok.size
    np.testing.assert_allclose(maggies[ok], singles[ok], rtol=1e-6, atol=0)
    # where the single-object flux is negligible, the batch one is too
    assert np.all(maggies[~ok] <= 2e-6 * singles.max(axis=1, keepdims=True).repeat(14, 1)[~ok])
    np.testing.assert_allclose(mfrac, mfracs, rtol=1e-10)
    # small chunks (several redshift-sorted chunks) give the same answer
    chunked, _ = sps.photometry(batch, jades, chunk_size=3)
    np.testing.assert_allclose(chunked, maggies, rtol=1e-12, atol=0)


def test_single_flag_matches_predict(sps, jades, make_model, predict):
    model = make_model("parametric_sfh", "nebular", "igm", zred=3.3)
    phot, mfrac = predict(model, sps, jades)
    maggies, mf = sps.photometry(model.params, jades, single=True)
    assert maggies.shape == (1, 14)
    np.testing.assert_allclose(maggies[0], phot, rtol=1e-6)
    assert mf[0] == pytest.approx(mfrac, rel=1e-10)


# --------------------------------------------------------------------- bad input
def _one_line(excinfo):
    msg = str(excinfo.value)
    assert msg and "\n" not in msg
    return msg


def test_bad_filter_name():
    with pytest.raises(ValueError, match=r"unknown filter 'F999W'") as info:
        prospect_sbi.jades_filters(bands=["F444W", "F999W"])
    _one_line(info)


@pytest.mark.parametrize(
    ("params", "pattern"),
    [
        ({"duste_qpah": 6.0}, r"duste_qpah=6 is outside the DL07 grids \[0\.1, 4\.58\]"),
        ({"duste_umin": 0.05}, r"duste_umin=0\.05 is outside the DL07 grids"),
        ({"duste_gamma": 1.5}, r"duste_gamma=1\.5 is outside the allowed fractions"),
        ({"fagn": 0.1}, r"fagn=0\.1 is not implemented"),
        ({"logzsol": 1.0}, r"logzsol=1 is outside the BC03 metallicities"),
        ({"logzsol": -2.5}, r"logzsol=-2\.5 is outside"),
        ({"imf_type": 0}, r"imf_type=0 \(Salpeter\) is not available"),
        ({"dust_type": 1}, r"dust_type=1 is not supported"),
        ({"sfh": 5}, r"sfh=5 is not supported"),
        (
            {"sfh": 3, "mass": [1e8, 1e9, 1e9], "agebins": [[0, 8], [8, 9], [9, 9.5], [9.5, 10]]},
            r"mass has shape \(3,\) but agebins has 4 bins",
        ),
        ({"sfh": 3, "mass": [1e9, 1e9]}, r"sfh=3 needs 'agebins'"),
        ({"fburst": 0.2}, r"fburst is used only with sfh 1 and 4 \(as in FSPS\), not sfh=0"),
        (
            {"sfh": 4, "tage": 1.0, "fburst": 0.2, "tburst": 2.0},
            r"tburst=2 Gyr is after tage=1 Gyr with fburst=0\.2: FSPS would form no burst",
        ),
        (
            {"sfh": 1, "tage": 1.0, "fburst": 1.5, "tburst": 0.5},
            r"fburst=1\.5 is outside the allowed mass fractions \[0, 1\]",
        ),
    ],
)
def test_bad_parameters_raise_one_line(params, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        BC03MilesBasis(**params)
    _one_line(info)


def test_bad_parameter_through_specmodel(sps, jades, make_model, predict):
    model = make_model("parametric_sfh", logzsol=1.0)
    with pytest.raises(ValueError, match=r"logzsol=1 is outside the BC03 metallicities") as info:
        predict(model, sps, jades)
    _one_line(info)
    model = make_model("parametric_sfh", duste_umin=30.0)
    with pytest.raises(ValueError, match=r"duste_umin=30 is outside the DL07 grids") as info:
        predict(model, sps, jades)
    _one_line(info)
    # switched off, the DL07 parameters are not used, so not checked (as FSPS)
    model = make_model("parametric_sfh", add_dust_emission=False, duste_umin=30.0)
    assert np.all(predict(model, sps, jades)[0] > 0)


def test_kroupa_warns():
    with pytest.warns(UserWarning, match="Kroupa"):
        BC03MilesBasis(imf_type=2, tage=1.0)


@pytest.mark.parametrize("params", [{"zcontinuous": 1}, {"zred": 1.0}, {"imf_type": 1}])
def test_construct_with_fsps_style_keywords(params, sps, jades, make_model, predict):
    source = BC03MilesBasis(**params)  # as python-fsps / CSPSpecBasis(zcontinuous=1) allow
    phot, _ = predict(make_model("parametric_sfh"), source, jades)
    ref, _ = predict(make_model("parametric_sfh"), sps, jades)
    np.testing.assert_allclose(phot, ref, rtol=1e-12)


def test_kroupa_template_default_warns_but_runs(sps, jades, make_model, predict):
    model = make_model("parametric_sfh", imf_type=2)
    with pytest.warns(UserWarning, match="Kroupa"):
        phot, _ = predict(model, sps, jades)
    ref, _ = predict(make_model("parametric_sfh"), sps, jades)
    np.testing.assert_allclose(phot, ref, rtol=1e-12)  # same Chabrier grids


def test_bogus_igm_model():
    with pytest.raises(ValueError, match=r"unknown IGM model 'bogus'") as info:
        BC03MilesBasis(igm="bogus")
    _one_line(info)


def test_batch_switch_must_be_shared(sps, jades):
    params = {"zred": np.array([1.0, 2.0]), "sfh": np.array([1, 4]), "tage": 1.0, "tau": 1.0}
    with pytest.raises(ValueError, match="sfh must be the same for every object") as info:
        sps.photometry(params, jades)
    _one_line(info)


def test_batch_accepts_prospector_length_one_arrays(sps, jades, make_model, predict):
    model = make_model("parametric_sfh", "nebular", "igm", zred=2.0)
    phot, _ = predict(model, sps, jades)
    params = dict(model.params, zred=np.array([2.0, 2.0, 2.0]))  # other values stay (1,)
    maggies, _ = sps.photometry(params, jades)
    np.testing.assert_allclose(maggies, np.broadcast_to(phot, (3, 14)), rtol=1e-10)


def test_pickling_sends_settings_not_grids(sps):
    import pickle

    sps.update(logzsol=-0.5)
    _ = sps.grids
    blob = pickle.dumps(sps)
    assert len(blob) < 100_000
    clone = pickle.loads(blob)
    assert clone.igm == sps.igm and clone.params["logzsol"] == -0.5
    np.testing.assert_array_equal(clone.wavelengths, sps.wavelengths)


# --------------------------------------------------------------------------- dust emission
def test_dust_emission_balances_absorbed_energy(sps):
    """Emitted = absorbed luminosity (bolometric, native grid), and on unless switched off."""
    wave = sps.grids.wave
    nu = LIGHTSPEED / wave
    kw = dict(zred=np.array([0.5, 2.0]), mass=1.0, logzsol=-0.3, tage=np.array([0.2, 3.0]))
    kw |= dict(tau=1.0, sfh=4, imf_type=1, dust_type=2, dust1=np.array([0.5, 0.0]))
    kw |= dict(dust2=np.array([0.4, 1.2]), add_neb_emission=True, gas_logu=-2.0)

    def lum(**extra):  # Lsun per Msun; the lines are in the spectrum (nebemlineinspec)
        return -np.trapezoid(sps.spectra(kw | extra)["spectrum"], nu, axis=-1)

    default, on = lum(), lum(add_dust_emission=True)
    off, free = lum(add_dust_emission=False), lum(add_dust_emission=False, dust1=0.0, dust2=0.0)
    np.testing.assert_array_equal(default, on)  # absent means on, as FSPS
    absorbed = free - off
    emitted = on - off
    assert np.all(absorbed > 0.1 * free)
    np.testing.assert_allclose(emitted, absorbed, rtol=5e-3)


def test_dust_emission_shape_follows_parameters(sps, jades):
    """More PAHs, more F444W (3.3 um at z = 0.5); gamma adds hot dust; blue bands unchanged."""
    base = dict(zred=0.5, mass=1e10, logzsol=0.0, tage=0.3, tau=1.0, sfh=4, imf_type=1)
    base |= dict(dust_type=2, dust2=1.0)
    f444 = BAND["jwst_f444w"]

    def phot(**extra):
        return sps.photometry(base | extra, jades, single=True)[0][0]

    off = phot(add_dust_emission=False)
    low, high = phot(duste_qpah=0.47), phot(duste_qpah=4.58)
    assert high[f444] > low[f444] > off[f444]
    # bands at rest < 1 um see (almost) nothing
    blue = BAND["jwst_f115w"]
    assert abs(high[blue] / off[blue] - 1) < 2e-3
    assert phot(duste_gamma=0.5)[f444] > phot(duste_gamma=0.0)[f444]


def test_fast_dust_emission_per_object_parameters(sps, jades):
    """FastPhotometry follows per-object DL07 parameters as the exact path does."""
    from prospect_sbi.sources.fast import FastPhotometry

    rng = np.random.default_rng(3)
    n = 40
    params = dict(
        zred=rng.uniform(0.05, 1.0, n),
        mass=1e9,
        logzsol=rng.uniform(-1.5, 0.1, n),
        tage=rng.uniform(0.05, 3.0, n),
        tau=1.0,
        sfh=4,
        imf_type=1,
        dust_type=0,
        dust_index=rng.uniform(-1.0, 0.0, n),
        dust2=rng.uniform(0.0, 2.0, n),
        dust1=rng.uniform(0.0, 1.0, n),
        add_neb_emission=True,
        gas_logu=rng.uniform(-3.5, -1.5, n),
        duste_qpah=rng.uniform(0.5, 4.5, n),
        duste_umin=rng.uniform(0.2, 15.0, n),
        duste_gamma=rng.uniform(0.0, 0.3, n),
    )
    exact, _ = sps.photometry(params, jades)
    approx, _ = FastPhotometry(jades, sps=sps, zmax=2.0)(params)
    without, _ = sps.photometry(params | dict(add_dust_emission=False), jades)
    assert np.max(exact[:, -1] / without[:, -1]) > 1.05  # the emission matters in F444W
    assert np.max(np.abs(approx / exact - 1)) < 2e-3


def test_derived_quantities_count_the_burst():
    # A delayed-tau SFH (tage 2, tau 0.5 Gyr) with 30% of its mass in a burst 0.2 Gyr ago,
    # against the SFH summed on a fine grid of formation times: the burst moves the mean
    # age and the quartiles, and 75% of the mass had formed exactly when the burst went off
    tage, tau, fburst, tburst = 2.0, 0.5, 0.3, 1.8
    t = np.linspace(0.0, tage, 400_001)  # Gyr since the start
    rate = t * np.exp(-t / tau)
    dm = (1 - fburst) * rate / rate.sum()
    age = np.append(tage - t, tage - tburst)  # lookback, Gyr
    dm = np.append(dm, fburst)
    order = np.argsort(-age)  # oldest first: the fraction formed by each lookback age
    formed = np.cumsum(dm[order])
    params = dict(sfh=4, mass=np.array([1e10]), tage=tage, tau=tau, fburst=fburst, tburst=tburst)
    got = derived_quantities(params, np.array([0.6]))
    assert got["mwa"][0] == pytest.approx((dm * age).sum(), abs=1e-5)
    for q in (25, 50, 75):
        want = age[order][np.searchsorted(formed, q / 100)]
        assert got[f"t{q}"][0] == pytest.approx(want, abs=1e-5), q
    assert got["t75"][0] == pytest.approx(tage - tburst, abs=1e-9)
    smooth = derived_quantities(params | {"fburst": 0.0}, np.array([0.6]))
    assert got["mwa"][0] < smooth["mwa"][0] - 0.2
    sfr100 = (1 - fburst) * 10 ** smooth["log_sfr100"][0]
    assert 10 ** got["log_sfr100"][0] == pytest.approx(sfr100, rel=1e-12)
