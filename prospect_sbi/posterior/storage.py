"""Files without pickle: tensors in safetensors, everything else in a JSON header, checksummed.

Every file carries the SHA-256 of its JSON header and of its tensors (:func:`digest`), checked
on every read, so a damaged file (flipped bytes, a truncated copy, an edited header) is
refused instead of giving wrong weights. Files of header format 1 were written before the
checksum existed and are read without one, with a warning; every later format must carry it.
"""

from __future__ import annotations

__all__ = [
    "CHECKSUM_SINCE",
    "digest",
    "write_tensors",
    "read_tensors",
    "flatten_optimizer",
    "unflatten_optimizer",
]

import hashlib
import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from .._io import atomic_path

_KEY = "prospect_sbi"
_SUM_KEY = "prospect_sbi_sha256"
#: Header ``format`` from which a file must carry a checksum (earlier files predate it).
CHECKSUM_SINCE = 2


def digest(tensors: Mapping[str, Tensor], header: str) -> str:
    """SHA-256 (hex) of a JSON ``header`` text and of ``tensors``, in a canonical order.

    The header text first, then for each tensor in the order of its name: the name, dtype,
    shape and raw bytes. The same tensors and header give the same digest on any device or
    machine of the same byte order.

    Examples
    --------
    >>> a = digest({"w": torch.zeros(2)}, "{}")
    >>> a == digest({"w": torch.zeros(2)}, "{}"), a == digest({"w": torch.ones(2)}, "{}")
    (True, False)
    """
    h = hashlib.sha256(header.encode())
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"\0{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def write_tensors(
    path: str | os.PathLike, tensors: dict[str, Tensor], header: dict, overwrite: bool = True
) -> None:
    """Write ``tensors`` and a JSON ``header`` to one safetensors file, atomically.

    The file is written next to ``path`` under a temporary name and renamed over it
    (:func:`prospect_sbi._io.atomic_path`), so a reader (or a job killed mid-write) sees either
    the old file or the new one, never a part; temporary files a killed writer left behind are
    removed at the next write. The file carries the :func:`digest` of ``header`` and
    ``tensors``, and the permissions of any new file (the umask's).

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    text = json.dumps(header)
    meta = {_KEY: text, _SUM_KEY: digest(plain, text)}
    with atomic_path(path, overwrite) as tmp:
        save_file(plain, str(tmp), metadata=meta)


def read_tensors(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict]:
    """Read a file written by :func:`write_tensors` and check its checksum: ``(tensors, header)``.

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A file that is not safetensors, has no prospect-sbi header, has a header that is not
        valid JSON, or whose checksum differs from its contents (or is missing from a file of
        header format :data:`CHECKSUM_SINCE` or later).

    Warns
    -----
    UserWarning
        A file of format 1, written before the checksum existed: damage cannot be detected.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types
        raise ValueError(f"{path} is not a safetensors file ({exc})") from None
    if _KEY not in meta:
        raise ValueError(f"{path} has no prospect-sbi header: not written by prospect-sbi")
    text = meta[_KEY]
    try:
        header = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{path} has a damaged header: not valid JSON ({err.msg} at character {err.pos})"
        ) from None
    if not isinstance(header, dict):
        raise ValueError(
            f"{path} has a damaged header: a JSON {type(header).__name__}, expected an object"
        )
    _check_sum(path, meta.get(_SUM_KEY), tensors, text, header.get("format"))
    return {k: v.to(device) for k, v in tensors.items()}, header


def _check_sum(path: Path, stored: str | None, tensors: dict, text: str, fmt: Any) -> None:
    if stored is None:
        if fmt == 1:
            warnings.warn(
                f"{path} was written before prospect-sbi stored checksums (format 1): "
                "damage to it cannot be detected; save it again to add one",
                UserWarning,
                stacklevel=3,
            )
            return
        raise ValueError(
            f"{path} has no checksum, which every file of format >= "
            f"{CHECKSUM_SINCE} carries (format {fmt!r}): a damaged or altered "
            "file"
        )
    found = digest(tensors, text)
    if found != stored:
        raise ValueError(
            f"{path} is damaged: the SHA-256 of its contents is {found[:16]}..., "
            f"the file records {stored[:16]}...; restore or rewrite it"
        )


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
