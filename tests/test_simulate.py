"""Training-set simulation: content, determinism, resume after kill -9, scale-out, errors."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import kill_when

from prospect_sbi import BC03MilesBasis, TrainingSet, build_model, simulate
from prospect_sbi.cosmology import age_of_universe
from prospect_sbi.provenance import model_hash, model_spec

JOB = Path(__file__).with_name("simulate_job.py")
ARRAYS = ("theta", "photometry", "zred", "mfrac")


def _content(ts):
    out = {k: np.asarray(getattr(ts, k)) for k in ARRAYS}
    out.update({k: np.asarray(v) for k, v in ts.derived.items()})
    return out


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.fixture(scope="module")
def model():
    return build_model("continuity_sfh", zred=(0.2, 10.0), nbins=5)


@pytest.fixture(scope="module")
def fast_set(tmp_path_factory, model, jades):
    path = tmp_path_factory.mktemp("sim") / "fast.h5"
    return simulate(
        model, BC03MilesBasis(), jades, 300, path, seed=7, batch_size=100, progress=False
    )


def test_training_set_content(fast_set, model, jades):
    ts = fast_set
    assert len(ts) == 300 and ts.labels == model.theta_labels()
    assert ts.filters == [f.name for f in jades]
    assert ts.theta.shape == (300, model.ndim) and ts.photometry.shape == (300, 14)
    assert set(ts.derived) == {
        "log_mstar",
        "log_sfr10",
        "log_sfr100",
        "log_ssfr100",
        "mwa",
        "t25",
        "t50",
        "t75",
    }
    assert isinstance(ts.theta, h5py.Dataset)  # lazy: slices read only their rows
    rows = ts[10:20]
    assert rows["theta"].shape == (10, model.ndim) and rows["log_mstar"].shape == (10,)
    theta = np.asarray(ts.theta)
    # Draws follow the priors: zred uniform in [0.2, 10], logzsol in [-2, 0.19].
    zred = theta[:, ts.labels.index("zred")]
    assert 0.2 <= zred.min() and zred.max() <= 10.0 and abs(zred.mean() - 5.1) < 0.5
    np.testing.assert_array_equal(np.asarray(ts.zred), zred)
    # Derived quantities are consistent with the free parameters and with each other.
    logmass = theta[:, ts.labels.index("logmass")]
    np.testing.assert_allclose(ts.derived["log_mstar"][:], logmass + np.log10(ts.mfrac[:]))
    assert np.all(np.asarray(ts.mfrac) > 0.3) and np.all(np.asarray(ts.mfrac) <= 1.0)
    t25, t50, t75 = (np.asarray(ts.derived[k]) for k in ("t25", "t50", "t75"))
    assert np.all(t25 >= t50) and np.all(t50 >= t75)
    assert np.all(t25 <= age_of_universe(zred) + 1e-9)
    # Provenance: what a user needs to know where the set came from.
    prov = ts.provenance
    assert prov["model_hash"] == model_hash(model_spec(model))
    assert prov["seed"] == 7 and prov["method"] == "fast"
    assert "BC03MilesBasis" in prov["sps"] and "prospect-sbi" in prov["versions"]
    assert prov["model_spec"]["params"]["agebins"]["depends_on"].endswith("zred_to_agebins")


def test_fast_path_matches_generic_path(fast_set, model, tmp_path, jades):
    # Same seed -> same draws; photometry from model.predict one by one vs the batched path.
    ts = simulate(
        model,
        BC03MilesBasis(),
        jades,
        40,
        tmp_path / "g.h5",
        seed=7,
        batch_size=100,
        method="generic",
        progress=False,
    )
    np.testing.assert_array_equal(ts.theta[:], fast_set.theta[:40])
    exact, fast = ts.photometry[:], fast_set.photometry[:40]
    blue_edge = np.array(
        [f.wavelength[f.transmission > 0.01 * f.transmission.max()].min() for f in jades]
    )
    redward = blue_edge[None, :] > 1216.0 * (1 + ts.zred[:][:, None])
    rel = np.abs(fast / exact - 1)[redward]
    assert rel.max() < 5e-3, f"worst band differs by {rel.max():.2e}"
    # Dropout bands: both ~0 relative to the object's brightest band.
    drop = np.abs(fast - exact)[~redward] / exact.max(1, keepdims=True).repeat(14, 1)[~redward]
    assert drop.max() < 5e-3
    for k in ts.derived:
        np.testing.assert_allclose(ts.derived[k][:], fast_set.derived[k][:40], rtol=1e-8)


def test_same_seed_same_content_for_any_executor(fast_set, model, tmp_path, jades):
    from concurrent.futures import ProcessPoolExecutor

    from distributed import Client, LocalCluster

    ref = _content(fast_set)
    with ProcessPoolExecutor(2) as pool:
        ts = simulate(
            model,
            BC03MilesBasis(),
            jades,
            300,
            tmp_path / "pool.h5",
            seed=7,
            batch_size=100,
            executor=pool,
            progress=False,
        )
    _assert_same(_content(ts), ref)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        ts = simulate(
            model,
            BC03MilesBasis(),
            jades,
            300,
            tmp_path / "dask.h5",
            seed=7,
            batch_size=100,
            executor=client,
            progress=False,
        )
    _assert_same(_content(ts), ref)
    other = simulate(
        model, BC03MilesBasis(), jades, 100, tmp_path / "seed8.h5", seed=8, progress=False
    )
    assert not np.array_equal(other.theta[:], fast_set.theta[:100])


def test_extending_a_file_gives_the_same_rows(fast_set, model, tmp_path, jades):
    path = tmp_path / "grow.h5"
    simulate(model, BC03MilesBasis(), jades, 150, path, seed=7, batch_size=100, progress=False)
    ts = simulate(model, BC03MilesBasis(), jades, 300, path, seed=7, batch_size=64, progress=False)
    _assert_same(_content(ts), _content(fast_set))
    assert not path.with_name("grow.h5.parts").exists()


def test_parts_folder_is_a_chunk_store_and_an_older_layout_is_checked(
    fast_set, model, tmp_path, jades, monkeypatch
):
    """The parts folder is a ChunkStore; one of the older flat layout is refused (other
    settings) or started again (same settings), ending with the rows of one clean run."""
    import json

    import prospect_sbi.simulation as sim_module

    path, parts = tmp_path / "old.h5", tmp_path / "old.h5.parts"
    monkeypatch.setattr(sim_module, "_assemble", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        simulate(model, BC03MilesBasis(), jades, 300, path, seed=7, batch_size=100, progress=False)
    monkeypatch.undo()
    manifest = json.loads((parts / "manifest.json").read_text())
    assert manifest["inputs"]["seed"] == 7 and manifest["chunk_rows"] == 100
    assert sorted(p.name for p in parts.glob("chunk_*.npz")) == [
        f"chunk_{c:07d}.npz" for c in range(3)
    ]
    # the layout before the job engine: the header, chunk_rows, done_rows, model_spec, flat
    flat = {**manifest["inputs"], "chunk_rows": 100, "model_spec": manifest["model_spec"]}
    (parts / "manifest.json").write_text(json.dumps(dict(flat, seed=8)))
    with pytest.raises(ValueError, match=r"old.h5.parts was made with seed=8, not 7"):
        simulate(model, BC03MilesBasis(), jades, 300, path, seed=7, progress=False)
    (parts / "manifest.json").write_text(json.dumps(flat))
    (parts / "chunk_0000001.npz").write_bytes(b"not a chunk")  # started again: not read
    ts = simulate(model, BC03MilesBasis(), jades, 300, path, seed=7, progress=False)
    _assert_same(_content(ts), _content(fast_set))
    assert not parts.exists()


def test_resume_after_kill_9(tmp_path):
    path = tmp_path / "killed.h5"
    parts = tmp_path / "killed.h5.parts"
    args = [sys.executable, str(JOB), str(path), "120", "10"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    done_before = kill_when(proc, parts, "chunk_*.npz", 3, timeout=120)
    assert not path.exists() and 3 <= done_before < 12
    # Rerun the same call (a fresh process, as a user would) and compare with a clean run.
    subprocess.run(args, check=True, capture_output=True)
    clean = tmp_path / "clean.h5"
    subprocess.run([*args[:2], str(clean), *args[3:]], check=True, capture_output=True)
    with TrainingSet.open(path) as resumed, TrainingSet.open(clean) as ref:
        assert len(resumed) == 120
        _assert_same(_content(resumed), _content(ref))
    assert not parts.exists()


#: Runs simulate_job.py under a file-size limit: the process dies from SIGXFSZ (Python ignores
#: it by default; here it kills, as SIGKILL would) at the first write beyond the limit.
_LIMITED = (
    "import os, resource, runpy, signal, sys"
    "; signal.signal(signal.SIGXFSZ, signal.SIG_DFL)"
    "; n = int(os.environ['FSIZE']); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))"
    "; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.slow
def test_rerun_after_a_kill_during_assembly_removes_its_temporary_file(tmp_path):
    """Killed while the parts are assembled into the HDF5 file: the temporary file stayed."""
    path = tmp_path / "killed.h5"
    args = [str(JOB), str(path), "120", "10"]
    # parts are 6 kB, the assembled file 69 kB: the job dies in the assembly
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", FSIZE="32000")
    proc = subprocess.run([sys.executable, "-c", _LIMITED, *args], env=env, capture_output=True)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr.decode()[-2000:]
    left = list(tmp_path.glob(".killed.h5.*.tmp"))
    assert len(left) == 1 and left[0].stat().st_size > 20_000 and not path.exists()
    assert len(list(path.with_name("killed.h5.parts").glob("chunk_*.npz"))) == 12
    subprocess.run([sys.executable, *args], check=True, capture_output=True)
    assert not list(tmp_path.glob(".killed.h5.*")), list(tmp_path.iterdir())
    with TrainingSet.open(path) as ts:
        assert len(ts) == 120 and np.all(np.isfinite(ts.photometry[:]))
    assert not path.with_name("killed.h5.parts").exists()


def test_redshift_limits_tage(tmp_path, jades):
    model = build_model("parametric_sfh", zred=(3.0, 10.0))
    ts = simulate(model, BC03MilesBasis(), jades, 400, tmp_path / "p.h5", progress=False)
    theta = ts.theta[:]
    zred, tage = theta[:, ts.labels.index("zred")], theta[:, ts.labels.index("tage")]
    assert np.all(tage <= age_of_universe(zred))
    assert ts.provenance["redrawn"] > 350  # the tage prior reaches 13.8 Gyr
    assert abs(zred.mean() - 6.5) < 0.3  # the redshift prior is not distorted by the redraws
    tuniv = age_of_universe(zred)
    assert 0.4 < np.mean(tage / tuniv) < 0.6  # tage uniform below the age of the universe


def test_mismatched_rerun_is_refused(model, jades, tmp_path):
    src = tmp_path / "m.h5"
    simulate(model, BC03MilesBasis(), jades, 50, src, seed=7, progress=False)
    before = src.read_bytes()
    other_model = build_model("continuity_sfh", zred=(0.2, 10.0), nbins=4)
    with pytest.raises(
        ValueError,
        match=r"^model differs from that of .*m.h5: agebins N 4 vs "
        r"5; use another path",
    ):  # names what differs, not two hashes
        simulate(other_model, BC03MilesBasis(), jades, 100, src, seed=7, progress=False)
    with pytest.raises(ValueError, match="was made with filters="):
        simulate(model, BC03MilesBasis(), jades[:5], 100, src, seed=7, progress=False)
    with pytest.raises(ValueError, match="was made with seed=7, not 8"):
        simulate(model, BC03MilesBasis(), jades, 100, src, seed=8, progress=False)
    assert src.read_bytes() == before


def test_bad_input_errors(model, jades, tmp_path, make_model):
    from prospect.models import priors

    sps = BC03MilesBasis()
    with pytest.raises(ValueError, match="unknown filter .F999W."):
        simulate(model, sps, ["F444W", "F999W"], 10, tmp_path / "a.h5")
    with pytest.raises(ValueError, match="n must be an integer >= 1; got 0"):
        simulate(model, sps, jades, 0, tmp_path / "a.h5")
    fixed = make_model("parametric_sfh", mass=1e10, logzsol=0.0, dust2=0.1, tage=1.0, tau=1.0)
    with pytest.raises(ValueError, match="the model has no free parameters"):
        simulate(fixed, sps, jades, 10, tmp_path / "a.h5")
    wide = make_model("parametric_sfh", logzsol={"prior": priors.TopHat(mini=-2, maxi=1.0)})
    with pytest.raises(ValueError, match="priors reach outside BC03MilesBasis: .*logzsol"):
        simulate(wide, sps, jades, 10, tmp_path / "a.h5")
    outliers = make_model("parametric_sfh", "outlier_model", f_outlier_phot={"isfree": True})
    with pytest.raises(ValueError, match="f_outlier_phot is free: Prospector's likelihood"):
        simulate(outliers, sps, jades, 10, tmp_path / "a.h5")
    outliers = make_model("parametric_sfh", "outlier_model", f_outlier_phot=0.05)
    with pytest.raises(ValueError, match="f_outlier_phot is fixed at 0.05: .* fix it at 0"):
        simulate(outliers, sps, jades, 10, tmp_path / "a.h5")
    plain = make_model("parametric_sfh", "outlier_model")  # the template's f_outlier_phot=0
    assert len(simulate(plain, sps, jades, 4, tmp_path / "ok.h5", progress=False).theta) == 4
    with pytest.raises(PermissionError, match="folder .*nowhere does not exist"):
        simulate(model, sps, jades, 10, tmp_path / "nowhere" / "a.h5")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if not os.access(locked, os.W_OK):  # root can write anywhere
            with pytest.raises(PermissionError, match="permission denied"):
                simulate(model, sps, jades, 10, locked / "a.h5")
    finally:
        locked.chmod(0o700)
    assert not list(tmp_path.glob("a.h5*"))


def test_noiseless_fluxes_are_never_negative(fast_set):
    assert np.asarray(fast_set.photometry).min() >= 0.0
    assert fast_set.path.name == "fast.h5"


def _edited_copy(ts, path, edit):
    """A copy of training set ``ts`` at ``path`` with ``edit(h5py.File)`` applied."""
    import shutil

    shutil.copy(ts.path, path)
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    ("value", "match"),
    [
        # a set with 5.8e18 maggies trained, and its flux range switched the Jy check off
        (
            5.8e18,
            r"training photometry is 5.8e\+18 maggies at row 17, band jwst_f200w; no galaxy "
            r"at zred [\d.]+ is brighter than [\d.e+-]+ maggies \(absolute AB magnitude -40\): "
            r"fluxes in other units\?",
        ),
        (np.inf, r"training photometry is inf at row 17, band jwst_f200w; expected finite fluxes"),
        (np.nan, r"training photometry is nan at row 17, band jwst_f200w; expected finite fluxes"),
        (
            -1e-9,
            r"training photometry is -1e-09 maggies at row 17, band jwst_f200w; expected "
            r"noiseless fluxes >= 0",
        ),
    ],
)
def test_training_refuses_non_physical_photometry(fast_set, tmp_path, value, match):
    from prospect_sbi import JadesPixelNoise, train

    def edit(f):
        f["photometry"][17, 8] = value  # band 8 of the 14: F200W

    path = _edited_copy(fast_set, tmp_path / "bad.h5", edit)
    with pytest.raises(ValueError, match=match):
        train(path, JadesPixelNoise(), max_epochs=1, progress=False)


def test_photometry_limits_are_those_of_galaxies(fast_set):
    """Round-off below zero is read as 0; the brightest allowed flux follows the distance."""
    from prospect_sbi.trainingset import MAX_ABS_MAG, check_photometry

    phot = np.asarray(fast_set.photometry[:5])
    zred = np.asarray(fast_set.zred[:5])
    low = phot.copy()
    low[0, 0] = -1e-20  # the float32 sums of the fast path
    out = check_photometry(low, zred, fast_set.filters)
    assert out[0, 0] == 0.0 and np.array_equal(out[1:], phot[1:])
    # z = 1: D_L = 6726.1 Mpc (WMAP9), so M_AB = -40 is m = -40 + 44.14 - 0.75 = 3.39
    limit = 10 ** (-0.4 * (MAX_ABS_MAG + 5 * np.log10(6726.1e5) - 2.5 * np.log10(2.0)))
    ok = np.array([[0.99 * limit]])
    check_photometry(ok, np.array([1.0]), ["b"])
    with pytest.raises(
        ValueError,
        match=r"at row 100, band b; no galaxy at zred 1 is brighter "
        r"than 0.0442 maggies",
    ):
        check_photometry(1.02 * ok / 0.99, np.array([1.0]), ["b"], first_row=100)
    # z = 0: Prospector's 10 pc, absolute magnitudes: 10^16 maggies
    check_photometry(np.array([[0.9e16]]), np.array([0.0]), ["b"])
    with pytest.raises(ValueError, match="training zred is nan at row 0"):
        check_photometry(ok, np.array([np.nan]), ["b"])


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (
            lambda f: f.attrs.__delitem__("filters"),
            r"not a complete prospect-sbi training set: it has no 'filters' attribute",
        ),
        (
            lambda f: f.__delitem__("photometry"),
            r"not a complete prospect-sbi training set: it has no 'photometry' array",
        ),
        (
            lambda f: f.attrs.__setitem__("filters", "F444W"),
            r"the 'filters' attribute is not a JSON list of names",
        ),
    ],
)
def test_incomplete_training_set_is_one_line(fast_set, tmp_path, edit, match):
    path = _edited_copy(fast_set, tmp_path / "partial.h5", edit)
    with pytest.raises(ValueError, match=match):
        TrainingSet.open(path)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"text\.h5 is not an HDF5 training set"):
        TrainingSet.open(tmp_path / "text.h5")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "prospect_sbi.cli",
            "train",
            str(path),
            str(tmp_path / "e.sbi"),
            "--epochs",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr


def test_a_model_class_with_its_own_photometry_is_not_batched(jades, tmp_path, make_model):
    """The batched path computes SpecModel's photometry. A subclass that adds to it (as
    Prospector's AGNSpecModel does) is refused by the fast simulator, and ModelPhotometry
    computes it with model.predict, warning that it does."""
    from prospect.models import SpecModel
    from prospect.models.priors import TopHat

    from prospect_sbi.forward import ModelPhotometry, fast_refusal

    class PowerLawSpecModel(SpecModel):  # a user's extra component: 1 nJy in every band
        def predict_phot(self, filters):
            return super().predict_phot(filters) + 1e-9 / 3631

    base = make_model("parametric_sfh", zred={"isfree": True, "prior": TopHat(mini=1, maxi=3)})
    user = PowerLawSpecModel(base.config_dict)
    assert fast_refusal(base) is None
    assert fast_refusal(user) == "PowerLawSpecModel overrides SpecModel.predict_phot"
    sps = BC03MilesBasis()
    with pytest.raises(ValueError, match="overrides SpecModel.predict_phot; use method='generic'"):
        simulate(user, sps, jades, 10, tmp_path / "a.h5")
    with pytest.raises(ValueError, match="method='fast' computes SpecModel's photometry, but"):
        ModelPhotometry(user, sps, jades, method="fast")
    with pytest.warns(UserWarning, match="comes from model.predict, one object at a time"):
        phot = ModelPhotometry(user, sps, jades)
    theta = np.repeat(user.theta[None], 2, axis=0)
    theta[:, 0] = [1.5, 2.5]
    got, _ = phot(theta)
    plain, _ = ModelPhotometry(base, sps, jades, method="generic")(theta)
    np.testing.assert_allclose(got - plain, 1e-9 / 3631, rtol=1e-6)
    assert not list(tmp_path.glob("a.h5*"))


def test_a_model_without_igm_is_warned(jades, tmp_path, make_model):
    """FSPS leaves the IGM off unless the model says: a free redshift that puts bands blueward
    of Lyman-alpha gets a warning naming them; build_model's models (with "igm") and bands
    that stay redward do not."""
    import warnings

    from prospect.models.priors import TopHat

    def igm_warnings(model, bands, name):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            simulate(model, BC03MilesBasis(), bands, 4, tmp_path / name, progress=False)
        return [str(w.message) for w in seen if "no IGM absorption" in str(w.message)]

    bare = make_model("parametric_sfh", zred={"isfree": True, "prior": TopHat(mini=0.5, maxi=5)})
    (msg,) = igm_warnings(bare, jades, "a.h5")
    # Lyman-alpha at 7290 AA: F814W reaches below it, F850LP does not
    assert "reach 5, where acs_wfc_f435w, acs_wfc_f606w, acs_wfc_f775w, acs_wfc_f814w see " in msg
    assert igm_warnings(build_model("parametric_sfh", zred=(0.5, 5.0)), jades, "b.h5") == []
    assert igm_warnings(bare, ["jwst_f277w", "jwst_f444w"], "c.h5") == []  # 7300 AA at z=5
