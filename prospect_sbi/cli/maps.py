"""``prospect-sbi map``: multi-band images -> per-pixel posteriors -> FITS maps and PNGs."""

from __future__ import annotations

__all__ = ["add_map_args", "run_map"]

import argparse
from pathlib import Path

from .common import add_refine_args


def add_map_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi map``."""
    parser.description = (
        "Fit every selected pixel of a set of PSF-matched images (one FITS per band, or a "
        "(band, y, x) cube) and write a multi-extension FITS file of maps (median, p16, p84 "
        "of stellar-mass and SFR surface density, sSFR, age, metallicity, dust, S/N, mask, "
        "predictive chi-square, OOD flag) with the input WCS, a PNG panel, a per-pixel table "
        "and the resolved-vs-integrated stellar mass. A finished NAME (its NAME_done.json "
        "marker, written last) is skipped on rerun; an interrupted one resumes, fitting only "
        "the chunks of pixels it lacks."
    )
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument("--name", default="galaxy",
                        help="prefix of the output files (a plain file name)")  # fmt: skip
    parser.add_argument("--image", nargs="+", metavar="BAND=PATH", default=[],
                        help="science image per band")  # fmt: skip
    parser.add_argument("--error", nargs="+", metavar="BAND=PATH", default=[],
                        help="1-sigma error image per band (default: an ERR HDU)")  # fmt: skip
    parser.add_argument("--weight", nargs="+", metavar="BAND=PATH", default=[],
                        help="inverse-variance image per band instead of --error")  # fmt: skip
    parser.add_argument("--cube", help="(band, y, x) flux cube (FITS) instead of --image")
    parser.add_argument("--err-cube", help="(band, y, x) error cube (FITS)")
    parser.add_argument("--bands", nargs="+", help="bands of the cube planes, in order")
    parser.add_argument("--unit", help="flux unit (default: BUNIT): MJy/sr, nJy, uJy, ...")
    parser.add_argument("--segmap", help="segmentation map (FITS)")
    parser.add_argument("--segment", default="centre",
                        help="segment: centre, all, none or an id (default centre)")  # fmt: skip
    parser.add_argument("--zred", type=float, help="redshift of the galaxy")
    parser.add_argument("--snr-min", type=float, default=5.0)
    parser.add_argument("--snr-bands", nargs="+", default=["F277W", "F356W", "F444W"])
    parser.add_argument("--draws", type=int, default=200, help="posterior draws per pixel")
    parser.add_argument("--chunk-size", type=int, default=1024, help="pixels per chunk")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="local dask workers")
    parser.add_argument("--scheduler", help="address of a dask.distributed scheduler")
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


def _load(args: argparse.Namespace) -> object:
    from astropy.io import fits
    from astropy.wcs import WCS

    from ..pixels import load_cube, load_fits

    if args.cube:
        if not (args.err_cube and args.bands):
            raise ValueError("--cube needs --err-cube and --bands")
        with fits.open(args.cube) as hdul:
            hdu = next((h for h in hdul if h.data is not None and h.data.ndim == 3), None)
            if hdu is None:
                raise ValueError(f"{args.cube} has no (band, y, x) cube in any HDU")
            flux, header = hdu.data.astype(float), hdu.header
        err = fits.getdata(args.err_cube).astype(float)
        unit = args.unit or header.get("BUNIT")
        if unit is None:
            raise ValueError(f"{args.cube} has no BUNIT; give --unit")
        wcs = WCS(header).celestial if "CTYPE1" in header else None
        return load_cube(flux, err, args.bands, unit, wcs=wcs, segmap=args.segmap,
                         zred=args.zred)  # fmt: skip
    if not args.image:
        raise ValueError("give the images: --image BAND=PATH ... or --cube")
    return load_fits(_pairs(args.image, "image"), _pairs(args.error, "error") or None,
                     weights=_pairs(args.weight, "weight") or None, unit=args.unit,
                     segmap=args.segmap, zred=args.zred)  # fmt: skip


def run_map(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi map``."""
    from ..pixels import galaxy_files, map_galaxy, select_pixels
    from ..posterior import AmortizedPosterior
    from .common import dask_client

    out = Path(args.out)
    files = galaxy_files(out, args.name)  # refuses a name that would leave OUT
    post = AmortizedPosterior.resolve(args.estimator)
    images = _load(args).matched(post.filters)
    segment = {"none": None, "centre": "centre", "all": "all"}.get(args.segment)
    if segment is None and args.segment != "none":
        if not str(args.segment).lstrip("-").isdigit():
            raise ValueError(f"--segment takes centre, all, none or a segment id; got "
                             f"{args.segment!r}")  # fmt: skip
        segment = int(args.segment)
    mask = select_pixels(images, args.snr_min, args.snr_bands, segment)
    client = dask_client(args.workers, args.scheduler)
    try:
        done = map_galaxy(post, images, out, args.name, mask, n_draws=args.draws,
                          seed=args.seed, chunk_size=args.chunk_size, client=client,
                          overwrite=args.overwrite, refine=args.refine,
                          likelihood=args.likelihood)  # fmt: skip
    finally:
        if client is not None:
            client.close()
    if done.skipped:  # finished before, with the same estimator, images and options
        print(f"{files['done']} exists: skipped (--overwrite to refit)")
        return 0
    fit, row = done.fit, done.outshining[0]
    ood = "n/a" if fit.ood is None else f"{fit.ood.mean():.1%}"
    resumed = f" ({fit.resumed_chunks} chunks resumed)" if fit.resumed_chunks else ""
    refined = ("" if fit.refinement is None
               else f"; {fit.refinement['refined'].mean():.1%} of pixels refined")
    print(f"{args.name}: {len(fit)} pixels fitted{resumed}; log M* pixel-summed "
          f"{row['log_mstar_resolved']:.2f}, integrated {row['log_mstar_integrated']:.2f}; "
          f"{ood} of pixels flagged out of distribution{refined}; wrote {files['maps']} and "
          "PNG")  # fmt: skip
    return 0
