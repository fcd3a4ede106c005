"""``prospect-sbi`` command line: one subcommand per stage, thin over the Python API.

Every subcommand takes ``--config RUN.toml`` (or ``.yaml``): a run file of options in the
spirit of Prospector's ``run_params``; options given on the command line win. Errors in the
input (and a missing optional dependency) are one line on stderr and exit code 2; an
interrupted command exits with 130 and resumes when rerun.
"""

from __future__ import annotations

__all__ = ["main"]

import argparse
import sys
from collections.abc import Sequence
from importlib import import_module

#: subcommand -> (module, help)
COMMANDS = {
    "predict": ("simulate", "JADES photometry of a Prospector template"),
    "simulate": ("simulate", "simulate a training set (HDF5) from a template's priors"),
    "train": ("train", "train an amortised posterior on a training set"),
    "fit": ("fit", "fit a photometric catalogue (FITS/ECSV) with an estimator"),
    "map": ("maps", "fit every pixel of multi-band images: FITS maps and PNGs"),
    "survey": ("survey", "map every galaxy of a field: mosaics, segmentation map, catalogue"),
    "recalibrate": ("recalibrate", "fit an estimator's calibration maps on fresh mocks"),
    "validate": ("validate", "calibration report of an estimator on held-out mocks"),
    "compare": ("compare", "fit catalogue objects with SBI and dynesty and compare"),
    "quickstart": ("quickstart", "pretrained estimator: calibration, real catalogue, maps"),
}


def _build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="prospect-sbi",
        description="Amortised simulation-based inference for Prospector SED models.",
    )
    parser.add_argument("--version", action="version", version=f"prospect-sbi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    subparsers = {}
    for name, (module_name, help_) in COMMANDS.items():
        module = import_module(f".{module_name}", __name__)
        p = sub.add_parser(name, help=help_)
        getattr(module, f"add_{name}_args")(p)
        p.add_argument("--config", metavar="RUN_FILE",
                       help="TOML or YAML file of options (command-line options win)")  # fmt: skip
        p.set_defaults(func=getattr(module, f"run_{name}"))
        subparsers[name] = p
    return parser, subparsers


#: Options that count things (draws, rows per chunk, ...): each must be an integer >= 1.
_COUNTS = ("n", "batch_size", "chunk_size", "draws", "epochs", "mocks", "nlive", "bins",
           "knots", "nbins", "max_rows")  # fmt: skip


def _check_counts(sub: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a count below 1 (``fit --chunk-size 0`` said "range() arg 3 must not be zero")."""
    for action in sub._actions:
        value = getattr(args, action.dest, None)
        if action.dest in _COUNTS and action.option_strings and value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1):  # fmt: skip
            raise ValueError(f"{action.option_strings[-1]} must be an integer >= 1; "
                             f"got {value!r}")  # fmt: skip


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
    try:
        if args.config:
            _apply_run_file(subparsers[args.command], args.config, args.command)
            args = parser.parse_args(argv)
        _check_counts(subparsers[args.command], args)
        return args.func(args)
    except (ValueError, OSError, ImportError) as err:
        print(f"prospect-sbi {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prospect-sbi {args.command}: interrupted; rerun the same command to resume",
              file=sys.stderr)  # fmt: skip
        return 130
