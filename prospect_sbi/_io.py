"""The job engine: atomic writes, chunks and their seeds, resumable parts, an ordered runner.

Every long job of the package (:func:`~prospect_sbi.simulate`, catalogue fits, pixel fits,
field maps) is built from these pieces:

- :func:`atomic_path`: a file appears whole under its name or not at all (and so
  :func:`write_table` and :func:`save_figure`, what people look at);
- :func:`chunk_slices`, :func:`chunk_sequence`, :func:`chunk_seed`, :func:`row_seed`: the
  rows of each chunk and the random seed of each, a pure function of the chunk;
- :class:`ChunkStore`: finished chunks kept in a folder under a fingerprint, so that a killed
  job resumes with the chunks it lacks and a job with other inputs is refused;
- :func:`run_ordered` (over :func:`in_order`): chunks computed here, in local processes or on
  a dask cluster (:func:`dask_client`), their results yielded in order with bounded memory.
"""

from __future__ import annotations

__all__ = [
    "DASK_TRIM_SETTING",
    "ChunkStore",
    "atomic_path",
    "check_sendable",
    "chunk_seed",
    "chunk_sequence",
    "chunk_slices",
    "dask_client",
    "file_digest",
    "hash_arrays",
    "in_order",
    "is_dask",
    "n_workers",
    "parts_folder",
    "row_seed",
    "run_ordered",
    "save_figure",
    "set_torch_threads",
    "write_table",
]

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .numeric import check_count

if TYPE_CHECKING:
    import numpy as np


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
def atomic_path(
    path: str | os.PathLike, overwrite: bool = False, sync: bool = False
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds.

    A crash leaves no half-written file under the final name; temporary files that a killed
    writer left beside ``path`` are removed at the next successful write. The file gets the
    permissions of any new file (``0o666`` less the umask) whatever the writer chose:
    safetensors, for one, creates its files ``0o600``. With ``sync``, the file's content is
    forced to disk (``fsync``) before the rename.

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
            if sync:
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{path.name}.*.tmp"):  # left by a killed writer
            stale.unlink(missing_ok=True)
    finally:
        if tmp.exists():
            tmp.unlink()


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's bytes, read a MiB at a time.

    What a resumable job records of a small input file (zero points, a parameter file): its
    content, so that a copy, a move or a ``touch`` changes nothing and an edit is noticed.
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_arrays(h: Any, arrays: Iterable[Any]) -> None:
    """Feed each array's bytes (C order) to the hash ``h``; ``b"-"`` stands for a None.

    What resumable jobs record of the data they read (pixels, a catalogue's columns): the
    same values in the same dtypes give the same digest.
    """
    import numpy as np

    for a in arrays:
        h.update(b"-" if a is None else np.ascontiguousarray(a).tobytes())


#: Astropy table formats of :func:`write_table`, by file suffix.
_TABLE_FORMATS = {".fits": "fits", ".ecsv": "ascii.ecsv", ".csv": "ascii.csv"}


def write_table(path: str | os.PathLike, table: Any, overwrite: bool = False) -> Path:
    """Write an astropy table atomically; the format follows the suffix (.fits, .ecsv, .csv).

    Raises
    ------
    ValueError
        Another suffix.
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    if path.suffix.lower() not in _TABLE_FORMATS:
        raise ValueError(f"table suffix {path.suffix!r}; use one of {sorted(_TABLE_FORMATS)}")
    with atomic_path(path, overwrite) as tmp:
        table.write(tmp, format=_TABLE_FORMATS[path.suffix.lower()])
    return path


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 100, overwrite: bool = True) -> Path:
    """Write a matplotlib figure to ``path`` as PNG, atomically (:func:`atomic_path`).

    A job killed while drawing leaves the previous figure, never half a PNG; the file gets
    the permissions of any new file (the umask), as every other output.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    with atomic_path(path, overwrite) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    return path


def parts_folder(path: str | os.PathLike) -> Path:
    """Folder of the finished chunks of the job that writes ``path``: ``<path>.parts``."""
    path = Path(path)
    return path.with_name(path.name + ".parts")


def chunk_slices(n: int, size: int) -> list[slice]:
    """Rows of each chunk: ``slice(c * size, min((c + 1) * size, n))`` for c = 0, 1, ...

    Raises
    ------
    ValueError
        ``size`` not an integer >= 1.

    Examples
    --------
    >>> chunk_slices(5, 2)
    [slice(0, 2, None), slice(2, 4, None), slice(4, 5, None)]
    """
    n, size = int(n), check_count("chunk_size", size)
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def chunk_sequence(seed: int, c: int) -> np.random.SeedSequence:
    """Random state of chunk ``c``: ``SeedSequence(seed, spawn_key=(c,))``, whoever runs it.

    :func:`~prospect_sbi.simulate` draws chunk ``c`` with ``default_rng`` of it.
    """
    import numpy as np

    return np.random.SeedSequence(int(seed), spawn_key=(int(c),))


def chunk_seed(seed: int, c: int) -> int:
    """One integer seed (< 2**32) for chunk ``c``, from :func:`chunk_sequence` (pixel fits).

    Examples
    --------
    >>> chunk_seed(0, 1) == chunk_seed(0, 1) != chunk_seed(0, 2)
    True
    """
    return int(chunk_sequence(seed, c).generate_state(1)[0])


def row_seed(seed: int, rows: slice) -> int:
    """Seed of the chunk of catalogue rows ``rows``: ``seed`` plus its first row."""
    return int(seed) + int(rows.start)


class ChunkStore:
    """Finished chunks of a resumable job: one file per chunk in a folder, under a fingerprint.

    The folder's ``manifest.json`` keeps the SHA-256 of ``fingerprint`` (the job's inputs and
    options), the fingerprint itself and ``extra``. A rerun with the same fingerprint finds
    the chunks already done and computes only the others; a folder left by a job with another
    fingerprint is refused (or, where ``on_mismatch`` returns, emptied and started again).
    Each chunk is written atomically (:func:`atomic_path`), so a killed job leaves whole
    chunks only.

    Parameters
    ----------
    folder : path-like
        Where the chunks live (created).
    fingerprint : dict or None
        JSON-able description of everything that changes a chunk's result; None for a
        scratch folder without a manifest (a job that is not resumed, or whose manifest
        another store of the same folder keeps).
    suffix : str
        File suffix of a chunk (``".npz"``, ``".ecsv"``).
    name : str
        Format of a chunk's file name from its number (``"part{:06d}"``).
    extra : dict, optional
        More JSON-able entries of a new manifest that are not part of the fingerprint (a
        rerun reads them back from :attr:`manifest`).
    on_mismatch : callable, optional
        ``on_mismatch(found)`` with the manifest found (a dict) when its fingerprint differs:
        raise the caller's error, or return to discard the old chunks (it may update
        ``extra`` first, e.g. to keep a setting of the old run). Default: a ValueError.
    sync : bool
        Force each file to disk before its rename (:func:`atomic_path`).

    Attributes
    ----------
    manifest : dict
        The manifest in force (``key``, ``inputs`` and ``extra``'s entries); empty without a
        fingerprint.

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
        self,
        folder: str | os.PathLike,
        fingerprint: dict[str, Any] | None,
        suffix: str,
        *,
        name: str = "part{:06d}",
        extra: dict[str, Any] | None = None,
        on_mismatch: Callable[[dict], Any] | None = None,
        sync: bool = False,
    ) -> None:
        self.folder, self.suffix, self.name, self.sync = Path(folder), suffix, name, sync
        self.folder.mkdir(parents=True, exist_ok=True)
        self.manifest: dict[str, Any] = {}
        if fingerprint is None:
            return
        text = json.dumps(fingerprint, sort_keys=True, default=str)
        key = hashlib.sha256(text.encode()).hexdigest()
        path = self.folder / "manifest.json"
        if path.exists():
            found = json.loads(path.read_text())
            if found.get("key") == key:
                self.manifest = found
                return
            if on_mismatch is None:
                raise ValueError(
                    f"{self.folder} holds an unfinished run with other inputs or "
                    "options; remove it or rerun with the same ones"
                )
            on_mismatch(found)
            shutil.rmtree(self.folder)  # chunks the caller chose to discard
            self.folder.mkdir(parents=True)
        self.manifest = {"key": key, "inputs": json.loads(text), **(extra or {})}
        with atomic_path(path, overwrite=True, sync=sync) as tmp:
            tmp.write_text(json.dumps(self.manifest))

    def path(self, c: int) -> Path:
        """File of chunk ``c``."""
        return self.folder / f"{self.name.format(int(c))}{self.suffix}"

    def __contains__(self, c: int) -> bool:
        return self.path(c).exists()

    def write(self, c: int, write: Callable[[Path], Any]) -> None:
        """Keep chunk ``c``: ``write(tmp)`` writes it to a temporary path, renamed when done."""
        with atomic_path(self.path(c), overwrite=True, sync=self.sync) as tmp:
            write(tmp)

    def save(self, c: int, **arrays: Any) -> None:
        """Keep chunk ``c`` as an ``.npz`` of ``arrays`` (:func:`numpy.savez`), atomically."""
        import numpy as np

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        self.write(c, write)

    def load(self, c: int, read: Callable[[dict], Any] | None = None) -> Any:
        """Read chunk ``c`` of :meth:`save`: its arrays, or ``read(arrays)``.

        Raises
        ------
        ValueError
            A file that cannot be read (or that ``read`` fails on): one line, naming the
            folder to remove so that its chunks are computed again.
        """
        import numpy as np

        path = self.path(c)
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in f.files}
            return arrays if read is None else read(arrays)
        except Exception as err:  # a damaged zip raises zipfile.BadZipFile, EOFError, ...
            raise ValueError(
                f"{path} is damaged ({type(err).__name__}: {err}); remove "
                f"{self.folder} to fit its chunks again"
            ) from None

    def remove(self) -> None:
        """Delete the folder (once the job's output is written)."""
        shutil.rmtree(self.folder, ignore_errors=True)


def in_order(
    submit: Callable[[Any], Any], items: Iterable[tuple[Any, Any]], width: int
) -> Iterator[tuple[Any, Any]]:
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


def is_dask(executor: object) -> bool:
    """Whether ``executor`` is a ``dask.distributed.Client``."""
    return type(executor).__module__.startswith("distributed")


def n_workers(executor: object) -> int:
    """Workers of a dask client (its threads) or of a ``concurrent.futures`` executor."""
    if hasattr(executor, "nthreads"):  # dask.distributed.Client
        return max(1, sum(executor.nthreads().values()))
    return max(1, getattr(executor, "_max_workers", os.cpu_count() or 1))


def run_ordered(
    fn: Callable[..., Any],
    items: Iterable[tuple[Any, tuple]],
    executor: object = None,
    *,
    shared: tuple = (),
    width: int | None = None,
) -> Iterator[tuple[Any, Any]]:
    """Yield ``(key, fn(*shared, *args))`` for each ``(key, args)`` of ``items``, in order.

    Parameters
    ----------
    fn : callable
        A module-level function (it is pickled for other processes).
    items : iterable of (key, tuple)
        The chunks: a key yielded back, and ``fn``'s own arguments.
    executor : None, int, concurrent.futures.Executor or dask.distributed.Client
        Where ``fn`` runs: here, one call after the other (None); in that many local
        processes (int, spawned, shut down at the end); on any executor with
        ``submit(fn, *args)``; on a dask client's workers.
    shared : tuple
        Arguments before each item's, the same for all: sent once per worker on dask
        (scattered; None and booleans are passed as they are), with each task otherwise.
    width : int, optional
        Tasks in flight (default twice the executor's workers): bounds the results held.

    Yields
    ------
    (key, result)
        In the order of ``items``; tasks still in flight when the consumer stops are
        cancelled.

    Raises
    ------
    ValueError
        An ``executor`` of none of these kinds (e.g. a scheduler's address, which
        :func:`dask_client` connects to), at the first item.
    """
    if not (executor is None or isinstance(executor, int) or hasattr(executor, "submit")):
        raise ValueError(
            f"the executor (client=, executor=) must be None, a number of processes, a "
            f"concurrent.futures executor or a dask.distributed Client; got "
            f"{type(executor).__name__} {executor!r}"
        )
    if executor is None:
        for key, args in items:
            yield key, fn(*shared, *args)
        return
    owned = None
    if isinstance(executor, int):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        owned = executor = ProcessPoolExecutor(max_workers=executor, mp_context=ctx)
    try:
        if is_dask(executor):
            # in a list, so that a dict or a list is sent as one object, not item by item
            sent = tuple(
                x if x is None or isinstance(x, bool) else executor.scatter([x], broadcast=True)[0]
                for x in shared
            )

            def submit(args: tuple) -> Any:
                return executor.submit(fn, *sent, *args, pure=False)
        else:

            def submit(args: tuple) -> Any:
                return executor.submit(fn, *shared, *args)

        yield from in_order(submit, items, width or 2 * n_workers(executor))
    finally:
        if owned is not None:
            owned.shutdown(cancel_futures=True)


def check_sendable(sps: Any, executor: object) -> None:
    """Refuse, in one line, an SPS source that cannot be sent to ``executor``'s workers.

    python-fsps's ``StellarPopulation`` does not pickle: sent to a worker it would fail there,
    in a pickling traceback, after the work before it. Nothing to check without an executor.

    Raises
    ------
    ValueError
        ``executor`` is not None and ``sps`` does not pickle.
    """
    if executor is None or sps is None:
        return
    try:
        pickle.dumps(sps)
    except Exception as err:
        raise ValueError(
            f"the SPS source {type(sps).__name__} cannot be sent to workers "
            f"({type(err).__name__}: {err}); fit without workers (client=None, no "
            "--workers/--scheduler) or with BC03MilesBasis"
        ) from None


def set_torch_threads(threads: int | None) -> None:
    """``torch.set_num_threads(threads)`` where a chunk runs (None or 0: leave the process's).

    Workers run one thread each (as many workers as cores); a chunk run in the caller's
    process keeps its threads.
    """
    if threads:
        import torch

        torch.set_num_threads(int(threads))


#: dask's setting that, left as dask sets it (``MALLOC_TRIM_THRESHOLD_=65536`` in every
#: worker), turns off glibc's adaptive mmap threshold: each large temporary array of the
#: forward model is then mapped and unmapped anew, and its pages faulted in again. Measured on
#: 2 local workers (refinement of 1188 JADES rows): 89 s with it, 45 s without, as 2
#: processes of a ``concurrent.futures`` pool (43 s); 60 s in one process.
DASK_TRIM_SETTING = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def dask_client(workers: int = 0, scheduler: str | None = None) -> Any:
    """Connect to a dask scheduler at ``scheduler``, or start ``workers`` local processes.

    Returns the ``distributed.Client``, or None when neither is given. The local workers
    start without dask's ``MALLOC_TRIM_THRESHOLD_`` (:data:`DASK_TRIM_SETTING`), unless it is
    set in the environment; those of a scheduler are started by whoever runs it, and a warning
    says when they have it.

    Raises
    ------
    ImportError
        dask.distributed is not installed; the message names the extra that installs it.

    Warns
    -----
    UserWarning
        The scheduler's workers run with ``MALLOC_TRIM_THRESHOLD_`` set (up to 2x slower).
    """
    if not (workers or scheduler):
        return None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        what = "--scheduler" if scheduler else "--workers"
        raise ImportError(
            f"{what} needs dask.distributed, which is not installed: "
            'pip install "prospect-sbi[dask]"'
        ) from None
    if scheduler:
        client = Client(scheduler)
        seen = client.run(os.getenv, "MALLOC_TRIM_THRESHOLD_").values()  # in each worker
        trimmed = [v for v in seen if v is not None]
        if trimmed:
            warnings.warn(
                f"{len(trimmed)} of the {len(seen)} workers at {scheduler} run with "
                f"MALLOC_TRIM_THRESHOLD_={trimmed[0]} "
                "(dask's default), which makes the forward model up to 2x slower; start them "
                f"with {DASK_TRIM_SETTING} set to null (docs/scaling.md)",
                UserWarning,
                stacklevel=2,
            )
        return client
    import dask

    with dask.config.set({DASK_TRIM_SETTING: None}):  # None: not set (dask's own rule)
        cluster = LocalCluster(
            n_workers=int(workers), threads_per_worker=1, dashboard_address=None
        )
    return Client(cluster)
