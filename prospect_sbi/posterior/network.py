"""The network: an MLP embedding of the observation and a lampe NPE with a zuko flow."""

from __future__ import annotations

__all__ = ["FLOWS", "PosteriorNetwork"]

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
import torch.nn as nn
import zuko
from lampe.inference import NPE
from torch import Tensor
from zuko.flows.coupling import GeneralCouplingTransform
from zuko.flows.gaussianization import ElementWiseTransform
from zuko.transforms import MonotonicRQSTransform
from zuko.utils import unpack


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
    is most of the cost of a single-hidden-layer transform. The draws equal zuko's own
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
        **flow_kwargs: Any,
    ) -> None:
        super().__init__()
        if flow not in FLOWS:
            raise ValueError(f"unknown flow {flow!r}; use one of {sorted(FLOWS)}")
        self.config = {
            "n_targets": int(n_targets), "n_inputs": int(n_inputs), "flow": flow,
            "transforms": int(transforms), "hidden": [int(h) for h in hidden],
            "embedding": [int(h) for h in embedding], "context": int(context),
            "marginal_bins": int(marginal_bins), "seed": int(seed),
        } | dict(flow_kwargs)  # fmt: skip
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.embedding = zuko.nn.MLP(n_inputs, context, embedding, activation=nn.ELU)
            self.npe = NPE(n_targets, context, build=FLOWS[flow], transforms=transforms,
                           hidden_features=list(hidden), **flow_kwargs)  # fmt: skip
            if marginal_bins:
                spline = ElementWiseTransform(
                    n_targets, context, univariate=partial(MonotonicRQSTransform, slope=1e-3),
                    shapes=[(marginal_bins,), (marginal_bins,), (marginal_bins - 1,)],
                    hidden_features=list(hidden),
                )  # fmt: skip
                self.npe.flow.transform.transforms.insert(0, spline)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PosteriorNetwork:
        """Build an (untrained) network from :attr:`config`."""
        return cls(**config)

    @property
    def is_coupling(self) -> bool:
        """Whether every transform is a coupling or element-wise one (fast sampling path)."""
        steps = self.npe.flow.transform.transforms
        return all(isinstance(t, (GeneralCouplingTransform, ElementWiseTransform)) for t in steps)

    def log_prob(self, z: Tensor, x: Tensor) -> Tensor:
        """Log-density of targets ``z`` (*, B, D) given observations ``x`` (B, L) -> (*, B)."""
        return self.npe(z, self.embedding(x))

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        """Evaluate :meth:`log_prob` (what :class:`lampe.inference.NPELoss` calls)."""
        return self.log_prob(z, x)

    def sample(self, x: Tensor, n: int, fast: bool = True) -> Tensor:
        """``n`` draws for each of B observations ``x`` (B, L) -> (B, n, D).

        ``fast=False`` uses zuko's generic ``flow(c).sample((n,))``.
        """
        c = self.embedding(x)
        flow = self.npe.flow
        if not (fast and self.is_coupling):
            return flow(c).sample((n,)).movedim(0, -2)
        y = flow.base(c).expand(c.shape[:-1]).sample((n,))  # (n, B, D), same draws as zuko
        # Columns are kept in the order each coupling wants (its constant half first), so a
        # transform costs one gather and one concatenation; ``order`` maps columns to targets.
        order = torch.arange(y.shape[-1], device=y.device)
        for t in reversed(flow.transform.transforms):
            if isinstance(t, ElementWiseTransform):
                # Depends on the context only: zuko computes its parameters once per
                # observation and broadcasts them over the draws.
                y, order = y[..., torch.argsort(order)], torch.sort(order).values
                y = t(c).inv(y)
            else:
                y, order = _coupling_inverse(t, y, order, c)
        return y[..., torch.argsort(order)].movedim(0, -2)


def _coupling_inverse(
    t: GeneralCouplingTransform, y: Tensor, order: Tensor, c: Tensor
) -> tuple[Tensor, Tensor]:
    """Inverse of one coupling transform for draws ``y`` (n, B, D), context ``c`` (B, E).

    ``y[..., k]`` holds target ``order[k]``; returns the result and its column order.
    """
    idx_a, idx_b = t.mask.nonzero().squeeze(-1), (~t.mask).nonzero().squeeze(-1)
    new = torch.cat([idx_a, idx_b])
    position = torch.argsort(order)
    y = y[..., position[new]]
    n_a = idx_a.numel()
    y_a, y_b = y[..., :n_a], y[..., n_a:]
    first = t.hyper[0]
    # zuko feeds cat(y_a, c) to the first layer: split its weight and apply the context part once.
    h = torch.matmul(y_a, first.weight[:, :n_a].T)
    h += c @ first.weight[:, n_a:].T + first.bias
    for layer in list(t.hyper)[1:]:
        h = h.relu_() if isinstance(layer, nn.ReLU) else layer(h)
    phi = h.unflatten(-1, (-1, t.total))
    x_b = t.univariate(*unpack(phi, t.shapes)).inv(y_b)
    return torch.cat([y_a, x_b], dim=-1), new
