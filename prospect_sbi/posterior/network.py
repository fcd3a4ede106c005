"""The network: an MLP embedding of the observation and a lampe NPE with a zuko flow."""

from __future__ import annotations

__all__ = ["FLOWS", "PosteriorNetwork", "brightness_config", "check_config"]

import math
import re
import weakref
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import zuko
from lampe.inference import NPE
from torch import Tensor
from torch.distributions import Transform
from zuko.flows.coupling import GeneralCouplingTransform
from zuko.flows.gaussianization import ElementWiseTransform
from zuko.transforms import MonotonicAffineTransform, MonotonicRQSTransform
from zuko.utils import unpack

from ..numeric import is_integer
from .layers import BrightnessShift, ContextAffine, ResidualMLP

#: zuko's default minimum slope of MonotonicAffineTransform (RealNVP couplings).
_AFFINE_SLOPE = 1e-3

#: Padded layers of each coupling transform (:func:`_padded_affine`), with the weights' key.
_PADDED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _spline_coupling(features: int, context: int, bins: int = 8, **kwargs: Any) -> zuko.flows.Flow:
    """Coupling neural spline flow (Durkan et al. 2019, RQ-NSF (C)): one pass either way."""
    spline = partial(MonotonicRQSTransform, slope=1e-3)
    shapes = [(bins,), (bins,), (bins - 1,)]
    return zuko.flows.NICE(features, context, univariate=spline, shapes=shapes, **kwargs)


#: Flow families by name. ``realnvp`` (affine) and ``nsf`` (rational-quadratic splines) are
#: coupling flows with random masks: sampling and density both cost one MLP call per
#: transform. ``maf`` and ``nsf-ar`` are zuko's autoregressive flows: one call per transform
#: for the density, one per target and transform to sample (much slower to sample).
FLOWS: dict[str, Callable[..., zuko.flows.Flow]] = {
    "realnvp": partial(zuko.flows.NICE, randmask=True),
    "nsf": partial(_spline_coupling, randmask=True),
    "maf": zuko.flows.MAF,
    "nsf-ar": zuko.flows.NSF,
}


class PosteriorNetwork(nn.Module):
    """Conditional density ``q(z | x)`` of standardised targets given encoded observations.

    D is the number of targets, L the length of an encoded observation, E the embedding size.
    The observation goes through an MLP embedding (E outputs) that conditions a zuko flow
    wrapped in :class:`lampe.inference.NPE`.

    Parameters
    ----------
    n_targets : int
        D.
    n_inputs : int
        L.
    flow : str
        Flow family, a key of :data:`FLOWS`.
    transforms : int
        Number of flow transforms.
    hidden : sequence of int
        Hidden layers of each transform's MLP.
    embedding : sequence of int
        Hidden layers of the embedding MLP.
    context : int
        E.
    residual : bool
        Make the embedding a :class:`~prospect_sbi.posterior.layers.ResidualMLP` whose blocks
        have the widths in ``embedding`` (all equal), instead of a plain MLP.
    affine : bool
        Put a per-object affine transform with a full covariance
        (:class:`~prospect_sbi.posterior.layers.ContextAffine`) first, on the data side.
    brightness : dict, optional
        Configuration of a :class:`~prospect_sbi.posterior.layers.BrightnessShift` (from
        :func:`brightness_config`): the mass-like targets are shifted by the observed
        brightness before every other transform, and the brightness is appended to the
        context.
    marginal_bins : int
        Bins of a final element-wise rational-quadratic spline whose knots depend on the
        observation only (0: none). It shapes each marginal (e.g. a posterior piled against a
        prior edge) at little cost: its parameters are computed once per observation.
    seed : int
        Seed of the initial weights and of the coupling masks.
    **flow_kwargs
        Passed to the flow constructor (``bins`` for the spline flows, ...).

    Notes
    -----
    With a coupling flow, :meth:`sample` computes the context's share of each transform's first
    layer once per observation instead of once per draw: with many draws per observation that
    is most of the cost of a single-hidden-layer transform. Affine (``realnvp``) couplings use
    first and last layers padded to all targets, so no columns are gathered or scattered, and
    the marginal spline finds each draw's bin by binary search. The draws equal zuko's own
    ``flow(c).sample((n,))`` for the same seed up to float rounding (a test checks this).

    Examples
    --------
    >>> net = PosteriorNetwork(3, 8)
    >>> x = torch.randn(5, 8)
    >>> net.sample(x, 10).shape, net.log_prob(torch.randn(5, 3), x).shape
    (torch.Size([5, 10, 3]), torch.Size([5]))
    """

    def __init__(
        self,
        n_targets: int,
        n_inputs: int,
        flow: str = "realnvp",
        transforms: int = 10,
        hidden: Sequence[int] = (64, 64),
        embedding: Sequence[int] = (256, 256, 256),
        context: int = 64,
        marginal_bins: int = 8,
        seed: int = 0,
        residual: bool = False,
        affine: bool = False,
        brightness: dict | None = None,
        **flow_kwargs: Any,
    ) -> None:
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; use one of {sorted(FLOWS)}")
        if brightness is not None and not isinstance(brightness, dict):
            raise ValueError(
                f"brightness must be a configuration from brightness_config(); got "
                f"{brightness!r} (train(network={{'brightness': True}}) fits one)"
            )
        self.config = {
            "n_targets": int(n_targets),
            "n_inputs": int(n_inputs),
            "flow": flow,
            "transforms": int(transforms),
            "hidden": [int(h) for h in hidden],
            "embedding": [int(h) for h in embedding],
            "context": int(context),
            "marginal_bins": int(marginal_bins),
            "seed": int(seed),
            "residual": bool(residual),
            "affine": bool(affine),
            "brightness": brightness,
        } | dict(flow_kwargs)
        width = int(context) + (brightness is not None)  # the flow's context features
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if residual:
                self.embedding = ResidualMLP(n_inputs, context, embedding)
            else:
                self.embedding = zuko.nn.MLP(n_inputs, context, embedding, activation=nn.ELU)
            self.npe = NPE(
                n_targets,
                width,
                build=FLOWS[flow],
                transforms=transforms,
                hidden_features=list(hidden),
                **flow_kwargs,
            )
            if marginal_bins:
                spline = ElementWiseTransform(
                    n_targets,
                    width,
                    univariate=partial(MonotonicRQSTransform, slope=1e-3),
                    shapes=[(marginal_bins,), (marginal_bins,), (marginal_bins - 1,)],
                    hidden_features=list(hidden),
                )
                self.npe.flow.transform.transforms.insert(0, spline)
            steps = self.npe.flow.transform.transforms
            if affine:
                steps.insert(0, ContextAffine(n_targets, width))
            if brightness is not None:
                steps.insert(0, BrightnessShift(brightness | {"n_targets": int(n_targets)}))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PosteriorNetwork:
        """Build an (untrained) network from :attr:`config`.

        Keys missing from configurations written before they existed take the value that
        those networks had (no residual embedding, no affine transform).
        """
        return cls(**({"residual": False, "affine": False, "brightness": None} | dict(config)))

    def with_affine(self) -> PosteriorNetwork:
        """Return a copy with a :class:`~prospect_sbi.posterior.layers.ContextAffine` in front.

        The new transform starts at the identity, so the copy has this network's density; use
        it to fine-tune an estimator trained without one (``train(init=..., network={"affine":
        True})``).
        """
        if self.config.get("affine"):
            raise ValueError("this network already has the per-object affine transform")
        if self.config.get("brightness") is not None:
            raise ValueError(
                "the affine transform can be added only to a network without a brightness shift"
            )
        grown = PosteriorNetwork.from_config(self.config | {"affine": True})
        prefix = "npe.flow.transform.transforms."
        state = {}
        for key, value in self.state_dict().items():
            if key.startswith(prefix):
                index, rest = key[len(prefix) :].split(".", 1)
                key = f"{prefix}{int(index) + 1}.{rest}"
            state[key] = value
        missing, unexpected = grown.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(f"{prefix}0.") for k in missing):
            raise RuntimeError(f"weights do not fit: missing {missing}, unexpected {unexpected}")
        return grown

    @classmethod
    def from_weights(cls, config: Any, tensors: Mapping[str, Tensor]) -> PosteriorNetwork:
        """Build the network that ``config`` describes and load ``tensors`` (a state dict) in it.

        ``config`` comes from a file, so it is checked against the tensors' names and shapes
        (:func:`check_config`) before anything is built: a configuration that does not
        describe these weights (say 10^6 transforms, which would take tens of GB) is refused.

        Raises
        ------
        ValueError
            The configuration and the tensors disagree; the message names the first
            difference.
        """
        check_config(config, {k: tuple(v.shape) for k, v in tensors.items()})
        try:
            net = cls.from_config(dict(config))
        except (TypeError, ValueError) as err:
            raise ValueError(f"network configuration {config} is not valid ({err})") from None
        expected = net.state_dict()
        for name in sorted(set(expected) | set(tensors)):
            want = tuple(expected[name].shape) if name in expected else "no such tensor"
            got = tuple(tensors[name].shape) if name in tensors else "missing"
            if want != got:
                raise ValueError(
                    f"tensor {name} has shape {got}; the network configuration expects {want}"
                )
        net.load_state_dict(dict(tensors))
        return net

    @property
    def is_coupling(self) -> bool:
        """Whether every transform is a coupling or element-wise one (fast sampling path)."""
        steps = self.npe.flow.transform.transforms
        kinds = (GeneralCouplingTransform, ElementWiseTransform, ContextAffine, BrightnessShift)
        return all(isinstance(t, kinds) for t in steps)

    def context(self, x: Tensor) -> Tensor:
        """Return the flow's context (B, E) or (B, E + 1) of observations ``x`` (B, L)."""
        c = self.embedding(x)
        steps = self.npe.flow.transform.transforms
        if isinstance(steps[0], BrightnessShift):
            c = torch.cat([c, steps[0].feature(x)], -1)
        return c

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """Log-density of targets ``z`` (*, B, D) given observations ``x`` (B, L) -> (*, B)."""
        return self.npe(z, self.context(x))

    def to_base(self, z: Tensor, x: Tensor) -> Tensor:
        """Map targets ``z`` (*, B, D) given ``x`` (B, L) to the flow's base variables (*, B, D).

        The inverse of :meth:`sample` with ``base``.
        """
        return self.npe.flow(self.context(x)).transform(z)

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        """Evaluate :meth:`log_prob` (what :class:`lampe.inference.NPELoss` calls)."""
        return self.log_prob(z, x)

    def sample(self, x: Tensor, n: int, fast: bool = True, base: Tensor | None = None) -> Tensor:
        """``n`` draws for each of B observations ``x`` (B, L) -> (B, n, D).

        ``fast=False`` uses zuko's generic ``flow(c).sample((n,))``. ``base`` (n, B, D), the
        flow's standard-normal base variables to push through it instead of fresh ones
        (:meth:`to_base` inverts the map), makes the draws a function of them.
        """
        c = self.context(x)
        flow = self.npe.flow
        if base is not None:
            if not (fast and self.is_coupling):
                return flow(c).transform.inv(base).movedim(0, -2)
            y = base
        elif not (fast and self.is_coupling):
            return flow(c).sample((n,)).movedim(0, -2)
        else:
            y = flow.base(c).expand(c.shape[:-1]).sample((n,))  # (n, B, D), same draws as zuko
        return _push(flow, c, y)[0].movedim(0, -2)

    def sample_and_log_prob(self, x: Tensor, base: Tensor) -> tuple[Tensor, Tensor]:
        """Push base variables ``base`` (n, B, D) through the flow, with their log density.

        Returns the draws (B, n, D), as :meth:`sample` with ``base``, and :meth:`log_prob` at
        them (B, n), from the Jacobians of the same pass instead of a second one (a third of
        the cost of :meth:`log_prob` for a coupling flow).
        """
        c = self.context(x)
        flow = self.npe.flow
        log_base = flow.base(c).expand(c.shape[:-1]).log_prob(base)  # (n, B)
        if self.is_coupling:
            z, ladj = _push(flow, c, base, with_ladj=True)
        else:
            z, ladj = flow(c).transform.inv.call_and_ladj(base)
        return z.movedim(0, -2), (log_base - ladj).movedim(0, -1)


def _push(flow: Any, c: Tensor, y: Tensor, with_ladj: bool = False) -> tuple[Tensor, Any]:
    """Push base draws ``y`` (n, B, D) through the inverse transforms of a coupling flow.

    Returns the draws and, ``with_ladj``, the summed log |det| of the map (n, B) (else 0).
    """
    total: Any = 0.0
    for t in reversed(flow.transform.transforms):
        if isinstance(t, BrightnessShift):
            y, ladj = y + t.offsets(c), 0.0
        elif isinstance(t, ContextAffine):
            y, ladj = t.inverse_draws(c, y), t.parameters_of(c)[2].sum(-1) if with_ladj else 0.0
        elif isinstance(t, ElementWiseTransform):
            y, ladj = _elementwise_inverse(t(c), y, with_ladj)
        elif t.univariate is MonotonicAffineTransform:
            y, ladj = _affine_coupling_inverse(t, y, c, with_ladj)
        else:
            y, ladj = _coupling_inverse(t, y, c, with_ladj)
        total = total + ladj
    return y, total


_TRANSFORM = re.compile(r"^npe\.flow\.transform\.transforms\.(\d+)\.hyper\.(\d+)\.weight$")
_EMBEDDING = re.compile(r"^embedding\.(\d+)\.weight$")
_BLOCK = re.compile(r"^embedding\.blocks\.(\d+)\.2\.weight$")
_SIZES = ("n_targets", "n_inputs", "transforms", "context", "marginal_bins")


def check_config(config: Any, shapes: Mapping[str, Sequence[int]]) -> None:
    """Check a network configuration against the names and shapes of its weights, cheaply.

    Reads only ``shapes`` (a state dict's names -> shapes, e.g. from a safetensors header)
    and builds nothing. The number of transforms and the layer widths of the embedding and
    of every transform are read off the weights and must equal the configuration's; every
    other size in it (spline bins, ...) must be an integer no larger than the largest
    dimension of a stored tensor. So a configuration that passes builds a network no larger
    than the weights it is given.

    Parameters
    ----------
    config : dict
        :attr:`PosteriorNetwork.config`, as read from a file.
    shapes : mapping of str to sequence of int
        Shape of each stored tensor, by state-dict name.

    Raises
    ------
    ValueError
        Naming the first entry that disagrees, with both values.
    """
    if not isinstance(config, Mapping):
        raise ValueError(f"network configuration is a {type(config).__name__}, not a mapping")
    if config.get("flow") not in FLOWS:
        raise ValueError(f"network flow {config.get('flow')!r} is not one of {sorted(FLOWS)}")
    largest = max((max(s, default=0) for s in shapes.values()), default=0)
    sizes = {k: v for k, v in config.items() if k not in ("flow", "seed", "hidden", "embedding")}
    sizes |= {f"hidden[{i}]": v for i, v in enumerate(_as_list(config, "hidden"))}
    sizes |= {f"embedding[{i}]": v for i, v in enumerate(_as_list(config, "embedding"))}
    for key, value in sizes.items():
        integral = is_integer(value)
        if not (key in _SIZES or key.endswith("]") or integral):
            continue  # not a size (a float option of the flow): the constructor checks it
        if key == "transforms":  # compared with the stored transforms below
            if not (integral and value >= 0):
                raise ValueError(f"network transforms is {value!r}; expected an integer >= 0")
        elif not (integral and 0 <= value <= largest):
            raise ValueError(
                f"network {key} is {value!r}; the stored weights allow an integer "
                f"from 0 to {largest}"
            )
    affine = 0 if not config.get("affine") else 1 + (config.get("brightness") is not None)
    found = _structure(shapes, affine, bool(config.get("residual")))
    found["transforms"] -= bool(config["marginal_bins"])  # the marginal spline is one more
    want = {
        "n_targets": config["n_targets"],
        "n_inputs": config["n_inputs"],
        "context": config["context"],
        "embedding": [int(h) for h in config["embedding"]],
        "transforms": config["transforms"],
        "hidden": [int(h) for h in config["hidden"]],
    }
    for key, value in want.items():
        if found.get(key) != value:
            raise ValueError(
                f"network {key} is {value} in the configuration; the stored "
                f"weights have {found.get(key, 'none')}"
            )


def _as_list(config: Mapping, key: str) -> list:
    value = config.get(key)
    if not isinstance(value, list):
        raise ValueError(f"network {key} is {value!r}; expected a list of layer widths")
    return value


def _structure(
    shapes: Mapping[str, Sequence[int]], affine: int = 0, residual: bool = False
) -> dict[str, Any]:
    """Sizes read off the weights' names and shapes (a key is absent when they do not say).

    ``affine``: 1 + the index of a :class:`ContextAffine` among the transforms (not counted,
    its width is its own), 0 for none; ``residual``: the embedding is a :class:`ResidualMLP`.
    """
    out: dict[str, Any] = {}
    if len(shapes.get("npe.flow.base.loc", ())) == 1:
        out["n_targets"] = int(shapes["npe.flow.base.loc"][0])
    if residual:
        first = shapes.get("embedding.inp.weight", ())
        last = shapes.get("embedding.out.2.weight", ())
        blocks = sorted((int(m[1]), shapes[k]) for k in shapes if (m := _BLOCK.match(k)))
        if len(first) == 2 and len(last) == 2 and all(len(s) == 2 for _, s in blocks):
            out["n_inputs"], out["context"] = int(first[1]), int(last[0])
            out["embedding"] = [int(s[0]) for _, s in blocks]
    else:
        emb = sorted((int(m[1]), shapes[k]) for k in shapes if (m := _EMBEDDING.match(k)))
        if emb and all(len(s) == 2 for _, s in emb):
            out["n_inputs"], out["context"] = int(emb[0][1][1]), int(emb[-1][1][0])
            out["embedding"] = [int(s[0]) for _, s in emb[:-1]]
    layers: dict[int, list] = {}
    for k in shapes:
        if (m := _TRANSFORM.match(k)) and int(m[1]) != affine - 1:
            layers.setdefault(int(m[1]), []).append((int(m[2]), shapes[k]))
    out["transforms"] = len(layers)
    widths = {tuple(int(s[0]) for _, s in sorted(v)[:-1]) for v in layers.values()}
    if len(widths) == 1:
        out["hidden"] = list(widths.pop())
    return out


#: Names of the targets a :class:`BrightnessShift` moves: the mass parameters and the derived
#: quantities proportional to the mass.
MASS_LIKE = ("mass", "logmass", "log_mstar", "log_sfr10", "log_sfr100")


def brightness_config(encoder: Any, space: Any, x: Tensor, theta: np.ndarray) -> dict:
    """Fit the configuration of a :class:`~prospect_sbi.posterior.layers.BrightnessShift`.

    Parameters
    ----------
    encoder : ObservationEncoder
        The estimator's (fitted) input encoder: its layout and standardisation.
    space : TargetSpace
        The estimator's (fitted) targets.
    x : torch.Tensor, (N, L)
        Encoded noisy training observations, to fit the brightness' mean and spread and each
        target's offset from it.
    theta : numpy.ndarray, (N, D)
        Their physical targets.

    Raises
    ------
    ValueError
        No target is mass-like (:data:`MASS_LIKE`).
    """
    from ..cosmology import luminosity_distance

    idx = [j for j, name in enumerate(space.names) if name in MASS_LIKE]
    if not idx:
        raise ValueError(
            f"a brightness shift needs a mass-like target ({', '.join(MASS_LIKE)});"
            f" the targets are {space.names}"
        )
    f = len(encoder.bands)
    kinds = [space.kinds[j] for j in idx]
    lo = [
        math.log10(space.lo[j]) if k == "logbox" else space.lo[j] if k == "box" else 0.0
        for j, k in zip(idx, kinds, strict=True)
    ]
    hi = [
        math.log10(space.hi[j]) if k == "logbox" else space.hi[j] if k == "box" else 1.0
        for j, k in zip(idx, kinds, strict=True)
    ]
    zgrid = np.expm1(np.linspace(np.log1p(1e-3), np.log1p(30.0), 256))
    s = encoder.stats
    config = {
        "bands": f,
        "mag_col": 0,
        "missing_col": (3 + int(encoder.colours)) * f,
        "zred_col": encoder.n_features - 1 if encoder.known_zred else None,
        "mag_mean": np.asarray(s["mag_mean"], float).tolist(),
        "mag_std": np.asarray(s["mag_std"], float).tolist(),
        "log_depth": np.log10(encoder.depth).tolist(),
        "zred_mean": float(s["zred_mean"]),
        "zred_std": float(s["zred_std"]),
        "zgrid": zgrid.tolist(),
        "log_dl": np.log10(luminosity_distance(zgrid)).tolist(),
        "targets": idx,
        "kinds": kinds,
        "lo": lo,
        "hi": hi,
        "shift": [float(space.shift[j]) for j in idx],
        "scale": [float(space.scale[j]) for j in idx],
        "offset": [0.0] * len(idx),
        "b_mean": 0.0,
        "b_std": 1.0,
    }
    with torch.no_grad():
        b = BrightnessShift(config | {"n_targets": len(space)}).brightness(x).double().numpy()
    value = np.asarray(theta, float)[:, idx]
    logged = np.array([k == "logbox" for k in kinds])
    value[:, logged] = np.log10(value[:, logged])
    bright = b > np.percentile(b, 50)  # where b says something about the mass
    config["offset"] = np.median(value[bright] - b[bright, None], axis=0).tolist()
    config["b_mean"], config["b_std"] = float(b.mean()), float(max(b.std(), 1e-3))
    return config


def _hidden(t: GeneralCouplingTransform, y_a: Tensor, c: Tensor, weight_a: Tensor) -> Tensor:
    """Run coupling ``t``'s hyper-network but its last layer on draws (n, B, *), context (B, E).

    zuko feeds ``cat(y_a, c)`` to the first layer: its weight is split and the context part is
    applied once per observation instead of once per draw.
    """
    first = t.hyper[0]
    n_a = int(t.mask.sum())
    h = torch.matmul(y_a, weight_a.T)
    h += c @ first.weight[:, n_a:].T + first.bias
    for layer in list(t.hyper)[1:-1]:
        h = h.relu_() if isinstance(layer, nn.ReLU) else layer(h)
    return h


def _affine_coupling_inverse(
    t: GeneralCouplingTransform, y: Tensor, c: Tensor, with_ladj: bool = False
) -> tuple[Tensor, Any]:
    """Inverse of one affine (RealNVP) coupling for draws ``y`` (n, B, D), context ``c`` (B, E).

    The hyper-network's first and last layers are padded to all D columns (zero weights for
    the constant half, whose shift and log-scale are then 0), so the columns never need to be
    gathered or scattered. Returns the draws and, ``with_ladj``, log |det| (n, B) (else 0).
    """
    weight_a, weight_out, bias_out = _padded_affine(t)
    h = _hidden(t, y, c, weight_a)
    phi = torch.nn.functional.linear(h, weight_out, bias_out).unflatten(-1, (-1, 2))
    shift, scale = phi[..., 0], phi[..., 1]
    # MonotonicAffineTransform: log_scale = scale / (1 + |scale / ln(slope)|)
    log_scale = scale / scale.abs().mul_(1 / abs(math.log(_AFFINE_SLOPE))).add_(1)
    ladj = -log_scale.sum(-1) if with_ladj else 0.0
    return (y - shift).mul_(log_scale.neg_().exp_()), ladj


def _padded_affine(t: GeneralCouplingTransform) -> tuple[Tensor, Tensor, Tensor]:
    """First-layer weight (H, D) and last layer (2D, H), (2D,) of coupling ``t``, padded.

    Cached on ``t`` until its weights change (training steps and ``load_state_dict`` bump the
    tensors' version counters).
    """
    first, last = t.hyper[0], t.hyper[-1]
    # torch's in-place version counter of a tensor (no public name): bumped by every update
    key = tuple((p.data_ptr(), p._version) for p in (first.weight, last.weight, last.bias))
    cached = _PADDED.get(t)
    if cached is not None and cached[0] == key:
        return cached[1]
    mask = t.mask
    d = mask.numel()
    with torch.no_grad():
        weight_a = first.weight.new_zeros(first.out_features, d)
        weight_a[:, mask] = first.weight[:, : int(mask.sum())]
        # zuko lays out the last layer as (features_b, (shift, scale))
        w = last.weight.new_zeros(d, 2, last.in_features)
        w[~mask] = last.weight.unflatten(0, (-1, 2))
        b = last.bias.new_zeros(d, 2)
        b[~mask] = last.bias.unflatten(0, (-1, 2))
    padded = (weight_a, w.flatten(0, 1), b.flatten())
    _PADDED[t] = (key, padded)
    return padded


def _coupling_inverse(
    t: GeneralCouplingTransform, y: Tensor, c: Tensor, with_ladj: bool = False
) -> tuple[Tensor, Any]:
    """Inverse of any other coupling transform for draws ``y`` (n, B, D), context ``c``."""
    mask = t.mask
    y_a = y[..., mask]
    h = _hidden(t, y_a, c, t.hyper[0].weight[:, : y_a.shape[-1]])
    phi = t.hyper[-1](h).unflatten(-1, (-1, t.total))
    out = y.clone()
    inverse = t.univariate(*unpack(phi, t.shapes)).inv
    if not with_ladj:
        out[..., ~mask] = inverse(y[..., ~mask])
        return out, 0.0
    out[..., ~mask], ladj = inverse.call_and_ladj(y[..., ~mask])
    return out, ladj.sum(-1)


def _elementwise_inverse(f: Transform, y: Tensor, with_ladj: bool = False) -> tuple[Tensor, Any]:
    """Inverse of an element-wise transform whose parameters depend on the context only.

    ``f`` holds parameters (B, D, ...) and ``y`` is (n, B, D). For a rational-quadratic
    spline, the bin of each draw is found by binary search over the knots of its own object
    and target instead of zuko's comparison with every knot, broadcast over the draws.
    Returns the draws and, ``with_ladj``, log |det| (n, B) (else 0).
    """
    f = getattr(f, "base", f)  # zuko wraps it in a DependentTransform
    if not isinstance(f, MonotonicRQSTransform):
        if not with_ladj:
            return f.inv(y), 0.0
        x, ladj = f.inv.call_and_ladj(y)
        return x, ladj.sum(-1)
    yt = y.permute(1, 2, 0).contiguous()  # (B, D, n): the knots' layout, one row per target
    k = torch.searchsorted(f.vertical.contiguous(), yt) - 1
    inside = (k >= 0) & (k < f.bins)
    k = k.clamp(0, f.bins - 1)
    x0, x1 = f.horizontal.gather(-1, k), f.horizontal.gather(-1, k + 1)
    y0, y1 = f.vertical.gather(-1, k), f.vertical.gather(-1, k + 1)
    d0, d1 = f.derivatives.gather(-1, k), f.derivatives.gather(-1, k + 1)
    # zuko's MonotonicRQSTransform._inverse, on the gathered knots
    s = (y1 - y0) / (x1 - x0)
    y_ = inside * (yt - y0)
    a = (y1 - y0) * (s - d0) + y_ * (d0 + d1 - 2 * s)
    b = (y1 - y0) * d0 - y_ * (d0 + d1 - 2 * s)
    cc = -s * y_
    z = 2 * cc / (-b - (b**2 - 4 * a * cc).sqrt())
    x = torch.where(inside, x0 + z * (x1 - x0), yt)
    if not with_ladj:
        return x.permute(2, 0, 1), 0.0
    # the forward spline's slope at x (Durkan et al. 2019, eq. 5); the inverse's is its reciprocal
    zz = z * (1 - z)
    slope = s**2 * (d1 * z**2 + 2 * s * zz + d0 * (1 - z) ** 2) / (s + (d0 + d1 - 2 * s) * zz) ** 2
    ladj = -torch.where(inside, slope.log(), torch.zeros_like(slope)).sum(1)  # (B, n)
    return x.permute(2, 0, 1), ladj.T
