"""Reproduce the pretrained JADES estimators shipped with prospect-sbi, from scratch.

Recipes of ``AmortizedPosterior.pretrained(name)`` (:data:`prospect_sbi.PRETRAINED`):
Prospector's ``parametric_sfh`` (delayed-tau) and ``continuity_sfh`` (6 bins following the
redshift) from :func:`prospect_sbi.build_model`, with nebular emission and free ``gas_logu``,
DL07 dust emission at FSPS's defaults; stellar mass formed log-uniform over 10^4-10^12 Msun so
that single JWST pixels as well as whole galaxies are inside the prior; the 14 JADES bands;
``JadesPixelNoise``.

- ``jades-parametric``, ``jades-continuity``: redshift known (an input), 0.1-15; 300,000 draws,
  :func:`prospect_sbi.train`'s defaults (RealNVP, plateau schedule). The 0.2 files were
  started from the 0.1 ones (z <= 10, no dust emission: ``--transfer``) and trained 50 epochs
  at ``--lr 1e-3`` on the new model's draws (``--epochs 50 --lr 1e-3``); ``jades-parametric``
  was then fine-tuned 20 epochs on 600,000 draws (``--finetune --n 600000 --epochs 20
  --lr 5e-4``; its bright posteriors 7% narrower, ``benchmarks/sharpness.py``). Both were
  then fine-tuned 20 epochs on 1,200,000 draws with mass augmentation and a cosine schedule
  (``--finetune --n 1200000 --epochs 20 --lr 5e-4 --schedule cosine --augment-mass``,
  ``--lr 3e-4`` for ``jades-continuity``; 32 minutes each on one core): bright posteriors
  5-6% narrower again. Then 16 more epochs the same way on 1,500,000 draws (``--finetune
  --n 1500000 --epochs 16 --lr 4e-4 --schedule cosine --augment-mass``, ``--lr 2.5e-4`` for
  ``jades-continuity``; 31 minutes each on one core): 1-2% narrower. Then 22 more epochs on
  2,000,000 draws (``--finetune --n 2000000 --epochs 22 --lr 3e-4 --schedule cosine
  --augment-mass``, ``--lr 2e-4`` for ``jades-continuity``; 75-79 minutes each on one core):
  3-4% narrower and better centred. Then 20 more on the same 2,000,000 (``--epochs 20 --lr
  2.5e-4``; ``--epochs 24 --lr 2e-4`` for ``jades-continuity``; 63-77 minutes each on one
  core): 2-3% narrower; and once more the same way (54-66 minutes): 1% narrower.
- ``jades-parametric-photoz``, ``jades-continuity-photoz``: redshift inferred, 0-20 with
  :data:`prospect_sbi.pretrained.PHOTOZ_PRIOR`; 600,000 draws; spline flow (``"nsf"``,
  multi-modal redshift posteriors), cosine schedule, batches of 1024, 10 epochs;
  ``jades-parametric-photoz`` was then fine-tuned 15 epochs on 900,000 draws (``--finetune
  --n 900000 --epochs 15 --lr 5e-4``: outliers on detected mocks 18.5% -> 11.7%);
  ``jades-continuity-photoz`` 15 more epochs on 900,000 draws with mass augmentation and a
  cosine schedule (``--finetune --n 900000 --epochs 15 --lr 5e-4 --schedule cosine
  --augment-mass``: the real galaxies' flow photo-z 0.136 / 36% -> 0.089 / 27%), and
  ``jades-parametric-photoz`` 10 more on 900,000 the same way (``--epochs 10``: 0.081 / 22%
  -> 0.068 / 17%). Session 22 gave ``jades-continuity-photoz`` the bursty SFH prior
  (``logsfr_ratio_scale`` 1.0, :data:`prospect_sbi.PRETRAINED`): started from the file
  before it (``--transfer``) and trained 12 epochs on 900,000 draws of the new prior
  (``--transfer OLD.sbi --n 900000 --epochs 12 --lr 5e-4 --schedule cosine --augment-mass``).
  Session 23 trained both once more on the same 900,000 draws (``--finetune --n 900000
  --schedule cosine --augment-mass``, ``--epochs 12 --lr 3e-4`` for
  ``jades-continuity-photoz``, ``--epochs 10 --lr 3e-4`` for ``jades-parametric-photoz``;
  19 minutes on two threads and 16 on one): validation loss 12.28 -> 11.81 and -11.79 ->
  -12.02.

Each gets recalibration maps (:func:`prospect_sbi.posterior.recalibrate`) fitted on
``--n-recal`` mocks of another seed (20,000 for the known-redshift 0.2 files, 12,000 for
the photo-z ones).

Usage: ``python examples/train_jades_estimators.py [--only NAME] [--folder DIR] [--install]``.
Training sets and checkpoints are kept in ``--folder``, so a rerun resumes (after a kill too);
``--install`` copies the estimators into ``prospect_sbi/data/pretrained/``.
``--recalibrate-only`` fits the maps of the installed estimators again, without training.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from prospect_sbi import PRETRAINED, pretrained_model
from prospect_sbi.posterior.training import SCHEDULES
from prospect_sbi.pretrained import pretrained_path, pretrained_redshift

#: name -> seed of its training set
SEEDS = {
    "jades-parametric": 101,
    "jades-continuity": 202,
    "jades-parametric-photoz": 303,
    "jades-continuity-photoz": 404,
}
_KNOWN = (300_000, {"max_epochs": 80})
_PHOTOZ = (
    600_000,
    {
        "flow": "nsf",
        "schedule": "cosine",
        "batch_size": 1024,
        "max_epochs": 10,
        "learning_rate": 2e-3,
    },
)
#: name -> training draws, and train() options besides the defaults
RECIPES = {name: _PHOTOZ if name.endswith("-photoz") else _KNOWN for name in SEEDS}
#: seeds of the recalibration mocks' simulation and noise (benchmarks/accuracy.py tests on
#: seeds 2 and 3)
RECAL_SEEDS = (11, 12)


def train_one(
    name: str,
    folder: Path,
    device: str,
    n: int | None = None,
    options: dict | None = None,
    finetune: bool = False,
    transfer: str | None = None,
) -> Path:
    """Simulate (resumable) and train (resumable) one estimator; return its file.

    ``n`` and ``options`` override :data:`RECIPES`. With ``finetune``, training starts from
    the installed estimator's weights; with ``transfer``, from that estimator file's, whose
    model may differ (older physics, narrower redshifts).
    """
    from prospect_sbi import BC03MilesBasis, JadesPixelNoise, jades_filters, simulate, train

    seed, model = SEEDS[name], pretrained_model(name)
    n_default, recipe = RECIPES[name]
    n = n or n_default
    options = {**recipe, **(options or {})}
    ts = simulate(model, BC03MilesBasis(), jades_filters(), n, folder / f"{name}.h5", seed=seed)
    start = time.perf_counter()
    init = transfer or (pretrained_path(name) if finetune else None)
    tag = "-transfer" if transfer else "-finetune" if finetune else ""
    post = train(
        ts,
        JadesPixelNoise(),
        pretrained_redshift(name),
        device=device,
        init=init,
        transfer=bool(transfer),
        checkpoint=folder / f"{name}{tag}.ckpt",
        recalibrate=False,  # maps from recalibrate_one's own mocks instead
        **options,
    )
    described = " ".join(f"{k}={v}" for k, v in sorted(options.items()))
    post.training["recipe"] = (
        f"examples/train_jades_estimators.py --only {name}: {n} draws, seed {seed}, "
        f"train({described}){' from ' + Path(str(init)).name if init else ''}"
        f"{' (transfer)' if transfer else ''}; build_model(**PRETRAINED[{name!r}])"
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
    parser.add_argument("--n", type=int, help="training draws per model (default: the recipe's)")
    parser.add_argument("--epochs", type=int, help="most epochs (default: the recipe's)")
    parser.add_argument("--lr", type=float, help="initial learning rate (default: the recipe's)")
    parser.add_argument("--folder", default="pretrained-run", help="work folder (resumable)")
    parser.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule")
    parser.add_argument("--batch-size", type=int, help="examples per gradient step")
    parser.add_argument(
        "--augment-mass",
        action="store_true",
        help="a new formed mass for every row every epoch (train(augment_mass=True))",
    )
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="continue from the installed estimator (e.g. --epochs 40 --lr 1e-4)",
    )
    parser.add_argument(
        "--transfer",
        metavar="SBI",
        help="start from this estimator file, of another model (e.g. an older version's)",
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
    options = {
        "max_epochs": args.epochs,
        "learning_rate": args.lr,
        "schedule": args.schedule,
        "batch_size": args.batch_size,
        "augment_mass": args.augment_mass or None,
    }
    options = {k: v for k, v in options.items() if v is not None}
    for name in [args.only] if args.only else PRETRAINED:
        if args.recalibrate_only:
            path = pretrained_path(name)
        else:
            path = train_one(
                name, folder, args.device, args.n, options, args.finetune, args.transfer
            )
        path = recalibrate_one(name, path, folder, args.n_recal)
        if args.install:
            target = Path(__file__).resolve().parents[1] / "prospect_sbi/data/pretrained"
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.name)
            print(f"installed {target / path.name}")


if __name__ == "__main__":
    main()
