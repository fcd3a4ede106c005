"""Posterior-predictive check: clean mocks pass, corrupted photometry is flagged."""

from __future__ import annotations

import numpy as np
import pytest

from prospect_sbi.ppc import PredictiveCheck, predictive_check, theta_matrix

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mocks(small_estimator, _sps_instance):
    from prospect_sbi import build_model
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.transforms import draw_theta

    rng = np.random.default_rng(11)
    model = build_model("parametric_sfh", zred=(0.5, 5.0), logmass=(5.0, 12.0))
    theta = draw_theta(model, rng.uniform(size=(150, model.ndim)))
    theta[:, model.theta_labels().index("mass")] = 10 ** rng.uniform(7, 10, 150)
    phot = ModelPhotometry(model, _sps_instance, small_estimator.filters)
    flux, err = small_estimator.noise.apply(phot(theta)[0], rng)
    return model, theta, flux, err


def test_ppc_flags_corrupted_photometry(small_estimator, _sps_instance, mocks):
    model, theta, flux, err = mocks
    zred = theta[:, 0]
    check = PredictiveCheck(small_estimator, model, _sps_instance)

    def flagged(f):
        draws = small_estimator.sample(f, err, 100, zred=zred, seed=1)
        chi2, ood = check(f, err, zred, draws)
        return ood.mean(), np.median(chi2)

    clean, chi2_clean = flagged(flux)
    spike = flux.copy()
    spike[:, 8] += 30 * err[:, 8]  # a 30-sigma F200W spike (cosmic ray, bad pixel)
    spiked, chi2_spike = flagged(spike)
    assert clean < 0.2  # 0.11 measured (150 prior mocks, S/N up to ~100)
    assert spiked > 0.5 and spiked > 4 * clean
    assert chi2_spike > 3 * chi2_clean


def test_ppc_inputs(small_estimator, _sps_instance, mocks):
    model, theta, flux, err = mocks
    labels = small_estimator.labels
    values = np.zeros((2, len(labels)))
    values[:, labels.index("mass")] = [1e8, 1e9]
    th = theta_matrix(labels, values, model, [1.0, 2.0])
    assert th[:, 0].tolist() == [1.0, 2.0] and th[1, 1] == 1e9
    with pytest.raises(ValueError, match="lack the model parameter 'zred'"):
        theta_matrix(labels, values, model, None)
    table = small_estimator.summarize(flux[:5], err[:5], zred=theta[:5, 0], n=50, seed=0)
    chi2, ood = predictive_check(
        small_estimator, model, _sps_instance, flux[:5], err[:5], theta[:5, 0], table
    )
    assert chi2.shape == (5,) and ood.dtype == bool and np.all(chi2 > 0)
    with pytest.raises(ValueError, match="draws_or_summary has shape"):
        predictive_check(
            small_estimator, model, _sps_instance, flux[:5], err[:5], theta[:5, 0], np.zeros(3)
        )
