"""Helpers shared by the subcommands: options, the estimator's model, catalogues, run files."""

from __future__ import annotations

__all__ = [
    "TEMPLATES",
    "add_err_floor_arg",
    "add_param_file_args",
    "add_photoz_refine_arg",
    "add_refine_args",
    "add_workers_args",
    "add_zeropoints_arg",
    "check_run_options",
    "dask_client",
    "estimator_model",
    "param_file",
    "param_file_sps",
    "read_catalog_zred",
    "read_run_file",
]

import argparse
import os
from pathlib import Path
from typing import Any

from .._io import dask_client  # the CLI's --workers/--scheduler

TEMPLATES = ("parametric_sfh", "continuity_sfh")


def add_err_floor_arg(parser: Any) -> None:
    """Add ``--err-floor``, the catalogue's error floor that :func:`read_catalog_zred` reads."""
    parser.add_argument(
        "--err-floor",
        type=float,
        default=0.0,
        help="fractional error floor added in quadrature, err = hypot(err, "
        "FRAC * flux), e.g. 0.05 for integrated photometry",
    )


def add_workers_args(parser: Any, what: str) -> None:
    """Add ``--workers`` and ``--scheduler`` (:func:`dask_client`): where ``what`` run."""
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help=f"local dask workers: {what} on worker processes (0: run in this process)",
    )
    parser.add_argument("--scheduler", help="address of a dask.distributed scheduler")


def add_zeropoints_arg(parser: Any, what: str) -> None:
    """Add ``--zeropoints``: a file of ``prospect-sbi zeropoints`` applied to ``what``."""
    parser.add_argument(
        "--zeropoints",
        metavar="ZP.json",
        help=f"multiply every band's fluxes and errors {what} by its factor in this file "
        "(`prospect-sbi zeropoints`), e.g. for photometric redshifts",
    )


def add_refine_args(parser: Any, default: str) -> None:
    """Add ``--refine`` and ``--likelihood``, checked when the command runs (run files too)."""
    parser.add_argument(
        "--refine",
        default=default,
        metavar="{never,always,auto}",
        help="replace the amortised draws by the exact posterior (importance "
        "sampling with the likelihood, ~0.1-0.5 s an object) for every "
        "object, none, or those that need it: total S/N >= 20, or badly "
        "fitted by the flow's draws",
    )
    parser.add_argument(
        "--likelihood",
        default="flux",
        metavar="{flux,noise}",
        help="likelihood of the refinement: flux (Gaussian, real data) or "
        "noise (the estimator's noise model, for its own mocks)",
    )


def add_photoz_refine_arg(parser: Any) -> None:
    """Add ``--photoz-refine``: how the photo-z posteriors of ``--zred infer`` are drawn."""
    parser.add_argument(
        "--photoz-refine",
        default="auto",
        metavar="{never,always,auto}",
        help="draw the photo-z posteriors (--zred infer, --photoz) from the exact "
        "posterior where the flow's need it (auto, nearly every galaxy: ~0.25 s each, half "
        "the flow's scatter on real galaxies), always, or never (the flow alone, ms)",
    )


def add_param_file_args(parser: Any, sps: bool = True) -> None:
    """Add ``--param-file`` (a Prospector parameter file) and, with ``sps``, ``--sps``."""
    parser.add_argument(
        "--param-file",
        metavar="PARAM_FILE.py",
        default=None,
        help="Prospector parameter file (build_model, build_obs, build_sps, "
        "run_params, as Prospector's demos write them; its main block "
        "is not run): its model instead of a template, checked against "
        "the estimator's (default: none; the estimator's stored "
        "model)",
    )
    if sps:
        parser.add_argument(
            "--sps",
            choices=("builtin", "param-file"),
            default="builtin",
            help="SPS source: builtin (prospect-sbi's offline BC03MilesBasis) "
            "or param-file (the file's build_sps, e.g. FSPS; needs "
            "$SPS_HOME)",
        )


def param_file(args: argparse.Namespace) -> Any:
    """Return the :class:`~prospect_sbi.paramfile.ParamFile` of ``--param-file``, or None."""
    from ..paramfile import ParamFile

    path = getattr(args, "param_file", None)
    return None if path is None else ParamFile(path)


def param_file_sps(args: argparse.Namespace, pf: Any = None) -> Any:
    """Return the SPS source ``--sps`` names (``param-file`` needs ``--param-file``)."""
    source = getattr(args, "sps", "builtin")
    if source == "param-file" and pf is None:
        raise ValueError("--sps param-file needs --param-file")
    if pf is not None:
        return pf.sps(source)
    from ..sources import BC03MilesBasis

    return BC03MilesBasis()


def estimator_model(post: Any, pf: Any = None) -> Any:
    """Return the estimator's model, rebuilt one way by every subcommand.

    The parameter file's model when one is given (refused, naming the first difference, when
    it is not the estimator's), else the one rebuilt from the estimator's stored
    specification (:meth:`~prospect_sbi.posterior.AmortizedPosterior.resolve_model`).
    """
    return post.resolve_model(None if pf is None else pf.model())


def read_catalog_zred(args: argparse.Namespace, post: Any) -> tuple[Any, str | None]:
    """Read ``args.catalog`` in the estimator's bands, with the redshift Prospector would use.

    The catalogue options are ``fit``'s and ``compare``'s (``--unit``, ``--flux-format``,
    ``--err-format``, ``--id-column``, ``--err-floor``). The ``--zred-column`` for an
    estimator conditioned on the redshift; when the catalogue has no such column and the
    estimator's model fixes ``zred``, that redshift for every row.

    Returns
    -------
    catalog : prospect_sbi.catalog.Catalog
    column : str or None
        The redshift column read (None: the model's redshift, or an estimator inferring it).
    """
    import numpy as np

    from ..catalog import read_catalog

    path, options = (
        args.catalog,
        {
            key: getattr(args, key)
            for key in ("unit", "flux_format", "err_format", "id_column", "err_floor")
        },
    )
    zcol = args.zred_column if post.redshift == "known" else None
    try:
        return read_catalog(path, post.filters, zred_column=zcol, **options), zcol
    except ValueError as err:
        if zcol is None or post.fixed_zred is None or "no redshift column" not in str(err):
            raise
    catalog = read_catalog(path, post.filters, zred_column=None, **options)
    catalog.zred = np.full(len(catalog.flux), post.fixed_zred)
    return catalog, None


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
            raise ValueError(
                f"{path}: YAML run files need PyYAML (pip install pyyaml); "
                "or write the run file as TOML"
            ) from err

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
        raise ValueError(
            f"{path}: {command!r} is {section!r}; it must be a table of options for "
            f"the {command} command"
        )
    options = {k: v for k, v in data.items() if not isinstance(v, dict)}
    options.update(section)
    return {k.replace("-", "_"): v for k, v in options.items()}


def _expected(action: argparse.Action) -> tuple[str, Any]:
    """Say what a run-file value of ``action`` must be: a name and a check of one item."""
    if action.nargs == 0:  # store_true, store_false
        return "true or false", lambda v: isinstance(v, bool)
    kind = action.type
    if kind is int:
        return "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)
    if kind is float:
        return "a number", lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    return "a string", lambda v: isinstance(v, str)


def check_run_options(
    options: dict[str, Any], parser: argparse.ArgumentParser, path: str | os.PathLike, command: str
) -> None:
    """Refuse run-file values of the wrong type or outside an option's choices, in one line.

    A command-line option's value is converted by its ``type``; a run file's arrives as TOML
    or YAML typed it, and ``draws = 2.5`` or ``seed = "1"`` would otherwise be used as is.

    Raises
    ------
    ValueError
        ``RUN_FILE: --draws must be an integer; got 2.5 (float)``, an unknown option, a value
        not among the choices, a list for a single value or the reverse.
    """
    actions = {a.dest: a for a in parser._actions if a.option_strings}
    unknown = sorted(set(options) - set(actions))
    if unknown:
        raise ValueError(f"{path}: unknown option(s) for {command}: {', '.join(unknown)}")
    for dest, value in options.items():
        action = actions[dest]
        flag = action.option_strings[-1]
        what, ok = _expected(action)
        many = action.nargs in ("+", "*") or (isinstance(action.nargs, int) and action.nargs > 0)
        if many != isinstance(value, list):
            want = f"a list, each {what}" if many else what
            raise ValueError(
                f"{path}: {flag} must be {want}; got {value!r} ({type(value).__name__})"
            )
        for item in value if many else [value]:
            if value is None and action.default is None:
                continue
            if not ok(item):
                raise ValueError(
                    f"{path}: {flag} must be {what}; got {item!r} ({type(item).__name__})"
                )
            if action.choices is not None and item not in action.choices:
                raise ValueError(
                    f"{path}: {flag} must be one of {list(action.choices)}; got {item!r}"
                )
