"""Parts of prospect_sbi.posterior that need no training: bounds, encoding, checks, network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import prospect_sbi.posterior as posterior_pkg
from prospect_sbi.posterior import (
    FLOWS,
    ObservationEncoder,
    PosteriorNetwork,
    TargetSpace,
    check_observations,
    check_zred,
    coverage,
    regression_metrics,
)
from prospect_sbi.posterior.data import drop_bands
from prospect_sbi.posterior.storage import (
    flatten_optimizer,
    read_tensors,
    unflatten_optimizer,
    write_tensors,
)

BANDS = ["jwst_f090w", "jwst_f200w", "jwst_f444w"]


def test_all_exports_import():
    for name in posterior_pkg.__all__:
        assert hasattr(posterior_pkg, name), name


def _space() -> TargetSpace:
    spec = {"params": {
        "mass": {"prior": {"name": "LogUniform", "params": {"mini": 1e8, "maxi": 1e12}}},
        "dust2": {"prior": {"name": "TopHat", "params": {"mini": 0.0, "maxi": 2.0}}},
        "ratio": {"prior": {"name": "StudentT", "params": {"mean": [0, 0], "scale": [0.3, 0.3],
                                                           "df": [2, 2]}}},
    }}  # fmt: skip
    return TargetSpace.from_model_spec(spec, ["mass", "dust2", "ratio_1", "ratio_2"], ["mwa"])


def test_target_kinds_from_priors():
    space = _space()
    assert space.kinds == ["logbox", "box", "real", "real", "positive"]
    assert space.lo[:2].tolist() == [1e8, 0.0] and space.hi[:2].tolist() == [1e12, 2.0]
    with pytest.raises(ValueError, match="not a parameter"):
        TargetSpace.from_model_spec({"params": {}}, ["nope"])


def test_bijection_round_trip_and_box():
    space = _space()
    rng = np.random.default_rng(0)
    x = np.column_stack([10 ** rng.uniform(8, 12, 500), rng.uniform(0, 2, 500),
                         rng.standard_t(2, (500, 2)) * 0.3, rng.lognormal(0, 1, 500)])  # fmt: skip
    space.fit(x)
    z = space.to_flow(torch.from_numpy(x))
    assert torch.allclose(space.to_physical(z), torch.from_numpy(x), rtol=1e-6)
    # Any flow output, however extreme, lands inside the box (closed, in float32 too).
    wild = torch.tensor([[-1e4, -1e4, 0, 0, -50], [1e4, 1e4, 0, 0, 5]], dtype=torch.float32)
    phys = space.to_physical(wild)
    assert phys[:, 0].min() >= 1e8 and phys[:, 0].max() <= 1e12
    assert phys[:, 1].min() >= 0.0 and phys[:, 1].max() <= 2.0 and phys[:, 4].min() >= 0
    assert space.in_support(torch.from_numpy(x)).all()
    assert not space.in_support(torch.tensor([[1e13, 1.0, 0.0, 0.0, 1.0]])).any()


def test_log_abs_det_matches_finite_differences():
    space = _space()
    x = torch.tensor([[3e9, 0.7, 0.1, -0.2, 1.3]], dtype=torch.float64)
    space.fit(np.array([[1e9, 0.5, 0, 0, 1.0], [1e11, 1.5, 1, -1, 3.0]]))
    jac = torch.autograd.functional.jacobian(lambda v: space.to_flow(v), x)[0, :, 0, :]
    expected = torch.log(torch.abs(torch.diagonal(jac))).sum()
    assert torch.allclose(space.log_abs_det(x)[0], expected, rtol=1e-8)


def test_encoder_features():
    enc = ObservationEncoder(BANDS, [1e-13] * 3, 1.0, known_zred=True)
    flux = np.array([[1e-10, 5e-14, np.nan]])
    err = np.array([[1e-12, 1e-13, np.nan]])
    x = enc.encode(flux, err, np.array([2.0]))
    assert x.shape == (1, 16) and x.dtype == torch.float32
    mag, colour, log_err = x[0, :3], x[0, 3:6], x[0, 6:9]
    limit, missing = x[0, 9:12], x[0, 12:15]
    assert limit.tolist() == [0, 1, 0] and missing.tolist() == [0, 0, 1]
    assert mag[2] == 0 and log_err[2] == 0 and colour[2] == 0  # missing band: values zeroed
    asinh = np.arcsinh(np.array([1e-10, 5e-14]) / 2e-13)
    assert mag[0] == pytest.approx(asinh[0]) and x[0, 15] == 2.0
    # colour: asinh magnitude minus the mean over the present bands (missing one left out)
    assert colour[:2].numpy() == pytest.approx(asinh - asinh.mean(), rel=1e-6)
    again = ObservationEncoder.from_dict(enc.to_dict()).encode(flux, err, np.array([2.0]))
    assert torch.equal(x, again)
    # estimators saved before colours existed have no "colours" key: 4 features per band
    legacy = {k: v for k, v in enc.to_dict().items() if k != "colours"}
    old = ObservationEncoder.from_dict(legacy).encode(flux, err, np.array([2.0]))
    assert old.shape == (1, 13) and torch.equal(old[0, :3], x[0, :3])


def test_drop_bands_never_empties_a_row():
    rng = np.random.default_rng(1)
    flux = np.ones((20000, 5))
    out, err = drop_bands(flux, flux.copy(), rng, 0.5)
    missing = np.isnan(out)
    assert np.array_equal(missing, np.isnan(err)) and not missing.all(axis=1).any()
    untouched = ~missing.any(axis=1)
    assert 0.5 < untouched.mean() < 0.56  # half the rows keep every band (+ lucky ones)
    assert missing.mean() == pytest.approx(0.5 * 0.5, abs=0.01)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda f, e: (f[:, :2], e[:, :2]), r"shape \(4, 2\); expected \(3,\) or \(B, 3\)"),
        (lambda f, e: (f, -e), "err must be > 0"),
        (lambda f, e: (f, e * 0), "err must be > 0"),
        (lambda f, e: (np.where([[True, False, False]], np.nan, f), e), "flux is NaN but err"),
        (lambda f, e: (f, np.where([[True, False, False]], np.nan, e)), "err is NaN but flux"),
        (lambda f, e: (np.full_like(f, np.nan), np.full_like(e, np.nan)), "no valid band"),
        (lambda f, e: (-2.5 * np.log10(f), e * 1e9), "looks like AB magnitudes"),
        (lambda f, e: (f * 3631 * 1e6, e * 3631 * 1e6), "not maggies"),
        (lambda f, e: (f * 3631, e * 3631), "brighter than every training flux"),
        (lambda f, e: (f, np.full_like(e, np.inf)), "err is infinite"),
    ],
)
def test_bad_observations(change, match):
    flux = np.full((4, 3), 1e-9)
    err = np.full((4, 3), 1e-11)
    with pytest.raises(ValueError, match=match):
        check_observations(*change(flux, err), BANDS, {"p99": 1e-9, "max": 1e-8})


def test_good_observations_pass():
    flux = np.array([1e-9, -1e-13, np.nan])
    out, err = check_observations(flux, np.array([1e-11, 1e-13, np.nan]), BANDS, {"max": 1e-8})
    assert out.shape == err.shape == (1, 3)


def test_zred_checks():
    assert check_zred(1.5, 3, True, (0.5, 4.0)).tolist() == [1.5] * 3
    with pytest.raises(ValueError, match="pass zred"):
        check_zred(None, 3, True, None)
    with pytest.raises(ValueError, match="do not pass zred"):
        check_zred(1.0, 3, False, None)
    with pytest.raises(ValueError, match="outside the training range"):
        check_zred([1.0, 5.0, 1.0], 3, True, (0.5, 4.0))
    with pytest.raises(ValueError, match=r"expected \(\) or \(3,\)"):
        check_zred([1.0, 2.0], 3, True, None)


@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_network_shapes_and_fast_sampling(flow):
    net = PosteriorNetwork(4, 9, flow=flow, transforms=3, hidden=(32,), embedding=(32,),
                           context=8).eval()  # fmt: skip
    x = torch.randn(6, 9)
    with torch.no_grad():
        torch.manual_seed(3)
        fast = net.sample(x, 50)
        torch.manual_seed(3)
        slow = net.sample(x, 50, fast=False)
        assert fast.shape == (6, 50, 4)
        assert torch.allclose(fast, slow, atol=1e-4)
        assert net.log_prob(fast.movedim(1, 0), x).shape == (50, 6)
    loss = -net.log_prob(torch.randn(6, 4), x).mean()
    loss.backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    again = PosteriorNetwork.from_config(net.config)
    again.load_state_dict(net.state_dict())
    assert torch.equal(again.log_prob(fast[:, 0], x), net.log_prob(fast[:, 0], x))


def test_fast_sampling_follows_new_weights():
    """The padded coupling weights are cached, and rebuilt once the weights change."""
    net = PosteriorNetwork(5, 9, transforms=3, hidden=(32,), embedding=(32,), context=8).eval()
    other = PosteriorNetwork(5, 9, transforms=3, hidden=(32,), embedding=(32,), context=8,
                             seed=1).eval()  # fmt: skip
    x = torch.randn(4, 9)
    with torch.no_grad():
        net.sample(x, 10)  # fills the cache
        net.load_state_dict(other.state_dict())
        torch.manual_seed(0)
        fast = net.sample(x, 40)
        torch.manual_seed(0)
        assert torch.allclose(fast, other.sample(x, 40, fast=False), atol=1e-5)


def test_spline_inverse_matches_zuko_in_the_tails():
    from zuko.transforms import MonotonicRQSTransform

    from prospect_sbi.posterior.network import _elementwise_inverse

    g = torch.Generator().manual_seed(0)
    f = MonotonicRQSTransform(*(torch.randn(3, 4, k, generator=g) for k in (8, 8, 7)))
    y = torch.linspace(-8, 8, 401)[:, None, None].expand(401, 3, 4)  # knots span [-5, 5]
    x, ladj = _elementwise_inverse(f, y, with_ladj=True)
    expected_x, expected_ladj = f.inv.call_and_ladj(y)
    assert torch.allclose(x, expected_x, atol=1e-5)
    assert torch.allclose(ladj, expected_ladj.sum(-1), atol=1e-4)  # log |dx/dy|, summed
    assert torch.equal(_elementwise_inverse(f, y)[0], x)


def test_sample_and_log_prob_is_sample_and_log_prob_in_one_pass():
    from prospect_sbi.posterior import PosteriorNetwork

    for flow in ("realnvp", "nsf"):
        net = PosteriorNetwork(5, 3, flow=flow, transforms=3, hidden=(16,), embedding=(16,),
                               context=8).eval()  # fmt: skip
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
        base = torch.randn(50, 4, 5, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            z, log_q = net.sample_and_log_prob(x, base)
            assert torch.equal(z, net.sample(x, 50, base=base))
            assert torch.allclose(log_q, net.log_prob(z.transpose(0, 1), x).T, atol=1e-4)
            assert torch.allclose(net.to_base(z.transpose(0, 1), x), base, atol=1e-4)


def test_unknown_flow():
    with pytest.raises(ValueError, match="unknown flow"):
        PosteriorNetwork(2, 3, flow="glow")


def test_storage_round_trip(tmp_path):
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, data = flatten_optimizer(opt.state_dict(), "optim")
    write_tensors(tmp_path / "f.st", tensors, {"optim": data})
    read, header = read_tensors(tmp_path / "f.st")
    other = torch.optim.Adam(torch.nn.Linear(3, 2).parameters())
    other.load_state_dict(unflatten_optimizer(read, header["optim"]))
    a, b = opt.state_dict()["state"][0], other.state_dict()["state"][0]
    assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"])
    (tmp_path / "junk").write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(ValueError, match="not a safetensors file"):
        read_tensors(tmp_path / "junk")


def test_metrics():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(2000, 2))
    # Calibrated draws: truth and draws from the same posterior N(mu, 1).
    mu = truth + rng.normal(size=truth.shape)
    draws = mu[:, None, :] + rng.normal(size=(2000, 400, 2))
    cov = coverage(draws, truth, np.array([0.5, 0.9]))
    assert np.allclose(cov, [[0.5, 0.9]] * 2, atol=0.04)
    narrow = mu[:, None, :] + 0.3 * rng.normal(size=(2000, 400, 2))
    assert coverage(narrow, truth, np.array([0.9]))[0, 0] < 0.5  # overconfident
    stats = regression_metrics(truth + 0.1, truth)
    assert np.allclose(stats["r2"], 1 - 0.01 / truth.var(0)) and np.allclose(stats["bias"], 0.1)


def test_model_rebuilt_from_a_stored_specification():
    import prospect_sbi as ps
    from prospect_sbi.provenance import model_from_spec, model_hash, model_spec

    for model in (ps.build_model("continuity_sfh", zred=(0.5, 6.0)),
                  ps.build_model("parametric_sfh", zred=2.0, dust_type=4)):  # fmt: skip
        spec = model_spec(model)
        again = model_from_spec(spec)
        assert model_hash(model_spec(again)) == model_hash(spec)
        assert again.theta_labels() == model.theta_labels()
        np.testing.assert_array_equal(again.theta, model.theta)
    spec["params"]["dust2"]["depends_on"] = "os.system"  # nothing outside the transforms
    with pytest.raises(ValueError, match="is not a transform of"):
        model_from_spec(spec)


def test_shallow_non_detections_become_missing_bands():
    from prospect_sbi.posterior.checks import drop_shallow

    max_err = np.array([3.0, 3.0, 3.0])
    flux = np.array([[0.5, 10.0, 200.0],    # band 0 at the depth: kept
                     [0.5, 10.0, 200.0],    # band 0 45x shallower, S/N 0.01: missing
                     [5.0, 0.0, 0.0]])      # every band shallow and undetected: kept as is
    err = np.array([[1.0, 1.0, 10.0],
                    [45.0, 1.0, 10.0],      # band 2: err 10x depth but S/N 20: kept
                    [40.0, 40.0, 40.0]])  # fmt: skip
    with pytest.warns(UserWarning, match="1 non-detections with errors larger than in training"):
        f, e = drop_shallow(flux, err, max_err)
    assert np.isnan(f[1, 0]) and np.isnan(e[1, 0])
    assert np.isfinite(f).sum() == flux.size - 1 and np.isfinite(e).sum() == err.size - 1
    np.testing.assert_array_equal(f[2], flux[2])


def test_shallow_errors_cover_the_training_noise():
    """Hardly any non-detection of the training noise counts as shallow; 45x the depth does."""
    from prospect_sbi import JadesPixelNoise
    from prospect_sbi.posterior.checks import SHALLOW_FACTOR, shallow_errors

    noise = JadesPixelNoise()
    max_err = shallow_errors(noise)
    assert np.all(max_err >= SHALLOW_FACTOR * noise.depth)
    assert np.all(max_err < 45 * noise.depth)
    assert np.any(max_err > 5 * noise.depth)  # faint detections: errors of several magnitudes
    rng = np.random.default_rng(7)
    true = noise.depth * 10 ** rng.uniform(-1.0, 1.5, (2000, noise.depth.size))
    flux, err = noise.apply(true, rng)
    undetected = np.abs(flux) < 3 * err
    # 0.1% of the training non-detections are beyond the limit (8 of 13897 here); a fixed
    # 3x-depth limit dropped 120
    assert np.sum(undetected & (err > max_err)) <= 2e-3 * undetected.sum()
    assert np.sum(undetected & (err > SHALLOW_FACTOR * noise.depth)) > 100


def test_warn_faint_on_scale_not_on_noise():
    import warnings

    from prospect_sbi.posterior.checks import warn_faint

    stats = {"p0.1": 1e-20}
    noise = np.random.default_rng(0).normal(-1e-12, 1e-11, (50, 14))  # undetected: median < 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_faint(noise, stats)
    with pytest.warns(UserWarning, match=r"median \|flux\| 1e-2[0-9] maggies is over 2 dex"):
        warn_faint(np.full((3, 14), 1e-25), stats)


def test_warn_precise_on_catalogue_errors_not_on_training_noise():
    import warnings

    from prospect_sbi import JadesPixelNoise
    from prospect_sbi.posterior.checks import warn_precise

    noise = JadesPixelNoise()
    maggies = np.geomspace(1e-10, 1e-7, 14)[None].repeat(200, 0)  # bright: at the error floor
    flux, err = noise.apply(maggies, np.random.default_rng(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_precise(flux, err, noise.mag_err_floor)
        warn_precise(flux, err / 10, 0.0)  # no floor in the noise model: nothing to compare
    with pytest.warns(UserWarning, match=r"median relative error 0.001 of detected bands is "
                      r"below the training noise's 0.01 mag floor"):  # fmt: skip
        warn_precise(maggies, 1e-3 * maggies, noise.mag_err_floor)  # S/N 1000, a catalogue's
