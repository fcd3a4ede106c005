"""``prospect-sbi simulate`` and ``prospect-sbi predict``: training sets and model photometry."""

from __future__ import annotations

__all__ = ["add_predict_args", "add_simulate_args", "run_predict", "run_simulate"]

import argparse

from .common import TEMPLATES, add_param_file_args


def add_simulate_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi simulate``."""
    parser.description = (
        "Draw N parameter vectors from a Prospector template's priors (with nebular "
        "emission, Chabrier IMF) and write them with their noiseless photometry and derived "
        "quantities to an HDF5 training set. Interrupt it at any time; rerunning the same "
        "command resumes."
    )
    parser.add_argument("out", help="output HDF5 file")
    parser.add_argument("-n", "--n", type=int, required=True, help="number of draws")
    parser.add_argument(
        "--template",
        choices=TEMPLATES,
        default=None,
        help="Prospector template of the model: continuity_sfh when not "
        "given (not with --param-file)",
    )
    parser.add_argument(
        "--zred",
        type=float,
        nargs="+",
        default=None,
        help="fixed redshift, or MIN MAX of a uniform prior: 0 12 when not "
        "given; with --param-file, the file's model's zred",
    )
    parser.add_argument("--nbins", type=int, default=6, help="step-SFH bins (continuity_sfh)")
    parser.add_argument(
        "--logsfr-ratio-scale",
        type=float,
        default=None,
        help="Student-t scale of continuity_sfh's logsfr_ratios prior: Prospector's 0.3 when "
        "not given; 1.0 the bursty prior of Tacchella et al. 2022",
    )
    parser.add_argument(
        "--burst",
        action="store_true",
        default=None,
        help="parametric_sfh plus Prospector's burst_sfh: fburst and fage_burst free",
    )
    parser.add_argument(
        "--dust-type",
        type=int,
        default=0,
        choices=(0, 2, 4),
        help="Prospector dust_type: 0 power law, 2 Calzetti, 4 Kriek & Conroy",
    )
    parser.add_argument(
        "--bands",
        nargs="+",
        default=None,
        help="bands (default: the 14 JADES; with --param-file, the bands of its build_obs)",
    )
    add_param_file_args(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the parameter draws")
    parser.add_argument("--batch-size", type=int, default=4096, help="draws per chunk")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="local worker processes (default: run in this process)",
    )
    parser.add_argument(
        "--scheduler", default=None, help="address of a dask.distributed scheduler for the chunks"
    )
    parser.add_argument(
        "--method",
        choices=("fast", "generic"),
        default="fast",
        help="fast: batched BC03-MILES photometry; generic: Prospector's predict per draw",
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi simulate``."""
    from .._io import dask_client
    from ..filters import jades_filters
    from ..models import build_model
    from ..simulation import simulate
    from ..sources import BC03MilesBasis
    from .common import param_file, param_file_sps

    pf = param_file(args)
    if pf is not None:
        given = [
            flag
            for flag, value in (
                ("--template", args.template),
                ("--zred", args.zred),
                ("--logsfr-ratio-scale", args.logsfr_ratio_scale),
                ("--burst", args.burst),
            )
            if value is not None
        ]
        if given:
            raise ValueError(
                f"{' and '.join(given)} with --param-file: the model is the file's"
                f" (build_model of {pf.path}); change it there"
            )
        model = pf.model()
        filters = jades_filters(bands=args.bands) if args.bands else pf.filters()
    else:
        zred = _zred_option([0.0, 12.0] if args.zred is None else args.zred)
        model = build_model(
            args.template or "continuity_sfh",
            zred=zred,
            nbins=args.nbins,
            dust_type=args.dust_type,
            logsfr_ratio_scale=args.logsfr_ratio_scale,
            burst=bool(args.burst),
        )
        filters = jades_filters(bands=args.bands)
    sps = param_file_sps(args, pf)
    method = args.method if isinstance(sps, BC03MilesBasis) else "generic"
    executor = dask_client(scheduler=args.scheduler) or args.workers or None
    ts = simulate(
        model,
        sps,
        filters,
        args.n,
        args.out,
        seed=args.seed,
        executor=executor,
        batch_size=args.batch_size,
        method=method,
    )
    fixed = "" if pf is None or pf.zred() is None else f" at the model's zred {pf.zred():g}"
    print(f"{args.out}: {len(ts)} draws of {', '.join(ts.labels)}; {len(ts.filters)} bands{fixed}")
    return 0


def _zred_option(values: list[float]) -> float | tuple[float, float]:
    """``--zred``: one fixed redshift, or MIN MAX of a uniform prior (checked)."""
    if len(values) not in (1, 2):
        raise ValueError(f"--zred takes one value or MIN MAX, got {len(values)} values")
    if not (0 <= values[0] < values[-1] or (len(values) == 1 and values[0] >= 0)):
        raise ValueError(
            f"--zred takes one value or MIN MAX with 0 <= MIN < MAX; got "
            f"{' '.join(f'{z:g}' for z in values)}"
        )
    return values[0] if len(values) == 1 else (values[0], values[1])


def add_predict_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi predict``."""
    parser.description = (
        "Predict the JADES photometry (maggies, nJy, AB) of a Prospector template with nebular "
        "emission and IGM absorption, through the offline BC03-MILES source."
    )
    parser.add_argument(
        "--template",
        choices=TEMPLATES,
        default="parametric_sfh",
        help="Prospector template of the model",
    )
    parser.add_argument("--zred", type=float, default=3.0, help="redshift")
    parser.add_argument("--bands", nargs="+", default=None, help="bands (default: the 14 JADES)")
    parser.add_argument("--out", default=None, help="also write the table to this ECSV file")


def run_predict(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi predict``; print a table, optionally write it as ECSV."""
    import numpy as np
    from astropy.table import Table
    from prospect.models import SpecModel
    from prospect.models.templates import TemplateLibrary, adjust_continuity_agebins
    from prospect.sources.constants import cosmo

    from .._io import write_table
    from ..filters import jades_filters
    from ..sources import BC03MilesBasis

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
        write_table(args.out, table, overwrite=True)  # --out is .ecsv (check_output)
        print(f"wrote {args.out}")
    return 0
