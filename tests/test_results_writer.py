"""Results that keep everything: write_results with the bestfit group, catalogue draws, figures."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
from conftest import MOCK_ZRED

from prospect_sbi import build_model, jades_filters
from prospect_sbi.fitting import fit_model, write_results
from prospect_sbi.forward import ModelPhotometry

ZRED = MOCK_ZRED  # the redshift of the z2_mock fixture

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(z2_model):
    return z2_model


@pytest.fixture(scope="module")
def mock(z2_mock):
    """A galaxy of 10^10.5 Msun at z=2 with the estimator's noise: (obs, theta)."""
    return z2_mock


@pytest.fixture(scope="module")
def fitted(model, _sps_instance, mock, small_estimator):
    """``fit_model`` output of the mock, amortised draws with their log-likelihoods."""
    obs, _ = mock
    return fit_model(
        dict(obs),
        model,
        _sps_instance,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=400,
        sbi_seed=3,
        refine="never",
    )


def test_results_from_gives_chain_weights_derived_bestfit_logz(model, sps, mock, fitted, tmp_path):
    from prospect.io.read_results import results_from

    obs, _ = mock
    res = fitted["sampling"][0]
    path = write_results(tmp_path / "fit.h5", fitted, model, obs, {"fitter": "sbi"}, sps=sps)
    back, _, _ = results_from(str(path), dangerous=False)
    assert back["chain"].shape == (400, model.ndim)
    assert back["weights"].sum() == pytest.approx(1.0, abs=1e-12)
    assert {"log_mstar", "log_sfr100", "mwa"} <= set(back["derived"].dtype.names)
    for name in back["derived"].dtype.names:
        assert back["derived"][name].shape == (400,), name
        assert np.all(np.isfinite(back["derived"][name])), name
    np.testing.assert_allclose(back["derived"]["log_mstar"], res["derived"]["log_mstar"])
    # the best fit is the draw of highest posterior, as Prospector's best_sample picks it
    lnp = res["logl"] + model.prior_product(res["samples"])
    best = res["samples"][np.argmax(lnp)]
    np.testing.assert_allclose(back["bestfit"]["parameter"], best)
    assert {"photometry", "spectrum", "parameter", "mfrac", "restframe_wavelengths"} <= set(
        back["bestfit"]
    )
    want, mfrac = ModelPhotometry(model, sps, jades_filters())(best)
    np.testing.assert_allclose(back["bestfit"]["photometry"], want, rtol=2e-3)
    assert back["bestfit"]["mfrac"] == pytest.approx(mfrac, rel=2e-3)
    assert back["logz"].shape == (1,) and back["logz"][-1] == 0.0  # amortised draws: none
    assert back["refined"] is False and back["flags"] == res["flags"]


def test_bestfit_needs_the_likelihoods(model, sps, mock, small_estimator, tmp_path):
    obs, _ = mock
    out = fit_model(
        dict(obs),
        model,
        None,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=50,
        sbi_seed=3,
        refine="never",
    )
    with pytest.raises(ValueError, match="log-likelihoods are all 0"):
        write_results(tmp_path / "x.h5", out, model, obs, sps=sps)
    assert not (tmp_path / "x.h5").exists()
    write_results(tmp_path / "x.h5", out, model, obs)  # without sps: no bestfit, no error
    with h5py.File(tmp_path / "x.h5") as hf:
        assert "bestfit" not in hf and json.loads(hf["sampling"].attrs["refined"]) is False


def test_sed_figure_of_a_fit(model, sps, mock, fitted, tmp_path):
    from prospect_sbi.plotting import save_sed

    obs, _ = mock
    res = fitted["sampling"][0]
    path, data = save_sed(tmp_path / "sed.png", model, sps, obs, fitted, n=400, seed=1)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    # the plotted median model photometry is that of the model near the draws' median
    median = np.median(res["samples"], axis=0)
    want, _ = ModelPhotometry(model, sps, jades_filters())(median)
    np.testing.assert_allclose(data.theta_median, median)  # all 400 draws
    np.testing.assert_allclose(data.phot_p50, want, rtol=0.15)
    np.testing.assert_allclose(data.chi, (obs["maggies"] - data.phot_p50) / obs["maggies_unc"])
    assert np.all(data.phot_p16 <= data.phot_p50) and np.all(data.phot_p50 <= data.phot_p84)
    assert data.lookback.shape == data.sfr_p50.shape and np.all(data.sfr_p84 >= data.sfr_p16)


def test_sfr_history_integrates_to_the_mass_formed(model, sps):
    from prospect_sbi.plotting.sed import sfr_history

    phot = ModelPhotometry(model, sps, jades_filters())
    theta = np.tile(model.theta, (3, 1))
    theta[:, model.theta_index["mass"]] = np.array([[1e9], [1e10], [3e10]])
    theta[:, model.theta_index["tage"]] = np.array([[0.5], [1.0], [2.0]])
    params = phot.params(theta)
    edges = np.concatenate([[0.0], np.geomspace(1e6, 2.0e9, 200)])
    sfr = sfr_history(params, edges)
    np.testing.assert_allclose((sfr * np.diff(edges)).sum(1), [1e9, 1e10, 3e10], rtol=1e-9)
    assert np.all(sfr[0, edges[1:] > 0.51e9] == 0)  # nothing formed before tage


def _catalog_table(post, n=30, seed=7):
    """A mock catalogue in nJy (columns flux_<band>, err_<band>, id, z); row 4 has no band."""
    from astropy.table import Table

    from prospect_sbi.transforms import draw_theta

    cat_model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    rng = np.random.default_rng(seed)
    theta = draw_theta(cat_model, rng.uniform(size=(n, cat_model.ndim)))
    theta[:, cat_model.theta_index["tage"]] = 0.5
    from prospect_sbi import BC03MilesBasis

    maggies, _ = ModelPhotometry(cat_model, BC03MilesBasis(), post.filters)(theta)
    flux, err = post.noise.apply(maggies, rng)
    table = Table(
        {"id": [f"g{i}" for i in range(n)], "z": theta[:, cat_model.theta_index["zred"]][:, 0]}
    )
    for j, band in enumerate(post.filters):
        short = band.rsplit("_", 1)[-1].upper()
        table[f"flux_{short}"] = flux[:, j] * 3631e9
        table[f"err_{short}"] = err[:, j] * 3631e9
        table[f"flux_{short}"][4] = np.nan
    return table


def _read(post, table):
    from prospect_sbi import read_catalog

    return read_catalog(
        table,
        post.filters,
        unit="nJy",
        flux_format="flux_{band}",
        err_format="err_{band}",
        zred_column="z",
        id_column="id",
    )


def _check_draws(draws, table, post):
    """The draws file matches the table: ids, flags, medians = p50, NaN rows unfitted."""
    model = post.model()
    assert list(draws["id"]) == list(table["id"]) and list(draws["flag"]) == list(table["flag"])
    assert draws["theta_labels"] == list(model.theta_labels())
    assert draws["model_hash"] == post.model_hash and draws["estimator_digest"] == post.digest()
    assert draws["theta"].shape == (len(table), 100, model.ndim)
    fitted = np.isfinite(np.asarray(table["log_mstar_p50"]))
    assert not fitted[4] and fitted.sum() == len(table) - 1
    assert np.all(np.isnan(draws["theta"][~fitted]))
    assert np.all(np.isfinite(draws["theta"][fitted]))
    np.testing.assert_array_equal(draws["zred"], table["zred"])
    iz = draws["theta_labels"].index("zred")
    np.testing.assert_allclose(
        draws["theta"][fitted, :, iz],
        np.repeat(np.asarray(table["zred"])[fitted, None], 100, 1),
        rtol=1e-6,
    )
    for i, label in enumerate(draws["theta_labels"]):
        if label != "zred":
            np.testing.assert_array_equal(
                np.median(draws["theta"][fitted, :, i].astype(float), axis=1),
                table[f"{label}_p50"][fitted],
                err_msg=label,
            )
    for i, label in enumerate(draws["derived_labels"]):
        np.testing.assert_array_equal(
            np.median(draws["derived"][fitted, :, i].astype(float), axis=1),
            table[f"{label}_p50"][fitted],
            err_msg=label,
        )


def test_catalogue_draws_resume_with_the_table(small_estimator, tmp_path, monkeypatch):
    from astropy.table import Table

    from prospect_sbi.fitting import DrawParts, fit_catalog, read_catalog_draws, write_catalog_fit
    from prospect_sbi.tables import TableParts

    post = small_estimator
    cat = _read(post, _catalog_table(post))
    kw = {
        "draws": 100,
        "seed": 2,
        "chunk_size": 8,
        "model": False,
        "refine": "never",
        "progress": False,
    }
    out, dfile = tmp_path / "fit.ecsv", tmp_path / "draws.h5"
    # interrupted after its chunks, without draws: a rerun with draws fits them again
    monkeypatch.setattr(TableParts, "assemble", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_catalog_fit(post, cat, out, {"x": 1}, **kw)
    monkeypatch.undo()
    assert len(list((tmp_path / "fit.ecsv.parts").glob("part*.npy"))) == 4
    # with draws, interrupted before assembling; then a kill lost a table part and a draws part
    monkeypatch.setattr(DrawParts, "assemble", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_catalog_fit(post, cat, out, {"x": 1}, draws_file=dfile, **kw)
    monkeypatch.undo()
    parts = tmp_path / "fit.ecsv.parts"
    (parts / "part000002.npy").unlink()
    (parts / "draws000001.npz").unlink()
    assert not dfile.exists() and not out.exists()
    write_catalog_fit(post, cat, out, {"x": 1}, draws_file=dfile, **kw)
    table = Table.read(out)
    assert not parts.exists()
    _check_draws(read_catalog_draws(dfile), table, post)
    # the in-memory fit gives the same rows and draws, its scratch parts removed
    again = fit_catalog(post, cat, draws_file=tmp_path / "d2.h5", **kw)
    np.testing.assert_array_equal(again["log_mstar_p50"], table["log_mstar_p50"])
    second = read_catalog_draws(tmp_path / "d2.h5")
    np.testing.assert_array_equal(second["theta"], read_catalog_draws(dfile)["theta"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d2.h5", "draws.h5", "fit.ecsv"]
    with pytest.raises(ValueError, match=r"expected a \.h5 or \.hdf5 name"):
        fit_catalog(post, cat, draws_file=tmp_path / "d.fits", **kw)


def test_resumed_refined_catalogue_fit_with_other_refinement_columns_is_refused(
    small_estimator, tmp_path, monkeypatch
):
    """Parts of a refined fit written by a version with other refinement columns (before
    ``is_draws``) were kept, and the assembly failed with numpy's cast error after every
    chunk was fitted; now the folder is refused up front, the change named."""
    import prospect_sbi.fitting.catalog as catalog_module
    from prospect_sbi.fitting import write_catalog_fit
    from prospect_sbi.tables import TableParts

    post = small_estimator
    cat = _read(post, _catalog_table(post, n=6))
    kw = {"draws": 40, "chunk_size": 3, "model": False, "refine": "always", "likelihood": "noise"}
    out = tmp_path / "fit.ecsv"
    older = {k: v for k, v in catalog_module.DIAGNOSTICS.items() if k != "is_draws"}
    monkeypatch.setattr(catalog_module, "DIAGNOSTICS", older)  # as the session-14 code:
    monkeypatch.setattr(catalog_module, "resume_columns", lambda refine: {})  # nor this key
    monkeypatch.setattr(TableParts, "assemble", lambda *a, **k: 1 / 0)  # killed before it
    with pytest.raises(ZeroDivisionError):
        write_catalog_fit(post, cat, out, {"x": 1}, **kw)
    monkeypatch.undo()
    (tmp_path / "fit.ecsv.parts" / "part000001.npy").unlink()  # one chunk left to fit
    with pytest.raises(ValueError, match=r"other inputs or options \(refinement_columns: "):
        write_catalog_fit(post, cat, out, {"x": 1}, **kw)
    assert len(list((tmp_path / "fit.ecsv.parts").glob("part*.npy"))) == 1 and not out.exists()


def test_fit_command_saves_draws(small_estimator, small_estimator_file, tmp_path, capsys):
    from astropy.table import Table

    from prospect_sbi import cli
    from prospect_sbi.fitting import read_catalog_draws

    table = _catalog_table(small_estimator, n=12, seed=3)
    cat, out, dfile = tmp_path / "cat.ecsv", tmp_path / "fit.fits", tmp_path / "d.h5"
    table.write(cat)
    argv = [
        "fit",
        str(cat),
        str(small_estimator_file),
        "-o",
        str(out),
        "--unit",
        "nJy",
        "--flux-format",
        "flux_{band}",
        "--err-format",
        "err_{band}",
        "--zred-column",
        "z",
        "--id-column",
        "id",
        "--draws",
        "100",
        "--chunk-size",
        "5",
        "--refine",
        "never",
        "--no-ppc",
        "--save-draws",
        str(dfile),
    ]
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert f"draws in {dfile}" in capsys.readouterr().out
    _check_draws(read_catalog_draws(dfile), Table.read(out), small_estimator)


def test_train_command_writes_its_loss_curve(tmp_path, capsys):
    from prospect_sbi import AmortizedPosterior, cli
    from prospect_sbi.plotting import plot_loss

    ts = tmp_path / "t.h5"
    assert (
        cli.main(
            [
                "simulate",
                str(ts),
                "-n",
                "400",
                "--template",
                "parametric_sfh",
                "--zred",
                "2",
                "--bands",
                "F200W",
                "F444W",
            ]
        )
        == 0
    )
    out = tmp_path / "e.sbi"
    assert cli.main(["train", str(ts), str(out), "--epochs", "3", "--batch-size", "128"]) == 0
    png = tmp_path / "e.sbi.loss.png"
    assert f"loss curve {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    post = AmortizedPosterior.load(out)
    fig = plot_loss(post)  # also from Python, with the epochs it was trained for
    lines = fig.axes[0].get_lines()
    np.testing.assert_allclose(
        lines[0].get_ydata(), [h["train_loss"] for h in post.training["history"]]
    )
    np.testing.assert_allclose(lines[1].get_xdata(), [1, 2, 3])
    with pytest.raises(ValueError, match="no epochs to plot"):
        plot_loss({"history": []})
