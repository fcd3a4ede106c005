"""The fast example scripts run end to end and print what their docstrings promise."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO_ROOT


def _run(*args: str, timeout: int = 600) -> str:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_predict_jades_photometry_example():
    out = _run("examples/predict_jades_photometry.py", "--z", "2")
    assert "jwst_f444w" in out and "mfrac" in out


def test_jof_maps_example(shared_data, small_estimator_file, tmp_path):
    out = _run(
        "examples/jof_maps.py",
        "--out",
        str(tmp_path),
        "--estimator",
        str(small_estimator_file),
        "--n-draws",
        "50",
    )
    rows = {
        int(line.split()[0]): line.split()
        for line in out.splitlines()
        if line.split() and line.split()[0].isdigit()
    }
    assert sorted(rows) == [36, 370, 778]
    assert [int(rows[g][2]) for g in (36, 370, 778)] == [458, 432, 149]  # pixels fitted
    for gid in (36, 370, 778):
        assert (tmp_path / f"jof_{gid}_maps.fits").exists()
    assert (tmp_path / "jof_outshining.png").exists()


@pytest.mark.parametrize(
    "script", ["examples/jades_specz_catalogue.py", "examples/train_jades_estimators.py"]
)
def test_slow_examples_at_least_parse_their_options(script):
    assert "usage:" in _run(script, "--help")
