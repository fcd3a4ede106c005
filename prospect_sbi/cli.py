"""``prospect-sbi`` command line: one subcommand per stage, thin over the Python API."""

from __future__ import annotations

__all__ = ["main"]

import argparse
import sys
from collections.abc import Sequence

TEMPLATES = ("parametric_sfh", "continuity_sfh")


def _build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="prospect-sbi",
        description="Amortised simulation-based inference for Prospector SED models.",
    )
    parser.add_argument("--version", action="version", version=f"prospect-sbi {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_predict_args(sub.add_parser("predict", help="JADES photometry of a Prospector template"))
    return parser


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi predict``."""
    parser.description = (
        "Predict the JADES photometry (maggies, nJy, AB) of a Prospector template with nebular "
        "emission and IGM absorption, through the offline BC03-MILES source."
    )
    parser.add_argument("--template", choices=TEMPLATES, default="parametric_sfh")
    parser.add_argument("--zred", type=float, default=3.0, help="redshift (default: 3)")
    parser.add_argument("--bands", nargs="+", default=None, help="bands (default: the 14 JADES)")
    parser.add_argument("--out", default=None, help="also write the table to this ECSV file")
    parser.set_defaults(func=run_predict)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi predict``; print a table, optionally write it as ECSV."""
    import numpy as np
    from astropy.table import Table
    from prospect.models import SpecModel
    from prospect.models.templates import TemplateLibrary, adjust_continuity_agebins
    from prospect.sources.constants import cosmo

    from .filters import jades_filters
    from .sources import BC03MilesBasis

    if not 0 <= args.zred <= 20:
        raise ValueError(f"--zred {args.zred} is outside [0, 20]")
    spec = TemplateLibrary[args.template]
    spec.update(TemplateLibrary["nebular"])
    spec.update(TemplateLibrary["igm"])
    spec["zred"]["init"] = args.zred
    spec["imf_type"]["init"] = 1  # the BC03-MILES grids are Chabrier
    tuniv = cosmo.age(args.zred).to("Gyr").value
    if args.template == "continuity_sfh":
        spec = adjust_continuity_agebins(spec, tuniv=tuniv, nbins=7)
    else:
        spec["tage"]["init"] = min(1.0, 0.5 * tuniv)
    model = SpecModel(spec)
    filters = jades_filters(bands=args.bands)
    _, maggies, mfrac = model.predict(model.theta, obs={"filters": filters}, sps=BC03MilesBasis())
    table = Table(
        {
            "band": [f.name for f in filters],
            "maggies": maggies,
            "flux_njy": maggies * 3631e9,
            "mag_ab": -2.5 * np.log10(maggies),
        }
    )
    table.meta.update(template=args.template, zred=args.zred, mfrac=float(mfrac))
    labels = ", ".join(
        f"{k}={v:.3g}" for k, v in zip(model.theta_labels(), model.theta, strict=True)
    )
    print(f"{args.template} + nebular + igm at z={args.zred:g} ({labels}); mfrac={mfrac:.4f}")
    table["maggies"].format = ".4e"
    table["flux_njy"].format = ".2f"
    table["mag_ab"].format = ".3f"
    table.pprint_all()
    if args.out:
        table.write(args.out, format="ascii.ecsv", overwrite=True)
        print(f"wrote {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prospect-sbi`` console script."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as err:
        print(f"prospect-sbi {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
