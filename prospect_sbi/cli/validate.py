"""``prospect-sbi validate``: the calibration report of an estimator."""

from __future__ import annotations

__all__ = ["add_validate_args", "run_validate"]

import argparse

from .common import add_param_file_args


def add_validate_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi validate``."""
    parser.description = (
        "Calibration report of an estimator on held-out mocks of its own model: per label "
        "R^2, bias, scatter, outlier fraction, expected coverage, TARP, SBC rank histograms "
        "with p-values, predicted-vs-true plots; optionally the same on misspecified mocks "
        "(another SFH prior, Calzetti dust, no nebular emission) with the share the "
        "posterior-predictive check flags. Writes PNGs, ECSV tables and report.md. Mock "
        "simulations are kept in OUT/mocks, so a rerun reuses them."
    )
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument(
        "--testset",
        help="held-out simulations of the estimator's model (default: simulate new mocks)",
    )
    parser.add_argument("--mocks", type=int, default=1000, help="objects per test set")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per object")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mocks and draws")
    parser.add_argument(
        "--misspecification",
        nargs="*",
        metavar="KIND",
        help="also test on misspecified mocks: sfh, dust, nebular (no KIND: all three)",
    )
    parser.add_argument(
        "--no-ppc", action="store_true", help="skip the posterior-predictive check"
    )
    add_param_file_args(parser)


def run_validate(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi validate``."""
    from ..validate import validate
    from .common import param_file, param_file_sps

    kinds = args.misspecification
    miss = False if kinds is None else (kinds or True)
    pf = param_file(args)
    sps = None if args.sps == "builtin" else param_file_sps(args, pf)
    report = validate(
        args.estimator,
        args.out,
        testset=args.testset,
        n_mocks=args.mocks,
        draws=args.draws,
        seed=args.seed,
        misspecification=miss,
        ppc=not args.no_ppc,
        model=None if pf is None else pf.model(),
        sps=sps,
    )
    print(report.summary_table())
    print(f"wrote {args.out}/report.md and its PNGs")
    return 0
