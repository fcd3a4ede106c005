"""A whole field end to end: mosaics on disk -> map_field -> catalogue, field maps, figure.

Writes a synthetic JADES-like field (:func:`prospect_sbi.pixels.make_test_field`: 14 bands,
SCI/ERR in MJy/sr, float32, written in row strips; sky noise at the JADES pixel depths,
simulated galaxies with the JADES pixel noise) of ``--side`` x ``--side`` pixels (default
10,000: 11.2 GB of mosaics, in a temporary folder deleted at the end) and maps every galaxy
with :func:`~prospect_sbi.pixels.map_field` three times, each in a fresh process: serially,
on a dask ``LocalCluster`` of 1 worker and of 2 workers (one single-threaded process each),
started as ``--workers`` starts them (``dask_client``: without dask's ``MALLOC_TRIM_THRESHOLD_``).

    python benchmarks/survey.py [--quick] [--side 10000] [--estimator PATH]

Full run: 1000 galaxies, >= 500,000 fitted pixels; ``--quick``: 100 smaller galaxies.
The last line is ``RESULT ms_per_pixel_core=... peak_rss_gb=... speedup_2_workers=...
galaxies=... pixels=... side=...``: ms per fitted pixel per core of the serial run, end to
end (read, cut out, select, fit with the predictive check, write every galaxy's files but
its PNG panel unless ``--png``, the field catalogue, field maps and figure); the largest
peak RSS of any process (the driver, or a dask worker); the wall-time ratio of the 1-worker
and 2-worker dask runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

SETUPS = {  # galaxies, radius (px), log mass formed, cell (px)
    "full": (1000, (5.0, 8.0), (9.3, 10.3), 100),
    "quick": (100, (2.0, 4.0), (8.7, 9.5), 100),
}


def child(args) -> dict:
    """Map the field in this process (and its dask workers); timings and peak RSS."""
    import torch

    from prospect_sbi.filters import JADES_BANDS
    from prospect_sbi.pixels import map_field
    from prospect_sbi.posterior import AmortizedPosterior

    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    post = AmortizedPosterior.resolve(args.estimator or args.pretrained)
    folder = Path(args.folder)
    mosaics = {b: folder / f"{b}.fits" for b in JADES_BANDS}
    client = cluster = None
    if args.child_workers:
        from prospect_sbi._io import dask_client  # what --workers starts

        client = dask_client(args.child_workers)
        cluster = client.cluster
        client.run(lambda: __import__("prospect_sbi.pixels"))  # started, as a real cluster is
    t0 = time.perf_counter()
    res = map_field(
        post,
        mosaics,
        folder / "segmap.fits",
        folder / "catalog.ecsv",
        args.out,
        n_draws=args.n_draws,
        client=client,
        progress=False,
        png=args.png,
        quantities=tuple(args.maps),
    )
    wall = time.perf_counter() - t0
    worker_rss = 0.0
    if client is not None:
        worker_rss = (
            max(client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss).values())
            / 1e6
        )
        client.close()
        cluster.close()
    rss = (
        max(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        )
        / 1e6
    )  # kB -> GB
    return {
        "workers": args.child_workers,
        "galaxies": int(res.fitted),
        "errors": len(res.errors),
        "pixels": int(res.catalog["n_pixels"].sum()),
        "wall_s": wall,
        "peak_rss_gb": rss,
        "worker_rss_gb": worker_rss,
    }


def run_case(args, folder: Path, out: Path, workers: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--folder",
        str(folder),
        "--out",
        str(out),
        "--child-workers",
        str(workers),
        "--n-draws",
        str(args.n_draws),
        "--pretrained",
        args.pretrained,
        "--maps",
        *args.maps,
    ] + (["--png"] if args.png else [])
    if args.estimator:
        cmd += ["--estimator", str(args.estimator)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode:
        sys.exit(f"case with {workers} workers failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="100 small galaxies instead of 1000")
    p.add_argument("--side", type=int, default=10_000, help="frame side, pixels")
    p.add_argument("--pretrained", default="jades-parametric", help="pretrained estimator")
    p.add_argument("--estimator", type=Path, help="an estimator file instead")
    p.add_argument("--n-draws", type=int, default=200, help="posterior draws per pixel")
    p.add_argument(
        "--maps",
        nargs="+",
        default=["log_sigma_mstar"],
        help="field-wide maps to write (each 1.2 GB at side 10,000)",
    )
    p.add_argument(
        "--png", action="store_true", help="write each galaxy's PNG panel too (about 1 s a galaxy)"
    )
    p.add_argument("--tmp", help="folder for the temporary files (default: the system's)")
    p.add_argument(
        "--galaxies",
        type=int,
        help="this many galaxies of the setup's size (default 1000, --quick 100)",
    )
    p.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        choices=(0, 1, 2),
        help="runs: 0 serial, 1 and 2 dask workers (the speed-up needs 1 and 2)",
    )
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--child-workers", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    n_gal, radius, log_mass, cell = SETUPS["quick" if args.quick else "full"]
    n_gal = args.galaxies or n_gal
    side = args.side
    need = side * side * 4 * (2 * 14 + 1 + 3 * len(args.maps) * 3)  # mosaics, segmap, 3 runs
    tmp_root = args.tmp or tempfile.gettempdir()
    free = shutil.disk_usage(tmp_root).free
    if free < 1.2 * need:
        sys.exit(
            f"needs {need / 1e9:.1f} GB free in {tmp_root} (has {free / 1e9:.1f}); "
            "pass --tmp FOLDER or a smaller --side"
        )
    from prospect_sbi.pixels import make_test_field

    with tempfile.TemporaryDirectory(dir=tmp_root, prefix="survey_bench_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        field = make_test_field(
            tmp / "field", n_gal, (side, side), seed=1, radius=radius, log_mass=log_mass, cell=cell
        )
        t_write = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in (tmp / "field").iterdir()) / 1e9
        rows = [run_case(args, tmp / "field", tmp / f"out{w}", w) for w in args.workers]
    print(f"per-galaxy PNG panels: {'yes' if args.png else 'no (--png to add them)'}")
    print(
        f"field {side} x {side} x 14 bands, {len(field.galaxies)} galaxies, "
        f"{int(field.galaxies['n_segment'].sum())} segment pixels; mosaics {size:.1f} GB on "
        f"disk, written in {t_write:.0f} s"
    )
    print(
        f"{'run':<10} {'galaxies':>8} {'failed':>6} {'pixels':>8} {'wall s':>8} "
        f"{'ms/pix/core':>11} {'pix/s':>7} {'RSS GB':>7} {'worker GB':>9}"
    )
    for r in rows:
        label = "serial" if not r["workers"] else f"dask x{r['workers']}"
        ms = 1e3 * r["wall_s"] * max(1, r["workers"]) / r["pixels"]
        print(
            f"{label:<10} {r['galaxies']:>8} {r['errors']:>6} {r['pixels']:>8} "
            f"{r['wall_s']:>8.1f} {ms:>11.2f} {r['pixels'] / r['wall_s']:>7.0f} "
            f"{r['peak_rss_gb']:>7.2f} {r['worker_rss_gb']:>9.2f}"
        )
    runs = {r["workers"]: r for r in rows}
    serial = runs.get(0, rows[0])
    speedup = runs[1]["wall_s"] / runs[2]["wall_s"] if {1, 2} <= set(runs) else float("nan")
    peak = max(max(r["peak_rss_gb"], r["worker_rss_gb"]) for r in rows)
    ms = 1e3 * serial["wall_s"] * max(1, serial["workers"]) / serial["pixels"]
    print(
        f"RESULT ms_per_pixel_core={ms:.3f} "
        f"peak_rss_gb={peak:.3f} speedup_2_workers={speedup:.2f} "
        f"galaxies={serial['galaxies']} pixels={serial['pixels']} side={side} "
        f"cpus={os.cpu_count()}"
    )


if __name__ == "__main__":
    main()
