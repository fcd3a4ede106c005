"""``prospect-sbi map``: multi-band images -> per-pixel posteriors -> FITS maps and PNGs."""

from __future__ import annotations

__all__ = ["add_map_args", "run_map"]

import argparse
from pathlib import Path

from .common import (
    add_photoz_refine_arg,
    add_refine_args,
    add_workers_args,
    add_zeropoints_arg,
)


def add_map_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi map``."""
    parser.description = (
        "Fit every selected pixel of a set of PSF-matched images (one FITS per band, or a "
        "(band, y, x) cube in FITS, .npy or .npz) and write a multi-extension FITS file of "
        "maps (median, p16, p84 "
        "of stellar-mass and SFR surface density, sSFR, age, metallicity, dust, S/N, mask, "
        "predictive chi-square, OOD flag) with the input WCS, a PNG panel, a per-pixel table "
        "and the resolved-vs-integrated stellar mass. A finished NAME (its NAME_done.json "
        "marker, written last) is skipped on rerun; an interrupted one resumes, fitting only "
        "the chunks of pixels it lacks."
    )
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument(
        "--name", default="galaxy", help="prefix of the output files (a plain file name)"
    )
    parser.add_argument(
        "--image", nargs="+", metavar="BAND=PATH", default=[], help="science image per band"
    )
    parser.add_argument(
        "--error",
        nargs="+",
        metavar="BAND=PATH",
        default=[],
        help="1-sigma error image per band (default: an ERR HDU)",
    )
    parser.add_argument(
        "--weight",
        nargs="+",
        metavar="BAND=PATH",
        default=[],
        help="inverse-variance image per band instead of --error",
    )
    parser.add_argument(
        "--cube",
        metavar="PATH[:NAME]",
        help="(band, y, x) flux cube instead of --image: FITS (the first 3-d "
        "HDU), .npy, or .npz (its array 'flux', the only array, or NAME "
        "after a colon)",
    )
    parser.add_argument(
        "--err-cube",
        metavar="PATH[:NAME]",
        help="(band, y, x) 1-sigma error cube: FITS, .npy or .npz (array 'err' "
        "or NAME; default: the 'err' array of an .npz --cube)",
    )
    parser.add_argument(
        "--bands",
        nargs="+",
        help="bands of the cube planes, in order (default: the 'bands' array of an .npz cube)",
    )
    parser.add_argument(
        "--unit",
        help="flux unit, MJy/sr, nJy, uJy, ... (default: BUNIT; required for .npy/.npz cubes)",
    )
    parser.add_argument(
        "--pixel-scale",
        type=float,
        metavar="ARCSEC",
        help="pixel side, arcsec (default: from the WCS; required for a cube without one)",
    )
    parser.add_argument(
        "--drop-unknown-bands",
        action="store_true",
        help="leave out, with one warning, image bands the estimator does not "
        "know (default: refuse them)",
    )
    parser.add_argument("--segmap", help="segmentation map (FITS, .npy)")
    parser.add_argument(
        "--segment",
        default="centre",
        help="pixels to fit: those of the segment under the centre, of all "
        "segments, of segment ID, or none (S/N alone; no --segmap "
        "needed): centre, all, none or ID",
    )
    parser.add_argument(
        "--zred",
        help="redshift of the galaxy (required by estimators conditioned on it): a number, "
        "'infer' (the galaxy's photo-z posterior from its integrated photometry, propagated "
        "into every pixel), or a table file (FITS, ECSV, CSV) of segment id -> redshift",
    )
    parser.add_argument(
        "--photoz",
        help="photometric-redshift estimator (file or pretrained name) of --zred infer "
        "(default: the pretrained ESTIMATOR-photoz); with a given --zred it checks it",
    )
    parser.add_argument(
        "--n-zred", type=int, default=20, help="redshifts of the posterior per pixel (infer)"
    )
    add_photoz_refine_arg(parser)
    parser.add_argument("--zred-column", default="z", help="redshift column of a --zred table")
    parser.add_argument("--id-column", default="id", help="segment-id column of a --zred table")
    parser.add_argument(
        "--snr-min",
        type=float,
        default=5.0,
        help="fit pixels whose mean S/N over --snr-bands reaches this",
    )
    parser.add_argument(
        "--snr-bands",
        nargs="+",
        default=["F277W", "F356W", "F444W"],
        help="bands of the selection S/N",
    )
    parser.add_argument(
        "--err-floor",
        type=float,
        default=0.0,
        metavar="FRAC",
        help="fractional error floor added in quadrature to every pixel and "
        "to the integrated photometry, err = hypot(err, FRAC * |flux|)",
    )
    add_zeropoints_arg(parser, "of every pixel")
    parser.add_argument("--draws", type=int, default=200, help="posterior draws per pixel")
    parser.add_argument("--chunk-size", type=int, default=1024, help="pixels per chunk")
    parser.add_argument("--seed", type=int, default=0, help="seed of the posterior draws")
    add_workers_args(parser, "the chunks of pixels")
    parser.add_argument("--overwrite", action="store_true", help="refit an existing NAME")
    add_refine_args(parser, "never")


def _pairs(items: list[str], what: str) -> dict[str, str]:
    from ..filters import resolve_band_names

    out: dict[str, str] = {}
    for item in items:
        band, sep, path = item.partition("=")
        if not sep or not band or not path:
            raise ValueError(f"--{what} takes BAND=PATH, got {item!r}")
        same = [b for b in out if resolve_band_names([b]) == resolve_band_names([band])]
        if same:
            raise ValueError(f"--{what} gives band {band} twice: {out[same[0]]} and {path}")
        out[band] = path
    return out


def run_map(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi map``."""
    from .._steps import record, say, step_warnings
    from ..pixels import FLOOR_OPTION, galaxy_files, load_images, map_galaxy, parse_segment
    from ..posterior import AmortizedPosterior
    from .common import dask_client

    out = Path(args.out)
    files = galaxy_files(out, args.name)  # refuses a name that would leave OUT
    segment = parse_segment(args.segment)
    if segment is not None and args.segmap is None:
        raise ValueError(
            f"--segment {args.segment} needs a segmentation map: give --segmap "
            "FILE, or --segment none to select pixels on S/N alone"
        )
    if args.pixel_scale is not None and not args.pixel_scale > 0:
        raise ValueError(f"--pixel-scale is the pixel side in arcsec, > 0; got {args.pixel_scale}")
    post = AmortizedPosterior.resolve(args.estimator)
    zred = given = None
    if args.zred is not None or args.photoz is not None:
        zred = _zred_option(args.zred)
    if args.zred is not None and not isinstance(zred, float) or args.photoz is not None:
        from ..fitting import zred_given

        given = zred_given(
            zred,
            args.estimator,
            args.photoz,
            n_zred=args.n_zred,
            photoz_refine=args.photoz_refine,
            id_column=args.id_column,
            zred_column=args.zred_column,
        )
        args.zred = given.value  # a number to the images; a table or infer to map_galaxy
    if post.redshift == "known" and args.zred is None and given is None:
        zr = post.header.get("zred_range")
        if zr is None or zr[0] != zr[1]:
            raise ValueError(f"{args.estimator} is conditioned on the redshift: give --zred Z")
        args.zred = float(zr[0])  # trained at one redshift
    with step_warnings("images"):
        images = load_images(
            _pairs(args.image, "image"),
            _pairs(args.error, "error"),
            weights=_pairs(args.weight, "weight"),
            cube=args.cube,
            err_cube=args.err_cube,
            bands=args.bands,
            unit=args.unit,
            pixel_scale=args.pixel_scale,
            segmap=args.segmap,
            zred=args.zred,
        )
    if images.pixel_scale is None:
        raise ValueError(
            f"{args.cube or 'the images'} has no WCS, so no pixel scale for the "
            "surface densities: give --pixel-scale ARCSEC"
        )
    client = dask_client(args.workers, args.scheduler)
    said: list = []
    try:
        with record() as said:  # said again below, naming the option that sets the floor
            done = map_galaxy(
                post,
                images,
                out,
                args.name,
                snr_min=args.snr_min,
                segment=segment,
                snr_bands=tuple(args.snr_bands),
                drop_unknown=args.drop_unknown_bands,
                n_draws=args.draws,
                seed=args.seed,
                chunk_size=args.chunk_size,
                client=client,
                overwrite=args.overwrite,
                refine=args.refine,
                likelihood=args.likelihood,
                err_floor=args.err_floor,
                zred=given,
                zeropoints=args.zeropoints,
            )
    finally:
        if client is not None:
            client.close()
        say(said, replace={FLOOR_OPTION: "--err-floor 0.05"})
    if done.skipped:  # finished before, with the same estimator, images and options
        print(f"{files['done']} exists: skipped (--overwrite to refit)")
        return 0
    fit, row = done.fit, done.outshining[0]
    ood = "n/a" if fit.ood is None else f"{fit.ood.mean():.1%}"
    resumed = f" ({fit.resumed_chunks} chunks resumed)" if fit.resumed_chunks else ""
    refined = (
        ""
        if fit.refinement is None
        else f"; {fit.refinement['refined'].mean():.1%} of pixels refined"
    )
    print(
        f"{args.name}: {len(fit)} pixels fitted{resumed}; log M* pixel-summed "
        f"{row['log_mstar_resolved']:.2f}, integrated {row['log_mstar_integrated']:.2f}; "
        f"{ood} of pixels flagged out of distribution{refined}; wrote {files['maps']} and "
        "PNG"
    )
    for g, zp in sorted(fit.redshift.items()):
        modes = ", ".join(f"{m:.2f} ({w:.0%})" for m, w in zip(zp.modes, zp.masses, strict=True))
        ruled = " RULED OUT the given z" if fit.zred_ruled_out.get(g) else ""
        print(
            f"segment {g}: photo-z {zp.median:.2f} (16-84%: {zp.p16:.2f}-{zp.p84:.2f}); "
            f"modes {modes}{ruled}"
        )
    return 0


def _zred_option(value: str | None) -> float | str | None:
    """``--zred``: a number, ``infer``, or a table file (one-line error otherwise)."""
    if value is None or value == "infer":
        return value
    try:
        return float(value)
    except ValueError:
        pass
    if not Path(value).is_file():
        raise ValueError(f"--zred takes a redshift, 'infer' or a table file; got {value!r}")
    return value
