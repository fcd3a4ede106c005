"""Helpers shared by the subcommands: estimator lookup, run files, resumable chunked jobs."""

from __future__ import annotations

__all__ = ["TEMPLATES", "dask_client", "estimator_file", "file_id", "finish_chunks",
           "read_run_file", "run_chunks"]

import os
import shutil
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from .._io import ChunkStore

TEMPLATES = ("parametric_sfh", "continuity_sfh")


def file_id(path: str | os.PathLike) -> dict[str, Any]:
    """Identify an input file for a resumable job: resolved path, size, modification time."""
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


def dask_client(workers: int = 0, scheduler: str | None = None) -> Any:
    """Connect to a dask scheduler at ``scheduler``, or start ``workers`` local processes.

    Returns the ``distributed.Client``, or None when neither is given.

    Raises
    ------
    ImportError
        dask.distributed is not installed; the message names the extra that installs it.
    """
    if not (workers or scheduler):
        return None
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        what = "--scheduler" if scheduler else "--workers"
        raise ImportError(f"{what} needs dask.distributed, which is not installed: "
                          'pip install "prospect-sbi[dask]"') from None  # fmt: skip
    if scheduler:
        return Client(scheduler)
    return Client(LocalCluster(n_workers=int(workers), threads_per_worker=1,
                               dashboard_address=None))  # fmt: skip


def estimator_file(name: str) -> Path:
    """Return the file of an estimator given by path or pretrained name."""
    from ..pretrained import PRETRAINED, pretrained_path

    return pretrained_path(name) if name in PRETRAINED else Path(name)


def read_run_file(path: str | os.PathLike, command: str) -> dict[str, Any]:
    """Options for ``command`` from a TOML or YAML run file.

    Top-level keys apply to every subcommand; a table named after the subcommand
    (``[train]``) overrides them. Keys are option names with ``-`` or ``_``.
    """
    path = Path(path)
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ModuleNotFoundError as err:
            raise ValueError(f"{path}: YAML run files need PyYAML (pip install pyyaml); "
                             "or write the run file as TOML") from err

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            what = getattr(err, "problem", None) or type(err).__name__
            raise ValueError(f"{path} is not valid YAML{where}: {what}") from None
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a run file holds a table of options")
    section = data.get(command, {})
    if not isinstance(section, dict):
        raise ValueError(f"{path}: {command!r} is {section!r}; it must be a table of options for "
                         f"the {command} command")  # fmt: skip
    options = {k: v for k, v in data.items() if not isinstance(v, dict)}
    options.update(section)
    return {k.replace("-", "_"): v for k, v in options.items()}


def run_chunks(
    n: int,
    chunk_size: int,
    out: Path,
    fingerprint: dict[str, Any],
    work: Callable[[slice], Any],
    progress: bool = True,
) -> list[Any]:
    """Run ``work`` on consecutive row slices, keeping each result so a rerun resumes.

    Each result is an astropy Table, written atomically as ECSV to ``<out>.parts/``
    (:class:`prospect_sbi._io.ChunkStore`). A rerun with the same ``fingerprint`` (inputs and
    options) reads the chunks already done and computes the rest; another fingerprint is
    refused. Returns the tables in order; the parts are removed by :func:`finish_chunks` once
    the caller has written its output.

    Raises
    ------
    ValueError
        ``chunk_size < 1``, or parts of a run with another fingerprint.
    """
    from astropy.table import Table
    from tqdm.auto import tqdm

    if int(chunk_size) < 1:
        raise ValueError(f"chunk size must be a positive integer; got {chunk_size}")
    store = ChunkStore(out.with_name(out.name + ".parts"), fingerprint, ".ecsv")
    tables = []
    starts = range(0, n, chunk_size)
    for c, start in enumerate(tqdm(starts, desc=out.name, unit="chunk", disable=not progress)):
        if c in store:
            tables.append(Table.read(store.path(c), format="ascii.ecsv"))
            continue
        table = work(slice(start, min(start + chunk_size, n)))
        store.write(c, partial(table.write, format="ascii.ecsv"))
        tables.append(table)
    return tables


def finish_chunks(out: Path) -> None:
    """Remove the parts of a finished :func:`run_chunks` job."""
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)
