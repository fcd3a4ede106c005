"""Files without pickle: tensors in safetensors, everything else in a JSON header."""

from __future__ import annotations

__all__ = ["write_tensors", "read_tensors", "flatten_optimizer", "unflatten_optimizer"]

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .._io import atomic_path

_KEY = "prospect_sbi"


def write_tensors(
    path: str | os.PathLike, tensors: dict[str, Tensor], header: dict, overwrite: bool = True
) -> None:
    """Write ``tensors`` and a JSON ``header`` to one safetensors file, atomically.

    The file is written next to ``path`` under a temporary name and renamed over it
    (:func:`prospect_sbi._io.atomic_path`), so a reader (or a job killed mid-write) sees either
    the old file or the new one, never a part; temporary files a killed writer left behind are
    removed at the next write.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path, overwrite) as tmp:
        save_file(plain, str(tmp), metadata={_KEY: json.dumps(header)})


def read_tensors(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict]:
    """Read a file written by :func:`write_tensors`: ``(tensors, header)``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A file that is not safetensors, or has no prospect-sbi header.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a safetensors file ({exc})") from None
    if _KEY not in meta:
        raise ValueError(f"{path} has no prospect-sbi header: not written by prospect-sbi")
    return tensors, json.loads(meta[_KEY])


def flatten_optimizer(state: dict[str, Any], prefix: str) -> tuple[dict[str, Tensor], dict]:
    """Split an optimizer or scheduler ``state_dict`` into tensors and JSON-able data."""
    tensors: dict[str, Tensor] = {}

    def walk(value: Any, key: str) -> Any:
        if isinstance(value, Tensor):
            tensors[key] = value
            return {"__tensor__": key}
        if isinstance(value, dict):
            return {"__dict__": [[k, walk(v, f"{key}.{k}")] for k, v in value.items()]}
        if isinstance(value, (list, tuple)):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(value)]
        return value

    return tensors, walk(state, prefix)


def unflatten_optimizer(tensors: dict[str, Tensor], data: Any) -> Any:
    """Inverse of :func:`flatten_optimizer`."""
    if isinstance(data, dict):
        if "__tensor__" in data:
            return tensors[data["__tensor__"]]
        return {k: unflatten_optimizer(tensors, v) for k, v in data["__dict__"]}
    if isinstance(data, list):
        return [unflatten_optimizer(tensors, v) for v in data]
    return data
