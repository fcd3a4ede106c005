"""What a training set or an estimator was made from: model specification, filters, versions.

Everything here is plain JSON, so files carry it without pickle, and a hash of the model
specification lets a training set or an estimator refuse to be used with another model.
"""

from __future__ import annotations

__all__ = ["model_spec", "model_hash", "filter_names", "versions"]

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
    for dist in ("prospect-sbi", "astro-prospector", "sedpy", "numpy", "torch", "lampe", "zuko",
                 "bagpipes", "fsps"):  # fmt: skip
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out
