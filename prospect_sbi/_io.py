"""Atomic file writes and bounded, ordered execution of chunked work."""

from __future__ import annotations

__all__ = ["atomic_path", "in_order"]

import contextlib
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A crash leaves no half-written file under the final name; temporary files that a killed
    writer left beside ``path`` are removed at the next successful write.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def in_order(submit: Callable[[Any], Any], items: Iterable[tuple[Any, Any]],
             width: int) -> Iterator[tuple[Any, Any]]:  # fmt: skip
    """Yield ``(key, future.result())`` in the order of ``items``, ``width`` futures in flight.

    ``submit(item)`` returns a future (``concurrent.futures`` or dask). Bounding the futures
    in flight bounds the memory of results waiting to be consumed; futures still pending when
    the consumer stops are cancelled.
    """
    pending: deque = deque()
    try:
        for key, item in items:
            pending.append((key, submit(item)))
            if len(pending) >= width:
                done, fut = pending.popleft()
                yield done, fut.result()
        while pending:
            done, fut = pending.popleft()
            yield done, fut.result()
    finally:
        for _, fut in pending:
            fut.cancel()
