"""``prospect-sbi quickstart``: from a fresh install to real results in one command."""

from __future__ import annotations

__all__ = ["add_quickstart_args", "run_quickstart"]

import argparse
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior


def add_quickstart_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi quickstart``."""
    parser.description = (
        "Load a pretrained JADES estimator shipped with the package, check it on fresh mocks "
        "(calibration report and plots), and, when the real JADES data are found "
        "(../shared/data or $PROSPECT_SBI_DATA), fit the 99-galaxy spec-z catalogue and map "
        "the three JOF cutouts pixel by pixel. Offline; a few minutes on 2 cores. Steps "
        "already done are skipped when rerun."
    )
    parser.add_argument("-o", "--out", default="prospect-sbi-quickstart", help="output folder")
    parser.add_argument(
        "--estimator", default="jades-parametric", help="pretrained name or estimator file"
    )
    parser.add_argument("--data", help="folder of the JADES data (default: found if present)")
    parser.add_argument("--no-data", action="store_true", help="skip the real-galaxy steps")
    parser.add_argument("--mocks", type=int, default=300, help="mocks for the calibration")
    parser.add_argument("--draws", type=int, default=300, help="posterior draws per object")
    parser.add_argument(
        "--err-floor",
        type=float,
        default=0.05,
        help="fractional error floor added in quadrature to the catalogue's "
        "errors, as SED fits of galaxies do (0: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the mocks and draws")


def run_quickstart(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi quickstart``."""
    with warnings.catch_warnings():
        # The JOF HST bands are far shallower than JADES pixels; said once, not per batch.
        warnings.filterwarnings("ignore", message=".*non-detections with errors larger than")
        print("(non-detections shallower than the training depth are treated as missing bands)")
        return _tour(args)


def _tour(args: argparse.Namespace) -> int:
    from ..jades_data import find_data_dir
    from ..posterior import AmortizedPosterior

    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    post = AmortizedPosterior.resolve(args.estimator)
    print(f"estimator {args.estimator}: {len(post.filters)} bands; {', '.join(post.labels)}")
    written = [_calibration(args, out)]
    data = None if args.no_data else find_data_dir(args.data)
    if data is None:
        print(
            "no JADES data folder found (../shared/data or $PROSPECT_SBI_DATA): skipping the "
            "real-galaxy steps"
        )
    else:
        print(f"JADES data: {data}")
        written += [_catalogue(post, data, out, args), *_maps(post, data, out, args)]
    print(f"\ndone in {time.perf_counter() - start:.0f} s; results in {out}/:")
    for path in written:
        print(f"  {path}")
    return 0


def _calibration(args: argparse.Namespace, out: Path) -> Path:
    """Calibration report on fresh mocks (reused when already written)."""
    from ..validate import validate

    folder = out / "calibration"
    if (folder / "report.md").exists():
        print(f"[1] calibration: {folder}/report.md exists, kept")
        return folder / "report.md"
    print(f"[1] calibration on {args.mocks} fresh mocks of the estimator's model ...")
    report = validate(args.estimator, folder, n_mocks=args.mocks, draws=args.draws, seed=args.seed)
    table = report.matched.table
    row = {name: i for i, name in enumerate(table["name"])}
    if "log_mstar" in row:
        r = table[row["log_mstar"]]
        print(
            f"    log M*: R^2 {r['r2']:.3f}, bias {r['bias']:+.3f}, scatter {r['scatter']:.3f}"
            f" dex; largest coverage error {np.max(table['coverage_err']):.3f}"
        )
    return folder / "report.md"


def _catalogue(post: AmortizedPosterior, data: Path, out: Path, args: argparse.Namespace) -> Path:
    """Fit the spec-z catalogue; write its summary table and a stellar-mass plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .._io import save_figure, write_table
    from ..fitting import fit_catalog
    from ..jades_data import read_specz_catalogue
    from ..posterior.plausibility import count_flags

    path = out / "jades_specz_sbi.ecsv"
    if path.exists():
        print(f"[2] catalogue: {path} exists, kept")
        return path
    cat = read_specz_catalogue(data, post.filters, err_floor=args.err_floor)
    t0 = time.perf_counter()
    table = fit_catalog(
        post, cat, draws=args.draws, seed=args.seed, progress=False, refine="never"
    )  # a quick look; `prospect-sbi fit` refines
    ok = np.isfinite(table["log_mstar_p50"])
    counts = count_flags(table["flag"])
    print(
        f"[2] catalogue: {len(table)} galaxies, {int(ok.sum())} fitted in "
        f"{time.perf_counter() - t0:.1f} s; flagged: "
        f"{', '.join(f'{v} {k}' for k, v in counts.items()) or 'none'}"
    )
    fig, ax = plt.subplots(figsize=(5, 4))
    y = table["log_mstar_p50"][ok]
    yerr = [y - table["log_mstar_p16"][ok], table["log_mstar_p84"][ok] - y]
    ax.errorbar(table["zred"][ok], y, yerr=yerr, fmt="o", ms=3, lw=0.8)
    ax.set(
        xlabel="spectroscopic redshift",
        ylabel="log M* / Msun (SBI)",
        title="JADES spec-z galaxies",
    )
    fig.tight_layout()
    save_figure(fig, out / "jades_specz_mass.png", dpi=120)
    plt.close(fig)
    return write_table(path, table, overwrite=True)  # last: its presence means done


def _maps(post: AmortizedPosterior, data: Path, out: Path, args: argparse.Namespace) -> list[Path]:
    """Pixel maps of the JOF cutouts and the resolved-vs-integrated plot."""
    from .._io import save_figure
    from ..jades_data import read_jof_cutouts
    from ..pixels import map_galaxy
    from ..plotting.maps import plot_outshining

    folder = out / "maps"
    written, tables = [], []
    cutouts = read_jof_cutouts(data)
    for gid, images in cutouts.items():
        t0 = time.perf_counter()
        done = map_galaxy(
            post,
            images,
            folder,
            f"jof_{gid}",
            n_draws=min(args.draws, 200),
            seed=args.seed,
            progress=False,
        )
        tables.append(done.outshining)
        written.append(done.files["maps"])
        if done.skipped:
            print(f"[3] JOF {gid}: {done.files['done']} exists, kept")
            continue
        r, fit = done.outshining[0], done.fit
        ood = "n/a" if fit.ood is None else f"{fit.ood.mean():.0%}"
        print(
            f"[3] JOF {gid} (z={images.zred:.2f}): {len(fit)} pixels in "
            f"{time.perf_counter() - t0:.1f} s; log M* pixel-summed "
            f"{r['log_mstar_resolved']:.2f}, integrated {r['log_mstar_integrated']:.2f}; "
            f"{ood} flagged out of distribution"
        )
    fig = plot_outshining(tables, names=[f"JOF {g}" for g in cutouts])
    return [*written, save_figure(fig, folder / "jof_outshining.png", dpi=120)]
