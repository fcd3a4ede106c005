"""The estimators shipped with the package, on fresh mocks of their own models."""

from __future__ import annotations

import numpy as np
import pytest

from prospect_sbi import PRETRAINED, pretrained_model, simulate
from prospect_sbi.filters import resolve_band_names
from prospect_sbi.pixels import SNR_BANDS, detection_snr
from prospect_sbi.posterior import AmortizedPosterior, coverage_noise, evaluate, held_out

pytestmark = pytest.mark.usefixtures("one_thread")

N_MOCKS, N_DRAWS = 2000, 300


@pytest.mark.parametrize("name", sorted(PRETRAINED))
def test_shipped_estimator_accuracy_and_calibration(name, _sps_instance, tmp_path):
    post = AmortizedPosterior.pretrained(name)
    assert post.recalibration is not None
    assert post.recalibration.maps.shape[:2] == (4, len(post.labels))
    ts = simulate(
        pretrained_model(name),
        _sps_instance,
        post.filters,
        N_MOCKS,
        tmp_path / "mocks.h5",
        seed=77,
        progress=False,
    )
    obs = held_out(post, ts, slice(0, N_MOCKS), seed=78)
    ts.close()
    cols = [post.filters.index(b) for b in resolve_band_names(SNR_BANDS)]
    rows = detection_snr(obs["flux"][:, cols], obs["err"][:, cols]) >= 5
    table = evaluate(
        post, obs["flux"][rows], obs["err"][rows], obs["truth"][rows], obs["zred"][rows], n=N_DRAWS
    )
    r2 = dict(zip(table["name"], table["r2"], strict=True))
    # full scale (benchmarks/accuracy.py, 20,000 mocks): R^2(log M*) 0.993 for both
    assert r2["log_mstar"] > 0.985, table
    assert r2["log_sfr100"] > 0.85, table
    chance = coverage_noise(int(rows.sum()), N_DRAWS, n_labels=len(post.labels))
    assert np.max(table["coverage_err"]) < chance, (chance, table)
