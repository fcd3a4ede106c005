"""``prospect-sbi zeropoints``: per-band flux corrections from spectroscopic redshifts."""

from __future__ import annotations

__all__ = ["add_zeropoints_args", "run_zeropoints"]

import argparse

from .common import add_err_floor_arg
from .train import add_catalog_args


def add_zeropoints_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi zeropoints``."""
    parser.description = (
        "Calibrate per-band zero-point corrections, as template photo-z codes do: fit the "
        "catalogue's galaxies of known (spectroscopic) redshift with the exact posterior of a "
        "known-redshift estimator and divide each band by the median ratio of observed to "
        "best-fit model flux, a few times over. Writes a JSON file that `prospect-sbi fit "
        "--zeropoints` applies to the fluxes and errors of any catalogue of the same bands. "
        "Rows without a redshift > 0 or a valid band are left out (and counted)."
    )
    parser.add_argument("catalog", help="catalogue table with a redshift column")
    parser.add_argument(
        "estimator",
        help="estimator file (.sbi) or pretrained name, conditioned on the redshift "
        "(jades-parametric for jades-parametric-photoz)",
    )
    parser.add_argument(
        "-o",
        "--out",
        required=True,
        help="zero-point file to write (.json); its figure (corrections by band) goes beside "
        "it, as .png",
    )
    add_catalog_args(parser)
    parser.add_argument("--zred-column", default="redshift", help="spectroscopic redshift column")
    parser.add_argument("--id-column", default=None, help="id column (not used but checked)")
    add_err_floor_arg(parser)
    parser.add_argument("--iterations", type=int, default=5, help="fits and corrections")
    parser.add_argument(
        "--min-snr", type=float, default=5.0, help="S/N a band needs to enter its median"
    )
    parser.add_argument(
        "--keep",
        type=float,
        default=0.9,
        help="fraction of galaxies kept, the worst fitted at their redshift left out",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the refinement")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing file")


def run_zeropoints(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi zeropoints``."""
    from pathlib import Path

    from .._io import save_figure
    from ..fitting import calibrate_zeropoints, known_redshift_estimator
    from ..plotting.calibration import plot_zeropoints
    from .common import read_catalog_zred

    out = Path(args.out)
    if out.exists() and not args.overwrite:  # before minutes of fitting
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it")
    post = known_redshift_estimator(args.estimator)
    catalog, zcol = read_catalog_zred(args, post)
    if zcol is None:
        raise ValueError(f"no redshift column {args.zred_column!r} in {args.catalog}")
    zp = calibrate_zeropoints(
        post,
        catalog.flux,
        catalog.err,
        catalog.zred,
        iterations=args.iterations,
        min_snr=args.min_snr,
        keep=args.keep,
        seed=args.seed,
    )
    zp.save(args.out, overwrite=args.overwrite)
    png = save_figure(plot_zeropoints(zp, out.name), out.with_suffix(".png"))
    print(f"{'band':16s} {'factor':>7s} {'mag':>7s} {'galaxies':>8s} {'scatter':>7s}")
    for band, f, m, n, s in zip(
        zp.bands, zp.factors, zp.offsets_mag, zp.n_galaxies, zp.scatter, strict=True
    ):
        print(f"{band:16s} {f:7.4f} {m:+7.3f} {n:8d} {s:7.3f}")
    steps = zp.meta["largest_step_mag"]
    print(
        f"{args.out}: zero points of {len(zp.bands)} bands from {zp.meta['n_objects']} of "
        f"{len(catalog.zred)} rows; largest change at the last of "
        f"{len(steps)} iterations {steps[-1]:.3f} mag; {png}"
    )
    return 0
