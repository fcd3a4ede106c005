"""``prospect-sbi recalibrate``: fit an estimator's recalibration maps on fresh mocks."""

from __future__ import annotations

__all__ = ["add_recalibrate_args", "run_recalibrate"]

import argparse
import tempfile
from pathlib import Path

import numpy as np

#: Added to --seed: the mocks never share their rows with validate's (seed 1,000,003 + s).
SEED_OFFSET = 500_000


def add_recalibrate_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi recalibrate``."""
    parser.description = (
        "Fit per-label, per-S/N-bin maps of posterior quantiles on held-out mocks of the "
        "estimator's own model, so that its credible intervals hold their share of the "
        "truths, and write the estimator with them. Validate on other mocks (prospect-sbi "
        "validate simulates its own)."
    )
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="estimator file to write")
    parser.add_argument(
        "--testset",
        help="held-out simulations of the estimator's model (default: simulate new mocks)",
    )
    parser.add_argument("--mocks", type=int, default=20_000, help="objects to fit on")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per object")
    parser.add_argument("--bins", type=int, default=4, help="S/N bins of equal counts")
    parser.add_argument("--knots", type=int, default=20, help="intervals of each map")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mocks and draws")
    parser.add_argument("--overwrite", action="store_true", help="replace --out")


def run_recalibrate(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi recalibrate``."""
    from ..posterior import AmortizedPosterior, recalibrate
    from ..validate.mocks import mock_observations, test_set_observations

    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists (--overwrite replaces it)")
    post = AmortizedPosterior.resolve(args.estimator)
    seed = int(args.seed) + SEED_OFFSET
    if args.testset:
        obs, path = test_set_observations(post, args.testset, args.mocks, seed)
        source = f"test set {path.resolve()}, rows 0-{args.mocks}"
    else:
        from ..sources import BC03MilesBasis

        with tempfile.TemporaryDirectory() as tmp:
            mocks = mock_observations(
                post, post.model(), BC03MilesBasis(), args.mocks, Path(tmp) / "mocks.h5", seed
            )
        obs = dict(mocks, truth=np.stack([mocks["truth"][x] for x in post.labels], 1))
        source = f"{len(obs['flux'])} mocks of the training model, seed {seed}"
    print(f"recalibrating {args.estimator} on {source}")
    recalibrate(
        post,
        obs["flux"],
        obs["err"],
        obs["truth"],
        obs["zred"],
        n=args.draws,
        n_bins=args.bins,
        n_knots=args.knots,
        seed=seed,
        info={"mocks": source},
        progress=True,
    )
    post.save(out, overwrite=args.overwrite)
    print(f"wrote {out}: {post.recalibration}")
    return 0
