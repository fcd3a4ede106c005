"""Hostile input to the command line: one line on stderr, exit code 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS
from conftest import cli_one_line

_one_line = cli_one_line


def _image(path, shape=(8, 8), err_shape=None, unit="nJy"):
    """A band image with WCS and BUNIT, with an ERR extension of ``err_shape`` (None: none)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype, wcs.wcs.cdelt = ["RA---TAN", "DEC--TAN"], [-0.03 / 3600, 0.03 / 3600]
    wcs.wcs.crval, wcs.wcs.crpix = [53.1, -27.8], [4, 4]
    head = wcs.to_header()
    head["BUNIT"] = unit
    hdus = [fits.PrimaryHDU(), fits.ImageHDU(np.ones(shape), head, name="SCI")]
    if err_shape is not None:
        hdus.append(fits.ImageHDU(np.ones(err_shape), head, name="ERR"))
    fits.HDUList(hdus).writeto(path)
    return path


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (
            ["fit", "cat.fits", "e.sbi", "-o", "o.ecsv", "--chunk-size", "0"],
            "--chunk-size must be an integer >= 1; got 0",
        ),
        (
            ["map", "e.sbi", "-o", "out", "--chunk-size", "0"],
            "--chunk-size must be an integer >= 1; got 0",
        ),
        (
            ["map", "e.sbi", "-o", "out", "--draws", "-5"],
            "--draws must be an integer >= 1; got -5",
        ),
        (
            ["simulate", "t.h5", "-n", "10", "--batch-size", "0"],
            "--batch-size must be an integer >= 1; got 0",
        ),
        (["train", "t.h5", "e.sbi", "--epochs", "0"], "--epochs must be an integer >= 1; got 0"),
    ],
)
def test_counts_below_one_are_refused(capsys, tmp_path, argv, match):
    _one_line(capsys, argv, match)


def test_malformed_run_files(capsys, tmp_path):
    yaml = pytest.importorskip("yaml")
    assert yaml is not None
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\ndraws: [1, 2\n")
    _one_line(
        capsys,
        ["fit", "c.fits", "e.sbi", "-o", "o.ecsv", "--config", bad],
        "bad.yaml is not valid YAML at line 3: expected ',' or ']'",
    )
    bad = tmp_path / "bad.toml"
    bad.write_text("seed = [1, 2\n")
    _one_line(
        capsys,
        ["fit", "c.fits", "e.sbi", "-o", "o.ecsv", "--config", bad],
        "bad.toml is not valid TOML: ",
    )
    chunk = tmp_path / "chunk.toml"
    chunk.write_text("[map]\nchunk-size = 0\n")
    _one_line(
        capsys,
        ["map", "e.sbi", "-o", "out", "--config", chunk],
        "--chunk-size must be an integer >= 1; got 0",
    )


def test_catalogues_that_are_not_tables(capsys, tmp_path, tiny_estimator_file):
    fits.writeto(tmp_path / "image.fits", np.zeros((5, 5)))
    (tmp_path / "notes.txt").write_text("hello world\nnot, a table, here\n1\n")
    Table({"F444W": np.zeros(0), "unc_F444W": np.zeros(0)}).write(tmp_path / "empty.ecsv")
    for name, match in (
        (
            "image.fits",
            "image.fits is not a table astropy can read (FITS "
            "table, ECSV, CSV, ...): No table found",
        ),
        ("notes.txt", "notes.txt is not a table astropy can read"),
        ("empty.ecsv", "empty.ecsv has no rows: nothing to fit"),
    ):
        _one_line(
            capsys, ["fit", tmp_path / name, tiny_estimator_file, "-o", tmp_path / "o.ecsv"], match
        )


def test_estimator_header_without_filters(capsys, tmp_path, tiny_estimator_file):
    from prospect_sbi.posterior.storage import read_tensors, write_tensors

    tensors, header = read_tensors(tiny_estimator_file)
    del header["filters"]
    write_tensors(tmp_path / "nofilters.sbi", tensors, header)
    Table({"F444W": [1.0], "unc_F444W": [0.1]}).write(tmp_path / "cat.ecsv")
    _one_line(
        capsys,
        ["fit", tmp_path / "cat.ecsv", tmp_path / "nofilters.sbi", "-o", tmp_path / "o.ecsv"],
        "nofilters.sbi is not a complete prospect-sbi estimator: its header has no 'filters'",
    )


def test_map_band_images(capsys, tmp_path, tiny_estimator_file):
    a = _image(tmp_path / "a.fits", err_shape=(8, 8))
    b = _image(tmp_path / "b.fits", err_shape=(8, 8))
    noerr = _image(tmp_path / "noerr.fits")
    small = _image(tmp_path / "small.fits", shape=(5, 5))
    odd = _image(tmp_path / "odd.fits", err_shape=(8, 9))
    base = ["map", tiny_estimator_file, "-o", tmp_path / "out", "--zred", "2", "--segment", "none"]
    # silently last-wins before: the second image of a band replaced the first
    _one_line(
        capsys,
        [*base, "--image", f"F444W={a}", f"F444W={b}"],
        f"--image gives band F444W twice: {a} and {b}",
    )
    _one_line(
        capsys,
        [*base, "--image", f"F444W={a}", f"jwst_f444w={b}"],
        f"--image gives band jwst_f444w twice: {a} and {b}",
    )
    _one_line(
        capsys,
        [*base, "--image", f"F444W={a}", "--error", f"F444W={a}", f"F444W={b}"],
        f"--error gives band F444W twice: {a} and {b}",
    )
    _one_line(
        capsys,
        [*base, "--image", f"F444W={a}", "--weight", f"F444W={a}", f"F444W={b}"],
        f"--weight gives band F444W twice: {a} and {b}",
    )
    # tracebacks before: a KeyError for the missing ERR extension, a broadcast error
    _one_line(
        capsys,
        [*base, "--image", f"F444W={noerr}"],
        "noerr.fits has no 'ERR' extension: give error images (errors=, --error) or "
        "weights (weights=, --weight)",
    )
    _one_line(
        capsys,
        [*base, "--image", f"F444W={odd}"],
        "ERR extension of F444W has shape (8, 9); its science image has (8, 8)",
    )
    _one_line(
        capsys,
        [*base, "--image", f"F444W={a}", "--error", f"F444W={small}"],
        "error/weight image of F444W has shape (5, 5); its science image has (8, 8)",
    )


#: Runs the command line with dask.distributed blocked the way a missing install is.
_NO_DASK = (
    "import sys; sys.modules['distributed'] = None; from prospect_sbi.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def _without_dask(argv):
    proc = subprocess.run(
        [sys.executable, "-c", _NO_DASK, *map(str, argv)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip().splitlines()[-1]


def test_dask_options_without_distributed_name_the_extra(tmp_path):
    """A ModuleNotFoundError traceback before."""
    last = _without_dask(
        ["simulate", tmp_path / "t.h5", "-n", "10", "--scheduler", "tcp://127.0.0.1:1"]
    )
    assert last == (
        "prospect-sbi simulate: error: --scheduler needs dask.distributed, which is "
        'not installed: pip install "prospect-sbi[dask]"'
    )


@pytest.mark.slow
def test_map_workers_without_distributed_names_the_extra(tmp_path, tiny_estimator_file):
    """The map command reads its images and estimator first (torch), then asks for dask."""
    from prospect_sbi.posterior import AmortizedPosterior

    img = _image(tmp_path / "a.fits", err_shape=(8, 8))
    bands = AmortizedPosterior.load(tiny_estimator_file).filters
    last = _without_dask(
        [
            "map",
            tiny_estimator_file,
            "-o",
            tmp_path / "out",
            "--image",
            *(f"{b}={img}" for b in bands),
            "--zred",
            "2",
            "--snr-min",
            "0",
            "--segment",
            "none",
            "--workers",
            "2",
        ]
    )
    assert last == (
        "prospect-sbi map: error: --workers needs dask.distributed, which is not "
        'installed: pip install "prospect-sbi[dask]"'
    )


def test_inputs_that_gave_tracebacks(capsys, tmp_path, tiny_estimator_file):
    """Found by sweeping the commands with bad input: each was a traceback (exit code 1)."""
    ts = tiny_estimator_file.parent / "train.h5"  # the tiny estimator's training set
    (tmp_path / "list.json").write_text("[1, 2]")
    _one_line(
        capsys,
        ["train", ts, tmp_path / "e.sbi", "--noise", tmp_path / "list.json"],
        "list.json: a noise model is a JSON object (NoiseModel.to_dict); got a list",
    )
    _one_line(
        capsys,
        ["train", ts, tmp_path / "e.sbi", "--device", "cuda:9"],
        "device cuda:9 is not on this machine",
    )  # an AssertionError of torch
    _one_line(
        capsys,
        ["train", ts, tmp_path / "e.sbi", "--device", "tpu"],
        "device 'tpu' is not a torch device",
    )
    run = tmp_path / "run.toml"
    run.write_text("map = 3\n")
    _one_line(
        capsys,
        ["map", "e.sbi", "-o", tmp_path, "--config", run],
        "run.toml: 'map' is 3; it must be a table of options for the map command",
    )
    _one_line(
        capsys,
        ["simulate", tmp_path / "s.h5", "-n", "10", "--zred", "5", "1"],
        "--zred takes one value or MIN MAX with 0 <= MIN < MAX; got 5 1",
    )  # was zred=nan
