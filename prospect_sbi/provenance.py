"""What a training set or an estimator was made from: model specification, filters, versions.

Everything here is plain JSON, so files carry it without pickle, and a hash of the model
specification lets a training set or an estimator refuse to be used with another model.
"""

from __future__ import annotations

__all__ = [
    "model_spec",
    "model_hash",
    "model_from_spec",
    "model_difference",
    "filter_names",
    "versions",
]

import hashlib
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np


def _jsonable(value: object) -> object:
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
    arr = np.asarray(value) if not isinstance(value, (str, dict)) else None
    if arr is not None and arr.dtype.kind in "biufU":  # numbers; names (elines_to_ignore)
        return arr.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value if isinstance(value, (str, bool, int, float, type(None))) else repr(value)


def model_spec(model: object) -> dict:
    """Describe the model's parameter specification as JSON-able data.

    Parameters
    ----------
    model : prospect.models.ProspectorParams
        The model.

    Returns
    -------
    dict
        Per parameter: ``N``, ``isfree``, ``init``, ``units``, ``prior`` (class name and
        parameters) and ``depends_on`` (the function's qualified name), in the model's order;
        plus ``theta_labels`` and the model class.
    """
    params = {}
    for name, info in model.config_dict.items():
        prior = info.get("prior")
        entry = {
            "N": int(info.get("N", 1)),
            "isfree": bool(info.get("isfree", False)),
            "init": _jsonable(info.get("init")),
            "units": str(info.get("units", "")),
        }
        if prior is not None:
            entry["prior"] = {"name": type(prior).__name__, "params": _jsonable(prior.params)}
        if info.get("depends_on") is not None:
            entry["depends_on"] = _jsonable(info["depends_on"])
        params[name] = entry
    return {
        "class": type(model).__name__,
        "theta_labels": list(model.theta_labels()),
        "params": params,
    }


#: Modules whose functions a stored ``depends_on`` may name (nothing else is imported).
_TRANSFORM_MODULES = ("prospect.models.transforms", "prospect_sbi.transforms")


def model_from_spec(spec: dict) -> object:
    """Rebuild the Prospector ``SpecModel`` that a :func:`model_spec` describes.

    Priors are looked up by class name in ``prospect.models.priors`` and ``depends_on``
    functions by qualified name, only in Prospector's and prospect-sbi's transform modules,
    so a file cannot make this import or run anything else. The result is checked: its
    specification must hash to the same value.

    Raises
    ------
    ValueError
        A prior class or transform that cannot be found, or a model that does not hash back.
    """
    import importlib

    from prospect.models import SpecModel, priors

    config = {}
    for name, entry in spec["params"].items():
        info = {"N": entry["N"], "isfree": entry["isfree"], "units": entry.get("units", "")}
        init = entry.get("init")
        if isinstance(init, list):
            names = all(isinstance(v, str) for v in np.ravel(np.asarray(init, dtype=object)))
            init = list(init) if init and names else np.asarray(init, dtype=float)
        info["init"] = init
        if "prior" in entry:
            cls = getattr(priors, entry["prior"]["name"], None)
            if cls is None:
                raise ValueError(f"{name}: unknown prior class {entry['prior']['name']!r}")
            args = {
                k: np.asarray(v) if isinstance(v, list) else v
                for k, v in entry["prior"]["params"].items()
            }
            info["prior"] = cls(**args)
        if "depends_on" in entry:
            module, _, func = entry["depends_on"].rpartition(".")
            if module not in _TRANSFORM_MODULES:
                raise ValueError(
                    f"{name}: depends_on {entry['depends_on']!r} is not a transform "
                    f"of {' or '.join(_TRANSFORM_MODULES)}"
                )
            info["depends_on"] = getattr(importlib.import_module(module), func)
        config[name] = info
    model = SpecModel(config)
    if model_hash(model_spec(model)) != model_hash(spec):
        raise ValueError("the rebuilt model does not match the stored specification")
    return model


def model_hash(spec: dict) -> str:
    """SHA-256 (first 16 hex digits) of a :func:`model_spec`, independent of key order."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fmt(value: object) -> str:
    """Format a stored value in few characters: numbers with %g, arrays in brackets."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return repr(value) if isinstance(value, str) else str(value)
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _prior(entry: dict) -> str:
    prior = entry.get("prior")
    if prior is None:
        return "no prior"
    args = ", ".join(f"{k}={_fmt(v)}" for k, v in prior.get("params", {}).items())
    return f"{prior['name']}({args})"


def _state(entry: dict) -> str:
    return "free" if entry["isfree"] else f"fixed at {_fmt(entry.get('init'))}"


def model_difference(given: dict, reference: dict, what: str = "the estimator's") -> str | None:
    """Name the first difference between two :func:`model_spec` (None when they agree).

    Parameters
    ----------
    given, reference : dict
        Specifications; ``given`` is the one being checked, ``reference`` the one it must
        equal (an estimator's, a training set's).
    what : str
        How to call ``reference`` in the message.

    Returns
    -------
    str or None
        One line such as ``"model differs from the estimator's: logzsol prior
        TopHat(mini=-2, maxi=0.19) vs TopHat(mini=-1, maxi=0.19)"``: the parameter, then what
        differs (present, free or fixed, ``N``, prior with its parameters, fixed value or
        initial value, ``depends_on``, units), given first.
    """
    head = f"model differs from {what}:"
    if model_hash(given) == model_hash(reference):
        return None
    ours, theirs = given.get("params", {}), reference.get("params", {})
    for name in [*ours, *(k for k in theirs if k not in ours)]:
        if name not in theirs:
            return f"{head} {name} ({_state(ours[name])}) is not in {what} model"
        if name not in ours:
            return f"{head} {name} ({_state(theirs[name])}) is missing (it is in {what} model)"
        a, b = ours[name], theirs[name]
        checks = [
            (
                "",
                _state(a) if a["isfree"] != b["isfree"] else "",
                _state(b) if a["isfree"] != b["isfree"] else "",
            ),
            ("N ", a["N"], b["N"]),
            ("prior ", _prior(a), _prior(b)),
            (
                "fixed at " if not a["isfree"] else "init ",
                _fmt(a.get("init")),
                _fmt(b.get("init")),
            ),
            ("depends_on ", a.get("depends_on", "nothing"), b.get("depends_on", "nothing")),
            ("units ", repr(a.get("units", "")), repr(b.get("units", ""))),
        ]
        for label, x, y in checks:
            if x != y:
                return f"{head} {name} {label}{x} vs {y}"
    if given.get("theta_labels") != reference.get("theta_labels"):
        return (
            f"{head} free parameters {given.get('theta_labels')} vs "
            f"{reference.get('theta_labels')}"
        )
    if given.get("class") != reference.get("class"):
        return f"{head} model class {given.get('class')} vs {reference.get('class')}"
    return f"{head} hash {model_hash(given)} vs {model_hash(reference)}"


def filter_names(filters: Sequence) -> list[str]:
    """Names of sedpy filters (a list or a ``FilterSet``), in order."""
    return [f.name for f in getattr(filters, "filters", filters)]


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out = {}
    # sedpy's distribution is astro-sedpy (its import name is sedpy)
    for dist in (
        "prospect-sbi",
        "astro-prospector",
        "astro-sedpy",
        "numpy",
        "torch",
        "lampe",
        "zuko",
        "bagpipes",
        "fsps",
    ):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
