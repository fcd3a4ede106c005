"""Reproduce the pretrained JADES estimators shipped with prospect-sbi, from scratch.

Recipe of ``AmortizedPosterior.pretrained("jades-parametric")`` and ``("jades-continuity")``:
Prospector's ``parametric_sfh`` (delayed-tau) and ``continuity_sfh`` (6 bins following the
redshift) from :func:`prospect_sbi.build_model`, with nebular emission and free ``gas_logu``;
stellar mass formed log-uniform over 10^4-10^12 Msun so that single JWST pixels as well as
whole galaxies are inside the prior; redshift 0.1-10, known (the estimator is conditioned on
it); the 14 JADES bands; ``JadesPixelNoise``. Each model gets a training set of ``--n`` draws
(300,000 for the shipped files) and :func:`prospect_sbi.train`'s defaults, then recalibration
maps (:func:`prospect_sbi.posterior.recalibrate`) fitted on ``--n-recal`` (40,000) mocks of
another seed.

Usage: ``python examples/train_jades_estimators.py [--n 300000] [--folder DIR] [--install]``.
Training sets and checkpoints are kept in ``--folder``, so a rerun resumes; ``--install``
copies the estimators into ``prospect_sbi/data/pretrained/``. ``--recalibrate-only`` fits
the maps of the installed estimators again, without training.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from prospect_sbi import PRETRAINED, pretrained_model
from prospect_sbi.pretrained import pretrained_path

#: name -> seed of its training set
SEEDS = {"jades-parametric": 101, "jades-continuity": 202}
#: seeds of the recalibration mocks' simulation and noise (benchmarks/accuracy.py tests on
#: seeds 2 and 3)
RECAL_SEEDS = (11, 12)


def train_one(
    name: str,
    folder: Path,
    n: int,
    max_epochs: int,
    device: str,
    lr_patience: int = 3,
    learning_rate: float = 3e-3,
    finetune: bool = False,
) -> Path:
    """Simulate (resumable) and train (resumable) one estimator; return its file.

    With ``finetune``, training starts from the installed estimator's weights.
    """
    from prospect_sbi import BC03MilesBasis, JadesPixelNoise, jades_filters, simulate, train

    seed, model = SEEDS[name], pretrained_model(name)
    ts = simulate(model, BC03MilesBasis(), jades_filters(), n, folder / f"{name}.h5", seed=seed)
    start = time.perf_counter()
    init = pretrained_path(name) if finetune else None
    post = train(
        ts,
        JadesPixelNoise(),
        max_epochs=max_epochs,
        device=device,
        learning_rate=learning_rate,
        lr_patience=lr_patience,
        init=init,
        checkpoint=folder / f"{name}{'-finetune' if finetune else ''}.ckpt",
        recalibrate=False,
    )  # maps from recalibrate_one's own mocks instead
    post.training["recipe"] = (
        f"examples/train_jades_estimators.py --n {n} "
        f"--epochs {max_epochs} --lr {learning_rate} "
        f"--lr-patience {lr_patience}{' --finetune' if finetune else ''}: "
        f"build_model(**{PRETRAINED[name]}), seed {seed}"
    )
    post.training["wall_s"] = time.perf_counter() - start
    print(f"{name}: {len(post.training['history'])} epochs in {post.training['wall_s']:.0f} s")
    return post.save(folder / f"{name}.sbi", overwrite=True)


def recalibrate_one(name: str, estimator: Path, folder: Path, n: int) -> Path:
    """Fit the recalibration maps of an estimator on ``n`` fresh mocks; return its file."""
    from prospect_sbi import AmortizedPosterior, BC03MilesBasis, simulate
    from prospect_sbi.posterior import held_out, recalibrate

    post, model = AmortizedPosterior.load(estimator), pretrained_model(name)
    sim_seed, noise_seed = RECAL_SEEDS
    ts = simulate(
        model, BC03MilesBasis(), post.filters, n, folder / f"{name}-recal.h5", seed=sim_seed
    )
    mocks = held_out(post, ts, slice(0, n), seed=noise_seed)
    recalibrate(
        post,
        mocks["flux"],
        mocks["err"],
        mocks["truth"],
        mocks["zred"],
        info={
            "mocks": f"simulate(pretrained_model({name!r}), BC03MilesBasis(), "
            f"post.filters, {n}, seed={sim_seed}); held_out(..., "
            f"seed={noise_seed})"
        },
        progress=True,
    )
    print(f"{name}: {post.recalibration} from {n} mocks")
    return post.save(folder / f"{name}.sbi", overwrite=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300_000, help="training draws per model")
    parser.add_argument("--epochs", type=int, default=300, help="most epochs")
    parser.add_argument("--folder", default="pretrained-run", help="work folder (resumable)")
    parser.add_argument(
        "--lr-patience",
        type=int,
        default=3,
        help="epochs without progress before the learning rate is halved",
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="initial learning rate")
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="continue from the installed estimator (e.g. --epochs 40 --lr 1e-4)",
    )
    parser.add_argument("--n-recal", type=int, default=40_000, help="recalibration mocks")
    parser.add_argument(
        "--recalibrate-only",
        action="store_true",
        help="refit the installed estimators' recalibration, no training",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", choices=sorted(PRETRAINED), help="train just this one")
    parser.add_argument(
        "--install",
        action="store_true",
        help="copy the estimators into prospect_sbi/data/pretrained/",
    )
    args = parser.parse_args()
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [args.only] if args.only else PRETRAINED:
        if args.recalibrate_only:
            path = pretrained_path(name)
        else:
            path = train_one(
                name,
                folder,
                args.n,
                args.epochs,
                args.device,
                args.lr_patience,
                args.lr,
                args.finetune,
            )
        path = recalibrate_one(name, path, folder, args.n_recal)
        if args.install:
            target = Path(__file__).resolve().parents[1] / "prospect_sbi/data/pretrained"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.name)
            print(f"installed {target / path.name}")


if __name__ == "__main__":
    main()
