"""``prospect-sbi fit``: posterior summaries of every object of a catalogue, resumable."""

from __future__ import annotations

__all__ = ["add_fit_args", "run_fit"]

import argparse
from pathlib import Path
from typing import Any

from .common import (
    add_err_floor_arg,
    add_param_file_args,
    add_photoz_refine_arg,
    add_refine_args,
    add_workers_args,
    add_zeropoints_arg,
)
from .train import add_catalog_args


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi fit``."""
    parser.description = (
        "Fit every row of a photometric catalogue (FITS, ECSV, ...) with an estimator and "
        "write a table of posterior summaries (<label>_p16/_p50/_p84/_mean/_std per "
        "parameter and derived quantity), a predictive check (chi2_red, ood) and a flag per "
        "row: 'ok', or the reasons the estimator cannot vouch for it. Rows are never "
        "dropped: one that cannot be fitted gets NaN and a flag. Chunks are kept as they "
        "finish, so an interrupted run resumes when rerun with the same options."
    )
    parser.add_argument("catalog", help="catalogue table")
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output table (.ecsv or .fits)")
    add_catalog_args(parser)
    parser.add_argument(
        "--zred-column",
        default="redshift",
        help="redshift column, for estimators conditioned on it; without such "
        "a column, the redshift the estimator's model fixes. When the redshift is inferred "
        "(a photo-z estimator, --zred infer), the photo-z is measured against it (sigma_NMAD, "
        "outliers, bias; OUT_photoz.png)",
    )
    parser.add_argument(
        "--zred",
        help="instead of --zred-column: one redshift for every row, or 'infer': each "
        "object's photo-z posterior (--photoz), then its parameters marginalised over it",
    )
    parser.add_argument(
        "--photoz",
        help="photometric-redshift estimator (file or pretrained name) of --zred infer "
        "(default: the pretrained ESTIMATOR-photoz); with given redshifts it checks them "
        "(flag zred_ruled_out)",
    )
    parser.add_argument(
        "--n-zred", type=int, default=20, help="redshifts per object with --zred infer"
    )
    add_photoz_refine_arg(parser)
    parser.add_argument(
        "--id-column",
        default=None,
        help="id column (default: the catalogue's 'id' column, any case; else the row number)",
    )
    add_err_floor_arg(parser)
    add_zeropoints_arg(parser, "of the catalogue")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per object")
    parser.add_argument("--chunk-size", type=int, default=1024, help="objects per chunk")
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior draws")
    parser.add_argument(
        "--no-ppc", action="store_true", help="skip the posterior-predictive check (chi2_red, ood)"
    )
    parser.add_argument(
        "--save-draws",
        metavar="PATH.h5",
        default=None,
        help="also keep every object's posterior draws (free parameters in "
        "the model's order, derived quantities) in this HDF5 file, with "
        "ids, flags, the model and the estimator digest; resumable with "
        "the table (default: quantiles only)",
    )
    add_workers_args(parser, "the chunks of rows (and of the photo-z step)")
    add_refine_args(parser, "auto")
    add_param_file_args(parser)


def run_fit(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi fit``."""
    from .._io import file_digest
    from ..fitting import photoz_estimator, write_catalog_fit
    from ..posterior import AmortizedPosterior
    from ..posterior.refine import check_refine
    from .common import (
        dask_client,
        estimator_model,
        param_file,
        param_file_sps,
        read_catalog_zred,
    )

    post = AmortizedPosterior.resolve(args.estimator)
    pf = param_file(args)
    model = None if pf is None else estimator_model(post, pf)
    zred = args.zred
    # a redshift column the fit does not use when the redshift is inferred: compared with it
    zspec = args.zred_column if zred == "infer" or post.redshift != "known" else None
    if zred is not None:
        if zred != "infer":
            try:
                zred = float(zred)
            except ValueError:
                raise ValueError(f"--zred takes a redshift or 'infer'; got {zred!r}") from None
        args.zred_column = None  # the catalogue's redshifts are not read
    photoz = args.photoz
    check_refine(args.photoz_refine, "photoz_refine")  # before the catalogue is read
    if zred == "infer" or photoz is not None:  # the default <name>-photoz, by the name given
        photoz, _ = photoz_estimator(args.estimator, photoz)
    catalog, zcol = read_catalog_zred(args, post)
    # everything that changes a row: a resumed run must not mix two option sets
    fingerprint = {
        # by content: a moved or touched file resumes, an edited one (same size and time) not
        "catalog": catalog.digest(),
        "estimator": post.digest(),
        "--param-file": None if pf is None else file_digest(args.param_file),
        "--unit": args.unit,
        "--flux-format": args.flux_format,
        "--err-format": args.err_format,
        "--zred-column": zcol,
        "--id-column": catalog.id_column,
        "--err-floor": args.err_floor,
        "--zeropoints": None if args.zeropoints is None else file_digest(args.zeropoints),
        "--draws": args.draws,
        "--seed": args.seed,
        "--no-ppc": args.no_ppc,
        "--refine": args.refine,
        "--likelihood": args.likelihood,
        "--sps": args.sps,
        "--zred": args.zred,
        # the file used, the default <name>-photoz too: a new release's is not mixed in
        "--photoz": None if photoz is None else photoz.digest(),
        "--n-zred": args.n_zred,
        "--photoz-refine": args.photoz_refine if photoz is not None else None,
    }
    sps = None if args.sps == "builtin" else param_file_sps(args, pf)
    client = dask_client(args.workers, args.scheduler)  # not in the fingerprint: same rows
    try:
        counts = write_catalog_fit(
            post,
            catalog,
            args.out,
            fingerprint,
            args.draws,
            args.seed,
            args.chunk_size,
            model=False if args.no_ppc else model,
            sps=sps,
            refine=args.refine,
            likelihood=args.likelihood,
            draws_file=args.save_draws,
            zred=zred,
            photoz=photoz,
            n_zred=args.n_zred,
            zeropoints=args.zeropoints,
            photoz_refine=args.photoz_refine,
            client=client,
        )
    finally:
        if client is not None:
            client.close()
    rows, refined = counts.pop("rows"), counts.pop("refined")
    also = "" if args.refine == "never" else f"; {refined} refined"
    kept = "" if args.save_draws is None else f"; draws in {args.save_draws}"
    print(
        f"{args.out}: {rows} objects ({', '.join(f'{v} {k}' for k, v in counts.items())})"
        f"{also}{kept}"
    )
    if zspec is not None and zspec in catalog.table.colnames:
        _photoz_against(args.out, catalog.table[zspec], zspec)
    return 0


def _photoz_against(out: str, column: Any, name: str) -> None:
    """Print the fit's photo-z statistics against a catalogue's redshift column; plot them.

    For a fit that infers the redshift (a photo-z estimator, or ``--zred infer``), the
    column ``--zred-column`` names is not used, and a catalogue with known redshifts (the
    zero points' spec-z sample, say) is then a test: ``<out>_photoz.png`` beside the table.
    Rows without a redshift > 0 in the column are left out; nothing is said without any.
    """
    import numpy as np
    from astropy.table import Table

    from .._io import save_figure
    from ..plotting.calibration import plot_photoz
    from ..validate import OUTLIER_DZ, photoz_stats

    try:
        z = np.asarray(np.ma.filled(np.ma.asarray(column, dtype=float), np.nan))
    except (TypeError, ValueError):
        return  # not numbers: not a redshift column
    table = Table.read(out)
    key = "zphot" if "zphot_p50" in table.colnames else "zred"
    lo, mid, hi = (np.asarray(table[f"{key}_{q}"], float) for q in ("p16", "p50", "p84"))
    keep = np.isfinite(z) & (z > 0) & np.isfinite(mid)
    if not keep.any():
        return
    s = photoz_stats(mid[keep], z[keep])
    png = Path(out).with_name(f"{Path(out).stem}_photoz.png")
    fig = plot_photoz(z[keep], mid[keep], lo[keep], hi[keep], f"{Path(out).name} vs {name}")
    save_figure(fig, png, dpi=120)
    print(
        f"{out}: {key}_p50 against the catalogue's {name!r} column (not used by the fit): "
        f"sigma_NMAD {s['sigma_nmad']:.3f}, outliers {100 * s['outlier_frac']:.1f}% "
        f"(|dz| > {OUTLIER_DZ:g}), bias {s['bias']:+.3f} over {s['n']} rows; {png}"
    )
