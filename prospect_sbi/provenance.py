"""What a training set or an estimator was made from: model specification, filters, versions.

Everything here is plain JSON, so files carry it without pickle, and a hash of the model
specification lets a training set or an estimator refuse to be used with another model.
"""

from __future__ import annotations

__all__ = ["model_spec", "model_hash", "model_from_spec", "filter_names", "versions"]

import hashlib
import json
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import numpy as np


def _jsonable(value: object) -> object:
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', value)}"
    arr = np.asarray(value) if not isinstance(value, (str, dict)) else None
    if arr is not None and arr.dtype.kind in "biuf":
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
        info["init"] = np.asarray(init, dtype=float) if isinstance(init, list) else init
        if "prior" in entry:
            cls = getattr(priors, entry["prior"]["name"], None)
            if cls is None:
                raise ValueError(f"{name}: unknown prior class {entry['prior']['name']!r}")
            args = {k: np.asarray(v) if isinstance(v, list) else v
                    for k, v in entry["prior"]["params"].items()}  # fmt: skip
            info["prior"] = cls(**args)
        if "depends_on" in entry:
            module, _, func = entry["depends_on"].rpartition(".")
            if module not in _TRANSFORM_MODULES:
                raise ValueError(f"{name}: depends_on {entry['depends_on']!r} is not a transform "
                                 f"of {' or '.join(_TRANSFORM_MODULES)}")  # fmt: skip
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


def filter_names(filters: Sequence) -> list[str]:
    """Names of sedpy filters (a list or a ``FilterSet``), in order."""
    return [f.name for f in getattr(filters, "filters", filters)]


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on."""
    out = {}
    # sedpy's distribution is astro-sedpy (its import name is sedpy)
    for dist in ("prospect-sbi", "astro-prospector", "astro-sedpy", "numpy", "torch", "lampe",
                 "zuko", "bagpipes", "fsps"):  # fmt: skip
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
