"""Building blocks of the network: a residual embedding and a per-object affine transform."""

from __future__ import annotations

__all__ = ["ContextAffine", "ResidualMLP", "TriangularAffine"]

from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor
from torch.distributions import Transform, constraints
from zuko.lazy import LazyTransform

#: Bound of the per-object log-scales of :class:`ContextAffine`: a softly clipped value stays
#: inside (-LOG_SCALE_BOUND, LOG_SCALE_BOUND), so a draw can be 1e-4 of a target's spread.
LOG_SCALE_BOUND = 9.2


class ResidualMLP(nn.Module):
    """MLP of pre-activation residual blocks: ``h + W2 elu(W1 elu(norm(h)))``.

    Parameters
    ----------
    n_in, n_out : int
        Input and output features.
    widths : sequence of int
        One entry per block; all equal (the residual stream's width).

    Examples
    --------
    >>> ResidualMLP(10, 4, [32, 32])(torch.randn(5, 10)).shape
    torch.Size([5, 4])
    """

    def __init__(self, n_in: int, n_out: int, widths: Sequence[int]) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        if not widths or len(set(widths)) != 1:
            raise ValueError(f"a residual embedding needs equal block widths; got {widths}")
        width = widths[0]
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(width), nn.ELU(), nn.Linear(width, width), nn.ELU(),
                          nn.Linear(width, width))
            for _ in widths
        )  # fmt: skip
        self.out = nn.Sequential(nn.LayerNorm(width), nn.ELU(), nn.Linear(width, n_out))

    def forward(self, x: Tensor) -> Tensor:
        """(*, n_in) -> (*, n_out)."""
        h = self.inp(x)
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class TriangularAffine(Transform):
    """``z = L^-1 (x - mu)`` with ``L`` lower-triangular, positive diagonal ``exp(log_diag)``.

    Parameters
    ----------
    shift : torch.Tensor, (*, D)
        ``mu``.
    tril : torch.Tensor, (*, D, D)
        ``L``.
    log_diag : torch.Tensor, (*, D)
        ``log diag(L)``.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, shift: Tensor, tril: Tensor, log_diag: Tensor) -> None:
        super().__init__()
        self.shift, self.tril, self.log_diag = shift, tril, log_diag

    def _call(self, x: Tensor) -> Tensor:
        rhs = (x - self.shift).unsqueeze(-1)
        return torch.linalg.solve_triangular(self.tril, rhs, upper=False).squeeze(-1)

    def _inverse(self, z: Tensor) -> Tensor:
        return self.shift + (self.tril @ z.unsqueeze(-1)).squeeze(-1)

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        """``log |dz/dx| = -sum(log diag L)``, (*,)."""
        return -self.log_diag.sum(-1).expand(x.shape[:-1])


class ContextAffine(LazyTransform):
    """Per-object affine map with a full covariance: ``z = L(c)^-1 (x - mu(c))``.

    The first transform of the flow (data side). Its mean and Cholesky factor come from the
    context once per object, so a near-Gaussian posterior, however narrow and correlated, is
    located and shaped before the couplings; they then only model what is not Gaussian, on
    variables of unit scale. Sampling costs D^2 operations per draw. The output layer starts
    at zero (the identity map).

    Parameters
    ----------
    features : int
        D.
    context : int
        Context features E.
    hidden : int
        Width of the hidden layer between the context and the D + D(D+1)/2 outputs.
    """

    def __init__(self, features: int, context: int, hidden: int = 128) -> None:
        super().__init__()
        self.features = int(features)
        n_off = self.features * (self.features - 1) // 2
        self.hyper = nn.Sequential(nn.Linear(context, hidden), nn.ELU(),
                                   nn.Linear(hidden, 2 * self.features + n_off))  # fmt: skip
        nn.init.zeros_(self.hyper[-1].weight)
        nn.init.zeros_(self.hyper[-1].bias)
        rows, cols = torch.tril_indices(self.features, self.features, offset=-1)
        self.register_buffer("_rows", rows, persistent=False)
        self.register_buffer("_cols", cols, persistent=False)

    def parameters_of(self, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``mu`` (*, D), ``L`` (*, D, D) and ``log diag(L)`` (*, D) for contexts (*, E)."""
        d = self.features
        phi = self.hyper(c)
        shift, raw = phi[..., :d], phi[..., d : 2 * d]
        log_diag = raw / (1 + raw.abs() / LOG_SCALE_BOUND)
        tril = torch.diag_embed(log_diag.exp())
        tril[..., self._rows, self._cols] = phi[..., 2 * d :]
        return shift, tril, log_diag

    def forward(self, c: Tensor | None = None) -> Transform:
        """Return the transform for contexts ``c`` (*, E)."""
        return TriangularAffine(*self.parameters_of(c))

    def inverse_draws(self, c: Tensor, z: Tensor) -> Tensor:
        """``x = mu + L z`` for draws ``z`` (n, B, D) of B objects with contexts (B, E)."""
        shift, tril, _ = self.parameters_of(c)
        return torch.einsum("bij,nbj->nbi", tril, z).add_(shift)
