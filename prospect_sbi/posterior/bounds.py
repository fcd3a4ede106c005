"""Targets of the posterior: bijections from each parameter's support to a standardised axis.

The flow works on an unbounded, standardised variable ``z`` per target. A parameter whose prior
has a box ``[mini, maxi]`` (``TopHat``, ``Uniform``, ``ClippedNormal``, ``Beta``, ...) maps onto
it through a logit (of the parameter, or of its logarithm for ``LogUniform``), so a sample
``x = lo + (hi - lo) * sigmoid(u)`` never leaves the prior support, whatever the flow does.
Positive derived quantities (ages) go through a log, unbounded ones (``StudentT`` or ``Normal``
priors, log masses and SFRs) through standardisation only.
"""

from __future__ import annotations

__all__ = ["TargetSpace", "KINDS", "POSITIVE_DERIVED"]

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

#: Kinds of target: ``box`` logit of (x - lo) / (hi - lo); ``logbox`` the same in log x;
#: ``positive`` log x; ``real`` x itself. All are then standardised.
KINDS = ("box", "logbox", "positive", "real")
#: Derived quantities that are positive (Gyr), learned in log space.
POSITIVE_DERIVED = ("mwa", "t25", "t50", "t75")
_EPS = 1e-6  # training values on a box edge are pulled inside by this fraction of the box


class TargetSpace:
    """Named targets, their support and standardisation: physical ``x`` <-> flow variable ``z``.

    D stands for the number of targets; ``*`` for any leading dimensions.

    Parameters
    ----------
    names : sequence of str
        Target names (theta labels, derived quantity names), the order of the last axis.
    kinds : sequence of str
        One of :data:`KINDS` per target.
    lo, hi : array_like, (D,)
        Box edges (``box`` and ``logbox``; ignored otherwise).
    shift, scale : array_like, (D,), optional
        Standardisation of the unbounded variable ``u``: ``z = (u - shift) / scale``.

    Examples
    --------
    >>> space = TargetSpace(["dust2", "mwa"], ["box", "positive"], [0.0, np.nan], [2.0, np.nan])
    >>> x = np.array([[0.5, 1.2]])
    >>> np.allclose(space.to_physical(space.to_flow(x)), x)
    True
    """

    def __init__(
        self,
        names: Sequence[str],
        kinds: Sequence[str],
        lo: Any,
        hi: Any,
        shift: Any = None,
        scale: Any = None,
    ) -> None:
        self.names = [str(n) for n in names]
        self.kinds = [str(k) for k in kinds]
        n = len(self.names)
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or len(self.kinds) != n:
            raise ValueError(f"kinds must be {n} of {KINDS}; got {self.kinds}")
        self.lo, self.hi = (np.asarray(a, dtype=float).reshape(n) for a in (lo, hi))
        boxed = np.isin(self.kinds, ("box", "logbox"))
        if not np.all(self.lo[boxed] < self.hi[boxed]):
            raise ValueError(f"box targets need lo < hi; got lo={self.lo}, hi={self.hi}")
        if np.any((self.lo <= 0) & (np.asarray(self.kinds) == "logbox")):
            raise ValueError("logbox targets need lo > 0")
        self.shift = np.zeros(n) if shift is None else np.asarray(shift, float).reshape(n)
        self.scale = np.ones(n) if scale is None else np.asarray(scale, float).reshape(n)

    @classmethod
    def from_model_spec(
        cls, spec: dict, labels: Sequence[str], derived: Iterable[str] = ()
    ) -> TargetSpace:
        """Targets for free parameters ``labels`` of a model spec, then ``derived`` quantities.

        The support of each free parameter comes from its prior in ``spec`` (see
        :func:`prospect_sbi.provenance.model_spec`): a prior with finite ``mini`` and ``maxi``
        is a box (``logbox`` for ``LogUniform``), a ``LogNormal`` is positive, anything else is
        real. Derived quantities in :data:`POSITIVE_DERIVED` are positive, others real.
        """
        labels = list(labels)
        kinds, lo, hi = [], [], []
        for label in labels:
            kind, a, b = _prior_support(spec, label)
            kinds.append(kind)
            lo.append(a)
            hi.append(b)
        for name in derived:
            labels.append(name)
            kinds.append("positive" if name in POSITIVE_DERIVED else "real")
            lo.append(np.nan)
            hi.append(np.nan)
        return cls(labels, kinds, lo, hi)

    def fit(self, x: np.ndarray) -> TargetSpace:
        """Set the standardisation from training values ``x`` (N, D); returns ``self``."""
        u = self._unbounded(torch.as_tensor(np.asarray(x, float), dtype=torch.float64)).numpy()
        self.shift, self.scale = u.mean(0), np.maximum(u.std(0), 1e-6)
        return self

    # -- torch maps -------------------------------------------------------------------------

    def _params(self, like: Tensor) -> tuple[Tensor, ...]:
        return tuple(
            torch.as_tensor(a, dtype=like.dtype, device=like.device)
            for a in (self.lo, self.hi, self.shift, self.scale)
        )

    def _masks(self) -> tuple[Tensor, ...]:
        kinds = np.asarray(self.kinds)
        return tuple(torch.as_tensor(kinds == k) for k in KINDS)

    def _unit(self, x: Tensor, lo: Tensor, hi: Tensor, logbox: Tensor) -> Tensor:
        """Position in the box, in [0, 1] (``box`` and ``logbox`` columns)."""
        safe_lo, safe_hi = lo.nan_to_num(0.0), hi.nan_to_num(1.0)
        log_p = (x.clamp_min(1e-300).log() - safe_lo.clamp_min(1e-300).log()) / (
            safe_hi.clamp_min(1e-300).log() - safe_lo.clamp_min(1e-300).log()
        )
        lin_p = (x - safe_lo) / (safe_hi - safe_lo)
        return torch.where(logbox.to(x.device), log_p, lin_p)

    def _unbounded(self, x: Tensor) -> Tensor:
        lo, hi, _, _ = self._params(x)
        box, logbox, positive, _ = (m.to(x.device) for m in self._masks())
        p = self._unit(x, lo, hi, logbox).clamp(_EPS, 1 - _EPS)
        u = torch.where(box | logbox, torch.logit(p), x)
        return torch.where(positive, x.clamp_min(1e-30).log(), u)

    def to_flow(self, x: Tensor | np.ndarray) -> Tensor:
        """Physical values ``x`` (*, D) -> standardised flow variables ``z`` (*, D)."""
        x = torch.as_tensor(x)
        x = x if x.is_floating_point() else x.double()
        _, _, shift, scale = self._params(x)
        return (self._unbounded(x) - shift) / scale

    def to_physical(self, z: Tensor) -> Tensor:
        """Flow variables ``z`` (*, D) -> physical values (*, D), inside every box.

        The map is a bijection onto the open box; the final clamp only removes float rounding
        at the edges (a few ulp), it never moves a sample by more.
        """
        z = torch.as_tensor(z)
        lo, hi, shift, scale = self._params(z)
        box, logbox, positive, _ = (m.to(z.device) for m in self._masks())
        u = z * scale + shift
        p = torch.sigmoid(u)
        safe_lo, safe_hi = lo.nan_to_num(1.0), hi.nan_to_num(2.0)
        lin = safe_lo + (safe_hi - safe_lo) * p
        log = torch.exp(safe_lo.clamp_min(1e-300).log() * (1 - p) + safe_hi.log() * p)
        x = torch.where(box, lin, torch.where(logbox, log, torch.where(positive, u.exp(), u)))
        return torch.where(box | logbox, torch.minimum(torch.maximum(x, safe_lo), safe_hi), x)

    def log_abs_det(self, x: Tensor, per_target: bool = False) -> Tensor:
        """``log |dz/dx|`` at physical ``x`` (*, D): summed over targets (*,) or (*, D).

        ``per_target`` keeps one term per target (the map is element-wise).
        """
        lo, hi, _, scale = self._params(x)
        box, logbox, positive, _ = (m.to(x.device) for m in self._masks())
        p = self._unit(x, lo, hi, logbox)
        width = torch.where(logbox, (hi / lo).log(), hi - lo).nan_to_num(1.0)
        jac_box = -(p.log() + (1 - p).log()) - width.log()
        jac = torch.where(box | logbox, jac_box, torch.zeros_like(x))
        jac = jac - torch.where(logbox | positive, x.log(), torch.zeros_like(x))
        jac = jac - scale.log()
        return jac if per_target else jac.sum(-1)

    def in_support(self, x: Tensor) -> Tensor:
        """Whether each row of ``x`` (*, D) lies strictly inside the support -> (*,) bool."""
        lo, hi, _, _ = self._params(x)
        box, logbox, positive, _ = (m.to(x.device) for m in self._masks())
        inside = torch.where(box | logbox, (x > lo) & (x < hi), torch.isfinite(x))
        inside = torch.where(positive, x > 0, inside)
        return inside.all(-1)

    # -- JSON -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (``None`` for the edges of unbounded targets)."""
        return {
            "names": self.names,
            "kinds": self.kinds,
            "lo": [None if math.isnan(v) else float(v) for v in self.lo],
            "hi": [None if math.isnan(v) else float(v) for v in self.hi],
            "shift": self.shift.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TargetSpace:
        """Rebuild from :meth:`to_dict` output."""
        edge = [[np.nan if v is None else v for v in d[k]] for k in ("lo", "hi")]
        return cls(d["names"], d["kinds"], *edge, d["shift"], d["scale"])

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        pairs = ", ".join(f"{n}:{k}" for n, k in zip(self.names, self.kinds, strict=True))
        return f"TargetSpace({pairs})"


def _prior_support(spec: dict, label: str) -> tuple[str, float, float]:
    """Kind and box of the free parameter ``label`` (``name`` or ``name_<i>``) of a spec."""
    params = spec["params"]
    name, index = label, 0
    if name not in params:
        base, _, num = label.rpartition("_")
        if base not in params or not num.isdigit():
            raise ValueError(f"{label!r} is not a parameter of the model specification")
        name, index = base, int(num) - 1
    prior = params[name].get("prior")
    if prior is None:
        return "real", np.nan, np.nan
    values = {
        k: np.ravel(np.asarray(v, dtype=float))
        for k, v in prior["params"].items()
        if not isinstance(v, str)
    }

    def pick(key: str) -> float:
        arr = values.get(key)
        return np.nan if arr is None or arr.size == 0 else float(arr[min(index, arr.size - 1)])

    lo, hi = pick("mini"), pick("maxi")
    if np.isfinite(lo) and np.isfinite(hi) and lo < hi:
        return ("logbox" if prior["name"] == "LogUniform" and lo > 0 else "box"), lo, hi
    if prior["name"] == "LogNormal":
        return "positive", np.nan, np.nan
    return "real", np.nan, np.nan
