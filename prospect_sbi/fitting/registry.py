"""Fitters by name: ``"sbi"``, Prospector's own, and those other packages register."""

from __future__ import annotations

__all__ = ["ENTRY_POINT_GROUP", "available_fitters", "get_fitter", "register_fitter"]

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

#: Entry-point group through which another package adds fitters, e.g. in its pyproject.toml:
#: ``[project.entry-points."prospect_sbi.fitters"] myfit = "mypkg.fit:run"``.
ENTRY_POINT_GROUP = "prospect_sbi.fitters"

Fitter = Callable[..., dict]
_FITTERS: dict[str, Fitter] = {}


def _prospector(**flags: bool) -> Fitter:
    def run(obs: dict, model: Any, sps: Any, noise: tuple = (None, None), **kwargs: Any) -> dict:
        from prospect.fitting import fit_model

        chosen = dict(flags)
        if kwargs.pop("optimize", False):  # Prospector's optimise-then-sample
            chosen["optimize"] = True
        return fit_model(obs, model, sps, noise, **chosen, **kwargs)

    run.__doc__ = f"Prospector's ``fit_model`` with {flags}."
    return run


def _sbi(obs: dict, model: Any, sps: Any, noise: tuple = (None, None), **kwargs: Any) -> dict:
    from .sbi import run_sbi

    return run_sbi(obs, model, sps, noise, **kwargs)


_BUILTIN: dict[str, Fitter] = {
    "sbi": _sbi,
    "dynesty": _prospector(optimize=False, emcee=False, dynesty=True),
    "emcee": _prospector(optimize=False, emcee=True, dynesty=False),
    "optimize": _prospector(optimize=True, emcee=False, dynesty=False),
}


def register_fitter(name: str, fitter: Fitter, overwrite: bool = False) -> None:
    """Add a fitter under ``name`` for this session (packages use :data:`ENTRY_POINT_GROUP`).

    Parameters
    ----------
    name : str
    fitter : callable
        ``fitter(obs, model, sps, noise=(None, None), **kwargs)`` returning
        ``{"optimization": (result, seconds), "sampling": (result, seconds)}``.
    overwrite : bool
        Replace a fitter of that name.

    Raises
    ------
    ValueError
        The name is taken (and ``overwrite`` is False), or ``fitter`` is not callable.
    """
    if not callable(fitter):
        raise ValueError(f"fitter {name!r} is not callable: {fitter!r}")
    if not overwrite and name in available_fitters():
        raise ValueError(f"a fitter named {name!r} exists; pass overwrite=True to replace it")
    _FITTERS[str(name)] = fitter


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_fitters() -> list[str]:
    """Names of every fitter: built in, registered in this session, and from entry points."""
    return sorted(set(_BUILTIN) | set(_FITTERS) | set(_entry_points()))


def get_fitter(name: str) -> Fitter:
    """Return the fitter ``name``; session registrations win over entry points and built-ins.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    if name in _FITTERS:
        return _FITTERS[name]
    eps = _entry_points()
    if name in eps:
        return eps[name].load()
    if name in _BUILTIN:
        return _BUILTIN[name]
    raise ValueError(f"unknown fitter {name!r}; known: {', '.join(available_fitters())}")
