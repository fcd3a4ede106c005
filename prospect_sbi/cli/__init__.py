"""``prospect-sbi`` command line: one subcommand per stage, thin over the Python API.

Every subcommand takes ``--config RUN.toml`` (or ``.yaml``): a run file of options in the
spirit of Prospector's ``run_params``; options given on the command line win. Errors in the
input (and a missing optional dependency) are one line on stderr and exit code 2; an
interrupted command exits with 130 and resumes when rerun. An output path of the wrong kind
(a file where a folder goes, a suffix the command cannot write) is refused before any work.
Warnings are one line each, ``prospect-sbi <command>: warning: <step>: ...``, without the
Python source line, and on a line of their own while a progress bar runs.
"""

from __future__ import annotations

__all__ = ["OUTPUTS", "HelpFormatter", "check_output", "main"]

import argparse
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

#: subcommand -> (module, help)
COMMANDS = {
    "predict": ("simulate", "JADES photometry of a Prospector template"),
    "simulate": ("simulate", "simulate a training set (HDF5) from a template's priors"),
    "train": ("train", "train an amortised posterior on a training set"),
    "fit": ("fit", "fit a photometric catalogue (FITS/ECSV) with an estimator"),
    "zeropoints": ("zeropoints", "per-band zero-point corrections from spectroscopic redshifts"),
    "map": ("maps", "fit every pixel of multi-band images: FITS maps and PNGs"),
    "survey": ("survey", "map every galaxy of a field: mosaics, segmentation map, catalogue"),
    "recalibrate": ("recalibrate", "fit an estimator's calibration maps on fresh mocks"),
    "validate": ("validate", "calibration report of an estimator on held-out mocks"),
    "compare": ("compare", "fit catalogue objects with SBI and dynesty and compare"),
    "quickstart": ("quickstart", "pretrained estimator: calibration, real catalogue, maps"),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` that shows every option's default (lists space-separated), not ``None``/flags."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or "(default" in text
            or default is None
            or default is argparse.SUPPRESS
            or action.nargs == 0
            or not (action.option_strings or action.nargs in ("?", "*"))
        ):
            return text
        if isinstance(default, list | tuple):
            default = " ".join(str(d) for d in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="prospect-sbi",
        description="Amortised simulation-based inference for Prospector SED models.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"prospect-sbi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    subparsers = {}
    for name, (module_name, help_) in COMMANDS.items():
        module = import_module(f".{module_name}", __name__)
        p = sub.add_parser(name, help=help_, formatter_class=HelpFormatter)
        getattr(module, f"add_{name}_args")(p)
        p.add_argument(
            "--config",
            metavar="RUN_FILE",
            help="TOML or YAML file of options (command-line options win)",
        )
        p.set_defaults(func=getattr(module, f"run_{name}"))
        subparsers[name] = p
    return parser, subparsers


#: Options that count things (draws, rows per chunk, ...): each must be an integer >= 1.
_COUNTS = (
    "n",
    "batch_size",
    "chunk_size",
    "draws",
    "epochs",
    "mocks",
    "nlive",
    "bins",
    "knots",
    "nbins",
    "max_rows",
    "maxiter",
    "maxcall",
    "walks",
    "iterations",
)


def _check_counts(sub: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a count below 1 (``fit --chunk-size 0`` said "range() arg 3 must not be zero")."""
    for action in sub._actions:
        value = getattr(args, action.dest, None)
        if (
            action.dest in _COUNTS
            and action.option_strings
            and value is not None
            and (isinstance(value, bool) or not isinstance(value, int) or value < 1)
        ):
            raise ValueError(f"{action.option_strings[-1]} must be an integer >= 1; got {value!r}")


#: subcommand -> what its ``out`` must be: a folder, or a file with one of these suffixes.
OUTPUTS: dict[str, str | tuple[str, ...]] = {
    "map": "folder",
    "survey": "folder",
    "validate": "folder",
    "compare": "folder",
    "quickstart": "folder",
    "simulate": (".h5", ".hdf5"),
    "train": (".sbi",),
    "recalibrate": (".sbi",),
    "fit": (".ecsv", ".fits", ".fit", ".fts"),
    "predict": (".ecsv",),
    "zeropoints": (".json",),
}


def check_output(command: str, out: Any) -> None:
    """Refuse, before any work, an output path of the wrong kind for ``command``.

    Raises
    ------
    ValueError
        A folder output that exists as a file (``validate -o report.txt``), a file output
        that is a folder, or a file suffix the command does not write (``fit -o x.txt``),
        naming the suffixes it does.
    """
    kind = OUTPUTS.get(command)
    if out is None or kind is None:
        return
    path = Path(out)
    if kind == "folder":
        if path.exists() and not path.is_dir():
            raise ValueError(
                f"-o {out} is a file; {command} writes a folder of outputs there: "
                "give a folder (new or existing)"
            )
        return
    flag = (
        "--out" if command == "predict" else ("OUT" if command in ("simulate", "train") else "-o")
    )
    if path.suffix.lower() not in kind:
        raise ValueError(
            f"{flag} {out}: {command} writes {' or '.join(kind)} files; got "
            f"{path.suffix or 'no suffix'!r}"
        )
    if path.is_dir():
        raise ValueError(f"{flag} {out} is a folder; {command} writes one {kind[0]} file")


def _warning_line(command: str) -> Any:
    """``warnings.formatwarning`` for the command line: one line, no Python source line."""

    def format_warning(
        message: Any, category: type, filename: str, lineno: int, line: str | None = None
    ) -> str:
        return f"prospect-sbi {command}: warning: {message}\n"

    return format_warning


def _show_warning(
    message: Any,
    category: type,
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """Show a warning through ``tqdm.write``: any progress bar leaves its line first.

    Without it a warning raised while a bar ran was appended to the bar's line.
    """
    from tqdm.auto import tqdm

    text = warnings.formatwarning(message, category, filename, lineno, line)
    tqdm.write(text, file=sys.stderr if file is None else file, end="")


def _apply_run_file(sub: argparse.ArgumentParser, path: str, command: str) -> None:
    from .common import check_run_options, read_run_file

    options = read_run_file(path, command)
    check_run_options(options, sub, path, command)
    sub.set_defaults(**options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prospect-sbi`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, subparsers = _build_parser()
    args = parser.parse_args(argv)
    formatwarning, showwarning = warnings.formatwarning, warnings.showwarning
    warnings.formatwarning, warnings.showwarning = _warning_line(args.command), _show_warning
    try:
        if args.config:
            _apply_run_file(subparsers[args.command], args.config, args.command)
            args = parser.parse_args(argv)
        _check_counts(subparsers[args.command], args)
        check_output(args.command, getattr(args, "out", None))
        return args.func(args)
    except (ValueError, OSError, ImportError) as err:
        print(f"prospect-sbi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"prospect-sbi {args.command}: interrupted; rerun the same command to resume",
            file=sys.stderr,
        )
        return 130
    finally:
        warnings.formatwarning, warnings.showwarning = formatwarning, showwarning
