"""Helpers shared by the subcommands: estimator lookup, run files, resumable chunked jobs."""

from __future__ import annotations

__all__ = ["TEMPLATES", "add_refine_args", "atomic_write_text", "estimator_file", "file_id",
           "finish_chunks", "read_run_file", "run_chunks"]

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import atomic_path

TEMPLATES = ("parametric_sfh", "continuity_sfh")


def add_refine_args(parser: Any, default: str) -> None:
    """Add ``--refine`` and ``--likelihood``, checked when the command runs (run files too)."""
    parser.add_argument("--refine", default=default, metavar="{never,always,auto}",
                        help="replace the amortised draws by the exact posterior (importance "
                             "sampling with the likelihood, ~0.1-0.5 s an object) for every "
                             "object, none, or those that need it: total S/N >= 20, or badly "
                             f"fitted by the flow's draws (default {default})")  # fmt: skip
    parser.add_argument("--likelihood", default="flux", metavar="{flux,noise}",
                        help="likelihood of the refinement: flux (Gaussian, real data; default) "
                             "or noise (the estimator's noise model, for its own mocks)")


def file_id(path: str | os.PathLike) -> dict[str, Any]:
    """Identify an input file for a resumable job: resolved path, size, modification time."""
    stat = os.stat(path)
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime": stat.st_mtime}


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

        data = yaml.safe_load(text) or {}
    else:
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib

        data = tomllib.loads(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a run file holds a table of options")
    options = {k: v for k, v in data.items() if not isinstance(v, dict)}
    options.update(data.get(command, {}))
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

    Each result is an astropy Table, written atomically as ECSV to ``<out>.parts/``. A rerun
    with the same ``fingerprint`` (inputs and options) reads the chunks already done and
    computes the rest; another fingerprint is refused. Returns the tables in order; the
    parts are removed by :func:`finish_chunks` once the caller has written its output.
    """
    from astropy.table import Table
    from tqdm.auto import tqdm

    parts = out.with_name(out.name + ".parts")
    parts.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()
    manifest = parts / "manifest.json"
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found["key"] != key:
            raise ValueError(f"{parts} holds an unfinished run with other inputs or options; "
                             "remove it or rerun with the same ones")  # fmt: skip
    else:
        atomic_write_text(manifest, json.dumps({"key": key, "inputs": fingerprint}, default=str))
    tables = []
    starts = range(0, n, chunk_size)
    for start in tqdm(starts, desc=out.name, unit="chunk", disable=not progress):
        part = parts / f"part{start // chunk_size:06d}.ecsv"
        if part.exists():
            tables.append(Table.read(part, format="ascii.ecsv"))
            continue
        table = work(slice(start, min(start + chunk_size, n)))
        with atomic_path(part, overwrite=True) as tmp:
            table.write(tmp, format="ascii.ecsv")
        tables.append(table)
    return tables


def finish_chunks(out: Path) -> None:
    """Remove the parts of a finished :func:`run_chunks` job."""
    shutil.rmtree(out.with_name(out.name + ".parts"), ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write text through a temporary file and a rename, so ``path`` is never half written."""
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(text)
