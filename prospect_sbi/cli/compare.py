"""``prospect-sbi compare``: one catalogue object fitted with SBI and with dynesty."""

from __future__ import annotations

__all__ = ["add_compare_args", "run_compare"]

import argparse
from pathlib import Path

from .common import add_param_file_args
from .train import add_catalog_args


def add_compare_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi compare``."""
    parser.description = (
        "Fit catalogue objects with the estimator and with dynesty (through Prospector, "
        "with the estimator's physics) and compare the posteriors per parameter: shift of "
        "the median in dynesty sigmas, ratio of 68%% widths, Wasserstein distance, wall "
        "times and speed-up. Writes a table and a corner plot per object; objects already "
        "compared are skipped when rerun."
    )
    parser.add_argument("catalog", help="catalogue table")
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--rows", type=int, nargs="+", default=[0], help="catalogue rows")
    add_catalog_args(parser)
    parser.add_argument("--zred-column", default="redshift")
    parser.add_argument("--id-column", default=None)
    parser.add_argument("--likelihood", choices=("flux", "noise"), default="flux",
                        help="flux: Gaussian (real data); noise: the noise model")  # fmt: skip
    parser.add_argument("--nlive", type=int, default=200, help="dynesty live points")
    parser.add_argument("--draws", type=int, default=4000, help="SBI draws")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--refine", action="store_true",
                        help="also compare the SBI draws importance-weighted by the same "
                        "likelihood (the exact posterior; a few seconds an object)")  # fmt: skip
    add_param_file_args(parser)


def run_compare(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi compare``."""
    from ..fitting import compare
    from ..posterior import AmortizedPosterior
    from .common import estimator_model, param_file, param_file_sps, read_catalog_zred

    post = AmortizedPosterior.resolve(args.estimator)
    pf = param_file(args)
    model = estimator_model(post, pf)
    cat, _ = read_catalog_zred(args.catalog, post, args.zred_column, unit=args.unit,
                               flux_format=args.flux_format, err_format=args.err_format,
                               id_column=args.id_column)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sps = param_file_sps(args, pf)
    for row in args.rows:
        if not 0 <= row < len(cat.flux):
            raise ValueError(f"row {row} is outside the catalogue (0..{len(cat.flux) - 1})")
        name = f"{cat.ids[row]}"
        table_path = out / f"compare_{name}.ecsv"
        if table_path.exists():
            print(f"{table_path} exists: skipped")
            continue
        obs = {"maggies": cat.flux[row], "maggies_unc": cat.err[row], "filters": post.filters}
        if cat.zred is not None:
            obs["zred"] = float(cat.zred[row])
        res = compare(obs, model, sps, post, n_draws=args.draws, seed=args.seed + row,
                      likelihood=args.likelihood, plot=out / f"compare_{name}.png",
                      refine=args.refine, nested_nlive_init=args.nlive)  # fmt: skip
        res.table.meta.update(t_dynesty=res.t_dynesty, t_sbi=res.t_sbi, speedup=res.speedup,
                              t_refine=res.t_refine, ess=res.ess)  # fmt: skip
        res.table.write(table_path, overwrite=True)
        print(f"object {name}: dynesty {res.t_dynesty:.1f} s, SBI {1e3 * res.t_sbi:.1f} ms "
              f"(x{res.speedup:.3g})")  # fmt: skip
        if args.refine:
            print(f"  SBI + importance sampling: {res.t_refine:.2f} s, ESS {res.ess:.0f}")
        for r in res.table:
            line = (f"  {r['param']:12s} |dmed|/sigma {abs(r['dmed_over_sigma']):6.2f}  width "
                    f"ratio {r['width_ratio']:5.2f}  W1 {r['wasserstein']:.3f}")  # fmt: skip
            if args.refine:
                line += (f"  | refined {abs(r['is_dmed_over_sigma']):6.2f} "
                         f"{r['is_width_ratio']:5.2f} {r['is_wasserstein']:.3f}")  # fmt: skip
            print(line)
    return 0
