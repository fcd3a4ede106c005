"""Building blocks of the network: a residual embedding and a per-object affine transform."""

from __future__ import annotations

__all__ = ["BrightnessShift", "ContextAffine", "ResidualMLP", "TriangularAffine"]

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
            nn.Sequential(
                nn.LayerNorm(width),
                nn.ELU(),
                nn.Linear(width, width),
                nn.ELU(),
                nn.Linear(width, width),
            )
            for _ in widths
        )
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
        self.hyper = nn.Sequential(
            nn.Linear(context, hidden), nn.ELU(), nn.Linear(hidden, 2 * self.features + n_off)
        )
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


class _Shift(Transform):
    """``z = x + shift`` on vectors (*, D): no volume change."""

    domain = constraints.real_vector
    codomain = constraints.real_vector
    bijective = True

    def __init__(self, shift: Tensor) -> None:
        super().__init__()
        self.shift = shift

    def _call(self, x: Tensor) -> Tensor:
        return x + self.shift

    def _inverse(self, z: Tensor) -> Tensor:
        return z - self.shift

    def log_abs_det_jacobian(self, x: Tensor, z: Tensor) -> Tensor:
        """Zero, (*,)."""
        return x.new_zeros(x.shape[:-1])


class BrightnessShift(LazyTransform):
    """Targets proportional to the mass, located by the observed brightness: ``z - t(b)``.

    Photometry is proportional to the formed mass, so on bright objects the log mass (and log
    M*, log SFR) is the object's log brightness plus quantities set by its colours. ``b`` is a
    deterministic function of the encoded observation, in dex: ``log10`` of the summed
    positive fluxes of the present bands (maggies, recovered exactly from the encoded asinh
    magnitudes; a floor of 1% of their depths keeps it finite) plus ``2 log10 d_L(z)`` when
    the redshift is known. Each mass-like target ``j`` is shifted in flow space by where
    ``b + offset_j`` maps in its own transform (linear, or the logit of a prior box), so the
    flow learns what the brightness does not say: a colour-like quantity whose range is a few
    times smaller. The shift depends on the observation only: no volume change, and draws map
    back exactly. On faint objects ``b`` is noise-dominated and the shift nearly constant.

    ``b`` standardised is appended to the context (``c[..., -1]``), so the transforms see it
    too; :meth:`brightness` computes it from encoded observations.

    Parameters
    ----------
    config : dict
        JSON-able: ``bands`` (F), ``mag_col``, ``missing_col`` (first column of each block
        in the encoded layout), ``zred_col`` (or None), ``mag_mean``, ``mag_std``,
        ``log_depth`` (F, log10 maggies), ``zred_mean``, ``zred_std``, ``log_dl`` (log10 of
        the luminosity distance in Mpc on ``zgrid``), ``b_mean``, ``b_std``, and per shifted
        target: ``targets`` (indices), ``kinds``, ``lo``, ``hi`` (log10 box edges),
        ``shift``, ``scale`` (the target space's standardisation) and ``offset`` (dex).
    """

    def __init__(self, config: dict) -> None:
        super().__init__()
        self.config = dict(config)
        f = int(config["bands"])
        self._mag = slice(int(config["mag_col"]), int(config["mag_col"]) + f)
        self._missing = slice(int(config["missing_col"]), int(config["missing_col"]) + f)
        self._zcol = config.get("zred_col")
        for name in (
            "mag_mean",
            "mag_std",
            "log_depth",
            "zgrid",
            "log_dl",
            "lo",
            "hi",
            "shift",
            "scale",
            "offset",
        ):
            self.register_buffer(
                name, torch.tensor(config[name], dtype=torch.float32), persistent=False
            )
        self.register_buffer(
            "targets", torch.tensor(config["targets"], dtype=torch.long), persistent=False
        )
        self.register_buffer(
            "_box",
            torch.tensor([k in ("box", "logbox") for k in config["kinds"]]),
            persistent=False,
        )
        self.n_targets = int(config["n_targets"])

    def brightness(self, x: Tensor) -> Tensor:
        """``b`` (*,), dex, of encoded observations ``x`` (*, L)."""
        present = x[..., self._missing] < 0.5
        asinh = x[..., self._mag] * self.mag_std + self.mag_mean
        depth = torch.pow(10.0, self.log_depth)
        flux = 2 * depth * torch.sinh(asinh.clamp(max=80.0))
        total = torch.where(present, flux.clamp(min=0.0) + 0.01 * depth, 0.0).sum(-1)
        b = torch.log10(total.clamp(min=1e-38))
        if self._zcol is not None:
            z = x[..., self._zcol] * self.config["zred_std"] + self.config["zred_mean"]
            b = b + 2 * _interp(z.clamp(min=0.0), self.zgrid, self.log_dl)
        return b

    def feature(self, x: Tensor) -> Tensor:
        """Standardised ``b`` (*, 1): the extra context feature."""
        return ((self.brightness(x) - self.b_mean_value) / self.b_std_value)[..., None]

    @property
    def b_mean_value(self) -> float:
        """Mean of ``b`` over the training rows."""
        return float(self.config["b_mean"])

    @property
    def b_std_value(self) -> float:
        """Standard deviation of ``b`` over the training rows."""
        return float(self.config["b_std"])

    def offsets(self, c: Tensor) -> Tensor:
        """Flow-space shift ``t(b)`` (*, D) from contexts (*, E + 1)."""
        b = c[..., -1] * self.b_std_value + self.b_mean_value
        v = b[..., None] + self.offset
        p = ((v - self.lo) / (self.hi - self.lo)).clamp(1e-4, 1 - 1e-4)
        u = torch.where(self._box, torch.logit(p), v)
        out = c.new_zeros(c.shape[:-1] + (self.n_targets,))
        out[..., self.targets] = (u - self.shift) / self.scale
        return out

    def forward(self, c: Tensor | None = None) -> Transform:
        """Return the transform ``z -> z - t(b)`` for contexts ``c`` (*, E + 1)."""
        return _Shift(-self.offsets(c))


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Linear interpolation of ``fp`` on the increasing grid ``xp`` at ``x`` (clamped ends)."""
    i = torch.searchsorted(xp, x.contiguous()).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return f0 + w * (f1 - f0)
