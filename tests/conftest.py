"""Shared fixtures: one BC03MilesBasis per session, JADES filters, SpecModel builder.

Every test starts from the same seeds (torch, numpy's global generator, ``random``): the
autouse fixture is in the repository root's ``conftest.py``, which the doctests share.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pytest

import prospect_sbi  # noqa: F401  (patches SpecModel so it builds without SPS_HOME)

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip ``gpu``-marked tests where torch sees no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _no_sps_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without SPS_HOME (tests that need one set it themselves)."""
    monkeypatch.delenv("SPS_HOME", raising=False)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240601)


@pytest.fixture(scope="session")
def _sps_instance() -> prospect_sbi.BC03MilesBasis:
    source = prospect_sbi.BC03MilesBasis()
    _ = source.grids  # load the grids once (~2 s)
    return source


@pytest.fixture(scope="session")
def unpicklable_sps() -> prospect_sbi.BC03MilesBasis:
    """A source that does not pickle, as python-fsps's StellarPopulation (no FSPS data here)."""

    class FspsLike(prospect_sbi.BC03MilesBasis):
        def __reduce__(self):
            raise TypeError("cannot pickle 'fsps.StellarPopulation' object")

    return FspsLike()


@pytest.fixture
def sps(_sps_instance: prospect_sbi.BC03MilesBasis) -> prospect_sbi.BC03MilesBasis:
    """The session's BC03MilesBasis, with its stored parameters cleared.

    Like Prospector's FSPS sources, the source remembers every parameter it was ever given
    (``sps.params``), so a switch set by one model (e.g. ``add_neb_emission``) would leak into
    the next model that does not name it. Clearing the dict keeps tests independent while the
    expensive grids and filter projectors are reused.
    """
    _sps_instance.params.clear()
    return _sps_instance


@pytest.fixture(scope="session")
def jades() -> list:
    return prospect_sbi.jades_filters()


def model_spec(*templates: str, **overrides: object) -> dict:
    """Prospector model specification from ``TemplateLibrary`` names plus overrides.

    ``imf_type`` is set to 1 (Chabrier, the grids' IMF). Each override is

    - ``None``: drop the parameter;
    - a mapping: merged into the parameter's specification (created if absent), e.g.
      ``zred={"isfree": True, "prior": TopHat(mini=0.2, maxi=8)}``;
    - anything else: the parameter becomes fixed at that value (``N`` from its length).
    """
    from prospect.models.templates import TemplateLibrary

    spec: dict = {}
    for name in templates:
        spec.update(TemplateLibrary[name])
    if "imf_type" in spec:
        spec["imf_type"]["init"] = 1
    for name, value in overrides.items():
        if value is None:
            spec.pop(name, None)
        elif isinstance(value, Mapping):
            entry = dict(spec.get(name, {"N": 1, "isfree": False}))
            entry.update(value)
            spec[name] = entry
        else:
            arr = np.asarray(value)
            n = 1 if arr.ndim == 0 else arr.shape[0]
            spec[name] = {"N": n, "isfree": False, "init": value}
    return spec


def build_model(*templates: str, **overrides: object) -> object:
    """A ``SpecModel`` from template names and overrides (see :func:`model_spec`)."""
    from prospect.models import SpecModel

    return SpecModel(model_spec(*templates, **overrides))


@pytest.fixture(scope="session")
def make_model() -> Callable[..., object]:
    """Fixture form of :func:`build_model`."""
    return build_model


def predict_phot(
    model: object, sps: object, filters: list, theta: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Photometry (maggies) and mfrac from ``SpecModel.predict`` at ``theta`` (default: init)."""
    theta = model.theta.copy() if theta is None else theta
    _, phot, mfrac = model.predict(theta, obs={"filters": filters, "wavelength": None}, sps=sps)
    return np.array(phot, dtype=float), float(mfrac)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is not present on this machine")
    return SHARED_DATA


@pytest.fixture(scope="session")
def predict() -> Callable[..., tuple[np.ndarray, float]]:
    """Fixture form of :func:`predict_phot`: ``predict(model, sps, filters, theta=None)``."""
    return predict_phot


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread: on two shared cores that is faster than two contending."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """:func:`one_torch_thread` for a whole test module (``pytest.mark.usefixtures``)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def small_estimator(tmp_path_factory: pytest.TempPathFactory, _sps_instance: object) -> object:
    """A small real estimator shared by the fitter, pixel-map and report tests (~40 s).

    ``parametric_sfh``, zred 0.5-5 known, stellar mass formed 10^5-10^12 Msun (pixels and
    galaxies), 14 JADES bands, ``JadesPixelNoise``; 20k simulations, 30 epochs, one thread.
    Its accuracy is that of a quick run (R^2(log M*) ~0.98), enough for tests to tell a
    right answer from a wrong one, not the shipped estimators' accuracy.
    """
    from prospect_sbi import JadesPixelNoise, build_model, jades_filters, simulate, train

    with one_torch_thread():
        model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
        folder = tmp_path_factory.mktemp("small_estimator")
        ts = simulate(
            model,
            _sps_instance,
            jades_filters(),
            20_000,
            folder / "train.h5",
            seed=5,
            progress=False,
        )
        post = train(ts, JadesPixelNoise(), max_epochs=30, progress=False, seed=5)
        ts.close()
    return post


@pytest.fixture(scope="session")
def small_estimator_file(
    small_estimator: object, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """``small_estimator`` saved to a file (for command-line tests)."""
    return small_estimator.save(tmp_path_factory.mktemp("small_file") / "small.sbi")


@pytest.fixture(scope="session")
def tiny_estimator_file(tmp_path_factory: pytest.TempPathFactory, _sps_instance: object) -> Path:
    """A real but barely trained estimator file (~15 s): for tests of files and resumption.

    ``parametric_sfh``, zred 1-4 known, stellar mass formed 10^5-10^12 Msun, 14 JADES bands,
    ``JadesPixelNoise``; 600 simulations, 2 epochs. Its posteriors mean nothing; its draws
    are as deterministic as any estimator's.
    """
    from prospect_sbi import JadesPixelNoise, build_model, jades_filters, simulate, train

    folder = tmp_path_factory.mktemp("tiny_estimator")
    with one_torch_thread():
        model = build_model("parametric_sfh", zred=(1.0, 4.0), logmass=(5.0, 12.0))
        with simulate(
            model, _sps_instance, jades_filters(), 600, folder / "train.h5", seed=1, progress=False
        ) as ts:
            post = train(ts, JadesPixelNoise(), max_epochs=2, progress=False, seed=1)
    return post.save(folder / "tiny.sbi")


def kill_when(proc: object, folder: Path, pattern: str, count: int, timeout: float = 300) -> int:
    """SIGKILL process ``proc`` once ``folder`` holds ``count`` files matching ``pattern``.

    Returns the number of such files after the kill; fails the test if the process ends first
    or the files do not appear within ``timeout`` seconds.
    """
    import os
    import signal
    import time

    deadline = time.time() + timeout
    while len(list(folder.glob(pattern))) < count and proc.poll() is None:
        assert time.time() < deadline, f"no {count} files {pattern} in {folder} in {timeout} s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    return len(list(folder.glob(pattern)))


def rerun_refused(argv: list, env: dict, entry: str) -> None:
    """Rerun a killed resumable command after its input ``entry`` changed (its content).

    Asserts the refusal: exit code 2 and one line naming ``entry`` with the old and new
    SHA-256 digests the run's fingerprint holds.
    """
    import re
    import subprocess

    rerun = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert rerun.returncode == 2
    assert re.search(
        rf"other inputs or options \({re.escape(entry)}: '[0-9a-f]{{64}}' then, "
        r"'[0-9a-f]{64}' now\)",
        rerun.stderr,
    ), rerun.stderr


#: Redshift of :func:`z2_mock`.
MOCK_ZRED = 2.0


@pytest.fixture(scope="session")
def z2_model() -> object:
    """The fitting tests' model: parametric SFH, free redshift 0.5-5, logmass 5-12."""
    from prospect_sbi import build_model as build_template

    return build_template("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))


@pytest.fixture(scope="session")
def z2_mock(z2_model: object, _sps_instance: object, small_estimator: object) -> tuple:
    """A galaxy of 10^10.5 Msun at z=2 with the small estimator's noise: (obs, theta)."""
    from prospect_sbi import jades_filters
    from prospect_sbi.fitting import fixed_redshift_model
    from prospect_sbi.forward import ModelPhotometry

    fixed = fixed_redshift_model(z2_model, MOCK_ZRED)
    theta = fixed.theta.copy()
    theta[fixed.theta_index["mass"]] = 10**10.5
    theta[fixed.theta_index["tage"]] = 1.5
    maggies, _ = ModelPhotometry(fixed, _sps_instance, jades_filters())(theta)
    flux, err = small_estimator.noise.apply(maggies, np.random.default_rng(0))
    obs = {"maggies": flux, "maggies_unc": err, "filters": jades_filters(), "zred": MOCK_ZRED}
    return obs, theta


def cli_one_line(capsys: pytest.CaptureFixture, argv: list, match: str) -> str:
    """Run the command; assert exit code 2 and a single stderr line containing ``match``."""
    from prospect_sbi import cli

    capsys.readouterr()
    assert cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("prospect-sbi "), err
    assert match in err, err
    return err


@pytest.fixture(scope="session")
def small_photoz(tmp_path_factory: pytest.TempPathFactory, _sps_instance: object) -> object:
    """A small real photometric-redshift estimator (``redshift="infer"``, ~35 s).

    ``small_estimator``'s model (``parametric_sfh``, zred 0.5-5, stellar mass formed
    10^5-10^12 Msun), bands and noise, with the redshift a target: 8000 simulations,
    25 epochs, one thread. Its z posteriors are broad at z ~ 1 but rule z ~ 1 out for the
    Lyman break of a z = 4.5 galaxy (fewer simulations or epochs do not).
    """
    from prospect_sbi import JadesPixelNoise, build_model, jades_filters, simulate, train

    folder = tmp_path_factory.mktemp("small_photoz")
    with one_torch_thread():
        model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
        with simulate(
            model,
            _sps_instance,
            jades_filters(),
            8000,
            folder / "train.h5",
            seed=7,
            progress=False,
        ) as ts:
            post = train(
                ts, JadesPixelNoise(), redshift="infer", max_epochs=25, progress=False, seed=7
            )
    return post
