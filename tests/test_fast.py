"""FastPhotometry against the exact projection (Prospector's own) on the same parameters."""

import numpy as np
import pytest

from prospect_sbi.sources.fast import FastPhotometry


@pytest.fixture(scope="module")
def fast(jades):
    return FastPhotometry(jades, resolution=1000.0, zmax=12.0)


def _batch(rng, n, sfh):
    common = dict(
        zred=rng.uniform(0.2, 9.0, n),
        logzsol=rng.uniform(-2.0, 0.19, n),
        dust2=rng.uniform(0.0, 2.0, n),
        dust1=rng.uniform(0.0, 1.0, n),
        imf_type=1,
        dust_type=4,
        dust_index=rng.uniform(-1.0, 0.3, n),
        add_neb_emission=True,
        gas_logu=rng.uniform(-3.5, -1.0, n),
        add_igm_absorption=True,
    )
    if sfh == 3:
        mass = 10 ** rng.uniform(8, 10, (n, 3))
        return common | dict(
            sfh=3, agebins=np.array([[0, 7.5], [7.5, 8.5], [8.5, 9.0]]), mass=mass
        )
    return common | dict(
        sfh=4, tage=rng.uniform(0.02, 0.5, n), tau=10 ** rng.uniform(-1, 1, n), mass=1e9
    )


def _redward_of_lya(filters, zred):
    blue_edge = np.array([f.wavelength[f.transmission > 0.01 * f.transmission.max()].min()
                          for f in filters])  # fmt: skip
    return blue_edge[None, :] > 1216.0 * (1 + zred[:, None])


@pytest.mark.parametrize("sfh", [3, 4])
def test_fast_matches_exact_projection(fast, sps, jades, rng, sfh):
    params = _batch(rng, 60, sfh)
    exact, mfrac = sps.photometry(params, jades)
    approx, mfrac_fast = fast(params)
    ok = _redward_of_lya(jades, params["zred"])
    rel = np.abs(approx / exact - 1)[ok]
    assert rel.max() < 5e-3, f"worst band off by {rel.max():.2e}"
    assert np.median(rel) < 5e-4
    np.testing.assert_allclose(mfrac_fast, mfrac, rtol=1e-10)


def test_fast_rejects_redshift_beyond_zmax(fast, rng):
    params = _batch(rng, 3, 4)
    params["zred"] = np.array([1.0, 2.0, 13.0])
    with pytest.raises(ValueError, match=r"zred=13 is beyond FastPhotometry zmax=12"):
        fast(params)
