"""``prospect-sbi train``: an amortised posterior from a training set, resumable."""

from __future__ import annotations

__all__ = ["add_catalog_args", "add_train_args", "run_train"]

import argparse
from pathlib import Path

from .common import add_param_file_args


def add_catalog_args(parser: argparse.ArgumentParser) -> None:
    """Options that say how to read fluxes from a catalogue table."""
    parser.add_argument(
        "--unit",
        choices=("maggies", "Jy", "mJy", "uJy", "nJy", "AB"),
        help="flux unit (default: the columns' own units)",
    )
    parser.add_argument(
        "--flux-format", default="{band}", help="flux column, {band} = short band name"
    )
    parser.add_argument(
        "--err-format", default="unc_{band}", help="error column, {band} = short band name"
    )


def add_train_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi train``."""
    parser.description = (
        "Train a neural posterior estimator (lampe NPE, zuko flow) on a training set written "
        "by `prospect-sbi simulate`, with noise added on the fly. A checkpoint is written "
        "every epoch: interrupt it at any time; rerunning the same command resumes."
    )
    parser.add_argument("trainingset", help="HDF5 training set")
    parser.add_argument("out", help="estimator file to write (.sbi)")
    parser.add_argument(
        "--noise",
        default="jades",
        help="'jades' (JadesPixelNoise) or a noise-model JSON file (NoiseModel.to_dict)",
    )
    parser.add_argument(
        "--noise-data",
        help="folder of the real JADES noise tables "
        "(default: the numbers shipped with the package)",
    )
    parser.add_argument(
        "--mag-err-floor",
        type=float,
        default=0.01,
        help="'jades': smallest magnitude error of a detected band (0 as in SBIPIX)",
    )
    parser.add_argument(
        "--noise-catalog",
        help="learn the noise from this catalogue's fluxes and errors instead (EmpiricalNoise)",
    )
    add_catalog_args(parser)
    parser.add_argument(
        "--redshift",
        choices=("known", "infer"),
        default="known",
        help="known: condition on the redshift; infer: a free parameter of the posterior",
    )
    parser.add_argument("--flow", default="realnvp", help="realnvp, nsf, maf or nsf-ar")
    parser.add_argument("--epochs", type=int, default=300, help="most epochs")
    parser.add_argument("--batch-size", type=int, default=512, help="simulations per step")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="initial Adam step")
    parser.add_argument("--patience", type=int, default=15, help="early-stopping patience")
    parser.add_argument(
        "--lr-patience",
        type=int,
        default=3,
        help="epochs without progress before the learning rate is halved",
    )
    parser.add_argument("--max-rows", type=int, help="use only the first rows of the set")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split, noise and weights")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument(
        "--recalibrate",
        choices=("auto", "always", "never"),
        default="auto",
        help="fit recalibration maps on the validation rows after training "
        "(auto: when there are >= 4000 of them)",
    )
    add_param_file_args(parser, sps=False)
    parser.add_argument("--checkpoint", help="checkpoint file (default: OUT.ckpt)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")


_RECALIBRATE = {"auto": None, "always": True, "never": False}


def make_noise(args: argparse.Namespace, bands: list[str]) -> object:
    """Build the noise model the options describe."""
    import json

    from ..catalog import read_catalog
    from ..noise import EmpiricalNoise, JadesPixelNoise, noise_from_dict

    if args.noise_catalog:
        cat = read_catalog(
            args.noise_catalog,
            bands,
            unit=args.unit,
            flux_format=args.flux_format,
            err_format=args.err_format,
        )
        return EmpiricalNoise.from_catalog(cat.flux, cat.err, bands)
    if args.noise == "jades":
        return JadesPixelNoise(bands, data_dir=args.noise_data, mag_err_floor=args.mag_err_floor)
    path = Path(args.noise)
    if not path.is_file():
        raise ValueError(f"--noise {args.noise!r} is neither 'jades' nor a JSON file")
    try:
        return noise_from_dict(json.loads(path.read_text()))
    except ValueError as err:  # json.JSONDecodeError too
        raise ValueError(f"--noise {path}: {err}") from None


def run_train(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi train``."""
    from ..posterior import train
    from ..trainingset import TrainingSet

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    with TrainingSet.open(args.trainingset) as ts:
        if args.param_file is not None:
            from ..provenance import model_difference, model_spec
            from .common import param_file

            diff = model_difference(
                model_spec(param_file(args).model()),
                ts.provenance["model_spec"],
                "the training set's",
            )
            if diff:
                raise ValueError(f"--param-file {args.param_file}: {diff}")
        noise = make_noise(args, list(ts.filters))
        post = train(
            ts,
            noise,
            redshift=args.redshift,
            flow=args.flow,
            max_epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            patience=args.patience,
            lr_patience=args.lr_patience,
            max_rows=args.max_rows,
            seed=args.seed,
            device=args.device,
            checkpoint=args.checkpoint or out.with_name(out.name + ".ckpt"),
            recalibrate=_RECALIBRATE[args.recalibrate],
        )
    post.to("cpu").save(out, overwrite=args.overwrite)
    from ..plotting.training import save_loss_curve

    curve = save_loss_curve(out.with_name(out.name + ".loss.png"), post, title=out.name)
    info = post.training
    recal = post.recalibration or info.get("recalibration", "none")
    print(
        f"{out}: {len(post.labels)} labels ({', '.join(post.labels)}); "
        f"{len(info['history'])} epochs, best {info['best_epoch']}; "
        f"recalibration: {recal}; loss curve {curve}"
    )
    return 0
