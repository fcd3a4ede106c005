"""Prospector parameter files through every stage; fixed-redshift estimators; model mismatches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from conftest import REPO_ROOT, one_torch_thread

from prospect_sbi import cli
from prospect_sbi.paramfile import load_param_file
from prospect_sbi.posterior.checks import check_zred
from prospect_sbi.provenance import model_difference, model_spec

EXAMPLE = REPO_ROOT / "examples" / "prospector_param_file.py"
Z = 2.695  # the example's fixed redshift (JADES 123364)


def _other_file(tmp_path: Path, old: str, new: str) -> Path:
    """The example parameter file with one edit."""
    text = EXAMPLE.read_text()
    assert old in text
    path = tmp_path / f"edited_{abs(hash(new))}.py"
    path.write_text(text.replace(old, new))
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """``simulate --param-file`` then ``train --param-file`` of the example (tiny), once."""
    folder = tmp_path_factory.mktemp("paramfile")
    ts, est = folder / "train.h5", folder / "g123364.sbi"
    with one_torch_thread():
        assert cli.main(["simulate", str(ts), "-n", "2000", "--param-file", str(EXAMPLE)]) == 0
        assert (
            cli.main(
                [
                    "train",
                    str(ts),
                    str(est),
                    "--param-file",
                    str(EXAMPLE),
                    "--epochs",
                    "3",
                    "--batch-size",
                    "256",
                ]
            )
            == 0
        )
    return {"folder": folder, "ts": ts, "est": est}


def _catalog(chain: dict, n: int, zred: float | None = None) -> Path:
    """Noisy mocks (nJy) of the training model, with or without a redshift column."""
    from prospect_sbi import AmortizedPosterior, TrainingSet

    post = AmortizedPosterior.load(chain["est"])
    with TrainingSet.open(chain["ts"]) as ts:
        rows = ts[slice(0, n)]
    flux, err = post.noise.apply(np.maximum(rows["photometry"], 0), np.random.default_rng(3))
    table = Table({"id": np.arange(n) + 123364})
    for j, band in enumerate(post.filters):
        short = band.rsplit("_", 1)[-1].upper()
        table[short], table[f"unc_{short}"] = flux[:, j] * 3631e9, err[:, j] * 3631e9
    if zred is not None:
        table["redshift"] = zred
    path = chain["folder"] / f"cat_{n}_{zred}.ecsv"
    table.write(path, overwrite=True)
    return path


def test_param_file_runs_through_every_stage(chain, tmp_path, capsys):
    from prospect_sbi import AmortizedPosterior, TrainingSet

    pf = load_param_file(EXAMPLE)
    free = pf.model().free_params
    with TrainingSet.open(chain["ts"]) as ts:  # the file's priors in the file's bands
        assert ts.labels == free and ts.filters == pf.bands()
        assert np.all(ts.zred[:] == Z)
        mass = ts[slice(0, 2000)]["theta"][:, 0]
        assert 1e7 <= mass.min() and mass.max() <= 1e12 and mass.max() > 1e11
    post = AmortizedPosterior.load(chain["est"])
    assert post.labels[: len(free)] == free and post.fixed_zred == Z
    assert post.header["zred_range"] == [Z, Z]

    cat = _catalog(chain, 4)  # no redshift column: the model's zred
    base = ["--unit", "nJy", "--id-column", "id", "--param-file", str(EXAMPLE)]
    with one_torch_thread():
        assert (
            cli.main(
                [
                    "fit",
                    str(cat),
                    str(chain["est"]),
                    "-o",
                    str(tmp_path / "fit.ecsv"),
                    "--draws",
                    "200",
                    "--refine",
                    "never",
                    *base,
                ]
            )
            == 0
        )
        fit = Table.read(tmp_path / "fit.ecsv")
        assert list(fit["id"]) == [123364, 123365, 123366, 123367]
        assert np.all(fit["zred"] == Z) and list(fit["flag"]) == ["ok"] * 4
        assert np.all((fit["logzsol_p50"] > -1.5) & (fit["logzsol_p50"] < 0.19))
        assert np.all((fit["log_mstar_p50"] > 6) & (fit["log_mstar_p50"] < 12.1))
        rounded = _catalog(chain, 2, zred=2.6946)  # a catalogue's rounding: the z fitted
        assert (
            cli.main(
                [
                    "fit",
                    str(rounded),
                    str(chain["est"]),
                    "-o",
                    str(tmp_path / "fit_rounded.ecsv"),
                    "--draws",
                    "50",
                    "--refine",
                    "never",
                    *base,
                ]
            )
            == 0
        )
        fit = Table.read(tmp_path / "fit_rounded.ecsv")
        assert np.all(fit["zred"] == Z) and list(fit["flag"]) == ["ok"] * 2

        val = tmp_path / "val"
        assert (
            cli.main(
                [
                    "validate",
                    str(chain["est"]),
                    "-o",
                    str(val),
                    "--mocks",
                    "40",
                    "--draws",
                    "50",
                    "--misspecification",
                    "dust",
                    "nebular",
                    "--param-file",
                    str(EXAMPLE),
                ]
            )
            == 0
        )
        report = (val / "report.md").read_text()
        assert "Calzetti dust mocks" in report and "no-nebular mocks" in report
        for name in ("held_out", "calzetti_dust", "no_nebular"):
            metrics = Table.read(val / f"metrics_{name}_mocks.ecsv")
            assert metrics.meta["n_objects"] == 40
            row = metrics[list(metrics["name"]).index("log_mstar")]
            assert 0 < row["scatter"] < 1.5 and np.isfinite(row["r2"])

        cmp = tmp_path / "cmp"
        assert (
            cli.main(
                [
                    "compare",
                    str(cat),
                    str(chain["est"]),
                    "-o",
                    str(cmp),
                    "--nlive",
                    "10",
                    "--draws",
                    "300",
                    "--rows",
                    "1",
                    *base,
                ]
            )
            == 0
        )
    table = Table.read(cmp / "compare_123365.ecsv")
    assert list(table["param"][: len(free)]) == free
    assert np.all(np.isfinite(table["width_ratio"])) and (cmp / "compare_123365.png").exists()
    assert table.meta["t_dynesty"] > table.meta["t_sbi"] > 0


def test_validate_misspecified_mocks_of_a_model_no_template_makes(chain, tmp_path):
    # the old code rebuilt mocks from build_model's templates only, and refused this model
    from prospect_sbi import AmortizedPosterior
    from prospect_sbi.validate import misspecified_model

    post = AmortizedPosterior.load(chain["est"])
    model = post.model()
    label, other = misspecified_model(post, model, "dust")
    assert label == "Calzetti dust mocks" and other.params["dust_type"][0] == 2
    assert other.params["zred"][0] == Z and other.free_params == model.free_params
    label, other = misspecified_model(post, model, "nebular")
    assert label == "no-nebular mocks" and not other.params["add_neb_emission"][0]
    label, other = misspecified_model(post, model, "sfh")
    assert label == "continuity_sfh mocks" and other.params["zred"][0] == Z


def test_param_file_mismatches_name_the_parameter(chain, tmp_path, capsys):
    other = _other_file(
        tmp_path, "priors.TopHat(mini=-1.5, maxi=0.19)", "priors.TopHat(mini=-1.0, maxi=0.19)"
    )
    cat = _catalog(chain, 2)
    want = (
        "model differs from the estimator's: logzsol prior TopHat(mini=-1, maxi=0.19) vs "
        "TopHat(mini=-1.5, maxi=0.19)"
    )
    argv = [
        "fit",
        str(cat),
        str(chain["est"]),
        "-o",
        str(tmp_path / "f.ecsv"),
        "--unit",
        "nJy",
        "--param-file",
        str(other),
    ]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip().endswith(want)
    assert (
        cli.main(
            [
                "compare",
                str(cat),
                str(chain["est"]),
                "-o",
                str(tmp_path / "c"),
                "--unit",
                "nJy",
                "--param-file",
                str(other),
            ]
        )
        == 2
    )
    assert want in capsys.readouterr().err
    # training set vs the file, and a resumed simulation of another model
    assert (
        cli.main(["train", str(chain["ts"]), str(tmp_path / "e.sbi"), "--param-file", str(other)])
        == 2
    )
    assert "model differs from the training set's: logzsol prior" in capsys.readouterr().err
    assert cli.main(["simulate", str(chain["ts"]), "-n", "2500", "--param-file", str(other)]) == 2
    err = capsys.readouterr().err
    assert "logzsol prior TopHat(mini=-1, maxi=0.19) vs TopHat(mini=-1.5, maxi=0.19)" in err
    # a fixed value that differs: the other redshift
    far = _other_file(tmp_path, "object_redshift=2.695", "object_redshift=3.1")
    assert cli.main([*argv[:-1], str(far)]) == 2
    assert "zred fixed at 3.1 vs 2.695" in capsys.readouterr().err


def test_model_difference_names_free_fixed_n_and_depends_on(make_model):
    from prospect.models import priors

    fixed = {"isfree": False, "init": 2.0}
    free = {"isfree": True, "init": 2.0, "prior": priors.TopHat(mini=1, maxi=3)}
    tau = {"N": 1, "isfree": True, "init": 1.0, "prior": priors.LogUniform(mini=0.1, maxi=10)}
    a = model_spec(make_model("parametric_sfh", zred=fixed))
    b = model_spec(make_model("parametric_sfh", zred=free))
    assert model_difference(a, a) is None
    assert model_difference(a, b) == (
        "model differs from the estimator's: zred fixed at 2 vs free"
    )
    c = model_spec(make_model("parametric_sfh", "nebular"))
    want = "model differs from the training set's: zred fixed at 2 vs 0"
    assert model_difference(a, c, "the training set's").startswith(want)
    d = model_spec(make_model("parametric_sfh", zred=fixed, tau=tau))
    assert model_difference(a, d) == (
        "model differs from the estimator's: tau prior "
        "LogUniform(mini=0.1, maxi=30) vs LogUniform(mini=0.1, "
        "maxi=10)"
    )


def test_fixed_redshift_estimator_accepts_a_rounding_of_its_redshift():
    fixed = (2.69458, 2.69458)
    z = check_zred(2.6946, 3, True, fixed)  # refused before as outside [2.69458, 2.69458]
    assert np.all(z == 2.69458)  # the one redshift the network has seen
    assert np.all(check_zred(np.array([2.695, 2.6939]), 2, True, fixed) == 2.69458)
    with pytest.raises(
        ValueError,
        match=r"^zred 2.75 is not the redshift this estimator was "
        r"trained at, 2.69458 \(its model fixes zred",
    ):
        check_zred(2.75, 1, True, fixed)
    with pytest.raises(ValueError, match=r"outside the training range \[0.5, 5\]"):
        check_zred(5.1, 1, True, (0.5, 5.0))  # a range keeps its own rule


def test_load_param_file_without_running_its_main_block(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "params.py"
    path.write_text(
        "from prospect.models.templates import TemplateLibrary\n"
        "from prospect.models import SpecModel\n"
        "run_params = {'zfix': 1.5}\n"
        "def build_model(zfix=0.1, **extras):\n"
        "    spec = TemplateLibrary['parametric_sfh']\n"
        "    spec['zred']['init'] = zfix\n"
        "    return SpecModel(spec)\n"
        "if __name__ == '__main__':\n"
        f"    open({str(marker)!r}, 'w').write('main block ran')\n"
    )
    pf = load_param_file(path)
    assert not marker.exists()
    assert pf.run_params["zfix"] == 1.5 and pf.zred() == 1.5
    assert load_param_file(path, zfix=3.0).zred() == 3.0
    with pytest.raises(ValueError, match="defines no build_obs .* this one has build_model"):
        pf.bands()
    with pytest.raises(ValueError, match=r"defines no build_sps"):
        pf.sps("param-file")
    assert type(pf.sps()).__name__ == "BC03MilesBasis"
    bare = tmp_path / "bare.py"
    bare.write_text("x = 1\n")
    with pytest.raises(
        ValueError,
        match=r"bare.py defines no build_model \(a Prospector "
        r"parameter file defines build_model, build_obs and build_sps; this "
        r"one has none of them\)",
    ):
        load_param_file(bare)
    # the demo's build_sps makes FSPS's CSPSpecBasis: no $SPS_HOME here, one line
    with pytest.raises(
        ValueError,
        match=r"build_sps\(\*\*run_params\) failed: .*default "
        r"--sps builtin",
    ):
        load_param_file(EXAMPLE).sps("param-file")


def test_a_model_the_spec_cannot_rebuild_asks_for_the_param_file(chain):
    from prospect_sbi import AmortizedPosterior

    post = AmortizedPosterior.load(chain["est"])
    # as stored for a model whose gas_logz follows a function of the user's own module
    post.model_spec["params"]["gas_logz"]["depends_on"] = "my_params.tie_gas_logz"
    with pytest.raises(
        ValueError,
        match=r"^the estimator's model cannot be rebuilt from its "
        r"stored specification \(gas_logz: depends_on 'my_params.tie_gas_logz' "
        r"is not a transform .*\); pass the Prospector parameter file it was "
        r"trained with \(--param-file, or model=\)$",
    ):
        post.model()
    model = load_param_file(EXAMPLE).model()
    assert post.resolve_model(model) is model  # checked against the stored hash instead


def test_fit_resume_follows_the_param_file_content(chain, tmp_path):
    """A fit with --param-file killed after two chunks; rerun with the file edited (a comment
    only, the same model: still another file) it is refused, naming --param-file; with the
    file as it was but touched, it resumes."""
    import os
    import subprocess
    import sys

    from conftest import kill_when, rerun_refused

    cat, param = _catalog(chain, 60), tmp_path / "params.py"
    param.write_text(EXAMPLE.read_text())
    out = tmp_path / "fit.ecsv"
    argv = [sys.executable, "-m", "prospect_sbi.cli", "fit", str(cat), str(chain["est"])]
    argv += ["-o", str(out), "--unit", "nJy", "--id-column", "id", "--param-file", str(param)]
    argv += ["--draws", "30", "--chunk-size", "3", "--no-ppc", "--refine", "never"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert kill_when(proc, tmp_path / "fit.ecsv.parts", "part*.npy", 2) < 20
    original = param.read_text()
    param.write_text(original + "\n# a comment\n")
    rerun_refused(argv, env, "--param-file")
    param.write_text(original)  # the same content, a new modification time
    again = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert Table.read(out)["id"].tolist() == list(range(123364, 123364 + 60))
