"""One galaxy's maps as one unit: resumable pixel fits, atomic outputs, the done marker."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from conftest import kill_when

from prospect_sbi import cli
from prospect_sbi.pixels import fit_pixels, load_cube, map_galaxy, read_maps

pytestmark = pytest.mark.usefixtures("one_thread")

SIDE = 10
#: What a user's shell would give a job on this machine: one thread, so runs in different
#: processes add floats in the same order.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


@pytest.fixture(scope="module")
def cube(tiny_estimator_file, tmp_path_factory, _sps_instance):
    """A SIDE x SIDE mock galaxy at z = 2 as FITS flux and error cubes (nJy), its bands."""
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.posterior import AmortizedPosterior

    post = AmortizedPosterior.load(tiny_estimator_file)
    model = post.model()
    n = SIDE * SIDE
    rng = np.random.default_rng(3)
    theta = np.tile(model.theta, (n, 1))
    for name, value in (
        ("zred", 2.0),
        ("tage", 1.0),
        ("dust2", rng.uniform(0.1, 0.8, n)),
        ("mass", 10 ** rng.uniform(7.5, 8.5, n)),
    ):
        theta[:, model.theta_index[name].start] = value
    maggies, _ = ModelPhotometry(model, _sps_instance, post.filters)(theta)
    flux, err = post.noise.apply(maggies, rng)
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.03 / 3600, 0.03 / 3600]
    wcs.wcs.crval, wcs.wcs.crpix = [53.1, -27.8], [5.5, 5.5]
    header = wcs.to_header()
    header["BUNIT"] = "nJy"
    folder = tmp_path_factory.mktemp("cube")
    nb = len(post.filters)
    fits.writeto(folder / "flux.fits", (flux.T.reshape(nb, SIDE, SIDE) * 3631e9), header)
    fits.writeto(folder / "err.fits", (err.T.reshape(nb, SIDE, SIDE) * 3631e9))
    bands = [b.rsplit("_", 1)[-1].upper() for b in post.filters]
    return folder / "flux.fits", folder / "err.fits", bands


def _argv(estimator, cube, out, *extra):
    flux, err, bands = cube
    return [
        "map",
        str(estimator),
        "-o",
        str(out),
        "--cube",
        str(flux),
        "--err-cube",
        str(err),
        "--bands",
        *bands,
        "--zred",
        "2",
        "--segment",
        "none",
        "--snr-min",
        "0",
        "--draws",
        "50",
        *extra,
    ]


def _map(argv: list[str]) -> str:
    """Run ``prospect-sbi map`` in a one-thread process; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "prospect_sbi.cli", *argv],
        env=ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


OUTPUTS = ("galaxy_maps.fits", "galaxy_pixels.fits", "galaxy_outshining.ecsv")


def _assert_same_outputs(a: Path, b: Path) -> None:
    """The maps, pixel table and outshining table of two runs are identical."""
    maps_a, _, head_a = read_maps(a / "galaxy_maps.fits")
    maps_b, _, head_b = read_maps(b / "galaxy_maps.fits")
    assert maps_a.keys() == maps_b.keys() and head_a == head_b
    for k in maps_a:
        np.testing.assert_array_equal(maps_a[k], maps_b[k], err_msg=k)
    for name in OUTPUTS[1:]:
        ta, tb = Table.read(a / name), Table.read(b / name)
        assert ta.colnames == tb.colnames
        for c in ta.colnames:
            np.testing.assert_array_equal(ta[c], tb[c], err_msg=f"{name} {c}")
    assert (a / "galaxy_maps.png").stat().st_size > 1000


@pytest.mark.slow
def test_map_resumes_after_kill_9_with_the_result_of_an_uninterrupted_run(
    tiny_estimator_file, cube, tmp_path
):
    """kill -9 mid-fit: the rerun fits only the chunks not kept, and ends where a clean run
    ends (before, it restarted from zero; after a kill during the writes, it skipped)."""
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    argv = _argv(tiny_estimator_file, cube, killed, "--chunk-size", "2")  # 50 chunks
    proc = subprocess.Popen(
        [sys.executable, "-m", "prospect_sbi.cli", *argv],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    parts = killed / "galaxy.parts"
    kept = kill_when(proc, parts, "part*.npz", 5)
    assert 5 <= kept < 50 and not (killed / "galaxy_done.json").exists()
    # the rerun and the clean run in processes like the killed one: one BLAS thread each, so
    # float sums are added in the same order (numpy's BLAS threads differ in-process)
    assert f"100 pixels fitted ({kept} chunks resumed)" in _map(argv)
    clean_argv = _argv(tiny_estimator_file, cube, clean, "--chunk-size", "2")
    assert "chunks resumed" not in _map(clean_argv)
    _assert_same_outputs(killed, clean)
    assert (killed / "galaxy_done.json").exists() and not parts.exists()


@pytest.mark.slow
def test_map_outputs_are_one_unit_decided_by_the_marker(
    tiny_estimator_file, cube, tmp_path, capsys
):
    """A kill after the FITS file but before the PNG and tables left a galaxy that every
    rerun skipped; the done marker, written last, decides."""
    out, ref = tmp_path / "out", tmp_path / "ref"
    argv = _argv(tiny_estimator_file, cube, out)
    assert cli.main(argv) == 0
    assert cli.main(_argv(tiny_estimator_file, cube, ref)) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*OUTPUTS, "galaxy_maps.png", "galaxy_done.json"]
    )
    for name in ("galaxy_done.json", "galaxy_maps.png", "galaxy_outshining.ecsv"):
        (out / name).unlink()  # what a kill after writing the maps FITS file leaves
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert "100 pixels fitted" in capsys.readouterr().out
    _assert_same_outputs(out, ref)
    assert cli.main(argv) == 0
    assert "galaxy_done.json exists: skipped" in capsys.readouterr().out
    # a finished galaxy is not silently kept for other options: one line names them
    assert cli.main([*argv, "--draws", "7"]) == 2
    assert "was mapped with other inputs (n_draws: " in capsys.readouterr().err
    assert cli.main([*argv, "--overwrite"]) == 0
    assert "100 pixels fitted" in capsys.readouterr().out


def _tiny_and_cube(tiny_estimator_file, cube):
    """The tiny estimator and the cube's images (nJy, z = 2)."""
    from prospect_sbi.posterior import AmortizedPosterior

    flux, err, bands = cube
    images = load_cube(
        fits.getdata(flux), fits.getdata(err), bands, "nJy", pixel_scale=0.03, zred=2.0
    )
    return AmortizedPosterior.load(tiny_estimator_file), images


def test_fit_pixels_keeps_chunks_and_refuses_another_fit(tiny_estimator_file, cube, tmp_path):
    post, images = _tiny_and_cube(tiny_estimator_file, cube)
    mask = np.ones((SIDE, SIDE), bool)
    kw = {"n_draws": 40, "model": False, "chunk_size": 30, "progress": False}
    whole = fit_pixels(post, images, mask, **kw)
    parts = tmp_path / "g.parts"
    first = fit_pixels(post, images, mask, parts=parts, **kw)
    assert first.resumed_chunks == 0 and len(list(parts.glob("part*.npz"))) == 4
    (parts / "part000002.npz").unlink()  # as if killed before chunk 2 was kept
    again = fit_pixels(post, images, mask, parts=parts, **kw)
    assert again.resumed_chunks == 3
    for fit in (first, again):
        np.testing.assert_array_equal(fit.quantiles, whole.quantiles)
        np.testing.assert_array_equal(fit.mass_draws[0], whole.mass_draws[0])
    (parts / "part000001.npz").write_bytes(b"PK\x03\x04 cut short by a full disk")
    with pytest.raises(
        ValueError, match=r"part000001\.npz is damaged \(BadZipFile: .*\); remove "
    ):
        fit_pixels(post, images, mask, parts=parts, **kw)
    with pytest.raises(
        ValueError,
        match=r"g\.parts holds an unfinished run with other inputs or "
        r"options; remove it or rerun with the same ones",
    ):
        fit_pixels(post, images, mask, parts=parts, **(kw | {"n_draws": 41}))
    with pytest.raises(ValueError, match="chunk_size must be an integer >= 1; got 0"):
        fit_pixels(post, images, mask, **(kw | {"chunk_size": 0}))
    with pytest.raises(ValueError, match=r"n_draws must be an integer >= 1; got 40\.5"):
        fit_pixels(post, images, mask, **(kw | {"n_draws": 40.5}))  # was truncated to 40


def test_fit_pixels_warns_once_for_the_unconverged_refinements_of_all_chunks(
    tiny_estimator_file, cube, monkeypatch
):
    """One RefinementWarning with the map's totals, at the user's line: the chunks' own
    merged their leading counts but kept one chunk's counts inside the message."""
    import warnings

    import prospect_sbi.posterior.refine as refine_module
    from prospect_sbi.posterior.refine import RefinementWarning

    post, images = _tiny_and_cube(tiny_estimator_file, cube)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[4, :6] = True
    monkeypatch.setattr(refine_module, "TARGET_ESS", 1e6)  # every refinement ends short
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fit = fit_pixels(
            post,
            images,
            mask,
            n_draws=20,
            model=False,
            chunk_size=2,
            progress=False,
            refine="always",
        )
    ours = [w for w in seen if issubclass(w.category, RefinementWarning)]
    assert all(w.filename == __file__ for w in ours)
    assert fit.refinement["ess_flag"].all() and fit.refinement["refined"].all()
    khat = int(fit.refinement["khat_flag"].sum())  # the tiny flow: 6 (more than one chunk's)
    assert [str(w.message).split(" (flag")[0] for w in ours] == [
        "6 of 6 refined objects ended their rounds with an ESS below 1e+06",
        f"{khat} of 6 refined objects ended their rounds with a Pareto k-hat above 0.7",
    ][: 1 + (khat > 0)]


def test_fit_pixels_refuses_kept_chunks_of_other_refinement_columns(
    tiny_estimator_file, cube, tmp_path, monkeypatch
):
    """Chunks of a refined map kept by a version with other diagnostics (before
    ``is_draws``) were resumed, leaving NaN in the new column for refined pixels; now the
    folder is refused, as for any other change of inputs."""
    import prospect_sbi.pixels.fit as fit_module

    post, images = _tiny_and_cube(tiny_estimator_file, cube)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[4, :4] = True
    kw = {"n_draws": 20, "model": False, "chunk_size": 2, "progress": False, "refine": "always"}
    parts = tmp_path / "g.parts"
    older = {k: v for k, v in fit_module.DIAGNOSTICS.items() if k != "is_draws"}
    monkeypatch.setattr(fit_module, "DIAGNOSTICS", older)  # as the session-14 code:
    monkeypatch.setattr(fit_module, "resume_columns", lambda refine: {})  # nor this key
    fit_pixels(post, images, mask, parts=parts, **kw)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"g\.parts holds an unfinished run with other inputs"):
        fit_pixels(post, images, mask, parts=parts, **kw)


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "", "a\\b"])
def test_map_refuses_names_that_leave_the_output_folder(
    tiny_estimator_file, cube, tmp_path, name, capsys
):
    """``--name ../../x`` (or ``name`` in a run file) wrote outside ``-o``."""
    out = tmp_path / "a" / "b" / "out"
    run = tmp_path / "run.toml"
    run.write_text(f"[map]\nname = {json.dumps(name)}\n")  # a TOML basic string
    for extra in (["--name", name], ["--config", str(run)]):
        capsys.readouterr()
        assert cli.main(_argv(tiny_estimator_file, cube, out, *extra)) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"name {name!r} is not a plain file name" in err, err
    assert not list(tmp_path.rglob("*_maps.fits"))


@pytest.mark.data
def test_map_galaxy_is_select_fit_maps_outshining_in_one_call(
    small_estimator, small_estimator_file, shared_data, tmp_path
):
    """JOF galaxy 778 given in reversed band order and the estimator as a file: map_galaxy
    aligns the bands, selects, fits, maps and measures outshining; its files equal the steps
    written out by hand (before, it took neither, and make_maps wrote the files itself)."""
    from prospect_sbi.jades_data import read_jof_cutouts
    from prospect_sbi.pixels import (
        PixelImages,
        make_maps,
        outshining,
        parse_segment,
        select_pixels,
    )

    images = read_jof_cutouts(shared_data)[778]
    kw = {"n_draws": 40, "model": False, "seed": 2}
    aligned = images.matched(small_estimator.filters)
    mask = select_pixels(aligned, 8.0, segment=parse_segment("centre"))
    fit = fit_pixels(small_estimator, aligned, mask, progress=False, **kw)
    maps = make_maps(small_estimator, fit, aligned)
    table = outshining(small_estimator, fit, aligned)
    flipped = PixelImages(
        images.flux[::-1],
        images.err[::-1],
        images.bands[::-1],
        images.wcs,
        images.pixel_scale,
        images.segmap,
        images.zred,
    )
    done = map_galaxy(
        small_estimator_file,
        flipped,
        tmp_path,
        "g778",
        snr_min=8.0,
        png=False,
        progress=False,
        **kw,
    )
    assert len(done.fit) == int(mask.sum()) == 114
    read, _, header = read_maps(done.files["maps"])
    assert read.keys() == maps.maps.keys() and header["NPIX"] == 114
    for k in read:
        np.testing.assert_array_equal(read[k], maps[k], err_msg=k)
    pixels = Table.read(done.files["pixels"])
    for c in fit.table().colnames:
        np.testing.assert_array_equal(pixels[c], fit.table()[c], err_msg=c)
    written = Table.read(done.files["outshining"], format="ascii.ecsv")
    for c in table.colnames:
        np.testing.assert_array_equal(written[c], table[c], err_msg=c)
        np.testing.assert_array_equal(done.outshining[c], table[c], err_msg=c)
    assert not done.files["png"].exists()
    # the pixel fit alone (what the benchmark times): no outshining table, and the marker says
    # so: a later call that wants the table maps the galaxy again instead of skipping it
    alone = map_galaxy(
        small_estimator,
        images,
        tmp_path / "alone",
        "g778",
        snr_min=8.0,
        png=False,
        outshining=False,
        progress=False,
        **kw,
    )
    assert alone.outshining is None and not alone.files["outshining"].exists()
    np.testing.assert_array_equal(
        read_maps(alone.files["maps"])[0]["log_sigma_mstar_p50"], maps["log_sigma_mstar_p50"]
    )
    with pytest.raises(
        ValueError,
        match=r"outshining: False then, True now\): pass "
        r"overwrite=True",
    ):
        map_galaxy(
            small_estimator,
            images,
            tmp_path / "alone",
            "g778",
            snr_min=8.0,
            png=False,
            progress=False,
            **kw,
        )


@pytest.mark.data
def test_map_galaxy_skips_a_default_selection_marker_of_before(
    small_estimator, shared_data, tmp_path
):
    """Markers of the default selection made inside fit_pixels (mask=None: quickstart) hashed
    the images with no mask; map_galaxy now selects first, and still skips those galaxies."""
    import hashlib
    import json

    from prospect_sbi.jades_data import read_jof_cutouts

    images = read_jof_cutouts(shared_data)[778]
    kw = {"n_draws": 20, "model": False, "png": False, "progress": False}
    done = map_galaxy(small_estimator, images, tmp_path, "g", **kw)
    aligned = images.matched(small_estimator.filters)
    h = hashlib.sha256()  # the images digest of a marker written with mask=None
    for a in (aligned.flux, aligned.err):
        h.update(np.ascontiguousarray(a).tobytes())
    h.update(b"-")
    h.update(json.dumps(float(aligned.zred)).encode())
    marker = json.loads(done.files["done"].read_text())
    assert marker["request"]["images"] != h.hexdigest()  # the selected mask is hashed now
    marker["request"]["images"] = h.hexdigest()
    done.files["done"].write_text(json.dumps(marker))
    assert map_galaxy(small_estimator, images, tmp_path, "g", **kw).skipped
    with pytest.raises(ValueError, match=r"g was mapped with other inputs \(images: "):
        map_galaxy(small_estimator, images, tmp_path, "g", snr_min=6.0, **kw)


def test_segment_text_and_the_two_image_loaders(tmp_path):
    from prospect_sbi.pixels import load_cube_file, load_images, parse_segment

    assert [parse_segment(v) for v in ("centre", "center", "all", "none", "12", None, 7)] == [
        "centre",
        "centre",
        "all",
        None,
        12,
        None,
        7,
    ]
    with pytest.raises(
        ValueError, match="--segment takes centre, all, none or a segment id; got 'middle'"
    ):
        parse_segment("middle")
    rng = np.random.default_rng(0)
    flux, err = rng.uniform(1, 2, (3, 4, 5)), np.full((3, 4, 5), 0.1)
    np.savez(tmp_path / "c.npz", flux=flux, err=err, bands=np.array(["F277W", "F356W", "F444W"]))
    images = load_images(cube=tmp_path / "c.npz", unit="nJy", pixel_scale=0.05, zred=2.0)
    ref = load_cube_file(tmp_path / "c.npz", unit="nJy", pixel_scale=0.05, zred=2.0)
    np.testing.assert_array_equal(images.flux, ref.flux)
    assert images.pixel_scale == 0.05 and images.zred == 2.0 and images.shape == (4, 5)
    with pytest.raises(ValueError, match="give --cube or --image, not both"):
        load_images({"F277W": "a.fits"}, cube=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="give the images: --image BAND=PATH"):
        load_images()


def test_zero_points_correct_every_pixel_are_recorded_and_refuse_a_stale_galaxy(
    tiny_estimator_file, cube, tmp_path, capsys
):
    """A catalogue's zero points applied to the pixels of the same images (map --zeropoints):
    every band's flux and error multiplied by its factor, matched by name whatever the
    order; the header records them; a galaxy mapped with other factors is not skipped."""
    from prospect_sbi.fitting import ZeroPoints

    post, images = _tiny_and_cube(tiny_estimator_file, cube)
    nb = len(post.filters)
    factors = np.linspace(0.9, 1.1, nb)
    zp = ZeroPoints(tuple(post.filters[::-1]), factors[::-1], np.ones(nb, int), np.zeros(nb))
    done = images.with_zeropoints(zp)
    np.testing.assert_allclose(done.flux, images.flux * factors[:, None, None])
    np.testing.assert_allclose(done.err, images.err * factors[:, None, None])
    assert done.meta["zeropoints"] == dict(zip(post.filters, factors.tolist(), strict=True))
    with pytest.raises(ValueError, match="corrected by zero points already"):
        done.with_zeropoints(zp)
    with pytest.raises(ValueError, match=r"no factor for \['jwst_f444w'\]"):
        images.with_zeropoints(
            ZeroPoints(
                tuple(post.filters[:-1]), factors[:-1], np.ones(nb - 1, int), np.zeros(nb - 1)
            )
        )
    # map_galaxy fits the corrected pixels: the maps of the images doubled by hand, and the
    # maps' header names each factor; the same images without them are another request
    twice = tmp_path / "zp.json"
    ZeroPoints(tuple(post.filters), np.full(nb, 2.0), np.ones(nb, int), np.zeros(nb)).save(twice)
    kw = {"n_draws": 50, "model": False, "segment": None, "snr_min": 0.0, "png": False}
    doubled = dataclasses.replace(images, flux=2 * images.flux, err=2 * images.err)
    hand = map_galaxy(post, doubled, tmp_path, "hand", progress=False, **kw)
    corrected = map_galaxy(post, images, tmp_path, "zp", zeropoints=twice, progress=False, **kw)
    plain = map_galaxy(post, images, tmp_path, "plain", progress=False, **kw)
    a, _, head_a = read_maps(plain.files["maps"])
    b, _, head_b = read_maps(corrected.files["maps"])
    c, _, _ = read_maps(hand.files["maps"])
    for k in b:
        np.testing.assert_array_equal(b[k], c[k], err_msg=k)
    assert np.nanmedian(b["log_sigma_mstar_p50"] - a["log_sigma_mstar_p50"]) > 0.1
    assert head_a["ZEROPTS"] is False and "ZPF001" not in head_a
    assert head_b["ZEROPTS"] is True and head_b["ZPF001"] == head_b[f"ZPF{nb:03d}"] == 2.0
    assert map_galaxy(post, images, tmp_path, "zp", zeropoints=twice, **kw).skipped
    with pytest.raises(ValueError, match=r"zp was mapped with other inputs \(.*zeropoints: "):
        map_galaxy(post, images, tmp_path, "zp", progress=False, **kw)
    # the command: a file that is not one of zero points is one line, before any fitting
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    assert (
        cli.main(_argv(tiny_estimator_file, cube, tmp_path / "cli", "--zeropoints", str(bad))) == 2
    )
    err = capsys.readouterr().err
    assert "not a zero-point file of prospect-sbi" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cli" / "galaxy_done.json").exists()
