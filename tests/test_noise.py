"""Noise models: JADES pixel noise, empirical noise from real tables, limits, missing bands."""

import json

import numpy as np
import pytest
from scipy import stats

from prospect_sbi.filters import JADES_BANDS, JADES_MEDIUM_BANDS
from prospect_sbi.noise import (
    UJY_TO_MAGGIES,
    EmpiricalNoise,
    JadesPixelNoise,
    NoiseModel,
    noise_from_dict,
)

ALL19 = JADES_BANDS + JADES_MEDIUM_BANDS
#: Band order of the SBIPIX arrays in ../shared/data/jades_noise (README.md there).
SBIPIX_ORDER = (
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f182m",
    "jwst_f200w",
    "jwst_f210m",
    "jwst_f277w",
    "jwst_f335m",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f430m",
    "jwst_f444w",
    "jwst_f460m",
    "jwst_f480m",
    "acs_wfc_f435w",
    "acs_wfc_f606w",
    "acs_wfc_f775w",
    "acs_wfc_f814w",
    "acs_wfc_f850lp",
)
SHORT = [b.split("_")[-1].upper() for b in JADES_BANDS]
DMAG = 0.4 * np.log(10)


def mag_to_maggies(mag):
    return 10 ** (-0.4 * np.asarray(mag, dtype=float))


@pytest.fixture(scope="module")
def jades():
    return JadesPixelNoise()


@pytest.fixture(scope="module")
def catalogue(shared_data):
    """JADES catalogue fluxes and errors in maggies (the file holds Jy), (99, 14) each."""
    from astropy.table import Table

    path = shared_data / "jades_specz_catalogue_subset.fits"

    table = Table.read(path)
    flux = np.stack([np.asarray(table[b], dtype=float) for b in SHORT], axis=1) / 3631
    err = np.stack([np.asarray(table[f"unc_{b}"], dtype=float) for b in SHORT], axis=1) / 3631
    return flux, err


@pytest.fixture(scope="module")
def jof_pixels(shared_data):
    """Pixels of the three JOF galaxies' segments, maggies, (2475, 14) each."""
    data = np.load(shared_data / "jof_psfmatched_cutouts.npz")
    assert [str(b) for b in data["bands"]] == SHORT
    flux, err = [], []
    for gid in (36, 370, 778):
        seg = data[f"id{gid}_segmap_det"]
        inside = seg == seg[32, 32]
        flux.append(data[f"id{gid}_phot_uJy"][:, inside].T)
        err.append(data[f"id{gid}_err_uJy"][:, inside].T)
    return np.concatenate(flux) * UJY_TO_MAGGIES, np.concatenate(err) * UJY_TO_MAGGIES


def synthetic_catalogue(rng, n=4000, s0=3e-12, scatter=0.05):
    """Fluxes with sigma = sqrt(s0^2 + 0.02 s0 f) times a log-normal scatter (dex)."""
    true = np.concatenate([rng.uniform(0, 3 * s0, n // 4), rng.lognormal(np.log(30 * s0), 2, n)])
    sigma = np.sqrt(s0**2 + 0.02 * s0 * true) * 10 ** (scatter * rng.standard_normal(true.size))
    return (true + sigma * rng.standard_normal(true.size))[:, None], sigma[:, None], true


# ---------------------------------------------------------------- JADES numbers and provenance


def test_shipped_numbers_without_data_folder(jades):
    # F444W: 9.444533628589442e-05 microJy per pixel in SBIPIX's background_noise_hainline.npy
    assert jades.bands == JADES_BANDS
    np.testing.assert_allclose(jades.depth[13], 9.444533628589442e-05 * 1e-6 / 3631, rtol=1e-15)
    assert -2.5 * np.log10(jades.depth[13]) == pytest.approx(33.962, abs=1e-3)
    assert jades.mag_edges.shape == jades.mag_err_mean.shape == (14, 4)
    np.testing.assert_allclose(jades.mag_err_mean[13], [0.0242, 0.1352, 0.3657, 0.6317], atol=1e-4)
    assert jades.limit_sigma == 1.0
    np.testing.assert_array_equal(jades.p_missing, 0.0)


def test_depths_equal_real_sbipix_files(shared_data):
    folder = shared_data / "jades_noise"
    raw = np.load(folder / "background_noise_hainline.npy")
    expected = dict(zip(SBIPIX_ORDER, raw * 1e-6 / 3631, strict=True))
    for model in (JadesPixelNoise(ALL19), JadesPixelNoise(ALL19, data_dir=folder)):
        np.testing.assert_allclose(model.depth, [expected[b] for b in ALL19], rtol=1e-15)


def test_package_data_equals_real_files(shared_data):
    folder = shared_data / "jades_noise"
    from_files = JadesPixelNoise(ALL19, data_dir=folder)
    assert from_files.to_dict() == JadesPixelNoise(ALL19).to_dict()
    edges = np.load(folder / "percentiles_jades_res_bins.npy")
    mean = np.load(folder / "mean_sigma_jades_res_bins.npy")
    std = np.load(folder / "std_sigma_jades_res_bins.npy")
    for i, band in enumerate(SBIPIX_ORDER):
        j = ALL19.index(band)
        np.testing.assert_array_equal(from_files.mag_edges[j], edges[:, i])
        np.testing.assert_array_equal(from_files.mag_err_mean[j], mean[i, :4])
        np.testing.assert_array_equal(from_files.mag_err_std[j], std[i, :4])


def test_sbipix_band_order_matches_its_wavelengths(shared_data):
    from prospect_sbi import jades_filters

    lam = np.load(shared_data / "jades_noise" / "lam_eff.npy")[:19]
    pivots = [f.wave_pivot for f in jades_filters(bands=SBIPIX_ORDER)]
    np.testing.assert_allclose(lam, pivots, rtol=1e-3)


def test_missing_data_dir_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="background_noise_hainline.npy"):
        JadesPixelNoise(data_dir=tmp_path)


# ---------------------------------------------------------------------- JadesPixelNoise.apply


@pytest.mark.parametrize("mag", [27.0, 31.0, 32.8, 34.5, 40.0])
def test_pulls_are_unit_normal(jades, rng, mag):
    true = np.full((100_000, 14), mag_to_maggies(mag))
    flux, err = jades.apply(true, rng)
    pull = (flux - true) / err
    assert np.all(err > 0)
    np.testing.assert_array_less(np.abs(pull.mean(axis=0)), 0.02)
    np.testing.assert_array_less(np.abs(pull.std(axis=0) - 1), 0.02)


def test_faint_sources_have_depth_errors(jades, rng):
    true = np.array([[0.0] * 14, list(0.999 * jades.depth)])
    _, err = jades.apply(np.repeat(true, 1000, axis=0), rng)
    np.testing.assert_array_equal(err, np.broadcast_to(jades.depth, err.shape))


@pytest.mark.parametrize("k", [0, 1])
def test_bright_sources_follow_magnitude_error_bins(jades, rng, k):
    # middle of bin k (bin 0: 1 mag brighter than its edge); all are above the 1-sigma depth
    mag = jades.mag_edges[:, 0] - 1 if k == 0 else jades.mag_edges[:, :2].mean(axis=1)
    true = np.broadcast_to(mag_to_maggies(mag), (100_000, 14))
    assert np.all(true > jades.depth)
    np.testing.assert_array_equal(jades.magnitude_bin(true[:1]), k)
    _, err = jades.apply(true, rng)
    sigma_mag = err / (DMAG * true)
    m, s = jades.mag_err_mean[:, k], jades.mag_err_std[:, k]
    floor = jades.mag_err_floor
    assert floor == 0.01
    expected = stats.truncnorm((floor - m) / s, np.inf, loc=m, scale=s)
    np.testing.assert_allclose(sigma_mag.mean(axis=0), expected.mean(), rtol=0.01)
    np.testing.assert_allclose(sigma_mag.std(axis=0), expected.std(), rtol=0.02)
    assert sigma_mag.min() >= floor


def test_error_floor_zero_reproduces_sbipix_and_old_files_keep_it(rng):
    # bin 0 of every band, where SBIPIX's truncation at 0 gives errors below 0.01 mag
    sbipix = JadesPixelNoise(mag_err_floor=0.0)
    true = np.broadcast_to(mag_to_maggies(sbipix.mag_edges[:, 0] - 1), (50_000, 14))
    _, err = sbipix.apply(true, rng)
    below = np.mean(err / (DMAG * true) < 0.01, axis=0)
    assert below.max() > 0.02  # e.g. F444W: mean 0.024, std 0.018 mag
    d = JadesPixelNoise().to_dict()
    assert d.pop("mag_err_floor") == 0.01
    assert noise_from_dict(d).mag_err_floor == 0.0
    with pytest.raises(ValueError, match="mag_err_floor"):
        JadesPixelNoise(mag_err_floor=-0.1)


def test_magnitude_bins_follow_sbipix_digitize(jades):
    edges = jades.mag_edges
    mags = np.stack([edges[:, 0] - 0.01, edges[:, 0], edges[:, 2] + 0.01, edges[:, 3] + 5])
    np.testing.assert_array_equal(jades.magnitude_bin(mag_to_maggies(mags)).T, [[0, 1, 3, 3]] * 14)


def test_detection_threshold_switches_error_source(rng):
    noise = JadesPixelNoise(["F444W"], limit_sigma=2.0)
    true = np.array([[1.999], [2.001]]) * noise.depth
    _, err = noise.apply(np.repeat(true, 500, axis=0), rng)
    assert np.all(err[:500] == noise.depth[0])
    assert np.all(err[500:] != noise.depth[0])


@pytest.mark.parametrize("limit_sigma", [1.0, 2.0])
def test_upper_limits_flag_fluxes_below_threshold(rng, limit_sigma):
    noise = JadesPixelNoise(limit_sigma=limit_sigma)
    flux, err = noise.apply(np.zeros((50_000, 14)), rng)
    limits = noise.upper_limits(flux, err)
    np.testing.assert_array_equal(limits, flux < limit_sigma * noise.depth)
    np.testing.assert_allclose(limits.mean(axis=0), stats.norm.cdf(limit_sigma), atol=0.006)
    flux[0, 0], err[1, 1] = np.nan, np.nan
    limits = noise.upper_limits(flux, err)
    assert not limits[0, 0] and not limits[1, 1]


def test_p_missing_gives_requested_nan_fraction(rng):
    p = np.linspace(0, 0.6, 14)
    noise = JadesPixelNoise(p_missing=p)
    flux, err = noise.apply(np.full((40_000, 14), 1e-12), rng)
    np.testing.assert_allclose(np.isnan(flux).mean(axis=0), p, atol=0.01)
    np.testing.assert_array_equal(np.isnan(flux), np.isnan(err))
    assert np.isnan(flux[:, 0]).sum() == 0


def test_missing_input_bands_pass_through_when_allowed(jades, rng):
    true = np.full((3, 2, 14), 1e-12)
    true[1, 0, 4] = np.nan
    flux, err = jades.apply(true, rng, allow_missing=True)
    assert flux.shape == err.shape == (3, 2, 14)
    assert np.isnan(flux[1, 0, 4]) and np.isnan(err[1, 0, 4])
    assert np.isfinite(flux).sum() == true.size - 1


def test_fresh_draw_each_call_and_reproducible_with_seed(jades):
    true = np.full((4, 14), 1e-12)
    a = jades.apply(true, np.random.default_rng(5))
    b = jades.apply(true, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    rng = np.random.default_rng(5)
    assert not np.array_equal(jades.apply(true, rng)[0], jades.apply(true, rng)[0])


# ------------------------------------------------------------------------------ EmpiricalNoise


def test_empirical_recovers_known_relation(rng):
    flux, err, true = synthetic_catalogue(rng)
    noise = EmpiricalNoise.from_catalog(flux, err, ["F444W"])
    assert abs(noise.depth[0] / 3e-12 - 1) < 0.05
    assert np.median(noise.log_scatter[0]) == pytest.approx(0.05, abs=0.015)
    probe = np.array([[0.0], [3e-11], [3e-10], [1e-9]])  # inside the binned range
    assert noise.scale[0] * np.sinh(noise.nodes[0][-1]) > 1e-9
    truth = np.sqrt(3e-12**2 + 0.02 * 3e-12 * probe)
    np.testing.assert_allclose(noise.median_sigma(probe), truth, rtol=0.1)
    applied, sigma = noise.apply(true[:, None], rng)
    pull = (applied - true[:, None]) / sigma
    assert abs(pull.mean()) < 0.05 and abs(pull.std() - 1) < 0.05
    assert abs(np.median(sigma) / np.median(err) - 1) < 0.05


def test_empirical_bright_end_keeps_signal_to_noise(rng):
    flux, err, _ = synthetic_catalogue(rng)
    noise = EmpiricalNoise.from_catalog(flux, err, ["F444W"])
    f_last = noise.scale[0] * np.sinh(noise.nodes[0][-1])
    s = noise.median_sigma(np.array([[f_last], [10 * f_last], [1000 * f_last]]))[:, 0]
    np.testing.assert_allclose(s / s[0], [1, 10, 1000], rtol=1e-12)


def test_empirical_from_jades_catalogue(catalogue):
    flux, err = catalogue
    noise = EmpiricalNoise.from_catalog(flux, err, SHORT)
    assert noise.bands == JADES_BANDS
    valid = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    np.testing.assert_allclose(noise.p_missing, 1 - valid.mean(axis=0), rtol=1e-12)
    assert noise.p_missing[SHORT.index("F335M")] == pytest.approx(15 / 99)
    depth_ratio, tertile_ratio = [], []
    for j in range(14):
        f, e = flux[valid[:, j], j], err[valid[:, j], j]
        depth_ratio.append(noise.depth[j] / np.median(e[f <= np.quantile(f, 0.25)]))
        # the learned median relation tracks the data's binned medians (tertiles; the fit's
        # nodes are at quartiles, and 33 galaxies with 0.3 dex scatter give ~15% medians)
        model = noise.median_sigma(np.where(np.arange(14) == j, f[:, None], 0))[:, j]
        for lo, hi in zip([0, 1 / 3, 2 / 3], [1 / 3, 2 / 3, 1], strict=True):
            sel = (f >= np.quantile(f, lo)) & (f <= np.quantile(f, hi))
            tertile_ratio.append(np.median(model[sel]) / np.median(e[sel]))
    np.testing.assert_allclose(depth_ratio, 1, atol=0.2)
    np.testing.assert_allclose(tertile_ratio, 1, atol=0.35)


def test_empirical_catalogue_noise_reproduces_catalogue_errors(catalogue, rng):
    flux, err = catalogue
    noise = EmpiricalNoise.from_catalog(flux, err, SHORT, learn_missing=False)
    _, sigma = noise.apply(np.clip(flux, 0, None), rng, allow_missing=True)
    ratio = np.nanmedian(sigma, axis=0) / np.nanmedian(err, axis=0)
    np.testing.assert_allclose(ratio, 1, atol=0.35)


def test_empirical_from_jof_pixels(jof_pixels, rng):
    flux, err = jof_pixels
    noise = EmpiricalNoise.from_catalog(flux, err)
    assert len(noise.nodes[0]) == 10
    faint = np.abs(flux / err) < 3
    faint_err = [np.median(err[faint[:, j], j]) for j in range(14)]
    np.testing.assert_allclose(noise.depth, faint_err, rtol=0.2)
    quartile_ratio = []
    for j in range(14):
        f, e = flux[:, j], err[:, j]
        model = noise.median_sigma(np.where(np.arange(14) == j, np.clip(f, 0, None)[:, None], 0))
        for q in range(4):
            lo, hi = np.quantile(f, [q / 4, (q + 1) / 4])
            sel = (f >= lo) & (f <= hi)
            quartile_ratio.append(np.median(model[sel, j]) / np.median(e[sel]))
    np.testing.assert_allclose(quartile_ratio, 1, atol=0.15)
    _, sigma = noise.apply(np.clip(flux, 0, None), rng)
    np.testing.assert_allclose(np.median(sigma, axis=0), np.median(err, axis=0), rtol=0.05)
    _, sigma0 = noise.apply(np.zeros((20_000, 14)), rng)
    np.testing.assert_allclose(np.median(sigma0, axis=0), noise.depth, rtol=0.02)


def test_empirical_warns_on_flux_units(rng):
    flux, err, _ = synthetic_catalogue(rng, n=200)
    with pytest.warns(UserWarning, match="Convert to maggies"):
        EmpiricalNoise.from_catalog(flux * 3631e9, err * 3631e9, ["F444W"])  # nJy


# ------------------------------------------------------------- serialisation, select, errors


@pytest.fixture(scope="module")
def models():
    rng = np.random.default_rng(3)
    flux, err, _ = synthetic_catalogue(rng, n=500)
    flux2 = np.hstack([flux, 2 * flux])
    err2 = np.hstack([err, 3 * err])
    err2[:40, 1] = np.nan
    return [
        JadesPixelNoise(),
        JadesPixelNoise(ALL19, limit_sigma=2.0, p_missing=np.linspace(0, 0.2, 19)),
        EmpiricalNoise.from_catalog(flux2, err2, ["F444W", "F090W"], limit_sigma=3.0),
    ]


@pytest.mark.parametrize("index", [0, 1, 2])
def test_to_dict_round_trip_is_exact(models, index):
    model = models[index]
    d = json.loads(json.dumps(model.to_dict(), allow_nan=False))
    assert d["kind"] == model.kind
    rebuilt = noise_from_dict(d)
    assert type(rebuilt) is type(model)
    assert rebuilt.to_dict() == model.to_dict()
    np.testing.assert_array_equal(rebuilt.depth, model.depth)
    true = np.full((50, len(model.bands)), 1e-12)
    a = model.apply(true, np.random.default_rng(9))
    b = rebuilt.apply(true, np.random.default_rng(9))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_select_reorders_bands(models):
    jades, _, empirical = models
    sub = jades.select(["F444W", "acs_wfc_f435w", "f090w"])
    assert sub.bands == ("jwst_f444w", "acs_wfc_f435w", "jwst_f090w")
    np.testing.assert_array_equal(sub.depth, jades.depth[[13, 0, 5]])
    np.testing.assert_array_equal(sub.mag_err_std, jades.mag_err_std[[13, 0, 5]])
    swapped = empirical.select(["F090W", "F444W"])
    assert swapped.bands == ("jwst_f090w", "jwst_f444w")
    np.testing.assert_array_equal(swapped.depth, empirical.depth[::-1])
    np.testing.assert_array_equal(swapped.p_missing, empirical.p_missing[::-1])
    np.testing.assert_array_equal(swapped.nodes[0], empirical.nodes[1])
    assert swapped.limit_sigma == 3.0


def test_band_matching_and_rebuilding_are_public(models):
    from prospect_sbi.noise.base import match_bands

    jades, _, empirical = models
    assert match_bands(["F444W", "acs_wfc_f435w"], jades.bands) == ["jwst_f444w", "acs_wfc_f435w"]
    with pytest.raises(ValueError, match=r"band 'F770W' is not in this noise model"):
        match_bands(["F770W"], jades.bands)
    assert JadesPixelNoise.per_band_keys == (
        "depth",
        "p_missing",
        "mag_edges",
        "mag_err_mean",
        "mag_err_std",
    )
    assert set(EmpiricalNoise.per_band_keys) >= {"depth", "scale", "nodes"}
    rebuilt = JadesPixelNoise.from_dict(jades.to_dict())
    np.testing.assert_array_equal(rebuilt.mag_err_mean, jades.mag_err_mean)
    assert rebuilt.to_dict() == jades.to_dict()


def test_repr_names_bands_and_options(models):
    assert repr(models[0]) == (
        "JadesPixelNoise(14 bands: acs_wfc_f435w..jwst_f444w, limit_sigma=1, p_missing=0)"
    )
    assert "limit_sigma=3, p_missing=per band" in repr(models[2])


def test_noise_model_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        NoiseModel(["jwst_f444w"], [1e-12])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda m: m.apply(np.ones((3, 13)) * 1e-12),
            r"shape \(\.\.\., 14\) .* got shape \(3, 13\)",
        ),
        (lambda m: m.apply(np.float64(1e-12)), r"got shape \(\)"),
        (
            lambda m: m.apply(np.where(np.eye(14) > 0, np.nan, 1e-12)),
            "14 NaN values .* allow_missing",
        ),
        (lambda m: m.apply(np.full(14, np.inf)), "14 infinite values"),
        (lambda m: m.apply(np.full(14, -1e-12)), r"14 negative values \(min -1e-12\)"),
        (lambda m: m.upper_limits(np.ones(5)), r"flux must have shape \(\.\.\., 14\)"),
        (lambda m: m.select(["F182M"]), "band 'F182M' is not in this noise model"),
        (lambda m: m.select(["F999W"]), "unknown filter 'F999W'"),
    ],
)
def test_errors_are_one_line(jades, call, match):
    with pytest.raises(ValueError, match=match) as info:
        call(jades)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"bands": ["jwst_f070w"]}, "band 'jwst_f070w' is not in this noise model"),
        ({"limit_sigma": -1.0}, "limit_sigma must be finite and >= 0"),
        ({"p_missing": 1.5}, r"p_missing must lie in \[0, 1\]"),
        ({"p_missing": [0.1, 0.2]}, r"p_missing needs 1 or 14 values; got shape \(2,\)"),
        ({"bands": ["F444W", "jwst_f444w"]}, "bands must be distinct"),
    ],
)
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        JadesPixelNoise(**kwargs)


def test_from_catalog_errors(rng):
    flux, err, _ = synthetic_catalogue(rng, n=100)
    with pytest.raises(ValueError, match=r"shape \(N, 14\) for 14 bands; got \(125, 1\)"):
        EmpiricalNoise.from_catalog(flux, err)
    with pytest.raises(ValueError, match=r"got \(125, 1\) and \(124, 1\)"):
        EmpiricalNoise.from_catalog(flux, err[1:], ["F444W"])
    with pytest.raises(ValueError, match="band 'jwst_f444w' has 0 valid entries; need >= 20"):
        EmpiricalNoise.from_catalog(flux, np.zeros_like(err), ["F444W"])


def test_noise_from_dict_errors(jades):
    with pytest.raises(ValueError, match="unknown noise model kind 'nope'"):
        noise_from_dict({"kind": "nope"})
    d = jades.to_dict()
    del d["mag_edges"]
    with pytest.raises(ValueError, match="lacks key 'mag_edges'"):
        noise_from_dict(d)
    with pytest.raises(ValueError, match="format 99 is newer"):
        noise_from_dict(jades.to_dict() | {"format": 99})
