"""FSPS parameter names, what BC03MilesBasis implements of them, and one-line input errors."""

from __future__ import annotations

__all__ = ["FSPS_DEFAULTS", "IMPLEMENTED", "Resolved", "batch_size", "resolve_params"]

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from .dust import SUPPORTED_DUST_TYPES
from .emlines import emission_line_info, kept_lines
from .grids import DL07_QPAH, DL07_UMIN, GRID_LOGU, GRID_LOGZSOL
from .sfh import SUPPORTED_SFH, check_agebins

#: python-fsps ``StellarPopulation`` parameters and their defaults (python-fsps 0.5).
FSPS_DEFAULTS: dict[str, object] = dict(
    add_agb_dust_model=True,
    add_dust_emission=True,
    add_igm_absorption=False,
    add_neb_emission=False,
    add_neb_continuum=True,
    add_stellar_remnants=True,
    redshift_colors=False,
    compute_light_ages=False,
    nebemlineinspec=True,
    smooth_velocity=True,
    smooth_lsf=False,
    agb_dust=1.0,
    tpagb_norm_type=2,
    dell=0.0,
    delt=0.0,
    redgb=1.0,
    agb=1.0,
    fcstar=1.0,
    fbhb=0.0,
    sbss=0.0,
    pagb=1.0,
    frac_xrb=1.0,
    zred=0.0,
    zmet=1,
    logzsol=0.0,
    pmetals=2.0,
    afeindx=1,
    afe=0.0,
    imf_type=2,
    imf_upper_limit=120,
    imf_lower_limit=0.08,
    imf1=1.3,
    imf2=2.3,
    imf3=2.3,
    vdmc=0.08,
    mdave=0.5,
    evtype=-1,
    use_wr_spectra=1,
    use_lw_tpagb=0,
    logt_wmb_hot=0.0,
    add_xrb_emission=0,
    masscut=150.0,
    sigma_smooth=0.0,
    min_wave_smooth=1e3,
    max_wave_smooth=1e4,
    gas_logu=-2,
    gas_logz=0.0,
    igm_factor=1.0,
    sfh=0,
    tau=1.0,
    const=0.0,
    sf_start=0.0,
    sf_trunc=0.0,
    tage=0.0,
    dust_tesc=7.0,
    fburst=0.0,
    tburst=11.0,
    sf_slope=0.0,
    dust_type=0,
    dust1=0.0,
    dust2=0.0,
    dust3=0.0,
    dust_clumps=-99.0,
    frac_nodust=0.0,
    frac_obrun=0.0,
    dust_index=-0.7,
    dust1_index=-1.0,
    mwr=3.1,
    uvb=1.0,
    wgp1=1,
    wgp2=1,
    wgp3=1,
    duste_gamma=0.01,
    duste_umin=1.0,
    duste_qpah=3.5,
    fagn=0.0,
    agn_tau=10.0,
)

#: FSPS parameters with the same meaning here.
IMPLEMENTED = frozenset(
    {
        "zred",
        "logzsol",
        "imf_type",
        "sfh",
        "tage",
        "tau",
        "fburst",
        "tburst",
        "dust_type",
        "dust1",
        "dust2",
        "dust_index",
        "dust1_index",
        "dust_tesc",
        "add_neb_emission",
        "add_neb_continuum",
        "nebemlineinspec",
        "gas_logz",
        "gas_logu",
        "add_igm_absorption",
        "igm_factor",
        "add_dust_emission",
        "duste_gamma",
        "duste_umin",
        "duste_qpah",
    }
)

# Parameters that only matter with physics switched on elsewhere, or that Prospector applies
# itself (smoothing): any value is harmless here.
_INERT = frozenset(
    {
        "sigma_smooth",
        "smooth_velocity",
        "smooth_lsf",
        "min_wave_smooth",
        "max_wave_smooth",
        "redshift_colors",
        "compute_light_ages",
        "agn_tau",
        "mwr",
        "uvb",
        "wgp1",
        "wgp2",
        "wgp3",
        "pmetals",
        "zmet",
    }
)

# Everything else FSPS knows is accepted only at the value where it changes nothing: switches
# off, and FSPS defaults for the isochrone and IMF knobs (the BC03 grids are fixed).
_NEUTRAL = {k: v for k, v in FSPS_DEFAULTS.items() if k not in IMPLEMENTED and k not in _INERT} | {
    "add_agb_dust_model": False,
    "add_stellar_remnants": False,
    "add_xrb_emission": 0,
}

_IMF = {0: "Salpeter", 1: "Chabrier", 2: "Kroupa", 3: "van Dokkum", 4: "Dave", 5: "tabulated"}


@dataclass
class Resolved:
    """Parameters of a batch of B objects, checked and broadcast.

    ``switches`` holds integer and boolean settings shared by the whole batch, and
    ``elines_to_ignore`` (a tuple of line names, Prospector's ``SpecModel`` parameter);
    ``values`` holds float arrays with the batch on axis 0: ``mass`` (B, nbin) (nbin = 1
    unless the SFH is stepped), ``agebins`` (B, nbin, 2) for step SFHs, all others (B,).
    """

    n: int
    switches: dict[str, int | bool | tuple[str, ...]] = field(default_factory=dict)
    values: dict[str, np.ndarray] = field(default_factory=dict)

    def take(self, idx: np.ndarray) -> Resolved:
        """Return the objects ``idx`` (C,) of the batch, in that order."""
        return Resolved(
            n=len(idx),
            switches=self.switches,
            values={k: val[idx] for k, val in self.values.items()},
        )


def batch_size(params: Mapping[str, object], n: int | None) -> int:
    """Batch size B: ``n`` if given, else the length of the first batched parameter.

    Raises
    ------
    ValueError
        If ``n`` is None and no parameter has a batch axis.
    """
    if n is not None:
        return int(n)
    for name in ("zred", "logzsol", "tage", "dust2", "mass"):
        if name in params and np.ndim(params[name]) >= 1:
            return int(np.shape(params[name])[0])
    raise ValueError("cannot tell the batch size: pass n= or give zred as an array (B,)")


def _scalar_switch(name: str, value: object) -> int | bool:
    arr = np.unique(np.ravel(np.asarray(value)))
    if arr.size != 1:
        raise ValueError(f"{name} must be the same for every object in a batch, got {arr}")
    return arr.item()


def _check_unsupported(params: Mapping[str, object]) -> None:
    for name, value in params.items():
        if name not in _NEUTRAL:
            continue
        neutral = _NEUTRAL[name]
        if not np.all(np.asarray(value) == neutral):
            raise ValueError(
                f"FSPS parameter {name}={np.asarray(value).tolist()} is not implemented by "
                f"BC03MilesBasis (only {name}={neutral!r} is); use an FSPS source for it"
            )


def _range(name: str, value: np.ndarray, lo: float, hi: float, why: str) -> None:
    bad = ~((value >= lo) & (value <= hi))
    if bad.any():
        raise ValueError(
            f"{name}={np.ravel(value)[np.ravel(bad)][0]:.4g} is outside {why} [{lo:.3g}, {hi:.3g}]"
        )


def resolve_params(
    params: Mapping[str, object], n: int | None = None, partial: bool = False
) -> Resolved:
    """Check Prospector/FSPS parameters and broadcast them to a batch.

    Parameters
    ----------
    params : mapping
        Parameter values by FSPS/Prospector name. With ``n=None`` they describe one object
        (as Prospector passes them); otherwise each numeric value has the batch on axis 0,
        except ``agebins`` which may be shared, (nbin, 2).
    n : int, optional
        Batch size.
    partial : bool
        Check only what is given: the SFH's own parameters (``tage``, ``agebins``, ...) may
        still be missing, as when a source is built before the model sets them.

    Returns
    -------
    Resolved

    Raises
    ------
    ValueError
        Naming the first parameter that is unsupported, off the grids, or malformed.
    """
    _check_unsupported(params)
    single = n is None
    n = 1 if single else int(n)

    def get(name: str) -> np.ndarray:
        value = np.asarray(params.get(name, FSPS_DEFAULTS[name]), dtype=float)
        if single:
            value = value.reshape(-1)[:1] if value.size == 1 else value[None]
        else:  # scalars and length-1 arrays (as in Prospector's model.params) are shared
            value = np.broadcast_to(value.reshape(-1), (n,)) if value.size == 1 else value
        if value.shape[0] != n:
            raise ValueError(f"{name} has {value.shape[0]} values for a batch of {n}")
        return value

    sw = {
        "sfh": int(_scalar_switch("sfh", params.get("sfh", FSPS_DEFAULTS["sfh"]))),
        "dust_type": int(_scalar_switch("dust_type", params.get("dust_type", 0))),
        "imf_type": int(_scalar_switch("imf_type", params.get("imf_type", 1))),
    }
    for name in (
        "add_neb_emission",
        "add_neb_continuum",
        "nebemlineinspec",
        "add_igm_absorption",
        "add_dust_emission",
    ):
        sw[name] = bool(_scalar_switch(name, params.get(name, FSPS_DEFAULTS[name])))
    sw["elines_to_ignore"] = _ignored_lines(params, sw)

    if sw["sfh"] not in SUPPORTED_SFH:
        raise ValueError(f"sfh={sw['sfh']} is not supported by BC03MilesBasis: {SUPPORTED_SFH}")
    if sw["sfh"] not in (1, 4) and np.any(np.asarray(params.get("fburst", 0.0)) != 0):
        raise ValueError(
            f"fburst is used only with sfh 1 and 4 (as in FSPS), not sfh={sw['sfh']}; set it to 0"
        )
    if sw["dust_type"] not in SUPPORTED_DUST_TYPES:
        raise ValueError(
            f"dust_type={sw['dust_type']} is not supported by BC03MilesBasis; "
            f"use {SUPPORTED_DUST_TYPES}"
        )
    imf = sw["imf_type"]
    if imf == 2:
        warnings.warn(
            "imf_type=2 (Kroupa): the BC03-MILES grids are Chabrier (imf_type=1); stellar masses "
            "differ by a few hundredths of a dex",
            stacklevel=3,
        )
    elif imf != 1:
        raise ValueError(
            f"imf_type={imf} ({_IMF.get(imf, 'unknown')}) is not available: the BC03-MILES grids "
            "are Chabrier (imf_type=1; Kroupa, 2, is accepted with a warning)"
        )

    out = Resolved(n=n, switches=sw)
    v = out.values
    for name in (
        "zred",
        "logzsol",
        "dust1",
        "dust2",
        "dust_index",
        "dust1_index",
        "dust_tesc",
        "gas_logu",
        "igm_factor",
        "duste_gamma",
        "duste_umin",
        "duste_qpah",
    ):
        v[name] = get(name)
    # Prospector's nebular template ties gas_logz to logzsol; FSPS's default is solar.
    v["gas_logz"] = get("gas_logz") if "gas_logz" in params else v["logzsol"].copy()

    _range("zred", v["zred"], 0.0, 30.0, "the supported redshifts")
    _range("logzsol", v["logzsol"], GRID_LOGZSOL[0], GRID_LOGZSOL[-1], "the BC03 metallicities")
    _range("dust2", v["dust2"], 0.0, np.inf, "the allowed optical depths")
    _range("dust1", v["dust1"], 0.0, np.inf, "the allowed optical depths")
    if sw["add_neb_emission"]:
        _range(
            "gas_logz",
            v["gas_logz"],
            GRID_LOGZSOL[0],
            GRID_LOGZSOL[-1],
            "the Cloudy-grid metallicities",
        )
        _range("gas_logu", v["gas_logu"], GRID_LOGU[0], GRID_LOGU[-1], "the Cloudy-grid logU")
    if sw["add_dust_emission"]:
        _range("duste_qpah", v["duste_qpah"], DL07_QPAH[0], DL07_QPAH[-1], "the DL07 grids")
        _range("duste_umin", v["duste_umin"], DL07_UMIN[0], DL07_UMIN[-1], "the DL07 grids")
        _range("duste_gamma", v["duste_gamma"], 0.0, 1.0, "the allowed fractions")

    if "lumdist" in params:
        v["lumdist"] = np.asarray(params["lumdist"], dtype=float).reshape(-1) * np.ones(n)
    own = {"agebins", "mass"} if sw["sfh"] == 3 else {"tage"}
    if partial and not (own & set(params)):
        return out
    if sw["sfh"] == 3:
        _resolve_step(params, out, single)
    else:
        mass = np.asarray(params.get("mass", 1.0), dtype=float)
        if mass.size == 1:
            mass = np.broadcast_to(mass.reshape(-1), (n,))
        v["mass"] = mass.reshape(n, 1)
        v["tage"] = get("tage")
        v["tau"] = get("tau")
        _range("tage", v["tage"], 1e-5, 20.0, "the SSP ages (Gyr)")
        if sw["sfh"] in (1, 4):
            _range("tau", v["tau"], 1e-5, np.inf, "the allowed e-folding times (Gyr)")
            _resolve_burst(params, v, get)
    return out


def _ignored_lines(params: Mapping[str, object], sw: dict) -> tuple[str, ...]:
    """Prospector's ``elines_to_ignore``, checked: the lines its photometry leaves out.

    ``SpecModel`` honours it only for the lines it adds itself (``nebemlineinspec`` False);
    with the lines in the spectrum it has no effect there, and a warning says so here.
    """
    raw = params.get("elines_to_ignore", ())
    names = (raw,) if isinstance(raw, str) else tuple(str(n) for n in np.ravel(raw))
    if not names or not sw["add_neb_emission"]:
        return ()
    if sw["nebemlineinspec"]:
        warnings.warn(
            f"elines_to_ignore={list(names)} has no effect with nebemlineinspec=True (the lines "
            "are in the spectrum, as in Prospector); set nebemlineinspec=False to leave them out",
            stacklevel=4,
        )
        return ()
    kept_lines(emission_line_info(), names)  # one-line error for a name not in the table
    return names


def _resolve_burst(params: Mapping[str, object], v: dict, get: Callable) -> None:
    """Check FSPS's burst of sfh 1 and 4 into ``v``: ``fburst`` and ``tburst`` (B,).

    A fraction ``fburst`` of the mass forms at once, ``tburst`` Gyr after the SFH began
    (lookback ``tage - tburst``).
    """
    v["fburst"], v["tburst"] = get("fburst"), get("tburst")
    _range("fburst", v["fburst"], 0.0, 1.0, "the allowed mass fractions")
    late = (v["fburst"] > 0) & ~(v["tburst"] <= v["tage"])
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise ValueError(
            f"tburst={v['tburst'][i]:.4g} Gyr is after tage={v['tage'][i]:.4g} Gyr with "
            f"fburst={v['fburst'][i]:.3g}: FSPS would form no burst and less than `mass`; "
            "set tburst <= tage (Prospector's fage_burst <= 1)"
        )


def _resolve_step(params: Mapping[str, object], out: Resolved, single: bool) -> None:
    if "agebins" not in params or "mass" not in params:
        raise ValueError("sfh=3 needs 'agebins' (nbin, 2; log10 yr) and per-bin 'mass'")
    agebins = np.asarray(params["agebins"], dtype=float)
    mass = np.asarray(params["mass"], dtype=float)
    if single:
        agebins, mass = agebins[None], np.atleast_1d(mass)[None]
    if agebins.ndim == 2:
        agebins = np.broadcast_to(agebins, (out.n,) + agebins.shape)
    if agebins.shape[0] != out.n or agebins.ndim != 3 or agebins.shape[-1] != 2:
        raise ValueError(f"agebins must be (nbin, 2) or (B, nbin, 2), got {agebins.shape}")
    check_agebins(agebins)
    if mass.shape != agebins.shape[:2]:
        raise ValueError(
            f"mass has shape {mass.shape[1:]} but agebins has {agebins.shape[1]} bins"
        )
    if np.any(agebins[..., 1] <= agebins[..., 0]):
        raise ValueError("agebins must have younger edge < older edge in every bin")
    if np.any(mass < 0) or np.any(mass.sum(-1) <= 0) or not np.all(np.isfinite(mass)):
        raise ValueError("mass per bin must be finite, >= 0, with a positive total")
    out.values["agebins"] = agebins
    out.values["mass"] = mass
