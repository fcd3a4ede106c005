"""Estimator and checkpoint files: checksums, damaged and crafted headers, permissions."""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from prospect_sbi.posterior import AmortizedPosterior, PosteriorNetwork
from prospect_sbi.posterior.checkpoint import Checkpoint
from prospect_sbi.posterior.storage import read_tensors, write_tensors
from prospect_sbi.pretrained import pretrained_path

NAME = "jades-parametric"


def _raw(path):
    with safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, handle.metadata()  # noqa: SIM118


def _header(path):
    return json.loads(_raw(path)[1]["prospect_sbi"])


def digest(tensors, header):
    from prospect_sbi.posterior.storage import digest

    return digest(tensors, header)


@pytest.fixture
def shipped(tmp_path):
    """A copy of a shipped estimator file."""
    return shutil.copy(pretrained_path(NAME), tmp_path / "est.sbi")


def _mock(post):
    """One bright mock observation of the estimator's bands (maggies) at z = 2."""
    flux = np.full(len(post.filters), 2e-8)
    return flux, 0.05 * flux


def test_shipped_files_carry_a_checksum_and_load_without_warning():
    for name in ("jades-parametric", "jades-continuity"):
        tensors, meta = _raw(pretrained_path(name))
        assert meta["prospect_sbi_sha256"] == digest(tensors, meta["prospect_sbi"])
        assert json.loads(meta["prospect_sbi"])["format"] == 2
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            AmortizedPosterior.pretrained(name)


def test_flipped_bytes_are_refused(shipped):
    """1000 bytes flipped near the end of the weights: the file loaded, dust2 0.96 -> 0.35."""
    data = bytearray(shipped.read_bytes())
    for i in range(len(data) - 1100, len(data) - 100):
        data[i] ^= 0xFF
    shipped.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"est\.sbi is damaged: the SHA-256 of its contents is "):
        AmortizedPosterior.load(shipped)


def test_damaged_header_json_is_refused(shipped):
    data = shipped.read_bytes()
    # inside the header text, still a valid safetensors header: one character changed
    edited = data.replace(b'redshift\\": \\"known', b'redshift\\"; \\"known', 1)
    assert edited != data and len(edited) == len(data)
    shipped.write_bytes(edited)
    with pytest.raises(
        ValueError,
        match=r"est\.sbi has a damaged header: not valid JSON "
        r"\(Expecting ':' delimiter at character \d+\)",
    ):
        AmortizedPosterior.load(shipped)
    # a changed value that keeps the JSON valid is caught by the checksum
    shipped.write_bytes(data.replace(b'redshift\\": \\"known', b'redshift\\": \\"knowx', 1))
    with pytest.raises(ValueError, match="is damaged: the SHA-256"):
        AmortizedPosterior.load(shipped)


def _rewrite(src, dst, change, checksum=True):
    """Write ``src``'s tensors with ``change(header)`` applied, checksummed like any save."""
    tensors, meta = _raw(src)
    header = json.loads(meta["prospect_sbi"])
    change(header)
    if checksum:
        write_tensors(dst, tensors, header)
    else:
        save_file(tensors, str(dst), metadata={"prospect_sbi": json.dumps(header)})
    return dst


@pytest.mark.parametrize(
    ("change", "match"),
    [
        # the file loaded and built a network of 12 transforms before failing on the weights
        (
            {"transforms": 12},
            r"network transforms is 12 in the configuration; the stored weights "
            r"have 10",
        ),
        (
            {"hidden": [10**6, 10**6]},
            r"network hidden\[0\] is 1000000; the stored weights allow "
            r"an integer from 0 to 256",
        ),
        (
            {"bins": 10**9},
            r"network bins is 1000000000; the stored weights allow an integer "
            r"from 0 to 256",
        ),
        (
            {"embedding": [256, 256]},
            r"network embedding is \[256, 256\] in the configuration; the "
            r"stored weights have \[256, 256, 256\]",
        ),
        ({"flow": "glow"}, r"network flow 'glow' is not one of"),
        ({"context": "64"}, r"network context is '64'; the stored weights allow an integer"),
        # the reported case: 24 GB in 9 minutes
        (
            {"transforms": 1e6},
            r"network transforms is 1000000.0 in the configuration; the stored "
            r"weights have 10",
        ),
    ],
)
def test_crafted_network_header_is_refused_before_building(shipped, tmp_path, change, match):
    path = _rewrite(shipped, tmp_path / "crafted.sbi", lambda h: h["network"].update(change))
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"crafted\.sbi: " + match):
        AmortizedPosterior.load(path)
    assert time.perf_counter() - start < 10


def test_check_config_reads_sizes_off_the_weights():
    from prospect_sbi.posterior.network import check_config

    net = PosteriorNetwork(
        4, 9, flow="nsf", transforms=3, hidden=(16, 8), embedding=(32,), context=12
    )
    shapes = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    check_config(net.config, shapes)
    with pytest.raises(
        ValueError,
        match=r"network hidden is \[16, 16\] in the configuration; "
        r"the stored weights have \[16, 8\]",
    ):
        check_config(net.config | {"hidden": [16, 16]}, shapes)
    with pytest.raises(
        ValueError, match="network n_targets is 5 in the configuration; the stored weights have 4"
    ):
        check_config(net.config | {"n_targets": 5}, shapes)
    with pytest.raises(
        ValueError,
        match=r"tensor npe.flow.transform.transforms.1.hyper.4.bias "
        r"has shape \(46,\); the network configuration "
        r"expects \(40,\)",
    ):
        PosteriorNetwork.from_weights(net.config | {"bins": 7}, net.state_dict())


@pytest.mark.parametrize("key", ["filters", "flux_stats", "network"])
def test_header_without_an_entry_is_one_line(shipped, tmp_path, key):
    path = _rewrite(shipped, tmp_path / "partial.sbi", lambda h: h.pop(key))
    with pytest.raises(
        ValueError,
        match=rf"partial\.sbi is not a complete prospect-sbi "
        rf"estimator: its header has no '{key}'$",
    ):
        AmortizedPosterior.load(path)


def test_header_parts_that_disagree_are_refused(shipped, tmp_path):
    path = _rewrite(shipped, tmp_path / "bands.sbi", lambda h: h.update(filters=h["filters"][:3]))
    with pytest.raises(
        ValueError,
        match=r"bands\.sbi: the estimator's header lists 3 filters; "
        r"its network and encoder have 14$",
    ):
        AmortizedPosterior.load(path)


def test_format_1_files_without_checksum_load_with_a_warning(shipped, tmp_path):
    """Files written before the checksum: read, with a warning; newer ones must carry it."""
    old = _rewrite(shipped, tmp_path / "old.sbi", lambda h: h.update(format=1), checksum=False)
    with pytest.warns(UserWarning, match="written before prospect-sbi stored checksums"):
        post = AmortizedPosterior.load(old)
    ref = AmortizedPosterior.load(shipped)
    flux, err = _mock(ref)
    np.testing.assert_array_equal(
        post.sample(flux, err, 20, zred=2.0, seed=1), ref.sample(flux, err, 20, zred=2.0, seed=1)
    )
    stripped = _rewrite(shipped, tmp_path / "new.sbi", lambda h: None, checksum=False)
    with pytest.raises(
        ValueError,
        match=r"new\.sbi has no checksum, which every file of "
        r"format >= 2 carries \(format 2\)",
    ):
        AmortizedPosterior.load(stripped)
    # saving again adds the checksum, with the same weights
    post.save(old, overwrite=True)
    tensors, meta = _raw(old)
    assert meta["prospect_sbi_sha256"] == digest(tensors, meta["prospect_sbi"])
    assert _header(old)["format"] == 2


@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_saved_files_follow_the_umask(shipped, tmp_path, mask):
    """safetensors creates its files 0600: estimators and checkpoints came out unreadable."""
    post = AmortizedPosterior.load(shipped)
    before = os.umask(mask)
    try:
        path = post.save(tmp_path / "saved.sbi")
        write_tensors(tmp_path / "plain.st", {"a": torch.zeros(2)}, {})
    finally:
        os.umask(before)
    for p in (path, tmp_path / "plain.st"):
        assert oct(os.stat(p).st_mode & 0o777) == oct(0o666 & ~mask), p


def _checkpoint(path):
    net = PosteriorNetwork(3, 5, transforms=2, hidden=(8,), embedding=(8,), context=4)
    opt = torch.optim.Adam(net.parameters())
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    state = Checkpoint(path, {"a": 1})
    state.record(net, 1.0, 1.0, 1e-3, 0.1, patience=5)
    return net, opt, sched, state


def test_damaged_checkpoint_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    net, opt, sched, state = _checkpoint(path)
    state.save(net, opt, sched)
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    net2, opt2, sched2, _ = _checkpoint(path)
    with pytest.raises(ValueError, match=r"run\.ckpt is damaged: the SHA-256"):
        Checkpoint(path, {"a": 1}).restore(net2, opt2, sched2)


def test_read_tensors_round_trip_and_checksum(tmp_path):
    tensors = {"w": torch.randn(3, 2), "flag": torch.tensor([True, False]), "n": torch.tensor(7)}
    write_tensors(tmp_path / "f.st", tensors, {"kind": "test", "format": 2})
    read, header = read_tensors(tmp_path / "f.st")
    assert header == {"kind": "test", "format": 2}
    assert all(torch.equal(read[k], v) and read[k].dtype == v.dtype for k, v in tensors.items())
    assert digest(tensors, "{}") != digest(tensors | {"n": torch.tensor(8)}, "{}")
    assert digest(tensors, "{}") != digest(tensors, '{"a": 1}')
