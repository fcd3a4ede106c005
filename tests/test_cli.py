"""The prospect-sbi console script."""

import subprocess
import sys

import numpy as np
import pytest
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


def _mock_catalog(post, n, seed):
    """A catalogue (nJy) of noisy mocks of the estimator's own model, with their truth."""
    from prospect_sbi import BC03MilesBasis, build_model
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.transforms import draw_theta

    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    post.check(model=model)
    rng = np.random.default_rng(seed)
    theta = draw_theta(model, rng.uniform(size=(n, model.ndim)))
    zred = theta[:, model.theta_index["zred"]][:, 0]
    theta[:, model.theta_index["tage"]] = np.minimum(theta[:, model.theta_index["tage"]],
                                                     0.9 * cosmo_age(zred)[:, None])  # fmt: skip
    phot = ModelPhotometry(model, BC03MilesBasis(), post.filters)
    maggies, _ = phot(theta)
    truth = phot.derived(theta)["log_mstar"]
    flux, err = post.noise.apply(maggies, rng)
    table = Table({"id": np.arange(n) + 100, "z": zred})
    for j, band in enumerate(post.filters):
        short = band.rsplit("_", 1)[-1].upper()
        table[f"flux_{short}"] = flux[:, j] * 3631e9
        table[f"err_{short}"] = err[:, j] * 3631e9
    return table, truth


def cosmo_age(zred):
    from prospect_sbi.cosmology import age_of_universe

    return age_of_universe(zred)


def test_fit_command_catalogue_in_njy(tmp_path, small_estimator, small_estimator_file, capsys):
    table, truth = _mock_catalog(small_estimator, 120, seed=7)
    table["flux_F435W"][3] = table["err_F435W"][3] = np.nan  # a missing band: kept
    for c in table.colnames[2:]:
        table[c][5] = np.nan  # no valid band at all: NaN row with a flag
    table["z"][6] = 7.5  # outside the training redshifts
    cat, out = tmp_path / "cat.ecsv", tmp_path / "fit.ecsv"
    table.write(cat)
    argv = ["fit", str(cat), str(small_estimator_file), "-o", str(out), "--unit", "nJy",
            "--flux-format", "flux_{band}", "--err-format", "err_{band}", "--zred-column", "z",
            "--id-column", "id", "--draws", "200", "--chunk-size", "50"]  # fmt: skip
    assert cli.main(argv) == 0, capsys.readouterr().err
    res = Table.read(out)
    assert list(res["id"]) == list(table["id"]) and len(res) == 120
    assert res["flag"][5] == "no_valid_band" and res["flag"][6] == "zred_outside_training_range"
    ok = res["flag"] == "ok"
    assert ok.sum() == 118 and res["n_bands"][3] == 13
    assert np.all(np.isnan(res["log_mstar_p50"][~ok]))
    resid = res["log_mstar_p50"][ok] - truth[ok]
    r2 = 1 - np.sum(resid**2) / np.sum((truth[ok] - truth[ok].mean()) ** 2)
    assert r2 > 0.95, r2  # measured 0.99 (stellar mass 1e5-1e12)
    assert not (tmp_path / "fit.ecsv.parts").exists()
    assert cli.main([*argv[:2], str(small_estimator_file), "-o", str(out)]) == 2
    assert "no flux column for band" in capsys.readouterr().err


def test_run_chunks_resumes_after_an_interruption(tmp_path):
    from prospect_sbi.cli.common import run_chunks

    calls = []

    def work(rows, fail_at=None):
        calls.append(rows.start)
        if rows.start == fail_at:
            raise KeyboardInterrupt
        return Table({"x": np.arange(rows.start, rows.stop, dtype=float)})

    out = tmp_path / "o.ecsv"
    with pytest.raises(KeyboardInterrupt):
        run_chunks(10, 3, out, {"a": 1}, lambda r: work(r, fail_at=6), progress=False)
    assert calls == [0, 3, 6]
    calls.clear()
    tables = run_chunks(10, 3, out, {"a": 1}, work, progress=False)
    assert calls == [6, 9]  # only the chunks not done
    assert np.concatenate([t["x"] for t in tables]).tolist() == list(range(10))
    with pytest.raises(ValueError, match="unfinished run with other inputs"):
        run_chunks(10, 3, out, {"a": 2}, work, progress=False)


def test_train_command_with_a_run_file(tmp_path, capsys):
    from prospect_sbi import AmortizedPosterior

    ts = tmp_path / "t.h5"
    assert cli.main(["simulate", str(ts), "-n", "600", "--template", "parametric_sfh",
                     "--zred", "2", "--bands", "F200W", "F277W", "F444W"]) == 0  # fmt: skip
    run = tmp_path / "run.toml"
    run.write_text('seed = 3\n[train]\nepochs = 2\nbatch-size = 128\nflow = "maf"\n')
    out = tmp_path / "e.sbi"
    assert cli.main(["train", str(ts), str(out), "--config", str(run)]) == 0
    post = AmortizedPosterior.load(out)
    assert post.filters == ["jwst_f200w", "jwst_f277w", "jwst_f444w"]
    assert post.network.config["flow"] == "maf" and len(post.training["history"]) == 2
    assert cli.main(["train", str(ts), str(out), "--config", str(run)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    run.write_text("[train]\nepoch = 2\n")
    assert cli.main(["train", str(ts), str(out), "--config", str(run)]) == 2
    assert "unknown option(s) for train: epoch" in capsys.readouterr().err
