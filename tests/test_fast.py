"""FastPhotometry against the exact projection (Prospector's own) on the same parameters.

The workload is the one training sets use: ``continuity_sfh``-like step SFHs whose age bins
follow the redshift (Prospector's ``zred_to_agebins``), or delayed-tau models, with dust,
nebular emission and IGM, at 0 < z < 12, through the 14 JADES bands.
"""

import numpy as np
import pytest
from prospect.models.transforms import zred_to_agebins
from prospect.sources.constants import cosmo
from scipy.integrate import quad
from scipy.special import gammainc

from prospect_sbi.sources.fast import FastPhotometry
from prospect_sbi.sources.fast_stars import FastStars, mix
from prospect_sbi.sources.grids import interp_index
from prospect_sbi.sources.params import resolve_params
from prospect_sbi.sources.sfh import cumulative_mass, gamma_cdf, power_moments, young_series

# Worst and median |fast / exact - 1| allowed in bands not blueward of Lyman-alpha (measured
# at the default R = 250: ~1e-3 and ~1e-5), and |fast - exact| / brightest band elsewhere.
WORST, MEDIAN, DROPOUT = 3e-3, 1e-4, 3e-3


@pytest.fixture(scope="module")
def fast(jades):
    return FastPhotometry(jades, zmax=12.0)


def _workload(rng, n, sfh, dust_type, in_spec):
    """Parameters of n objects as a Prospector model with free redshift would draw them."""
    zred = rng.uniform(0.0, 12.0, n)
    tuniv = cosmo.age(zred).value
    params = dict(
        zred=zred,
        logzsol=rng.uniform(-2.0, 0.19, n),
        imf_type=1,
        dust_type=dust_type,
        dust2=rng.uniform(0.0, 2.0, n),
        dust1=rng.uniform(0.0, 1.0, n),
        add_neb_emission=True,
        add_neb_continuum=True,
        nebemlineinspec=in_spec,
        gas_logu=rng.uniform(-4.0, -1.0, n),
        add_igm_absorption=True,
    )
    if dust_type == 4:
        params["dust_index"] = rng.uniform(-1.0, 0.4, n)
    if sfh == "delayed_tau":
        return params | dict(
            sfh=4,
            tage=tuniv * rng.uniform(0.01, 1.0, n),
            tau=10 ** rng.uniform(-1, 1, n),
            mass=1e9,
        )
    nbin = int(sfh[-1])
    template = np.array([[0.0, 7.5], [7.5, 8.0]] + [[8.0, 9.0]] * (nbin - 2))
    agebins = np.stack([zred_to_agebins(z, template) for z in zred])
    return params | dict(sfh=3, agebins=agebins, mass=10 ** rng.uniform(7, 10, (n, nbin)))


def _redward_of_lya(filters, zred):
    blue_edge = np.array(
        [f.wavelength[f.transmission > 0.01 * f.transmission.max()].min() for f in filters]
    )
    return blue_edge[None, :] > 1216.0 * (1 + zred[:, None])


def _compare(fast, sps, jades, params):
    exact, mfrac = sps.photometry(params, jades)
    approx, mfrac_fast = fast(params)
    ok = _redward_of_lya(jades, np.broadcast_to(params["zred"], mfrac.shape))
    rel = np.abs(approx / exact - 1)[ok]
    dropout = (np.abs(approx - exact) / exact.max(1, keepdims=True))[~ok]
    return rel, dropout, mfrac_fast / mfrac - 1


@pytest.mark.parametrize(
    "sfh, dust_type, in_spec",
    [
        ("step3", 4, True),
        ("step3", 0, False),
        ("step7", 4, False),
        ("step7", 0, True),
        ("delayed_tau", 4, True),
        ("delayed_tau", 0, False),
    ],
)
def test_fast_matches_exact_projection(fast, sps, jades, rng, sfh, dust_type, in_spec):
    params = _workload(rng, 32, sfh, dust_type, in_spec)
    rel, dropout, mfrac = _compare(fast, sps, jades, params)
    assert rel.max() < WORST, f"worst band off by {rel.max():.2e}"
    assert np.median(rel) < MEDIAN, f"median band off by {np.median(rel):.2e}"
    assert dropout.max() < DROPOUT, f"dropout band off by {dropout.max():.2e} of the brightest"
    np.testing.assert_allclose(mfrac, 0.0, atol=1e-8)


def test_fast_general_paths(fast, sps, jades, rng):
    # Per-object dust_tesc, gas_logz and igm_factor: age weights no longer share one shape,
    # and every object takes the full products.
    params = _workload(rng, 32, "step3", 4, True)
    params |= dict(
        dust_tesc=rng.uniform(6.6, 7.8, 32),
        gas_logz=rng.uniform(-2.0, 0.5, 32),
        dust1_index=rng.uniform(-1.5, -0.5, 32),
        lumdist=rng.uniform(10, 1e5, 32),
    )
    rel, dropout, mfrac = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN
    np.testing.assert_allclose(mfrac, 0.0, atol=1e-8)


def test_fast_switches_off(fast, sps, jades, rng):
    params = _workload(rng, 24, "step3", 2, True)
    params |= dict(add_igm_absorption=False, add_neb_continuum=False)
    rel, _, _ = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN
    params["add_neb_emission"] = False
    rel, _, _ = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN


def test_fast_independent_of_chunking(fast, rng):
    params = _workload(rng, 40, "step3", 4, True)
    params["dust_tesc"] = np.where(np.arange(40) < 5, 7.2, 7.0)  # a few rows off the shape
    whole, mfrac = fast(params)
    pieces, mfrac_pieces = fast(params, chunk_size=7)
    # float32 sums in another order: equal to ~1e-7 of each object's brightest band
    assert np.all(np.abs(pieces - whole) <= 1e-6 * whole.max(1, keepdims=True))
    np.testing.assert_array_equal(mfrac_pieces, mfrac)


@pytest.mark.parametrize("in_spec", [True, False])
def test_fast_draws_of_a_few_objects(fast, sps, jades, rng, monkeypatch, in_spec):
    # A refinement round: many draws at each of a few redshifts. The lines go through the
    # filters once per redshift, and chunks do not mix redshifts far apart; both agree with
    # the exact projection and with the row-by-row lines in one chunk.
    # Rows sharing step-SFH bins mix their old stars from the bins' spectra (from 8 rows here).
    monkeypatch.setattr("prospect_sbi.sources.fast_stars.STEP_BASIS_ROWS", 8)
    params = _workload(rng, 48, "step3", 4, in_spec)
    zred = np.repeat([0.3, 2.5, 2.6, 9.0], 12)
    params["zred"] = zred
    params["agebins"] = np.stack([zred_to_agebins(z, params["agebins"][0]) for z in zred])
    rel, dropout, _ = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN and dropout.max() < DROPOUT
    grouped, _ = fast(params)
    monkeypatch.setattr("prospect_sbi.sources.fast_nebular._ROWS_PER_REDSHIFT", 10**9)
    row_by_row, _ = fast(params)
    # float32 sums in another order: equal to ~1e-7 of each object's brightest band
    assert np.all(np.abs(grouped - row_by_row) <= 1e-6 * row_by_row.max(1, keepdims=True))
    monkeypatch.setattr("prospect_sbi.sources.fast.MAX_SPAN", np.inf)
    one_chunk, _ = fast(params)  # float32 line coordinates across z = 0.3-9: ~1e-6
    assert np.all(np.abs(one_chunk - row_by_row) <= 1e-5 * row_by_row.max(1, keepdims=True))


def test_step_sfh_old_stars_from_bin_spectra(fast, rng, monkeypatch):
    # The draws of three objects (step SFH, bins following each redshift): rows sharing bins
    # and dust_tesc take the bins' spectra, built from STEP_BASIS_ROWS rows and kept; as
    # accurate as the product over every SSP age (both float32, against float64).
    monkeypatch.setattr("prospect_sbi.sources.fast_stars.STEP_BASIS_ROWS", 10)
    params = _workload(rng, 60, "step7", 4, True)
    params["zred"] = np.repeat([0.4, 3.1, 8.7], 20)
    params["agebins"] = np.stack(
        [zred_to_agebins(z, params["agebins"][0]) for z in params["zred"]]
    )
    params["dust_tesc"] = np.where(np.arange(60) % 20 < 3, 7.2, 7.0)  # 3 rows with other keys
    stars = FastStars(fast.stars.grids, fast.grid.binner(fast.stars.grids.wave))
    res = resolve_params(params, 60)
    res = res.take(np.argsort(interp_index(stars.grids.logzsol, res.values["logzsol"])[0]))
    zi, zf = interp_index(stars.grids.logzsol, res.values["logzsol"])
    _, old, _ = stars.weights(res, zi, zf)
    i0, i1 = 100, 900
    w = np.stack([(1 - zf)[:, None] * old, zf[:, None] * old], axis=2).reshape(60, -1)
    exact = np.einsum("ca,cal->cl", w, stars.pairs[zi, :, i0:i1].astype(float))
    full = mix(old, zi, zf, stars.pairs, i0, i1)
    got = stars.old_light(res, old, zi, zf, i0, i1)
    for spectra in (full, got):
        assert np.all(np.abs(spectra - exact) <= 2e-6 * exact.max(1, keepdims=True))
    shared = res.values["dust_tesc"] == 7.0
    assert not np.array_equal(got[shared], full[shared])  # the bins' spectra, not the SSPs'
    monkeypatch.setattr("prospect_sbi.sources.fast_stars.STEP_BASIS_ROWS", 10**9)
    np.testing.assert_array_equal(stars.old_light(res, old, zi, zf, i0, i1), got)  # kept


@pytest.mark.parametrize("sfh", [1, 4])
def test_young_series_matches_the_rate(rng, sfh):
    # The series of the rate below tesc against the cumulative mass (where its differences
    # keep digits) and against quadrature of the rate (where they do not: old, short-tau SFHs)
    edges = np.concatenate([[0.0], np.geomspace(1e5, 2e7, 60)])
    params = dict(tage=rng.uniform(0.011, 13.8, 400), tau=10 ** rng.uniform(-1, np.log10(30), 400))
    coef, exact = young_series(sfh, params, np.full(400, 1e7), 8, 1e-9)
    assert exact.all()
    series = coef @ power_moments(edges, 1e7, 8)
    clipped = np.minimum(edges, 1e7)[None].repeat(400, 0)
    cumulative = np.diff(cumulative_mass(clipped, sfh, params), axis=1)
    kept = cumulative.sum(1) > 1e-6
    assert kept.sum() > 200
    rel = np.abs(series - cumulative)[kept].sum(1) / cumulative[kept].sum(1)
    assert rel.max() < 2e-9
    a = 2.0 if sfh == 4 else 1.0
    for i in np.argsort(params["tage"] / params["tau"])[-3:]:  # young mass ~1e-40 or less
        tage, tau = params["tage"][i] * 1e9, params["tau"][i] * 1e9
        norm = tau**a * gammainc(a, tage / tau)
        mass = quad(
            lambda t, T=tage, s=tau, c=norm: (T - t) ** (a - 1) * np.exp(-(T - t) / s) / c,
            0,
            1e7,
            epsabs=0,
        )[0]
        np.testing.assert_allclose(series[i].sum(), mass, rtol=1e-9)
    # a window past the start of the SFH, or a series cut too early, is not used
    _, exact = young_series(sfh, dict(tage=[0.005, 1.0], tau=[1.0, 0.001]), [1e7, 1e7], 8, 1e-9)
    assert not exact.any()


@pytest.mark.parametrize("sfh", ["delayed_tau", "tau"])
def test_fast_young_stars_from_the_series(fast, sps, jades, rng, monkeypatch, sfh):
    # Tau and delayed-tau rows mix their young stars and nebula from spectra per power of
    # age: equal to the per-age products to float32 rounding, and to the exact projection.
    # Rows younger than tesc, or with another tesc than the chunk's first, take the products.
    params = _workload(rng, 40, "delayed_tau", 4, True)
    if sfh == "tau":
        params["sfh"] = 1
    params["tage"][:4] = 0.004
    params["dust_tesc"] = np.where(np.arange(40) % 10 == 9, 7.3, 7.0)
    rel, dropout, mfrac = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN and dropout.max() < DROPOUT
    series, _ = fast(params)
    monkeypatch.setattr("prospect_sbi.sources.fast.SERIES_TOL", -1.0)  # no row uses it
    products, _ = fast(params)
    assert np.all(np.abs(series - products) <= 1e-6 * products.max(1, keepdims=True))
    assert not np.array_equal(series, products)


def test_fast_burst_matches_exact(fast, sps, jades, rng, monkeypatch):
    # FSPS's burst of delayed-tau rows: a burst older than tesc leaves the young stars to
    # the series (the smooth part's 1 - fburst); a younger one sends its row to the products
    params = _workload(rng, 40, "delayed_tau", 0, True)
    params["fburst"] = rng.uniform(0.0, 0.5, 40)
    params["tburst"] = params["tage"] * np.where(
        np.arange(40) % 4 == 0, 0.99999, rng.uniform(0.5, 0.99, 40)
    )
    rel, dropout, mfrac = _compare(fast, sps, jades, params)
    assert rel.max() < WORST and np.median(rel) < MEDIAN and dropout.max() < DROPOUT
    assert np.abs(mfrac).max() < 1e-6
    series, _ = fast(params)
    monkeypatch.setattr("prospect_sbi.sources.fast.SERIES_TOL", -1.0)  # no row uses it
    products, _ = fast(params)
    assert np.all(np.abs(series - products) <= 1e-6 * products.max(1, keepdims=True))
    assert not np.array_equal(series, products)


def test_fast_distance_and_broadcasting(fast, rng):
    # Scalars and length-1 arrays are shared; the default distance is Prospector's cosmology.
    z = np.array([0.0, 0.01, 1.0, 6.0, 11.9])
    lumdist = np.append(1e-5, cosmo.luminosity_distance(z[1:]).to("Mpc").value)
    params = dict(zred=z, tage=[0.1], tau=1.0, sfh=4, mass=1e9, imf_type=1, logzsol=[-0.5])
    maggies, _ = fast(params)
    assert maggies.shape == (5, 14) and np.all(maggies[:, -1] > 0)
    at_lumdist, _ = fast(params | dict(lumdist=lumdist))
    np.testing.assert_allclose(maggies, at_lumdist, rtol=1e-7)
    farther, _ = fast(params | dict(lumdist=2 * lumdist))
    np.testing.assert_allclose(farther, maggies / 4, rtol=1e-6)


@pytest.mark.parametrize("sfh", [1, 4])
def test_closed_form_sfh_matches_gammainc(rng, sfh):
    x = np.concatenate([np.geomspace(1e-9, 50.0, 2000), [0.0, 0.05]])
    np.testing.assert_allclose(gamma_cdf(sfh, x), gammainc(1 if sfh == 1 else 2, x), rtol=1e-12)
    params = dict(tage=rng.uniform(0.001, 13.0, 50), tau=10 ** rng.uniform(-3, 2, 50))
    age = np.geomspace(1e4, 2e10, 300)
    # Both cancel alike where tage - age ~ tage: fractions agree to ~1e-13 absolute.
    expected = cumulative_mass(age, sfh, params)
    np.testing.assert_allclose(
        cumulative_mass(age, sfh, params, closed_form=True), expected, rtol=1e-10, atol=1e-12
    )


def test_fast_rejects_redshift_beyond_zmax(fast, rng):
    params = _workload(rng, 3, "delayed_tau", 0, True)
    params["zred"] = np.array([1.0, 2.0, 13.0])
    with pytest.raises(ValueError, match=r"zred=13 is beyond FastPhotometry zmax=12"):
        fast(params)


def test_fast_skips_dust_emission_no_band_sees(fast, sps, jades, rng):
    # DL07 starts at ~1 micron rest. Beyond z ~ 4.2 no JADES band reaches it, so the energy
    # balance is skipped and the photometry is that without emission, bit for bit; just
    # below, F444W sees the hot dust and the fast path still follows the exact one.
    dl07 = dict(add_dust_emission=True, duste_umin=20.0, duste_qpah=1.0, duste_gamma=0.3)
    far = _workload(rng, 16, "delayed_tau", 4, True) | _younger(rng, 4.3, 12.0, 16)
    emitting, _ = fast(far | dl07)
    dark, _ = fast(far | dict(add_dust_emission=False))
    np.testing.assert_array_equal(emitting, dark)
    near = _workload(rng, 16, "delayed_tau", 4, True) | _younger(rng, 3.0, 3.8, 16)
    near["dust2"] = rng.uniform(1.0, 2.0, 16)  # enough absorbed light to see its emission
    with_dust, _ = fast(near | dl07)
    without, _ = fast(near | dict(add_dust_emission=False))
    assert np.min(with_dust[:, -1] / without[:, -1]) > 1 + 1e-5  # F444W sees it, every object
    exact, _ = sps.photometry(near | dl07, jades)
    assert np.max(np.abs(with_dust / exact - 1)[_redward_of_lya(jades, near["zred"])]) < WORST


def _younger(rng, zlo, zhi, n):
    """Redshifts in [zlo, zhi) and delayed-tau ages that fit in the universe then."""
    zred = rng.uniform(zlo, zhi, n)
    return dict(zred=zred, tage=cosmo.age(zred).value * rng.uniform(0.01, 1.0, n))
