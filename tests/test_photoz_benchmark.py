"""benchmarks/photoz.py: its statistics on known numbers, and a run on a tiny photo-z estimator."""

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import one_torch_thread
from scipy.stats import norm

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "photoz.py"


@pytest.fixture(scope="module")
def photoz():
    spec = importlib.util.spec_from_file_location("photoz_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_z_coverage_of_exact_posteriors(photoz):
    rng = np.random.default_rng(0)
    mu = rng.uniform(1, 10, 4000)
    truth = mu + rng.normal(size=mu.size)  # draws from N(mu, 1) cover the truth as they should
    draws = mu[:, None] + rng.normal(size=(mu.size, 400))
    np.testing.assert_allclose(photoz.z_coverage(draws, truth), photoz.LEVELS, atol=0.025)
    # a posterior 3 sigma off: P(|N(3, 1)| < half-width) of each central interval
    half = norm.ppf(0.5 + np.array(photoz.LEVELS) / 2)
    shifted = norm.cdf(half - 3) - norm.cdf(-half - 3)
    np.testing.assert_allclose(photoz.z_coverage(draws, truth + 3.0), shifted, atol=0.02)


@pytest.fixture(scope="module")
def tiny_photoz_file(tmp_path_factory, _sps_instance):
    """A barely trained photo-z estimator (redshift='infer', zred Beta(1, 3) on 0-20)."""
    from prospect.models import priors

    from prospect_sbi import JadesPixelNoise, build_model, jades_filters, simulate, train

    folder = tmp_path_factory.mktemp("tiny_photoz")
    zred = priors.Beta(alpha=1.0, beta=3.0, mini=0.0, maxi=20.0)
    model = build_model("parametric_sfh", zred=zred, logmass=(5.0, 12.0))
    with one_torch_thread():
        with simulate(
            model, _sps_instance, jades_filters(), 600, folder / "train.h5", seed=1, progress=False
        ) as ts:
            post = train(
                ts, JadesPixelNoise(), redshift="infer", max_epochs=2, progress=False, seed=1
            )
    return post.save(folder / "tiny_photoz.sbi")


def test_benchmark_runs_to_its_result_line(
    photoz, tiny_photoz_file, shared_data, tmp_path, capsys, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # the data come from $PROSPECT_SBI_DATA
    monkeypatch.setenv("PROSPECT_SBI_DATA", str(shared_data))
    argv = ["--estimator", str(tiny_photoz_file), "--n-mocks", "60", "--draws", "100"]
    photoz.main([*argv, "--n-time", "10", "--out", str(tmp_path / "out")])
    out = capsys.readouterr().out
    result = out.strip().splitlines()[-1]
    values = dict(kv.split("=") for kv in result.removeprefix("RESULT ").split())
    assert list(values) == [
        "sigma_nmad",
        "outlier_frac",
        "bias",
        "coverage_err_z",
        "ms_per_object",
        "sigma_nmad_refined",
        "outlier_frac_refined",
        "bias_refined",
        "ms_per_refined_object",
        "sigma_nmad_zp",
        "outlier_frac_zp",
        "bias_zp",
        "sigma_nmad_refined_zp",
        "outlier_frac_refined_zp",
        "bias_refined_zp",
        "sigma_nmad_eazy",
        "outlier_frac_eazy",
        "sigma_nmad_eazy_zp",
        "outlier_frac_eazy_zp",
    ]
    values = {k: float(v) for k, v in values.items()}
    assert np.isnan(values["sigma_nmad_refined"])  # refined only with --refine
    assert np.isnan(values["sigma_nmad_zp"])  # zero points only with --zeropoints
    assert np.isnan(values["sigma_nmad_eazy"]) and np.isnan(values["outlier_frac_eazy_zp"])
    assert 0 < values["sigma_nmad"] < 5 and 0 <= values["outlier_frac"] <= 1
    assert 0 <= values["coverage_err_z"] <= 0.95 and values["ms_per_object"] > 0
    assert re.search(r"real \(spec-z\)\s+99 ", out)  # every galaxy of the catalogue
    for z in ("0-1", "1-3", "3-6", "6-10", "10-20", "all"):
        assert f"mocks z {z} " in out and f"S/N>=5 z {z} " in out
    for png in ("photoz_specz.png", "photoz_mocks.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"


def test_benchmark_refuses_a_known_redshift_estimator(photoz, tiny_estimator_file, capsys):
    with pytest.raises(SystemExit, match=r"conditioned on the redshift .* redshift='infer'"):
        photoz.main(["--estimator", str(tiny_estimator_file)])


def test_cross_validated_zeropoints_of_the_real_galaxies(photoz, shared_data, monkeypatch):
    """Each fold is corrected by the other's factors; both find F850LP ~9% too faint."""
    from prospect_sbi.posterior import AmortizedPosterior

    monkeypatch.setenv("PROSPECT_SBI_DATA", str(shared_data))
    known = AmortizedPosterior.resolve("jades-parametric")
    cat = photoz.specz_catalogue(known)
    with one_torch_thread(), pytest.warns(UserWarning, match="non-detections"):
        factors = photoz.cross_validated_zeropoints(known, cat)
    assert factors.shape == cat.flux.shape
    folds = np.unique(factors, axis=0)
    assert len(folds) == photoz.ZP_FOLDS  # one set of factors per fold, and they differ
    f850 = known.filters.index("acs_wfc_f850lp")
    # measured 1.087-1.096 (fold factors), F444W 1.04-1.05: the model and the catalogue disagree
    assert np.all((folds[:, f850] > 1.05) & (folds[:, f850] < 1.15)), folds[:, f850]
    np.testing.assert_allclose(np.exp(np.log(folds).mean(1)), 1.0, atol=1e-9)


def test_benchmark_eazy_peer_needs_eazy_and_its_templates(photoz, tmp_path):
    # one line before any work: eazy-py missing, or a folder without EAZY's templates
    with pytest.raises(SystemExit, match=r"^--eazy (needs eazy-py|.* no templates/sfhz/)"):
        photoz.main(["--eazy", str(tmp_path)])
    if importlib.util.find_spec("eazy") is not None:  # templates, but no error function
        (tmp_path / "templates" / "sfhz").mkdir(parents=True)
        (tmp_path / "templates" / "sfhz" / "blue_sfhz_13.param").write_text("1 t.fits 1.0\n")
        with pytest.raises(SystemExit, match=r"no templates/template_error_cosmos2020\.txt"):
            photoz.main(["--eazy", str(tmp_path)])
