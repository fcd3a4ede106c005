"""Pixel maps: units, loading, selection, surface densities, fits, FITS round trip, dask."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from prospect_sbi.pixels import (
    PixelMaps,
    fit_pixels,
    flux_unit_factor,
    load_cube,
    load_fits,
    make_maps,
    outshining,
    pixel_area_kpc2,
    read_maps,
    select_pixels,
    snr_map,
)

BANDS = ["F277W", "F356W", "F444W"]

pytestmark = pytest.mark.usefixtures("one_thread")


def _wcs(n: int = 8, scale: float = 0.03) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [53.1, -27.8]
    w.wcs.crpix = [n / 2, n / 2]
    w.wcs.cdelt = [-scale / 3600, scale / 3600]
    return w


def test_unit_factors_against_hand_values():
    assert flux_unit_factor("uJy") == pytest.approx(1e-6 / 3631, rel=1e-12)
    assert flux_unit_factor("nJy per pixel") == pytest.approx(1e-9 / 3631, rel=1e-12)
    assert flux_unit_factor("maggies") == 1.0
    # 1 MJy/sr over a 0.03" pixel: 1e6 Jy/sr * (0.03 / 206264.806")^2 sr = 2.11540e-8 Jy
    assert flux_unit_factor("MJy/sr", pixel_scale=0.03) * 3631 == pytest.approx(
        2.1154e-8, rel=1e-4
    )
    assert flux_unit_factor("MJy/sr", pixel_area_sr=1e-14) == pytest.approx(1e-8 / 3631)
    with pytest.raises(ValueError, match="per steradian"):
        flux_unit_factor("MJy/sr")
    with pytest.raises(ValueError, match="unknown flux unit 'erg'"):
        flux_unit_factor("erg")


def _write_band(path, data, err, unit="MJy/sr", wcs=None):
    head = (wcs or _wcs(data.shape[0])).to_header()
    head["BUNIT"] = unit
    fits.HDUList(
        [
            fits.PrimaryHDU(),
            fits.ImageHDU(data, head, name="SCI"),
            fits.ImageHDU(err, head, name="ERR"),
        ]
    ).writeto(path)


def test_load_fits_units_wcs_missing_bands_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    data = {b: rng.uniform(0.1, 1.0, (8, 8)) for b in BANDS}
    paths = {}
    for b in BANDS:
        err = np.full((8, 8), 0.01)
        err[0, 0] = 0.0 if b == "F277W" else 0.01  # zero error: missing, not zero flux
        paths[b] = tmp_path / f"{b}.fits"
        _write_band(paths[b], data[b], err)
    images = load_fits({b: paths[b] for b in reversed(BANDS)}, ext="SCI", zred=2.0)
    factor = 1e6 * (0.03 / 206264.806) ** 2 / 3631
    assert images.bands == ["jwst_f444w", "jwst_f356w", "jwst_f277w"]
    assert images.pixel_scale == pytest.approx(0.03, rel=1e-9)
    assert images.flux[0, 3, 4] == pytest.approx(data["F444W"][3, 4] * factor, rel=1e-6)
    assert np.isnan(images.flux[2, 0, 0]) and np.isnan(images.err[2, 0, 0])
    matched = images.matched(["jwst_f277w", "jwst_f356w", "jwst_f444w"])
    assert matched.flux[0, 3, 4] == pytest.approx(data["F277W"][3, 4] * factor, rel=1e-6)

    with pytest.raises(
        ValueError,
        match=r"1 band\(s\) of the images are not among the "
        r"estimator's 2: jwst_f444w; leave them out",
    ):
        images.matched(["F277W", "F356W"])
    with pytest.raises(
        ValueError,
        match=r"the images lack 1 band\(s\) the estimator needs: "
        r"jwst_f150w; add each as a NaN plane",
    ):
        images.matched(["F150W", *BANDS])
    odd = tmp_path / "odd.fits"
    _write_band(odd, np.ones((9, 8)), np.ones((9, 8)))
    with pytest.raises(ValueError, match=r"image of F444W has shape \(9, 8\)"):
        load_fits({"F277W": paths["F277W"], "F444W": odd}, ext="SCI")
    nowcs = tmp_path / "nowcs.fits"
    fits.PrimaryHDU(np.ones((8, 8))).writeto(nowcs)
    with pytest.raises(ValueError, match="no celestial WCS"):
        load_fits({"F277W": nowcs}, {"F277W": nowcs}, unit="nJy")
    shifted = tmp_path / "shifted.fits"
    w = _wcs()
    w.wcs.crpix = [6, 4]
    _write_band(shifted, np.ones((8, 8)), np.ones((8, 8)), wcs=w)
    with pytest.raises(ValueError, match="different pixel grid"):
        load_fits({"F277W": paths["F277W"], "F356W": shifted}, ext="SCI")
    with pytest.raises(ValueError, match="unknown filter 'F999W'"):
        load_cube(np.ones((1, 2, 2)), np.ones((1, 2, 2)), ["F999W"], "nJy")
    with pytest.raises(ValueError, match="error cube has shape"):
        load_cube(np.ones((1, 2, 2)), np.ones((1, 2, 3)), ["F444W"], "nJy")


@pytest.mark.data
def test_jof_selection_counts(shared_data):
    d = np.load(shared_data / "jof_psfmatched_cutouts.npz")
    counts, reference = {}, {}
    for gid in (36, 370, 778):
        images = load_cube(
            d[f"id{gid}_phot_uJy"],
            d[f"id{gid}_err_uJy"],
            list(d["bands"]),
            "uJy",
            pixel_scale=0.03,
            segmap=d[f"id{gid}_segmap_det"],
        )
        counts[gid] = int(select_pixels(images).sum())
        # The counts quoted in the data README come from F277W, F335M, F356W (bands 9-11).
        reference[gid] = int(select_pixels(images, bands=["F277W", "F335M", "F356W"]).sum())
    assert reference == {36: 533, 370: 490, 778: 157}
    assert counts == {36: 458, 370: 432, 778: 149}


def test_snr_and_segments():
    flux = np.ones((3, 4, 4))
    err = np.full((3, 4, 4), 0.25)
    err[0, 0, 0] = np.nan  # F277W missing in one pixel: S/N from the other two
    flux[:, 1, 1] = [1.0, 2.0, 3.0]
    seg = np.zeros((4, 4), int)
    seg[1:3, 1:3] = 7
    images = load_cube(flux, err, BANDS, "maggies", segmap=seg)
    snr = snr_map(images)
    assert snr[1, 1] == pytest.approx(6.0 / 0.75) and snr[0, 0] == pytest.approx(4.0)
    assert select_pixels(images, snr_min=3.5).sum() == 4
    assert select_pixels(images, snr_min=3.5, segment=None).sum() == 16
    assert select_pixels(images, snr_min=4.5, segment=None).sum() == 1
    with pytest.raises(ValueError, match="segment 3 is not in"):
        select_pixels(images, segment=3)
    with pytest.raises(ValueError, match="S/N band jwst_f150w"):
        snr_map(images, ["F150W"])


def test_pixel_area_matches_astropy_wmap9():
    from astropy.cosmology import WMAP9

    for z in (0.5, 2.0, 4.135):
        kpc = WMAP9.angular_diameter_distance(z).to("kpc").value * 0.03 / 206264.806
        assert pixel_area_kpc2(0.03, z) == pytest.approx(kpc**2, rel=1e-5)
    assert pixel_area_kpc2(0.03, 2.0) == pytest.approx(0.0658, rel=0.01)  # 0.2566 kpc/pixel


@pytest.fixture(scope="module")
def field(small_estimator, _sps_instance):
    """A 10 x 10 mock galaxy at z = 2 with a known log mass gradient, JADES pixel noise."""
    from prospect_sbi import build_model
    from prospect_sbi.forward import ModelPhotometry

    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    phot = ModelPhotometry(model, _sps_instance, small_estimator.filters)
    yy, xx = np.mgrid[:10, :10]
    logm = 8.5 - 0.25 * np.hypot(yy - 4.5, xx - 4.5)
    values = dict(zred=2.0, logzsol=-0.5, dust2=0.3, tage=1.0, tau=0.5, gas_logu=-2.0)
    theta = np.array(
        [
            [10**lm if k == "mass" else values[k] for k in model.theta_labels()]
            for lm in logm.ravel()
        ]
    )
    truth = phot.derived(theta)["log_mstar"].reshape(10, 10)
    flux, err = small_estimator.noise.apply(phot(theta)[0], np.random.default_rng(3))
    seg = np.ones((10, 10), int)
    images = load_cube(
        flux.T.reshape(-1, 10, 10),
        err.T.reshape(-1, 10, 10),
        small_estimator.filters,
        "maggies",
        wcs=_wcs(10),
        segmap=seg,
        zred=2.0,
    )
    return images, truth, model


def test_synthetic_field_maps_recover_truth_and_round_trip(
    small_estimator, field, tmp_path, _sps_instance
):
    images, truth, model = field
    fit = fit_pixels(
        small_estimator,
        images,
        np.ones((10, 10), bool),
        model=model,
        sps=_sps_instance,
        chunk_size=40,
        progress=False,
    )
    maps = make_maps(small_estimator, fit, images)
    assert not any(tmp_path.iterdir())  # make_maps returns the maps; .write puts them on disk
    maps.write(tmp_path / "m.fits", png_path=tmp_path / "m.png", table_path=tmp_path / "t.fits")
    sigma_true = truth - np.log10(pixel_area_kpc2(0.03, 2.0))
    diff = maps["log_sigma_mstar_p50"] - sigma_true
    assert np.median(np.abs(diff)) < 0.15
    assert np.corrcoef(sigma_true.ravel(), maps["log_sigma_mstar_p50"].ravel())[0, 1] > 0.95
    # surface-density arithmetic: map = log M* - log10(pixel area in kpc^2)
    assert maps["log_sigma_mstar_p84"][4, 4] == pytest.approx(
        fit.values("log_mstar", 84)[44] - np.log10(pixel_area_kpc2(0.03, 2.0)), abs=1e-5
    )
    assert np.all(maps["log_sigma_mstar_p16"] <= maps["log_sigma_mstar_p84"])
    assert fit.ood.mean() < 0.2  # clean mocks pass the predictive check

    read, wcs, header = read_maps(tmp_path / "m.fits")
    assert {
        "log_sigma_mstar_p50",
        "log_sigma_sfr_p16",
        "log_ssfr_p84",
        "mwa_p50",
        "logzsol_p50",
        "dust2_p50",
        "snr",
        "mask",
        "chi2_red",
        "ood",
    } <= set(read)
    np.testing.assert_array_equal(read["log_sigma_mstar_p50"], maps["log_sigma_mstar_p50"])
    assert np.allclose(wcs.wcs.crval, images.wcs.wcs.crval)
    assert np.allclose(wcs.wcs.cdelt, images.wcs.wcs.cdelt) and wcs.wcs.ctype[0] == "RA---TAN"
    assert header["MODELHSH"] == small_estimator.model_hash and header["NPIX"] == 100
    assert header["FILT014"] == "jwst_f444w" and header["ZRED"] == 2.0
    assert (tmp_path / "m.png").stat().st_size > 10_000
    with pytest.raises(FileExistsError):
        maps.write(tmp_path / "m.fits")
    np.testing.assert_array_equal(
        Table.read(tmp_path / "t.fits")["log_mstar_p50"], fit.table()["log_mstar_p50"]
    )
    bare = PixelMaps(maps.maps, maps.units, maps.wcs, maps.header)
    with pytest.raises(ValueError, match="these maps hold no pixel fit, so no per-pixel table"):
        bare.write(table_path=tmp_path / "t2.fits")

    out = outshining(small_estimator, fit, images)
    total = np.log10(np.sum(10**truth))
    assert out["n_pixels"][0] == 100
    assert abs(out["log_mstar_resolved"][0] - total) < 0.15
    assert abs(out["log_mstar_integrated"][0] - total) < 0.3
    assert out["log_mstar_resolved_p16"][0] < out["log_mstar_resolved"][0]


def test_dask_local_cluster_matches_serial(small_estimator, field):
    distributed = pytest.importorskip("distributed")
    images = field[0]
    mask = np.zeros((10, 10), bool)
    mask[2:8, 2:8] = True
    serial = fit_pixels(
        small_estimator,
        images,
        mask,
        model=False,
        n_draws=50,
        chunk_size=10,
        seed=4,
        progress=False,
    )
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        dist = fit_pixels(
            small_estimator,
            images,
            mask,
            model=False,
            n_draws=50,
            chunk_size=10,
            seed=4,
            client=client,
            progress=False,
        )
    # Same draws; float32 sums in torch may round differently on a worker thread (~1e-6).
    np.testing.assert_allclose(serial.quantiles, dist.quantiles, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(serial.mass_draws[1], dist.mass_draws[1], rtol=1e-5)
    other = fit_pixels(
        small_estimator,
        images,
        mask,
        model=False,
        n_draws=50,
        chunk_size=10,
        seed=5,
        progress=False,
    )
    assert np.max(np.abs(serial.quantiles - other.quantiles)[:, 1:]) > 1e-2  # seed matters


def test_fit_pixels_errors(small_estimator, field, unpicklable_sps):
    images = field[0]
    # one line before any pixel is fitted, not a pickling traceback from a worker
    with pytest.raises(ValueError, match=r"^the SPS source FspsLike cannot be sent to workers "):
        fit_pixels(small_estimator, images, sps=unpicklable_sps, client=2, progress=False)
    with pytest.raises(ValueError, match=r"mask has shape \(3, 3\)"):
        fit_pixels(small_estimator, images, np.ones((3, 3), bool), progress=False)
    with pytest.raises(ValueError, match="no pixel selected"):
        fit_pixels(small_estimator, images, np.zeros((10, 10), bool), progress=False)
    from dataclasses import replace

    with pytest.raises(ValueError, match="give the images a zred"):
        fit_pixels(small_estimator, replace(images, zred=None), progress=False)
    from prospect_sbi import build_model

    with pytest.raises(ValueError, match="model differs"):
        fit_pixels(
            small_estimator, images, model=build_model("parametric_sfh", zred=2.0), progress=False
        )
