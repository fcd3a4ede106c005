"""``prospect-sbi compare``: one catalogue object fitted with SBI and with dynesty."""

from __future__ import annotations

__all__ = ["add_compare_args", "run_compare"]

import argparse
from pathlib import Path

from .common import add_err_floor_arg, add_param_file_args
from .train import add_catalog_args

#: Without ``--refine``, medians this many dynesty sigmas apart get a hint to refine: the best
#: fits of the refined draws and of dynesty tell which sampler missed a mode.
HINT_SIGMA = 3.0

#: :data:`prospect_sbi.fitting.comparison.DYNESTY_DEFAULTS` (not imported: ``--help`` stays fast).
DYNESTY = {
    "nested_nlive_init": 200,
    "nested_dlogz_init": 0.2,
    "nested_bound": "multi",
    "nested_sample": "rwalk",
    "nested_walks": 16,
}


def add_compare_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi compare``."""
    parser.description = (
        "Fit catalogue objects with the estimator and with dynesty (through Prospector, "
        "with the estimator's physics) and compare the posteriors per parameter: shift of "
        "the median in dynesty sigmas, ratio of 68% widths, Wasserstein distance, wall "
        "times and speed-up. Writes a table and a corner plot (titled with the id, redshift "
        "and timings) per object; objects already compared are skipped when rerun. dynesty "
        "runs one static pass (Prospector's run_dynesty with no dynamic batches) and shows "
        "its progress on stderr."
    )
    parser.add_argument("catalog", help="catalogue table")
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument(
        "--rows", type=int, nargs="+", help="catalogue rows, from 0 (default: row 0 unless --ids)"
    )
    parser.add_argument(
        "--ids", nargs="+", help="objects by their value in --id-column, instead of --rows"
    )
    add_catalog_args(parser)
    parser.add_argument(
        "--zred-column",
        default="redshift",
        help="redshift column, for estimators conditioned on it",
    )
    parser.add_argument(
        "--id-column",
        default=None,
        help="id column, naming the outputs (default: the catalogue's 'id' column, any case; "
        "else the row number)",
    )
    add_err_floor_arg(parser)
    parser.add_argument(
        "--likelihood",
        choices=("flux", "noise"),
        default="flux",
        help="flux: Gaussian (real data); noise: the noise model",
    )
    parser.add_argument("--draws", type=int, default=4000, help="SBI draws")
    parser.add_argument("--seed", type=int, default=0, help="seed of the SBI draws")
    dyn = parser.add_argument_group("dynesty (Prospector's nested_* run_params)")
    dyn.add_argument(
        "--nlive",
        type=int,
        default=DYNESTY["nested_nlive_init"],
        help="live points (nested_nlive_init)",
    )
    dyn.add_argument(
        "--dlogz",
        type=float,
        default=DYNESTY["nested_dlogz_init"],
        help="stop when the remaining evidence is below this (nested_dlogz_init)",
    )
    dyn.add_argument(
        "--maxiter", type=int, help="most iterations (nested_maxiter_init; default: no limit)"
    )
    dyn.add_argument(
        "--maxcall",
        type=int,
        help="most likelihood calls (nested_maxcall_init; default: no limit)",
    )
    dyn.add_argument(
        "--bound",
        choices=("none", "single", "multi", "balls", "cubes"),
        default=DYNESTY["nested_bound"],
        help="bounding of the live points (nested_bound)",
    )
    dyn.add_argument(
        "--sample",
        choices=("auto", "unif", "rwalk", "slice", "rslice"),
        default=DYNESTY["nested_sample"],
        help="how new points are drawn (nested_sample)",
    )
    dyn.add_argument(
        "--walks",
        type=int,
        default=DYNESTY["nested_walks"],
        help="random-walk steps per new point (nested_walks; rwalk, not the slice samplers)",
    )
    dyn.add_argument(
        "--no-progress", action="store_true", help="do not show dynesty's progress line on stderr"
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="also compare the SBI draws importance-weighted by the same "
        "likelihood (the exact posterior; a few seconds an object)",
    )
    add_param_file_args(parser)


def _rows(args: argparse.Namespace, ids: list, id_column: str | None) -> list[int]:
    """Catalogue rows of ``--rows``, or of ``--ids`` in ``id_column`` (checked); row 0."""
    if args.rows is not None and args.ids is not None:
        raise ValueError("give --rows or --ids, not both")
    if args.ids is None:
        rows = [0] if args.rows is None else list(args.rows)
        bad = [r for r in rows if not 0 <= r < len(ids)]
        if bad:
            what = f"row {bad[0]} is" if len(bad) == 1 else f"rows {', '.join(map(str, bad))} are"
            raise ValueError(f"{what} outside the catalogue (0..{len(ids) - 1})")
        return rows
    if id_column is None:
        raise ValueError(
            "--ids selects by an id column; the catalogue has no 'id': give --id-column"
        )
    where = {str(v): i for i, v in enumerate(ids)}
    missing = [i for i in args.ids if str(i) not in where]
    if missing:
        raise ValueError(f"id(s) {', '.join(missing)} not in column {id_column!r}")
    return [where[str(i)] for i in args.ids]


def run_compare(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi compare``."""
    import sys

    import numpy as np

    from .._io import write_table
    from ..fitting import compare
    from ..posterior import AmortizedPosterior
    from .common import estimator_model, param_file, param_file_sps, read_catalog_zred

    post = AmortizedPosterior.resolve(args.estimator)
    pf = param_file(args)
    model = estimator_model(post, pf)
    cat, _ = read_catalog_zred(args, post)
    rows = _rows(args, list(cat.ids), cat.id_column)
    dynesty = {
        "nested_nlive_init": args.nlive,
        "nested_dlogz_init": args.dlogz,
        "nested_maxiter_init": args.maxiter,
        "nested_maxcall_init": args.maxcall,
        "nested_bound": args.bound,
        "nested_sample": args.sample,
        "print_progress": not args.no_progress,
    }
    if args.walks != DYNESTY["nested_walks"]:  # else compare's own: none for slice samplers
        dynesty["nested_walks"] = args.walks
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sps = param_file_sps(args, pf)
    for row in rows:
        name = f"{cat.ids[row]}"
        table_path = out / f"compare_{name}.ecsv"
        if table_path.exists():
            print(f"{table_path} exists: skipped")
            continue
        obs = {"maggies": cat.flux[row], "maggies_unc": cat.err[row], "filters": post.filters}
        if cat.zred is not None:
            obs["zred"] = float(cat.zred[row])
        if not args.no_progress:
            print(f"object {name}: dynesty", file=sys.stderr)
        res = compare(
            obs,
            model,
            sps,
            post,
            n_draws=args.draws,
            seed=args.seed + row,
            likelihood=args.likelihood,
            plot=out / f"compare_{name}.png",
            refine=args.refine,
            title=f"object {name}",
            **dynesty,
        )
        if not args.no_progress:
            print(file=sys.stderr)  # ends dynesty's progress line
        res.table.meta.update(
            t_dynesty=res.t_dynesty,
            t_sbi=res.t_sbi,
            speedup=res.speedup,
            t_refine=res.t_refine,
            ess=res.ess,
            logz_dynesty=res.logz_dynesty,
            logz_refined=res.logz_refined,
            best_lnlike_dynesty=res.best_lnlike_dynesty,
            best_lnlike_refined=res.best_lnlike_refined,
            missed=res.missed,
            title=res.title,
            err_floor=args.err_floor,
        )
        write_table(table_path, res.table, overwrite=True)
        print(
            f"object {name}: dynesty {res.t_dynesty:.1f} s, SBI {1e3 * res.t_sbi:.1f} ms "
            f"(x{res.speedup:.3g})"
        )
        if args.refine:
            print(
                f"  SBI + importance sampling: {res.t_refine:.2f} s, ESS {res.ess:.0f}; log Z "
                f"{res.logz_refined:.2f} (dynesty {res.logz_dynesty:.2f}); best ln L "
                f"{res.best_lnlike_refined:.2f} (dynesty {res.best_lnlike_dynesty:.2f})"
            )
        for r in res.table:
            line = (
                f"  {r['param']:12s} |dmed|/sigma {abs(r['dmed_over_sigma']):6.2f}  width "
                f"ratio {r['width_ratio']:5.2f}  W1 {r['wasserstein']:.3f}"
            )
            if args.refine:
                line += (
                    f"  | refined {abs(r['is_dmed_over_sigma']):6.2f} "
                    f"{r['is_width_ratio']:5.2f} {r['is_wasserstein']:.3f}"
                )
            print(line)
        worst = float(np.max(np.abs(res.table["dmed_over_sigma"])))
        if not args.refine and worst > HINT_SIGMA:
            print(
                f"  medians up to {worst:.1f} dynesty sigmas apart: rerun with --refine (seconds "
                "an object) to tell whether dynesty or the estimator is off"
            )
    return 0
