"""``prospect-sbi survey``: mosaics, a segmentation map, a redshift catalogue -> all maps."""

from __future__ import annotations

__all__ = ["add_survey_args", "run_survey"]

import argparse

from .common import (
    add_photoz_refine_arg,
    add_refine_args,
    add_workers_args,
    add_zeropoints_arg,
)


def add_survey_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi survey``."""
    parser.description = (
        "Map every galaxy of a field: one FITS mosaic per band (SCI and ERR or WHT "
        "extensions, MJy/sr or nJy per pixel, a celestial WCS, all bands on one pixel grid), "
        "a segmentation map on that grid and a catalogue (FITS or ECSV) of segment ids and "
        "redshifts. Mosaics are read one galaxy's box at a time. Per galaxy, OUT/galaxies/ "
        "gets the maps of `prospect-sbi map` (a finished galaxy is skipped on rerun); per "
        "field, OUT gets field_catalog.ecsv/.fits (one row per galaxy), one FITS map per "
        "quantity on the mosaic's WCS and field_outshining.png. A galaxy that fails is "
        "listed and the others go on."
    )
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output folder")
    parser.add_argument(
        "--mosaic",
        nargs="+",
        metavar="BAND=PATH",
        required=True,
        help="mosaic FITS file per band (SCI and ERR/WHT extensions)",
    )
    parser.add_argument("--segmap", required=True, help="segmentation map (FITS) on the grid")
    parser.add_argument(
        "--catalog", required=True, help="catalogue (FITS or ECSV): segment ids, redshifts"
    )
    parser.add_argument("--id-column", default="id", help="segment-id column")
    parser.add_argument("--zred-column", default="z", help="redshift column")
    parser.add_argument(
        "--zred",
        default="catalog",
        metavar="{catalog,infer,Z}",
        help="redshifts from the catalogue's --zred-column, 'infer' (each galaxy's photo-z "
        "posterior from its integrated photometry, propagated into its pixels), or one "
        "number for every galaxy",
    )
    parser.add_argument(
        "--photoz",
        help="photometric-redshift estimator (file or pretrained name) of --zred infer "
        "(default: the pretrained ESTIMATOR-photoz); with given redshifts it checks them",
    )
    parser.add_argument(
        "--n-zred", type=int, default=20, help="redshifts of each galaxy's posterior (infer)"
    )
    add_photoz_refine_arg(parser)
    parser.add_argument("--unit", help="flux unit of every mosaic (default: BUNIT)")
    parser.add_argument(
        "--margin", type=int, default=5, help="pixels around each segment's bounding box"
    )
    parser.add_argument(
        "--snr-min",
        type=float,
        default=5.0,
        help="least mean S/N of a fitted pixel over --snr-bands",
    )
    parser.add_argument(
        "--snr-bands", nargs="+", default=["F277W", "F356W", "F444W"], help="bands of the S/N cut"
    )
    parser.add_argument(
        "--maps",
        nargs="+",
        metavar="QUANTITY",
        help="field-wide maps to write; all when not given: log_sigma_mstar "
        "log_sigma_sfr log_ssfr mwa logzsol dust2 chi2_red ood)",
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
    parser.add_argument("--seed", type=int, default=0, help="seed of every galaxy's draws")
    add_workers_args(parser, "the galaxies")
    parser.add_argument("--overwrite", action="store_true", help="refit finished galaxies")
    parser.add_argument(
        "--no-png", action="store_true", help="skip each galaxy's PNG panel (about 1 s a galaxy)"
    )
    add_refine_args(parser, "never")


def _mosaics(items: list[str]) -> dict[str, str]:
    """``BAND=PATH`` items -> {band: path}; one-line errors for a malformed or repeated band."""
    from ..filters import resolve_band_names

    out: dict[str, str] = {}
    for item in items:
        band, sep, path = item.partition("=")
        if not sep or not band or not path:
            raise ValueError(f"--mosaic takes BAND=PATH, got {item!r}")
        same = [b for b in out if resolve_band_names([b]) == resolve_band_names([band])]
        if same:
            raise ValueError(f"--mosaic gives band {band} twice: {out[same[0]]} and {path}")
        out[band] = path
    return out


def run_survey(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi survey``."""
    from .._io import dask_client
    from ..pixels import FIELD_QUANTITIES, map_field
    from ..posterior import AmortizedPosterior

    zred = args.zred
    if zred not in ("catalog", "infer"):
        try:
            zred = float(zred)
        except ValueError:
            raise ValueError(f"--zred takes catalog, infer or a redshift; got {zred!r}") from None
    mosaics = _mosaics(args.mosaic)
    post = AmortizedPosterior.resolve(args.estimator)
    given = None
    if zred == "infer" or args.photoz is not None:  # resolved once, by the estimator's name
        from ..fitting import zred_given

        given = zred_given(
            "infer" if zred == "infer" else 1.0,
            args.estimator,
            args.photoz,
            n_zred=args.n_zred,
            photoz_refine=args.photoz_refine,
        )
    client = dask_client(args.workers, args.scheduler)
    try:
        res = map_field(
            post,
            mosaics,
            args.segmap,
            args.catalog,
            args.out,
            id_column=args.id_column,
            zred_column=args.zred_column,
            zred=given if zred == "infer" else zred,
            photoz=None if given is None else given.photoz,
            n_zred=args.n_zred,
            photoz_refine=args.photoz_refine,
            unit=args.unit,
            margin=args.margin,
            snr_min=args.snr_min,
            snr_bands=tuple(args.snr_bands),
            quantities=tuple(args.maps or FIELD_QUANTITIES),
            client=client,
            overwrite=args.overwrite,
            png=not args.no_png,
            n_draws=args.draws,
            seed=args.seed,
            err_floor=args.err_floor,
            zeropoints=args.zeropoints,
            chunk_size=args.chunk_size,
            refine=args.refine,
            likelihood=args.likelihood,
        )
    finally:
        if client is not None:
            client.close()
    n = len(res.catalog)
    print(
        f"{n} catalogue galaxies: {res.fitted} mapped, {res.skipped} done before, "
        f"{len(res.no_zred)} without a redshift, {len(res.errors)} failed; wrote "
        f"{res.files['catalog']}, field maps and {res.files['figure'].name}"
    )
    if res.no_zred:
        print(f"skipped (no usable redshift): {', '.join(map(str, res.no_zred))}")
    for msg in res.errors.values():
        print(f"failed: {msg}")
    return 0
