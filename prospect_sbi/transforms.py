"""Prospector priors and parameter transforms applied to whole batches of parameter vectors.

A training set needs millions of draws from the model's own priors, pushed through the model's
own ``depends_on`` transforms. Prospector evaluates both one vector at a time; here the prior
objects' ``unit_transform`` is called on a whole batch (they are scipy distributions and
broadcast), and the common transforms of ``prospect.models.transforms`` have batched
equivalents, checked against Prospector's own functions in ``tests/test_transforms.py``. Any
other ``depends_on`` function is called row by row, so every model still works.
"""

from __future__ import annotations

__all__ = [
    "draw_theta",
    "clip_to_prior",
    "batch_params",
    "tage_prior_cut",
    "zred_to_agebins",
    "BATCHED_TRANSFORMS",
]

from collections.abc import Callable, Mapping

import numpy as np
from prospect.models import transforms as pt

from .cosmology import age_of_universe
from .sources.sfh import check_agebins

Params = dict[str, np.ndarray]


def tage_prior_cut(prior: object, tage: np.ndarray, zred: np.ndarray) -> np.ndarray:
    """Log of the factor the age of the universe puts on a ``tage`` prior, as training does.

    The training sets draw ``zred`` from its prior, then ``tage`` from its prior truncated at
    the age of the universe there (:func:`prospect_sbi.simulate`): the density of ``tage``
    given ``zred`` is its prior over the mass the cut keeps, zero beyond it. Added to the
    untruncated log prior, this gives the prior the estimators learned, with ``zred`` free
    (the mass kept depends on it). Batched.

    Parameters
    ----------
    prior : prospect.models.priors.Prior
        The model's ``tage`` prior.
    tage, zred : numpy.ndarray, (N,)
        Ages (Gyr) and redshifts; finite redshifts.

    Returns
    -------
    numpy.ndarray, (N,)
        ``-inf`` where ``tage`` is older than the universe at ``zred``, else
        ``-log CDF(age of the universe)`` (0 where the cut keeps the whole prior).
    """
    tuniv = age_of_universe(np.asarray(zred, dtype=float))
    kept = np.clip(np.asarray(prior.inverse_unit_transform(tuniv), float), 1e-300, 1.0)
    return np.where(np.asarray(tage, dtype=float) > tuniv, -np.inf, -np.log(kept))


def draw_theta(model: object, unit: np.ndarray) -> np.ndarray:
    """Map unit-cube coordinates to parameter vectors with the model's own priors.

    Equal to ``model.prior_transform(u)`` row by row, but one ``unit_transform`` call per
    parameter for the whole batch.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        The model (its ``config_dict`` priors and ``theta_index``).
    unit : ndarray, (B, ndim)
        Coordinates in [0, 1).

    Returns
    -------
    ndarray, (B, ndim)
        Parameter vectors in the order of ``model.theta_labels()``.
    """
    unit = np.atleast_2d(unit)
    theta = np.empty_like(unit, dtype=float)
    for name, inds in model.theta_index.items():
        prior = model.config_dict[name]["prior"]
        u = unit[:, inds]
        try:
            value = np.asarray(prior.unit_transform(u), dtype=float)
            if value.shape != u.shape:
                raise ValueError
        except (ValueError, TypeError):  # a prior that does not broadcast: one row at a time
            value = np.array([prior.unit_transform(row) for row in u], dtype=float)
        theta[:, inds] = value.reshape(u.shape)
    return theta


def clip_to_prior(model: object, theta: np.ndarray) -> np.ndarray:
    """Clip parameter vectors (*, ndim) into the model's prior bounds (``theta_bounds``).

    For draws of an estimator that reach just past a bound (recalibrated edges, float32),
    before they go through the forward model.
    """
    lo, hi = (np.asarray(v, dtype=float) for v in zip(*model.theta_bounds(), strict=True))
    return np.clip(theta, lo, hi)


def batch_params(model: object, theta: np.ndarray) -> Params:
    """Every model parameter for a batch of theta vectors, after the ``depends_on`` transforms.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        The model.
    theta : ndarray, (B, ndim)
        Free parameters in theta order.

    Returns
    -------
    dict
        Name -> ndarray with the batch on axis 0: ``(B,)`` for scalar parameters, ``(B, *shape)``
        otherwise (``agebins`` (B, nbin, 2), ``mass`` (B, nbin), ...). Non-numeric values are
        passed through unbatched.

    Notes
    -----
    Dependent parameters are evaluated in the model's order, twice, so that a transform whose
    input is itself a dependent parameter listed later (``mass`` from ``agebins`` when
    ``agebins`` follows ``zred``) sees the final value, whatever order the specification has.
    """
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    n = len(theta)
    params: Params = {}
    for name, info in model.config_dict.items():
        if name in model.theta_index:
            value = theta[:, model.theta_index[name]]
            params[name] = value[:, 0] if value.shape[1] == 1 and _scalar(info) else value
        else:
            params[name] = _broadcast(model.params.get(name, info.get("init")), n)
    dependent = [
        (k, v["depends_on"])
        for k, v in model.config_dict.items()
        if v.get("depends_on") is not None
    ]
    for _ in range(2 if len(dependent) > 1 else 1):
        for name, func in dependent:
            params[name] = _apply(func, params, n, name)
    return params


def _scalar(info: Mapping) -> bool:
    return np.size(info.get("init", 0.0)) == 1


def _broadcast(value: object, n: int) -> object:
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        return value
    arr = arr.reshape(()) if arr.size == 1 else arr
    return np.broadcast_to(arr, (n, *arr.shape)).copy()


def _apply(func: Callable, params: Params, n: int, name: str) -> np.ndarray:
    batched = BATCHED_TRANSFORMS.get(func)
    if batched is not None:
        return batched(**params)
    rows = []
    for i in range(n):  # unknown transform: Prospector's calling convention, one row at a time
        row = {
            k: (np.atleast_1d(v[i]) if isinstance(v, np.ndarray) else v) for k, v in params.items()
        }
        try:
            rows.append(np.asarray(func(**row), dtype=float))
        except Exception as err:
            raise ValueError(
                f"depends_on function {func.__module__}.{func.__qualname__} of "
                f"parameter {name!r} failed: {err}"
            ) from err
    out = np.stack(rows)
    return out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


# ---------------------------------------------------------------------- batched transforms
def _zred_to_agebins(zred: np.ndarray, agebins: np.ndarray, **extras: object) -> np.ndarray:
    zred = np.asarray(zred, dtype=float).reshape(-1)
    agebins = np.asarray(agebins, dtype=float)
    check_agebins(agebins)
    agebins = np.broadcast_to(agebins, (len(zred), *agebins.shape[-2:]))
    nbin = agebins.shape[1]
    tuniv = np.log10(age_of_universe(zred) * 1e9)
    tbinmax = tuniv + np.log10(0.85)
    start = agebins[:, 1, 1]
    # the bins between the kept ones and the last need room: 85% of the age above their start
    # (the last bin alone, for three bins, needs the age itself above it)
    top = tuniv if nbin == 3 else tbinmax
    short = ~(top > start)
    if short.any():
        i = int(np.argmax(short))
        need = 10 ** start[i] / (1.0 if nbin == 3 else 0.85) / 1e6
        raise ValueError(
            f"zred={zred[i]:g} is too high for these step-SFH bins: the age of the universe "
            f"there is {10 ** tuniv[i] / 1e6:.0f} Myr and the bins need more than {need:.0f} "
            f"Myr (the kept bins end at {10 ** start[i] / 1e6:.0f} Myr)"
        )
    steps = np.linspace(0.0, 1.0, nbin - 2)
    middle = start[:, None] + steps[None, :] * (tbinmax - start)[:, None]
    lims = np.concatenate([agebins[:, 0, :], middle, tuniv[:, None]], axis=1)
    return np.stack([lims[:, :-1], lims[:, 1:]], axis=-1)


def zred_to_agebins(zred: object = 0.0, agebins: object = (), **extras: object) -> np.ndarray:
    """Step-SFH age bins that follow the age of the universe at ``zred``.

    Same rule as ``prospect.models.transforms.zred_to_agebins`` (first bin kept, last bin
    ends at the age of the universe, the upper edge of the second-to-last at 85% of it, the
    bins between evenly spaced in log age), but it also works when ``zred`` is a length-1
    array, which is how Prospector stores parameters (Prospector's own function fails there
    with numpy >= 2). Use it as ``model_params["agebins"]["depends_on"]``.

    Parameters
    ----------
    zred : float or array_like
        Redshift (scalar, (1,) or (B,)).
    agebins : array_like, (nbin, 2) or (B, nbin, 2)
        Current bin edges, log10 yr; needs nbin >= 3.

    Returns
    -------
    ndarray, (nbin, 2) for one redshift, (B, nbin, 2) for a batch.
    """
    out = _zred_to_agebins(zred, agebins)
    return out[0] if np.size(zred) == 1 and np.ndim(agebins) == 2 else out


def _logsfr_ratios_to_masses(
    logmass: np.ndarray, logsfr_ratios: np.ndarray, agebins: np.ndarray, **extras: object
) -> np.ndarray:
    ratios = 10 ** np.clip(np.atleast_2d(logsfr_ratios), -10, 10)
    dt = np.diff(10 ** np.asarray(agebins, dtype=float), axis=-1)[..., 0]
    dt = np.broadcast_to(dt, (len(ratios), dt.shape[-1]))
    # coeff_i = prod_{j<i} dt_{j+1} / (dt_j r_j): the mass in bin i relative to bin 0.
    coeffs = np.concatenate(
        [np.ones((len(ratios), 1)), np.cumprod(dt[:, 1:] / (dt[:, :-1] * ratios), axis=1)], 1
    )
    m1 = 10 ** np.asarray(logmass, dtype=float).reshape(-1) / coeffs.sum(1)
    return m1[:, None] * coeffs


def _logsfr_ratios_to_sfrs(agebins: np.ndarray, **kw: object) -> np.ndarray:
    dt = np.diff(10 ** np.asarray(agebins, dtype=float), axis=-1)[..., 0]
    return _logsfr_ratios_to_masses(agebins=agebins, **kw) / dt


def _logsfr_ratios_to_agebins(
    logsfr_ratios: np.ndarray, agebins: np.ndarray, **extras: object
) -> np.ndarray:
    ratios = 10 ** np.clip(np.atleast_2d(logsfr_ratios), -10, 10)
    lin = 10 ** np.broadcast_to(
        np.asarray(agebins, dtype=float), (len(ratios), *np.shape(agebins)[-2:])
    )
    lower = lin[:, 0, 1] - lin[:, 0, 0]
    upper = lin[:, -1, 1] - lin[:, -1, 0]
    flex = lin[:, -1, 1] - upper - lower
    cum = np.cumprod(ratios, axis=1)
    dt1 = flex / (1 + cum.sum(1))
    lims = np.concatenate(
        [
            np.ones((len(ratios), 1)),
            lower[:, None],
            (dt1 + lower)[:, None],
            (dt1 + lower)[:, None] + dt1[:, None] * np.cumsum(cum, axis=1),
            lin[:, -1, 1:],
        ],
        axis=1,
    )
    lims = np.log10(lims)
    return np.stack([lims[:, :-1], lims[:, 1:]], axis=-1)


def _field(name: str, op: Callable[..., np.ndarray], *others: str) -> Callable[..., np.ndarray]:
    def batched(**params: np.ndarray) -> np.ndarray:
        return op(*(np.asarray(params[k], dtype=float) for k in (name, *others)))

    return batched


#: Prospector transform -> batched equivalent (same results, batch on axis 0).
BATCHED_TRANSFORMS: dict[Callable, Callable[..., np.ndarray]] = {
    pt.stellar_logzsol: _field("logzsol", lambda x: x),
    pt.delogify_mass: _field("logmass", lambda x: 10**x),
    pt.total_mass: _field("mass", lambda m: m.sum(-1) if m.ndim > 1 else m),
    pt.tburst_from_fage: _field("tage", np.multiply, "fage_burst"),
    pt.tage_from_tuniv: _field("zred", lambda z, f: f * age_of_universe(z), "tage_tuniv"),
    pt.dustratio_to_dust1: _field("dust2", np.multiply, "dust_ratio"),
    pt.zred_to_agebins: _zred_to_agebins,
    zred_to_agebins: _zred_to_agebins,
    pt.logsfr_ratios_to_masses: _logsfr_ratios_to_masses,
    pt.logsfr_ratios_to_sfrs: _logsfr_ratios_to_sfrs,
    pt.logsfr_ratios_to_agebins: _logsfr_ratios_to_agebins,
}
