"""Atomic file writes, resumable chunked jobs, and bounded, ordered execution of chunks."""

from __future__ import annotations

__all__ = ["ChunkStore", "atomic_path", "in_order"]

import contextlib
import hashlib
import json
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    """Return the process's umask, read without changing it where the system allows."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A crash leaves no half-written file under the final name; temporary files that a killed
    writer left beside ``path`` are removed at the next successful write. The file gets the
    permissions of any new file (``0o666`` less the umask) whatever the writer chose:
    safetensors, for one, creates its files ``0o600``.

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
        if tmp.is_file():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


class ChunkStore:
    """Finished chunks of a resumable job: one file per chunk in a folder, under a fingerprint.

    The folder's ``manifest.json`` keeps the SHA-256 of ``fingerprint`` (the job's inputs and
    options). A rerun with the same fingerprint finds the chunks already done and computes
    only the others; a folder left by a job with another fingerprint is refused. Each chunk
    is written atomically (:func:`atomic_path`), so a killed job leaves whole chunks only.

    Parameters
    ----------
    folder : path-like
        Where the chunks live (created).
    fingerprint : dict
        JSON-able description of everything that changes a chunk's result.
    suffix : str
        File suffix of a chunk (``".npz"``, ``".ecsv"``).

    Raises
    ------
    ValueError
        ``folder`` holds chunks of a job with another fingerprint.

    Examples
    --------
    >>> import tempfile
    >>> store = ChunkStore(Path(tempfile.mkdtemp()) / "job.parts", {"seed": 0}, ".txt")
    >>> if 0 not in store:
    ...     store.write(0, lambda tmp: tmp.write_text("done"))
    >>> store.path(0).read_text(), 0 in store, 1 in store
    ('done', True, False)
    >>> store.remove()
    """

    def __init__(
        self, folder: str | os.PathLike, fingerprint: dict[str, Any], suffix: str
    ) -> None:
        self.folder, self.suffix = Path(folder), suffix
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()
        manifest = self.folder / "manifest.json"
        if manifest.exists():
            if json.loads(manifest.read_text()).get("key") != key:
                raise ValueError(f"{self.folder} holds an unfinished run with other inputs or "
                                 "options; remove it or rerun with the same ones")  # fmt: skip
        else:
            with atomic_path(manifest, overwrite=True) as tmp:
                tmp.write_text(json.dumps({"key": key, "inputs": json.loads(text)}))

    def path(self, c: int) -> Path:
        """File of chunk ``c``."""
        return self.folder / f"part{int(c):06d}{self.suffix}"

    def __contains__(self, c: int) -> bool:
        return self.path(c).exists()

    def write(self, c: int, write: Callable[[Path], Any]) -> None:
        """Keep chunk ``c``: ``write(tmp)`` writes it to a temporary path, renamed when done."""
        with atomic_path(self.path(c), overwrite=True) as tmp:
            write(tmp)

    def remove(self) -> None:
        """Delete the folder (once the job's output is written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


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
