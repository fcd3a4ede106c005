"""The prospect-sbi console script."""

import subprocess
import sys

import numpy as np
from astropy.table import Table

from prospect_sbi import cli


def test_predict_writes_table_matching_the_api(tmp_path, capsys, sps, jades, make_model, predict):
    out = tmp_path / "phot.ecsv"
    assert cli.main(["predict", "--zred", "2", "--out", str(out)]) == 0
    table = Table.read(out)
    assert list(table["band"]) == [f.name for f in jades]
    model = make_model("parametric_sfh", "nebular", "igm", zred=2.0, tage=1.0)
    phot, _ = predict(model, sps, jades)
    np.testing.assert_allclose(table["maggies"], phot, rtol=1e-10)
    np.testing.assert_allclose(table["flux_njy"], phot * 3631e9, rtol=1e-10)
    assert "jwst_f444w" in capsys.readouterr().out


def test_predict_bad_input_is_one_line_and_exit_2(capsys):
    assert cli.main(["predict", "--bands", "F999W"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown filter 'F999W'" in err


def test_console_script_version():
    proc = subprocess.run(
        [sys.executable, "-m", "prospect_sbi.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stdout.startswith("prospect-sbi ")


def test_simulate_command_writes_and_resumes(tmp_path, capsys):
    from prospect_sbi import TrainingSet

    out = tmp_path / "t.h5"
    argv = ["simulate", str(out), "-n", "200", "--template", "parametric_sfh", "--zred", "1",
            "4", "--batch-size", "64", "--bands", "F200W", "F444W"]  # fmt: skip
    assert cli.main(argv) == 0
    with TrainingSet.open(out) as ts:
        assert len(ts) == 200 and ts.filters == ["jwst_f200w", "jwst_f444w"]
        zred = ts.zred[:]
    assert zred.min() >= 1 and zred.max() <= 4
    assert "200 draws of zred, mass, logzsol" in capsys.readouterr().out
    assert cli.main([*argv[:3], "300", *argv[4:]]) == 0  # extend the same file
    with TrainingSet.open(out) as ts:
        assert len(ts) == 300
        np.testing.assert_array_equal(ts.zred[:200], zred)
    assert cli.main([*argv[:4], "--seed", "1", *argv[4:]]) == 2
    assert "was made with seed=0, not 1" in capsys.readouterr().err
