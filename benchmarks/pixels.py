"""End-to-end pixel-map throughput: load, select, fit (with the predictive check), write maps.

Each galaxy is one :func:`prospect_sbi.pixels.map_galaxy` call (the one map call), without the
PNG panel and the outshining table: the maps FITS file and the per-pixel table are written.

Each case runs in a fresh subprocess so its peak RSS is its own. Cases: the three real JOF
cutouts (if ``../shared/data`` or ``$PROSPECT_SBI_DATA`` has them) on one core, and a
synthetic N x N x 14 field (random parametric-SFH pixels at z = 2 with JADES pixel noise) on
one core and on all cores (dask ``LocalCluster``, one single-threaded worker process per
core, started as ``--workers`` starts them: ``dask_client``).

    python benchmarks/pixels.py [--quick] [--estimator PATH]

The JOF cutouts are also fitted with ``refine="auto"`` (the exact posterior, by importance
sampling with the Gaussian flux likelihood, for pixels of total S/N >= 20 and those the flow's
draws fit badly; :mod:`prospect_sbi.posterior.refine`), one core.

The last line is ``RESULT ms_per_pixel_core=... pixels_per_s_all_cores=... peak_rss_gb=...
ms_per_pixel_core_refined=... refined_share=...``: ms per pixel per core of the one-core field
run, pixels/s of the all-core field run, the largest peak RSS of any case (driver process;
workers' RSS is reported beside it), and for the JOF run with ``refine="auto"`` the ms per
pixel per core averaged over the maps and the share of pixels it refined (without the JOF
data: nan).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prospect_sbi.jades_data import CUTOUTS, find_data_dir

#: The JOF cutouts: ``../shared/data`` or ``$PROSPECT_SBI_DATA`` (``find_data_dir``).
DATA = (find_data_dir() or Path("/nonexistent")) / CUTOUTS


def field_cube(post, model, sps, n, seed=0):
    """A synthetic n x n field: each pixel a random parametric-SFH galaxy at z = 2."""
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.transforms import draw_theta

    rng = np.random.default_rng(seed)
    theta = draw_theta(model, rng.uniform(size=(n * n, model.ndim)))
    labels = model.theta_labels()
    if "zred" in labels:
        theta[:, labels.index("zred")] = 2.0
    if "tage" in labels:
        theta[:, labels.index("tage")] = np.minimum(theta[:, labels.index("tage")], 3.0)
    if "mass" in labels:
        theta[:, labels.index("mass")] = 10 ** rng.uniform(6.5, 9.0, n * n)
    if "logmass" in labels:
        theta[:, labels.index("logmass")] = rng.uniform(6.5, 9.0, n * n)
    flux, err = post.noise.apply(ModelPhotometry(model, sps, post.filters)(theta)[0], rng)
    return flux.T.reshape(-1, n, n), err.T.reshape(-1, n, n)


def child(args) -> dict:
    """Run one case in this process and return its timings and peak RSS."""
    import torch

    from prospect_sbi import AmortizedPosterior, BC03MilesBasis
    from prospect_sbi.pixels import load_cube, map_galaxy

    torch.set_num_threads(1)
    post = AmortizedPosterior.resolve(args.estimator or args.pretrained)
    model = post.model()
    sps = BC03MilesBasis()
    _ = sps.grids
    if args.case == "jof":
        d = np.load(DATA)
        inputs = [
            (
                d[f"id{g}_phot_uJy"],
                d[f"id{g}_err_uJy"],
                "uJy",
                d[f"id{g}_segmap_det"],
                float(d[f"id{g}_redshift"]),
                "centre",
            )
            for g in (36, 370, 778)
        ]
    else:
        f, e = field_cube(post, model, sps, args.n)
        inputs = [(f, e, "maggies", None, 2.0, None)]
    client = cluster = None
    if args.workers > 1:
        from prospect_sbi._io import dask_client  # what --workers starts

        client = dask_client(args.workers)
        cluster = client.cluster
    out = tempfile.mkdtemp()
    pixels, refined, t0 = 0, 0, time.perf_counter()
    for i, (f, e, unit, seg, z, segment) in enumerate(inputs):
        images = load_cube(f, e, post.filters, unit, pixel_scale=0.03, segmap=seg, zred=z)
        fit = map_galaxy(
            post,
            images,
            out,
            f"m{i}",
            segment=segment,
            model=model,
            sps=sps,
            n_draws=args.n_draws,
            client=client,
            torch_threads=1,
            progress=False,
            refine=args.refine,
            png=False,
            outshining=False,
        ).fit
        pixels += len(fit)
        if fit.refinement is not None:
            refined += int(fit.refinement["refined"].sum())
    wall = time.perf_counter() - t0
    worker_rss = 0.0
    if client is not None:
        worker_rss = (
            max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())
            / 1e6
        )
        client.close()
        cluster.close()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB (Linux)
    return {
        "case": args.case,
        "n": args.n,
        "workers": args.workers,
        "pixels": pixels,
        "wall_s": wall,
        "peak_rss_gb": rss,
        "worker_rss_gb": worker_rss,
        "refine": args.refine,
        "refined": refined,
    }


def run_case(args, case, n, workers, refine="never") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--case",
        case,
        "--n",
        str(n),
        "--workers",
        str(workers),
        "--n-draws",
        str(args.n_draws),
        "--pretrained",
        args.pretrained,
        "--refine",
        refine,
    ]
    if args.estimator:
        cmd += ["--estimator", str(args.estimator)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        sys.exit(f"case {case} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="JOF + a 100 x 100 field")
    p.add_argument("--pretrained", default="jades-parametric")
    p.add_argument("--estimator", type=Path)
    p.add_argument("--n-draws", type=int, default=200)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--case", default="field", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=200, help=argparse.SUPPRESS)
    p.add_argument("--refine", default="never", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    n = 100 if args.quick else 200
    cases = ([("jof", 0, 1), ("jof", 0, 1, "auto")] if DATA.is_file() else []) + [("field", n, 1)]
    if args.workers > 1:
        cases.append(("field", n, args.workers))
    rows = [run_case(args, *c) for c in cases]
    print(
        f"{'case':<14} {'refine':>6} {'workers':>7} {'pixels':>7} {'refined':>7} {'wall s':>8} "
        f"{'ms/pix/core':>11} {'pix/s':>8} {'RSS GB':>7} {'worker GB':>9}"
    )
    for r in rows:
        label = "JOF x3" if r["case"] == "jof" else f"field {r['n']}x{r['n']}"
        ms = 1e3 * r["wall_s"] * r["workers"] / r["pixels"]
        print(
            f"{label:<14} {r['refine']:>6} {r['workers']:>7} {r['pixels']:>7} "
            f"{r['refined']:>7} {r['wall_s']:>8.1f} {ms:>11.2f} "
            f"{r['pixels'] / r['wall_s']:>8.0f} {r['peak_rss_gb']:>7.2f} "
            f"{r['worker_rss_gb']:>9.2f}"
        )
    one = next(r for r in rows if r["case"] == "field" and r["workers"] == 1)
    many = rows[-1]
    peak = max(max(r["peak_rss_gb"], r["worker_rss_gb"]) for r in rows)
    ref = next((r for r in rows if r["refine"] == "auto"), None)
    ms_ref = np.nan if ref is None else 1e3 * ref["wall_s"] / ref["pixels"]
    share = np.nan if ref is None else ref["refined"] / ref["pixels"]
    print(
        f"RESULT ms_per_pixel_core={1e3 * one['wall_s'] / one['pixels']:.3f} "
        f"pixels_per_s_all_cores={many['pixels'] / many['wall_s']:.1f} peak_rss_gb={peak:.3f} "
        f"ms_per_pixel_core_refined={ms_ref:.2f} refined_share={share:.3f}"
    )


if __name__ == "__main__":
    main()
