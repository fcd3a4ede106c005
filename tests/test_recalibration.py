"""Recalibration of posterior marginals: the maps, on posteriors of known miscalibration."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prospect_sbi.posterior import Recalibration, coverage, coverage_noise, sbc_ranks, total_snr
from prospect_sbi.posterior.metrics import LEVELS

N_DRAWS = 400


def gaussian_mocks(n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Truths, S/N and draws of posteriors whose widths are wrong by known factors.

    Three labels with exact Gaussian posteriors N(m, s^2) (truth = m + s * N(0, 1)); the draws
    are 1.3 times too wide for the brighter half of the objects and 0.85 times too narrow for
    the fainter half, label 2 also shifted by 0.3 s: an average over both halves would hide
    the widths' errors, so only a map per S/N bin removes them.
    """
    snr = rng.uniform(1.0, 100.0, n)
    mean = rng.normal(size=(n, 3))
    sigma = rng.uniform(0.1, 1.0, (n, 3))
    truth = mean + sigma * rng.normal(size=(n, 3))
    factor = np.where(snr >= 50.5, 1.3, 0.85)[:, None, None]
    shift = np.array([0.0, 0.0, 0.3]) * sigma
    draws = (
        mean[:, None] + shift[:, None] + factor * sigma[:, None] * rng.normal(size=(n, N_DRAWS, 3))
    )
    return truth, snr, draws


def coverage_error(draws: np.ndarray, truth: np.ndarray) -> float:
    return float(np.abs(coverage(draws, truth) - LEVELS).max())


def test_maps_per_snr_bin_remove_known_miscalibration(rng):
    truth, snr, draws = gaussian_mocks(8000, rng)
    ranks = sbc_ranks(draws, truth) / N_DRAWS
    recal = Recalibration.fit(ranks, snr, n_bins=2, n_knots=20)
    assert recal.snr_edges[0] == pytest.approx(50.5, abs=2.0)
    # fresh objects: the maps were fitted on others
    truth, snr, draws = gaussian_mocks(8000, rng)
    fixed = recal.apply(torch.from_numpy(draws), snr).numpy()
    chance = coverage_noise(8000, N_DRAWS, n_labels=3)
    bright = snr >= 50.5
    for rows in (bright, ~bright):
        before = coverage_error(draws[rows], truth[rows])
        after = coverage_error(fixed[rows], truth[rows])
        assert before > 0.08, before  # measured 0.135 (too wide), 0.095 (too narrow)
        # measured 0.024 and 0.023, chance level 0.024: fit noise of 4000 ranks per bin adds
        assert after < 1.5 * coverage_noise(int(rows.sum()), N_DRAWS, n_labels=3), after
    assert coverage_error(fixed, truth) < chance, coverage_error(fixed, truth)
    # one bin for all objects cannot undo errors of opposite sign
    single = Recalibration.fit(sbc_ranks(draws, truth) / N_DRAWS, snr, n_bins=1)
    wrong = single.apply(torch.from_numpy(draws), snr).numpy()
    assert coverage_error(wrong[bright], truth[bright]) > 0.08  # measured 0.114


def test_apply_keeps_order_and_support(rng):
    truth, snr, draws = gaussian_mocks(2000, rng)
    recal = Recalibration.fit(sbc_ranks(draws, truth) / N_DRAWS, snr, n_bins=2)
    z = torch.from_numpy(draws[:50]).float()
    out = recal.apply(z, snr[:50])
    # each label's draws keep their order (so the dependence between labels is kept) and stay
    # inside the range of the draws they came from (inside any prior box)
    ordered, order = torch.sort(z, dim=1)
    in_order = out.gather(1, order)
    strict = ordered.diff(dim=1) > 0  # draws equal in float32 may map in either order
    assert torch.all(in_order.diff(dim=1)[strict] >= -1e-6)
    assert torch.all(out >= z.min(1, keepdim=True).values - 1e-6)
    assert torch.all(out <= z.max(1, keepdim=True).values + 1e-6)
    identity = Recalibration([], recal.levels, np.broadcast_to(recal.levels, (1, 3, 21)))
    np.testing.assert_allclose(identity.apply(z, snr[:50]).numpy(), z.numpy(), atol=1e-6)
    again = Recalibration.from_dict(recal.to_dict())
    np.testing.assert_allclose(again.apply(z, snr[:50]).numpy(), out.numpy(), atol=1e-5)


def test_total_snr_and_bad_maps():
    flux = np.array([[1.0, 2.0, np.nan], [np.nan, np.nan, np.nan]])
    err = np.array([[0.3, 0.4, np.nan], [np.nan, np.nan, np.nan]])
    np.testing.assert_allclose(total_snr(flux, err), [3.0 / 0.5, 0.0])
    levels = np.linspace(0, 1, 3)
    with pytest.raises(ValueError, match="must increase"):
        Recalibration([], levels, [[[0.0, 0.7, 0.6]]])
    with pytest.raises(ValueError, match=r"expected \(2, D, 3\)"):
        Recalibration([5.0], levels, [[levels]])
    with pytest.raises(ValueError, match="too few"):
        Recalibration.fit(np.full((60, 2), 0.5), np.ones(60), n_bins=2)
    recal = Recalibration([], levels, [[levels, levels]])
    with pytest.raises(ValueError, match="draws have 3 labels; the recalibration has 2"):
        recal.apply(torch.zeros(1, 10, 3), np.ones(1))
