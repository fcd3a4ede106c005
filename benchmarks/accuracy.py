"""Accuracy and calibration of the amortised posterior on held-out simulations.

Workload (issue 4): Prospector's ``parametric_sfh`` and ``continuity_sfh`` (6 bins), zred
0.5-6 known (the estimator is conditioned on it), nebular emission, the 14 JADES bands,
``JadesPixelNoise``. For each model: simulate a training set (10^6 at full scale) and a
separate held-out set (another seed, never used in training), train with the defaults of
:func:`prospect_sbi.posterior.train`, then on the held-out mocks report R^2, bias (median
residual) and scatter (1.4826 MAD) of the posterior median for log M*, log SFR100, mass-weighted
age, logzsol and dust2, and the expected-coverage error (largest ``|coverage - level|`` over
credibility levels 0.02-0.98, central intervals) of every label.

Targets: R^2(log M*) >= 0.99 and coverage error <= 0.03 for every parameter. Every table is
given for all mocks and for the mocks detected as the reference selects pixels (S/N >= 5
over F277W, F356W, F444W, as :func:`prospect_sbi.pixels.snr_map`); the RESULT keys
``r2_logmass`` and ``coverage_err_max`` are those of the detected mocks, ``*_all`` of all mocks.
The detected mocks are also split by S/N (5-20, 20-50, >= 50), and, where the mocks reach
z = 10 (``--pretrained``: 0.1-15), by redshift (``r2_logmass_z10``: R^2(log M*) of the
detected mocks at z < 10, where the 0.1 estimators were trained and measured).
A coverage error measured on B mocks is itself noisy: each table gives the error a
perfectly calibrated posterior would reach by chance on as many mocks (95th percentile,
:func:`prospect_sbi.posterior.coverage_noise`), and ``coverage_err_noise`` is that of the
detected mocks. Every estimator is recalibrated (:func:`prospect_sbi.posterior.recalibrate`)
on mocks of its own, neither training nor test mocks; ``coverage_err_max_flow`` is the
largest coverage error of the flow's own draws.

``--exact N`` also scores the exact posterior (``refine="always"``, importance sampling with
the noise model's likelihood) on the first N detected mocks of each model, beside the
estimator on the same mocks: how much of R^2's shortfall is the estimator's and how much is
the information the mocks carry (``r2_logmass_exact``, ``r2_logmass_same``: the lower over the
two models).

Usage: ``python benchmarks/accuracy.py [--quick] [--folder DIR] [--device auto]``
(training sets, checkpoints and estimators are kept in ``--folder``, so an interrupted full
run resumes where it stopped). ``--pretrained`` skips training and evaluates the estimators
shipped with the package (``jades-parametric``, ``jades-continuity``: 300k simulations each,
zred 0.1-15 with IGM and dust emission, stellar mass formed 10^4-10^12 Msun) on fresh mocks
of their own models.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

TEMPLATES = ("parametric_sfh", "continuity_sfh")
ZRED = (0.5, 6.0)
REPORTED = ("log_mstar", "log_sfr100", "mwa", "logzsol", "dust2")
#: Detection S/N bins of the detected mocks, reported apart (None: no upper end).
SNR_BINS = ((5, 20), (20, 50), (50, None))
#: Redshift above which a detected mock counts as "z>=10" (the shipped 0.1 estimators, whose
#: R^2 target this was, stopped at z = 10; the 0.2 ones go to 15).
Z_SPLIT = 10.0
#: Names of the detected mocks below and above it.
LOW_Z, HIGH_Z = f"S/N>=5 z<{Z_SPLIT:g}", f"S/N>=5 z>={Z_SPLIT:g}"
#: Names of the --exact subsets: the estimator and the exact posterior on the same mocks.
SAME, EXACT = "S/N>=5 --exact set, estimator", "S/N>=5 --exact set, exact posterior"


def run_template(
    template: str,
    folder: Path,
    n_train: int,
    n_test: int,
    draws: int,
    max_epochs: int,
    device: str,
    exact: int = 0,
) -> tuple[object, float]:
    from prospect_sbi import BC03MilesBasis, JadesPixelNoise, build_model, jades_filters, simulate
    from prospect_sbi.posterior import held_out, recalibrate, train

    model = build_model(template, zred=ZRED)
    sps, filters = BC03MilesBasis(), jades_filters()
    ts = simulate(
        model, sps, filters, n_train, folder / f"{template}_train.h5", seed=1, progress=False
    )
    test = simulate(
        model, sps, filters, n_test, folder / f"{template}_test.h5", seed=2, progress=False
    )
    cal = simulate(
        model, sps, filters, n_test, folder / f"{template}_cal.h5", seed=4, progress=False
    )
    start = time.perf_counter()
    post = train(
        ts,
        JadesPixelNoise(),
        max_epochs=max_epochs,
        device=device,
        checkpoint=folder / f"{template}.ckpt",
        progress=False,
        recalibrate=False,
    )
    seconds = time.perf_counter() - start
    # recalibration maps from mocks of their own (neither the training nor the test set), as
    # the shipped estimators' were fitted, rather than train's on its validation split
    mocks = held_out(post.to("cpu"), cal, slice(0, n_test), seed=5)
    recalibrate(post, mocks["flux"], mocks["err"], mocks["truth"], mocks["zred"], n=draws)
    post.save(folder / f"{template}.sbi", overwrite=True)
    obs = held_out(post.to("cpu"), test, slice(0, n_test), seed=3)
    meta = {
        "template": template,
        "seconds": seconds,
        "epochs": len(post.training["history"]),
        "best_epoch": post.training["best_epoch"],
    }
    return evaluate_sets(post, obs, draws, meta, exact), seconds


def run_pretrained(
    template: str, folder: Path, n_test: int, draws: int, exact: int = 0
) -> tuple[object, float]:
    """Evaluate a shipped estimator on ``n_test`` new mocks of its own model."""
    from prospect_sbi import AmortizedPosterior, BC03MilesBasis, pretrained_model, simulate
    from prospect_sbi.posterior import held_out

    name = "jades-" + template.split("_")[0]
    post, model = AmortizedPosterior.pretrained(name), pretrained_model(name)
    test = simulate(
        model,
        BC03MilesBasis(),
        post.filters,
        n_test,
        folder / f"{name}_test.h5",
        seed=2,
        progress=False,
    )
    obs = held_out(post, test, slice(0, n_test), seed=3)
    info = post.training
    meta = {
        "template": f"{template} ({name})",
        "seconds": info.get("wall_s", np.nan),
        "epochs": len(info["history"]),
        "best_epoch": info["best_epoch"],
    }
    return evaluate_sets(post, obs, draws, meta, exact), 0.0


def evaluate_sets(
    post: object, obs: dict, draws: int, meta: dict, exact: int = 0
) -> dict[str, object]:
    """Metrics on all mocks and on those detected as the reference selects pixels.

    Iglesias-Navarro et al. fit pixels with mean S/N >= 5 over F277W, F356W and F444W; a mock
    far below the depth carries no information, its posterior is the prior, and a handful of
    them dominate R^2. Both sets are reported; with ``exact`` > 0, also the estimator and the
    exact posterior on the first ``exact`` detected mocks.
    """
    from prospect_sbi.filters import resolve_band_names
    from prospect_sbi.pixels import SNR_BANDS, detection_snr
    from prospect_sbi.posterior import coverage_noise, evaluate

    # the detection S/N of the pixel selection (prospect_sbi.pixels.snr_map)
    cols = [post.filters.index(b) for b in resolve_band_names(SNR_BANDS)]
    snr = detection_snr(obs["flux"][:, cols], obs["err"][:, cols])
    tables = {}
    subsets = {"all": np.ones(len(snr), bool), "S/N>=5": snr >= 5}
    subsets |= {
        f"S/N {lo}-{hi}" if hi else f"S/N>={lo}": (snr >= lo) & (snr < (hi or np.inf))
        for lo, hi in SNR_BINS
    }
    if obs["zred"].max() >= Z_SPLIT:  # the shipped estimators' mocks reach z = 15
        high = obs["zred"] >= Z_SPLIT
        subsets |= {LOW_Z: (snr >= 5) & ~high, HIGH_Z: (snr >= 5) & high}
    if exact:
        first = np.zeros(len(snr), bool)
        first[np.flatnonzero(snr >= 5)[:exact]] = True
        subsets |= {SAME: first, EXACT: first}
    for name, rows in subsets.items():
        args = (post, obs["flux"][rows], obs["err"][rows], obs["truth"][rows], obs["zred"][rows])
        table = evaluate(*args, n=draws, refine="always" if name == EXACT else "never")
        # what a perfectly calibrated posterior would show on this many mocks, by chance
        noise = coverage_noise(int(rows.sum()), draws, n_labels=len(table))
        table.meta.update(meta, n=int(rows.sum()), coverage_noise=noise)
        if post.recalibration is not None and name != EXACT:  # the flow's own draws too
            flow = evaluate(*args, n=draws, recalibrate=False)
            table["coverage_err_flow"] = flow["coverage_err"]
        tables[name] = table
    return tables


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30k training sets (minutes)")
    parser.add_argument("--folder", help="keep sets, checkpoints and estimators here")
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None, help="most epochs")
    parser.add_argument(
        "--n-test",
        type=int,
        default=None,
        help="held-out mocks per model (20000; 1000 with --quick)",
    )
    parser.add_argument(
        "--pretrained",
        action="store_true",
        help="evaluate the shipped estimators instead of training",
    )
    parser.add_argument(
        "--exact",
        type=int,
        default=0,
        metavar="N",
        help="also score the exact posterior on the first N detected mocks (~0.2 s each)",
    )
    args = parser.parse_args()
    if args.exact < 0:
        parser.error(f"--exact must be an integer >= 0; got {args.exact}")
    n_train = args.n_train or (30_000 if args.quick else 1_000_000)
    # 20000 mocks (~14000 detected): a calibrated posterior then shows a coverage error of up
    # to 0.014 by chance (95%); on 5000 (~3500 detected) up to 0.029, at the 0.03 target.
    n_test = args.n_test or (1000 if args.quick else 20_000)
    draws = 500 if args.quick else 1000
    epochs = args.epochs or (60 if args.quick else 300)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        if args.pretrained:
            tables = {
                t: run_pretrained(t, folder, n_test, draws, args.exact)[0] for t in TEMPLATES
            }
        else:
            tables = {
                t: run_template(
                    t, folder, n_train, n_test, draws, epochs, args.device, args.exact
                )[0]
                for t in TEMPLATES
            }
    setup = (
        "the shipped estimators (300k simulations, zred 0.1-15, log M formed 4-12)"
        if args.pretrained
        else f"training sets of {n_train}; zred {ZRED}"
    )
    print(
        f"\nheld-out mocks: {n_test} per model, {draws} draws each; {setup}; redshift "
        "known; 14 JADES bands, JadesPixelNoise"
    )
    r2_mass, cov_max = {"all": np.inf, "S/N>=5": np.inf}, {"all": 0.0, "S/N>=5": 0.0}
    cov_noise, cov_flow = dict.fromkeys(cov_max, 0.0), 0.0
    r2_z10 = np.inf  # detected mocks at z < Z_SPLIT, when the mocks reach beyond it
    r2_same = dict.fromkeys((SAME, EXACT), np.inf)  # --exact: estimator and exact, same mocks
    for sets in tables.values():
        for subset, table in sets.items():
            meta = table.meta
            took = f", {meta['seconds']:.0f} s of training" if np.isfinite(meta["seconds"]) else ""
            print(
                f"\n{meta['template']}: {meta['epochs']} epochs (best {meta['best_epoch']})"
                f"{took}; {subset} mocks: {meta['n']}"
            )
            flow = "coverage_err_flow" in table.colnames
            print(
                f"{'quantity':12s} {'R^2':>7s} {'bias':>8s} {'scatter':>8s} {'cov err':>8s}"
                + (f" {'flow only':>9s}" if flow else "")
            )
            for row in table:
                if row["name"] in REPORTED:
                    print(
                        f"{row['name']:12s} {row['r2']:7.3f} {row['bias']:8.3f} "
                        f"{row['scatter']:8.3f} {row['coverage_err']:8.3f}"
                        + (f" {row['coverage_err_flow']:9.3f}" if flow else "")
                    )
            worst = int(np.argmax(table["coverage_err"]))
            print(
                f"largest coverage error: {table['coverage_err'][worst]:.3f} "
                f"({table['name'][worst]}) over {len(table)} labels; a calibrated "
                f"posterior shows up to {meta['coverage_noise']:.3f} by chance"
            )
            if flow:
                bad = int(np.argmax(table["coverage_err_flow"]))
                print(
                    f"without the recalibration: {table['coverage_err_flow'][bad]:.3f} "
                    f"({table['name'][bad]})"
                )
            mass = float(table["r2"][list(table["name"]).index("log_mstar")])
            if subset == LOW_Z:
                r2_z10 = min(r2_z10, mass)
            if subset in r2_same:
                r2_same[subset] = min(r2_same[subset], mass)
            if subset not in cov_max:
                continue
            cov_noise[subset] = max(cov_noise[subset], meta["coverage_noise"])
            r2_mass[subset] = min(r2_mass[subset], mass)
            cov_max[subset] = max(cov_max[subset], float(np.max(table["coverage_err"])))
            if flow and subset == "S/N>=5":
                cov_flow = max(cov_flow, float(np.max(table["coverage_err_flow"])))
    print(
        f"RESULT r2_logmass={r2_mass['S/N>=5']:.4f} coverage_err_max={cov_max['S/N>=5']:.3f} "
        f"r2_logmass_all={r2_mass['all']:.4f} coverage_err_max_all={cov_max['all']:.3f} "
        f"coverage_err_noise={cov_noise['S/N>=5']:.3f} coverage_err_max_flow={cov_flow:.3f}"
        + (f" r2_logmass_z10={r2_z10:.4f}" if np.isfinite(r2_z10) else "")
        + (
            f" r2_logmass_exact={r2_same[EXACT]:.4f} r2_logmass_same={r2_same[SAME]:.4f}"
            if np.isfinite(r2_same[EXACT])
            else ""
        )
    )


if __name__ == "__main__":
    main()
