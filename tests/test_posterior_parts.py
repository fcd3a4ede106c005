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
    spec = {
        "params": {
            "mass": {"prior": {"name": "LogUniform", "params": {"mini": 1e8, "maxi": 1e12}}},
            "dust2": {"prior": {"name": "TopHat", "params": {"mini": 0.0, "maxi": 2.0}}},
            "ratio": {
                "prior": {
                    "name": "StudentT",
                    "params": {"mean": [0, 0], "scale": [0.3, 0.3], "df": [2, 2]},
                }
            },
        }
    }
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
    x = np.column_stack(
        [
            10 ** rng.uniform(8, 12, 500),
            rng.uniform(0, 2, 500),
            rng.standard_t(2, (500, 2)) * 0.3,
            rng.lognormal(0, 1, 500),
        ]
    )
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
        (lambda f, e: (f * 5, e * 5), "of the 4 objects is brighter than 99% of the training"),
        (lambda f, e: (f, 1 / e**2), "inverse variances"),
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


ARCHS = [{}, {"affine": True}, {"affine": True, "residual": True}]


@pytest.mark.parametrize("arch", ARCHS, ids=["plain", "affine", "affine-residual"])
@pytest.mark.parametrize("flow", sorted(FLOWS))
def test_network_shapes_and_fast_sampling(flow, arch):
    net = PosteriorNetwork(
        4, 9, flow=flow, transforms=3, hidden=(32,), embedding=(32,), context=8, **arch
    ).eval()
    with torch.no_grad():  # move the affine head off the identity it starts at
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
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
    other = PosteriorNetwork(
        5, 9, transforms=3, hidden=(32,), embedding=(32,), context=8, seed=1
    ).eval()
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
        net = PosteriorNetwork(
            5, 3, flow=flow, transforms=3, hidden=(16,), embedding=(16,), context=8
        ).eval()
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

    for model in (
        ps.build_model("continuity_sfh", zred=(0.5, 6.0)),
        ps.build_model("parametric_sfh", zred=2.0, dust_type=4),
    ):
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
    flux = np.array(
        [
            [0.5, 10.0, 200.0],  # band 0 at the depth: kept
            [0.5, 10.0, 200.0],  # band 0 45x shallower, S/N 0.01: missing
            [5.0, 0.0, 0.0],
        ]
    )  # every band shallow and undetected: kept as is
    err = np.array(
        [
            [1.0, 1.0, 10.0],
            [45.0, 1.0, 10.0],  # band 2: err 10x depth but S/N 20: kept
            [40.0, 40.0, 40.0],
        ]
    )
    with pytest.warns(UserWarning, match="1 non-detections with errors larger than in training"):
        f, e = drop_shallow(flux, err, max_err)
    assert np.isnan(f[1, 0]) and np.isnan(e[1, 0])
    assert np.isfinite(f).sum() == flux.size - 1 and np.isfinite(e).sum() == err.size - 1
    np.testing.assert_array_equal(f[2], flux[2])


def test_shallow_errors_cover_the_training_noise():
    """Hardly any non-detection of the training noise counts as shallow; 45x the depth does."""
    from prospect_sbi import JadesPixelNoise
    from prospect_sbi.posterior.plausibility import SHALLOW_FACTOR, shallow_errors

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


def test_faint_flag_on_scale_not_on_noise():
    from prospect_sbi import JadesPixelNoise
    from prospect_sbi.posterior.plausibility import NoiseRange, flag_observations

    ranges = NoiseRange.of(JadesPixelNoise())
    stats = {"p0.1": 1e-20}
    noise = np.random.default_rng(0).normal(-1e-12, 1e-11, (50, 14))  # undetected: median < 0
    assert set(flag_observations(noise, np.full_like(noise, 1e-11), ranges, stats)) == {""}
    faint = flag_observations(np.full((3, 14), 1e-25), np.full((3, 14), 3e-14), ranges, stats)
    assert faint.tolist() == ["faint"] * 3


def test_precise_flag_on_catalogue_errors_not_on_training_noise():
    import warnings

    from prospect_sbi import JadesPixelNoise
    from prospect_sbi.posterior.plausibility import (
        NoiseRange,
        ObservationWarning,
        flag_observations,
        warn_flags,
    )

    noise = JadesPixelNoise()
    ranges = NoiseRange.of(noise)
    maggies = np.geomspace(1e-10, 1e-7, 14)[None].repeat(200, 0)  # bright: at the error floor
    flux, err = noise.apply(maggies, np.random.default_rng(0))
    flags = flag_observations(flux, err, ranges, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_flags(flags, ranges, None)
    assert set(flags) == {""}
    flags = flag_observations(maggies, 1e-3 * maggies, ranges, None)  # S/N 1000, a catalogue's
    assert set(flags) == {"snr_above_training"}
    with pytest.warns(
        ObservationWarning,
        match=r"200 of 200 objects have detected bands more "
        r"precise than the training noise's error floor \(relative error "
        r"0.0046\)",
    ):
        warn_flags(flags, ranges, None)


def test_triangular_affine_is_a_full_covariance_gaussian():
    """Base N(0, I) through ``x = mu + L z`` has the density of N(mu, L L^T)."""
    from zuko.distributions import DiagNormal

    from prospect_sbi.posterior.layers import TriangularAffine

    torch.manual_seed(0)
    d = 4
    mu, log_diag = torch.randn(3, d), 0.5 * torch.randn(3, d)
    tril = torch.diag_embed(log_diag.exp()) + torch.randn(3, d, d).tril(-1)
    t = TriangularAffine(mu, tril, log_diag)
    x = torch.randn(3, d)
    z, ladj = t.call_and_ladj(x)
    base = DiagNormal(torch.zeros(d), torch.ones(d))
    ref = torch.distributions.MultivariateNormal(mu, scale_tril=tril).log_prob(x)
    assert torch.allclose(base.log_prob(z) + ladj, ref, atol=1e-5)
    assert torch.allclose(t.inv(z), x, atol=1e-5)


def test_affine_head_starts_at_the_identity_and_reads_old_configs():
    from prospect_sbi.posterior.layers import ContextAffine

    head = ContextAffine(3, 5)
    z = torch.randn(7, 2, 3)
    assert torch.equal(head.inverse_draws(torch.randn(2, 5), z), z)
    net = PosteriorNetwork(3, 6, affine=True, residual=True, embedding=(16, 16))
    legacy = {k: v for k, v in net.config.items() if k not in ("affine", "residual")}
    old = PosteriorNetwork.from_config(legacy)
    assert not old.config["affine"] and not old.config["residual"]
    assert not any(isinstance(t, ContextAffine) for t in old.npe.flow.transform.transforms)
    plain = PosteriorNetwork(3, 6, transforms=2, embedding=(16,)).eval()
    grown = plain.with_affine()
    x, z = torch.randn(4, 6), torch.randn(4, 3)
    assert torch.equal(grown.log_prob(z, x), plain.log_prob(z, x))
    with pytest.raises(ValueError, match="already has"):
        grown.with_affine()
    from prospect_sbi.posterior.network import check_config

    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_config(net.config, shapes)  # the new layers' sizes are read off the weights too
    for key, value in (("transforms", 11), ("embedding", [16, 16, 16]), ("residual", False)):
        with pytest.raises(ValueError, match="the stored weights have"):
            check_config(net.config | {key: value}, shapes)
    with pytest.raises(ValueError, match="equal block widths"):
        PosteriorNetwork(3, 6, residual=True, embedding=(16, 32))


def test_mass_augmentation_is_an_exact_prior_draw(make_model, sps, jades):
    """A row moved to another mass equals the simulation at that mass: fluxes times the
    factor, log M* and log SFR moved by the same dex, the other targets unchanged."""
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.posterior.data import MassAugmentation
    from prospect_sbi.provenance import model_spec

    model = make_model("parametric_sfh", zred=2.0, logmass=(4.0, 12.0))
    names = [*model.theta_labels(), "log_mstar", "log_sfr100", "mwa"]
    aug = MassAugmentation(names, model_spec(model))
    phot = ModelPhotometry(model, sps, jades)
    rng = np.random.default_rng(1)
    theta = np.array([model.prior_transform(rng.random(model.ndim)) for _ in range(5)])
    maggies, derived = phot.with_derived(theta)
    rows = np.column_stack([theta] + [derived[k] for k in names[model.ndim :]])
    moved, factor = aug.draw(rows, rng)
    new_maggies, new_derived = phot.with_derived(moved[:, : model.ndim])
    np.testing.assert_allclose(new_maggies, maggies * factor[:, None], rtol=1e-9)
    for k, name in enumerate(names[model.ndim :], start=model.ndim):
        np.testing.assert_allclose(moved[:, k], new_derived[name], rtol=0, atol=1e-9)
    mass = np.log10(moved[:, names.index("mass")])
    assert np.all((mass >= 4.0) & (mass <= 12.0)) and np.ptp(np.log10(factor)) > 0.5
    with pytest.raises(ValueError, match="needs a free 'mass' or 'logmass'"):
        MassAugmentation(["dust2"], model_spec(model))
    spec = model_spec(model)
    spec["params"]["mass"]["prior"]["name"] = "ClippedNormal"
    with pytest.raises(ValueError, match="got ClippedNormal"):
        MassAugmentation(names, spec)


def _brightness_net(**arch):
    """A network with a brightness shift fitted on synthetic observations of 3 bands."""
    from prospect_sbi.posterior.network import brightness_config

    rng = np.random.default_rng(0)
    depth = np.array([1e-12, 2e-12, 3e-12])
    enc = ObservationEncoder(BANDS, depth, 1.0, known_zred=True)
    log_mass = rng.uniform(4, 12, 2000)
    zred = rng.uniform(0.5, 5, 2000)
    flux = 10 ** (log_mass[:, None] - 20.0) * np.array([1.0, 1.5, 2.0])
    err = np.hypot(depth, 0.02 * flux)
    enc.fit(flux, err, zred)
    theta = np.column_stack([10**log_mass, rng.uniform(0, 2, 2000), log_mass - 0.2])
    spec = {
        "params": {
            "mass": {"prior": {"name": "LogUniform", "params": {"mini": 1e4, "maxi": 1e12}}},
            "dust2": {"prior": {"name": "TopHat", "params": {"mini": 0.0, "maxi": 2.0}}},
        }
    }
    space = TargetSpace.from_model_spec(spec, ["mass", "dust2"], ["log_mstar"]).fit(theta)
    config = brightness_config(enc, space, enc.encode(flux, err, zred), theta)
    net = PosteriorNetwork(
        3,
        enc.n_features,
        transforms=2,
        hidden=(16,),
        embedding=(16,),
        context=8,
        brightness=config,
        **arch,
    ).eval()
    return net, enc, space


def test_brightness_shift_is_equivariant_under_mass_scaling():
    """Fluxes 10^d times brighter move b by d dex and the mass-like targets' shifts with it."""
    net, enc, space = _brightness_net(affine=True)
    shift = net.npe.flow.transform.transforms[0]
    flux = np.array([[3e-9, 4e-9, 6e-9], [1e-8, 2e-8, 2e-8]])
    err = 0.02 * flux
    zred = np.array([1.0, 3.0])
    b = shift.brightness(enc.encode(flux, err, zred))
    b2 = shift.brightness(enc.encode(flux * 10**0.7, err * 10**0.7, zred))
    assert torch.allclose(b2 - b, torch.full((2,), 0.7), atol=2e-4)
    c = net.context(enc.encode(flux, err, zred))
    t = shift.offsets(c)
    t2 = shift.offsets(net.context(enc.encode(flux * 10**0.7, err * 10**0.7, zred)))
    # log_mstar (real) moves by 0.7 dex in flow units; dust2 not at all; mass (logit) up,
    # until the shift reaches the top of the prior box (the second object), where it stays
    assert torch.allclose(t2[:, 2] - t[:, 2], torch.full((2,), 0.7 / space.scale[2]), atol=1e-3)
    assert torch.equal(t2[:, 1], t[:, 1]) and t2[0, 0] > t[0, 0] and t2[1, 0] == t[1, 0]
    # b for a mass-proportional flux grows with the mass; the fitted offset undoes b
    config = net.config["brightness"]
    assert config["targets"] == [0, 2] and config["kinds"] == ["logbox", "real"]


def test_brightness_network_samples_saves_and_checks():
    from prospect_sbi.posterior.network import check_config

    net, enc, _ = _brightness_net(affine=True, residual=True)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    x = enc.encode(
        np.array([[3e-9, 4e-9, 6e-9]] * 4), np.full((4, 3), 1e-10), np.array([0.5, 1.0, 2.0, 4.0])
    )
    with torch.no_grad():
        torch.manual_seed(1)
        fast = net.sample(x, 30)
        torch.manual_seed(1)
        slow = net.sample(x, 30, fast=False)
        assert torch.allclose(fast, slow, atol=1e-4)
        again = PosteriorNetwork.from_config(net.config)
        again.load_state_dict(net.state_dict())
        z = fast.movedim(1, 0)
        assert torch.equal(again.log_prob(z, x), net.log_prob(z, x))
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_config(net.config, shapes)
    with pytest.raises(ValueError, match="the stored weights have"):
        check_config(net.config | {"transforms": 3}, shapes)
    with pytest.raises(ValueError, match="brightness must be a configuration"):
        PosteriorNetwork(3, 9, brightness=True)
    with pytest.raises(ValueError, match="without a brightness shift"):
        PosteriorNetwork.from_config(net.config | {"affine": False}).with_affine()
