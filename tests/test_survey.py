"""A whole field: map_field / prospect-sbi survey on a JADES-like test field (make_test_field)."""

from __future__ import annotations

import shutil
from functools import partial

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from prospect_sbi import cli
from prospect_sbi.filters import resolve_band_names
from prospect_sbi.pixels import (
    FitsPlanes,
    Mosaic,
    bounding_boxes,
    galaxy_files,
    make_test_field,
    map_field,
    map_galaxy,
    read_maps,
    select_pixels,
)

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]

DRAWS = 50
SHARED = __import__("conftest").SHARED_DATA


@pytest.fixture(scope="module")
def field(tmp_path_factory, _sps_instance):
    """3 JOF cutouts (when ../shared/data is there) and 4 simulated galaxies in a 150 x 375
    frame of JADES-depth sky."""
    folder = tmp_path_factory.mktemp("field")
    from prospect_sbi.jades_data import CUTOUTS, read_jof_cutouts

    jof = read_jof_cutouts(SHARED) if (SHARED / CUTOUTS).is_file() else None
    return make_test_field(folder, 4, (150, 375), jof=jof, cell=75, seed=3, sps=_sps_instance)


@pytest.fixture(scope="module")
def run(field, small_estimator, tmp_path_factory, _sps_instance):
    """map_field of the whole test field, serially, with the predictive check."""
    out = tmp_path_factory.mktemp("survey")
    res = map_field(
        small_estimator,
        field.mosaics,
        field.segmap,
        field.catalog,
        out,
        n_draws=DRAWS,
        sps=_sps_instance,
        progress=False,
    )
    return res, out


def test_test_field_files(field):
    """Mosaics as surveys release them: SCI/ERR in MJy/sr with PIXAR_SR and a TAN WCS."""
    with fits.open(field.mosaics["jwst_f444w"]) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "SCI", "ERR"]
        sci = hdul["SCI"]
        assert sci.header["BUNIT"] == "MJy/sr" and sci.header["CTYPE1"] == "RA---TAN"
        assert sci.header["PIXAR_SR"] == pytest.approx((0.03 / 206264.806) ** 2, rel=1e-6)
        assert sci.data.shape == field.shape and sci.data.dtype.kind == "f"
        # empty sky: N(0, depth) in MJy/sr, with the JADES F444W pixel depth as ERR
        sky = np.asarray(sci.data[:, -10:], float) / np.asarray(hdul["ERR"].data[:, -10:])
        assert abs(np.mean(sky)) < 0.1 and 0.9 < np.std(sky) < 1.1
    boxes = bounding_boxes(field.segmap, strip=7)  # strips that cut through galaxies
    for g in field.galaxies:
        y0, y1, x0, x1, n = boxes[int(g["id"])]
        assert n == g["n_segment"] and g["y0"] <= y0 < y1 <= g["y0"] + g["ny"]
        assert g["x0"] <= x0 < x1 <= g["x0"] + g["nx"]
    assert sorted(boxes) == sorted(field.galaxies["id"])


def test_field_catalogue_maps_and_figure(run, field):
    res, out = run
    cat = Table.read(out / "field_catalog.ecsv")
    assert len(cat) == len(field.galaxies) and not res.errors and res.fitted == len(cat)
    assert list(cat["id"]) == sorted(field.galaxies["id"])
    assert Table.read(out / "field_catalog.fits")["n_pixels"].tolist() == cat["n_pixels"].tolist()
    assert np.all(cat["n_pixels"] > 10) and np.all(cat["n_pixels"] <= cat["n_segment"])
    for key in ("log_mstar_pix", "log_mstar_int", "log_sfr_pix", "log_sfr_int"):
        assert np.all(cat[f"{key}_p16"] <= cat[f"{key}_p50"])
        assert np.all(cat[f"{key}_p50"] <= cat[f"{key}_p84"])
    assert np.all((cat["ood_share"] >= 0) & (cat["ood_share"] <= 1))
    assert np.all(np.isfinite(cat["chi2_median"]))
    # the pixel-summed and integrated masses are those of each galaxy's outshining table
    for row in cat:
        o = Table.read(galaxy_files(out / "galaxies", f"gal{row['id']}")["outshining"])[0]
        assert row["log_mstar_pix_p50"] == pytest.approx(o["log_mstar_resolved"], abs=1e-9)
        assert row["log_mstar_int_p50"] == pytest.approx(o["log_mstar_integrated"], abs=1e-9)
        assert row["log_sfr_int_p84"] == pytest.approx(o["log_sfr100_integrated_p84"], abs=1e-9)
        assert row["delta_mstar"] == pytest.approx(o["delta"], abs=1e-9)
    assert (out / "field_outshining.png").stat().st_size > 5000
    assert not list(out.rglob(".*.tmp")) and not list(out.rglob("*.parts"))

    # field maps: NaN outside the fitted pixels, each galaxy's own map inside
    total = 0
    for q in ("log_sigma_mstar", "ood"):
        maps, wcs, _ = read_maps(out / f"field_{q}.fits")
        plane = maps[f"{q}_p50" if q != "ood" else q]
        assert plane.shape == field.shape and plane.dtype.str[1:] == "f4"
        total = int(np.isfinite(plane).sum())
        assert total == int(cat["n_pixels"].sum())
        assert np.allclose(wcs.wcs.crval, field.wcs.wcs.crval)
        for g in cat["id"]:
            gmaps, gwcs, _ = read_maps(galaxy_files(out / "galaxies", f"gal{g}")["maps"])
            # the galaxy's grid on the field's: its WCS, cut out of the mosaic's
            x0, y0 = np.round(field.wcs.world_to_pixel(gwcs.pixel_to_world(0, 0))).astype(int)
            m = gmaps["mask"] > 0
            h, w = m.shape
            key = f"{q}_p50" if q != "ood" else q
            np.testing.assert_array_equal(plane[y0 : y0 + h, x0 : x0 + w][m], gmaps[key][m])


def test_jof_maps_from_the_field_equal_map_galaxy(
    run, field, small_estimator, shared_data, _sps_instance, tmp_path
):
    """The JOF galaxies mapped from the mosaics (MJy/sr float32, a box of the segmentation map)
    equal map_galaxy on the original cutouts (microJy, 65 x 65), same seed."""
    from prospect_sbi.jades_data import read_jof_cutouts

    _, out = run
    field_maps, _, _ = read_maps(out / "field_log_sigma_mstar.fits")
    chi2, _, _ = read_maps(out / "field_chi2_red.fits")
    cat = Table.read(out / "field_catalog.ecsv")
    for gid, images in read_jof_cutouts(shared_data).items():
        done = map_galaxy(
            small_estimator,
            images,
            tmp_path,
            f"jof{gid}",
            select_pixels(images),
            n_draws=DRAWS,
            sps=_sps_instance,
            progress=False,
        )
        g = field.galaxies[field.galaxies["id"] == gid][0]
        box = np.s_[g["y0"] : g["y0"] + 65, g["x0"] : g["x0"] + 65]
        for name, ref in (
            ("log_sigma_mstar_p50", done.maps["log_sigma_mstar_p50"]),
            ("log_sigma_mstar_p84", done.maps["log_sigma_mstar_p84"]),
        ):
            got = field_maps[name][box]
            assert np.array_equal(np.isfinite(got), np.isfinite(ref)), name
            np.testing.assert_allclose(
                got[np.isfinite(ref)],
                ref[np.isfinite(ref)],
                rtol=0,
                atol=2e-4,
                err_msg=f"{gid} {name}",
            )
        ref = done.maps["chi2_red"]
        np.testing.assert_allclose(
            chi2["chi2_red"][box][np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-3
        )
        row = cat[cat["id"] == gid][0]
        assert row["n_pixels"] == len(done.fit)
        assert row["log_mstar_pix_p50"] == pytest.approx(
            done.outshining["log_mstar_resolved"][0], abs=1e-4
        )


def test_rerun_skips_finished_galaxies(run, field, small_estimator, _sps_instance, tmp_path):
    res, out = run
    copy = tmp_path / "out"
    shutil.copytree(out / "galaxies", copy / "galaxies")
    markers = {p.name: p.stat().st_mtime_ns for p in (copy / "galaxies").glob("*_done.json")}
    assert len(markers) == len(field.galaxies)
    again = map_field(
        small_estimator,
        field.mosaics,
        field.segmap,
        field.catalog,
        copy,
        n_draws=DRAWS,
        sps=_sps_instance,
        progress=False,
        quantities=("log_sigma_mstar",),
    )
    assert again.fitted == 0 and again.skipped == len(field.galaxies)
    assert {
        p.name: p.stat().st_mtime_ns for p in (copy / "galaxies").glob("*_done.json")
    } == markers
    for col in res.catalog.colnames:  # NaN equal to NaN (zphot_* without a photo-z estimator)
        np.testing.assert_array_equal(again.catalog[col], res.catalog[col], err_msg=col)
    a, _, _ = read_maps(out / "field_log_sigma_mstar.fits")
    b, _, _ = read_maps(copy / "field_log_sigma_mstar.fits")
    np.testing.assert_array_equal(a["log_sigma_mstar_p50"], b["log_sigma_mstar_p50"])


def test_bad_galaxies_are_listed_and_the_others_go_on(
    run, field, small_estimator, _sps_instance, tmp_path
):
    _, out = run
    copy = tmp_path / "out"
    shutil.copytree(out / "galaxies", copy / "galaxies")
    cat = Table.read(field.catalog)
    synth = [int(g) for g in field.galaxies["id"][field.galaxies["kind"] == "synthetic"]]
    cat["z"][cat["id"] == synth[0]] = 7.0
    cat["z"][cat["id"] == synth[1]] = np.nan
    cat.add_row((9999, 2.0))
    path = tmp_path / "bad.ecsv"
    cat.write(path)
    res = map_field(
        small_estimator,
        field.mosaics,
        field.segmap,
        path,
        copy,
        n_draws=DRAWS,
        sps=_sps_instance,
        progress=False,
        quantities=("ood",),
    )
    lo, hi = small_estimator.header["zred_range"]  # the training set's, within 0.5-5
    assert res.errors == {
        synth[0]: f"galaxy {synth[0]}: redshift 7 is outside the estimator's range "
        f"[{lo:g}, {hi:g}]",
        9999: "galaxy 9999: id 9999 is not in the segmentation map",
    }
    assert res.no_zred == [synth[1]]
    assert res.skipped == len(cat) - 3 and res.fitted == 0
    table = Table.read(copy / "field_catalog.ecsv")
    flags = dict(zip(table["id"].tolist(), table["flags"].tolist(), strict=True))
    assert flags[9999] == "error" and flags[synth[1]] == "no_zred"
    assert "outside the estimator's range" in table["error"][table["id"] == synth[0]][0]
    assert np.isnan(table["log_mstar_pix_p50"][table["id"] == 9999][0])


def _edited(field, tmp_path, band, edit):
    """The field's mosaics with one band's SCI header edited."""
    mosaics = dict(field.mosaics)
    path = tmp_path / f"{band}.fits"
    shutil.copy(mosaics[band], path)
    with fits.open(path, mode="update") as hdul:
        edit(hdul["SCI"].header)
    mosaics[band] = path
    return mosaics


def test_bad_mosaics_are_one_line_errors_naming_the_band(
    field, small_estimator, tmp_path, unpicklable_sps
):
    def shift(h):
        h["CRPIX1"] += 3

    def no_wcs(h):
        for k in ("CTYPE1", "CTYPE2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2"):
            del h[k]

    def no_unit(h):
        del h["BUNIT"]

    cases = (
        (
            shift,
            "mosaic of jwst_f200w is on another pixel grid than acs_wfc_f435w's "
            r"\(WCS differs by 3.00 pixels\): the bands must share one grid",
        ),
        (no_wcs, r"mosaic of jwst_f200w \(jwst_f200w.fits\) has no celestial WCS"),
        (no_unit, r"mosaic of jwst_f200w \(jwst_f200w.fits\) has no BUNIT: give its unit"),
    )
    for edit, message in cases:
        mosaics = _edited(field, tmp_path, "jwst_f200w", edit)
        with pytest.raises(ValueError, match=message):
            map_field(small_estimator, mosaics, field.segmap, field.catalog, tmp_path / "o")
    on_field = partial(
        map_field, small_estimator, field.mosaics, field.segmap, field.catalog, tmp_path / "o"
    )
    with pytest.raises(
        ValueError, match="needs a photometric-redshift estimator: none is shipped"
    ):
        on_field(zred="infer")
    small = tmp_path / "small_seg.fits"
    FitsPlanes(small, (10, 10), ["SEG"], dtype=np.int32)
    with pytest.raises(
        ValueError,
        match=r"segmentation map has shape \(10, 10\); the mosaics "
        r"are \(150, 375\)",
    ):
        map_field(small_estimator, field.mosaics, small, field.catalog, tmp_path / "o")
    # workers and a source that does not pickle (python-fsps): one line before any galaxy
    with pytest.raises(ValueError, match=r"^the SPS source FspsLike cannot be sent to workers "):
        on_field(sps=unpicklable_sps, client=2)
    assert not (tmp_path / "o" / "field_catalog.ecsv").exists()


def test_mosaic_reads_boxes_in_maggies(field):
    """A box read lazily equals the same box of the whole file, MJy/sr -> maggies."""
    with Mosaic(field.mosaics) as mosaic:
        flux, err = mosaic.cutout(20, 40, 100, 130)
        assert mosaic.shape == field.shape and flux.shape == (14, 20, 30)
    with fits.open(field.mosaics["jwst_f444w"]) as hdul:
        whole = hdul["SCI"].data[20:40, 100:130].astype(float)
    factor = 1e6 * field.pixar_sr / 3631
    np.testing.assert_allclose(flux[-1], whole * factor, rtol=1e-12)


def test_survey_command(run, field, small_estimator_file, tmp_path, capsys):
    _, out = run
    copy = tmp_path / "out"
    shutil.copytree(out / "galaxies", copy / "galaxies")
    argv = [
        "survey",
        str(small_estimator_file),
        "-o",
        str(copy),
        "--segmap",
        str(field.segmap),
        "--catalog",
        str(field.catalog),
        "--draws",
        str(DRAWS),
        "--maps",
        "mwa",
        "--mosaic",
        *[f"{b}={p}" for b, p in field.mosaics.items()],
    ]
    assert cli.main(argv) == 0
    n = len(field.galaxies)
    assert (
        f"{n} catalogue galaxies: 0 mapped, {n} done before, 0 without a redshift, 0 "
        "failed" in capsys.readouterr().out
    )
    assert (copy / "field_mwa.fits").is_file() and not (copy / "field_dust2.fits").exists()
    assert cli.main([*argv, "--zred", "infer"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs a photometric-redshift estimator: none is" in err
    assert "pass photoz= (--photoz)" in err
    # zero points reach every galaxy: those mapped without them are not skipped as done
    from prospect_sbi.fitting import ZeroPoints

    bands = tuple(resolve_band_names(list(field.mosaics)))
    ones = np.ones(len(bands))
    ZeroPoints(bands, 1.02 * ones, ones.astype(int), 0 * ones).save(tmp_path / "zp.json")
    assert cli.main([*argv, "--zeropoints", str(tmp_path / "zp.json")]) == 0
    out = capsys.readouterr().out
    assert f"0 mapped, 0 done before, 0 without a redshift, {n} failed" in out
    assert out.count("was mapped with other inputs (images: ") == n
    assert out.count("zeropoints: None then, {'acs_wfc_f435w': 1.02") == n
    # a file of another kind: one line, before any galaxy
    (tmp_path / "bad.json").write_text("[]")
    assert cli.main([*argv, "--zeropoints", str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a zero-point file of prospect-sbi" in err


@pytest.mark.slow
def test_dask_run_equals_the_serial_run(field, small_estimator, tmp_path):
    """Galaxies on the workers of a real LocalCluster (2 processes): the serial result."""
    distributed = pytest.importorskip("distributed")
    cat = Table.read(field.catalog)
    synth = field.galaxies["id"][field.galaxies["kind"] == "synthetic"]
    catalog = tmp_path / "three.ecsv"
    cat[np.isin(cat["id"], synth[:3])].write(catalog)
    kw = {
        "n_draws": 30,
        "model": False,
        "progress": False,
        "quantities": ("log_sigma_mstar",),
        "png": False,
    }
    tf = field
    serial = map_field(small_estimator, tf.mosaics, tf.segmap, catalog, tmp_path / "s", **kw)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        par = map_field(
            small_estimator, tf.mosaics, tf.segmap, catalog, tmp_path / "d", client=client, **kw
        )
    assert par.fitted == serial.fitted == 3 and not par.errors
    assert not list((tmp_path / "d").rglob("*_maps.png"))  # png=False: no per-galaxy panel
    assert len(list((tmp_path / "d").rglob("*_maps.fits"))) == 3
    for col in serial.catalog.colnames:
        if serial.catalog[col].dtype.kind == "f":
            np.testing.assert_allclose(
                par.catalog[col], serial.catalog[col], rtol=1e-6, err_msg=col
            )
        else:
            assert list(par.catalog[col]) == list(serial.catalog[col]), col
    a, _, _ = read_maps(tmp_path / "s" / "field_log_sigma_mstar.fits")
    b, _, _ = read_maps(tmp_path / "d" / "field_log_sigma_mstar.fits")
    np.testing.assert_allclose(a["log_sigma_mstar_p50"], b["log_sigma_mstar_p50"], rtol=1e-6)


def test_field_flags_galaxies_whose_photoz_refinement_fell_short(
    field, small_estimator, small_photoz, tmp_path, monkeypatch
):
    """A galaxy whose exact photo-z is not vouched for (ESS short, k-hat above 0.7) is flagged
    zphot_unconverged in the field catalogue, read back from its maps' ZUNCONV card."""
    from prospect_sbi.posterior import refine as refine_module

    simulated = [g for g in field.galaxies["id"] if g not in (36, 370, 778)][:2]
    cat = Table.read(field.catalog)
    cat[np.isin(cat["id"], simulated)].write(tmp_path / "two.ecsv")
    monkeypatch.setattr(refine_module, "TARGET_ESS", 1e6)  # every refinement ends short
    res = map_field(
        small_estimator,
        field.mosaics,
        field.segmap,
        tmp_path / "two.ecsv",
        tmp_path / "o",
        zred="infer",
        photoz=small_photoz,
        n_zred=5,
        n_draws=DRAWS,
        png=False,
        progress=False,
    )
    assert sorted(res.catalog["id"]) == sorted(simulated) and not res.errors
    assert np.all(res.catalog["zphot_exact"])
    assert all("zphot_unconverged" in f.split(",") for f in res.catalog["flags"])
    for g in simulated:  # each galaxy's maps say so too
        head = fits.getheader(galaxy_files(tmp_path / "o" / "galaxies", f"gal{g}")["maps"])
        assert head["ZUNCONV"] is True
