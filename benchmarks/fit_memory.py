"""Peak memory of ``prospect-sbi fit`` against the number of catalogue rows.

A synthetic catalogue of N rows (model photometry of ``--model``'s prior draws at random
redshifts and brightnesses, catalogue-like errors: 10 times the pixel depth, 5% floor; nJy,
FITS) is fitted by the command line in a subprocess, for each output format; the peak
resident memory of that process (``os.wait4``'s ``ru_maxrss``) is reported. Rows are streamed
to the output a chunk at a time, so memory should stay flat in N apart from the catalogue
itself (28 columns of N float64) and its checked copy.

Refinement is off by default (``--refine never``): it costs time per bright row, not memory
per row, and the benchmark is about memory in N. ``--refine auto`` measures it too.

Usage: ``python benchmarks/fit_memory.py [--quick] [--rows N ...] [--draws 50] [--no-ppc]
[--refine never|auto|always]``. The full
run fits 10^6 rows; ``--quick`` fits 2x10^4 and 10^5 and extrapolates the peak to 10^6
linearly (saying so). Prints a table and, last, ``RESULT peak_rss_gb_1e6_rows=...``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_catalogue(path: Path, n: int, model_name: str, seed: int = 0) -> None:
    """Write N rows of synthetic JADES photometry (nJy) with redshifts and ids to ``path``."""
    from astropy.table import Table

    from prospect_sbi import AmortizedPosterior, BC03MilesBasis, pretrained_model
    from prospect_sbi.catalog import short_band_name
    from prospect_sbi.forward import ModelPhotometry
    from prospect_sbi.transforms import draw_theta

    post = AmortizedPosterior.pretrained(model_name)
    model = pretrained_model(model_name)
    rng = np.random.default_rng(seed)
    theta = draw_theta(model, rng.uniform(size=(400, model.ndim)))
    idx = model.theta_index
    theta[:, idx["zred"]] = rng.uniform(0.5, 6.0, (400, 1))
    if "tage" in idx:  # younger than the universe at every redshift drawn
        theta[:, idx["tage"]] = rng.uniform(0.1, 1.0, (400, 1))
    mass = idx["mass"] if "mass" in idx else idx["logmass"]
    theta[:, mass] = 1e9 if "mass" in idx else 9.0
    seds = ModelPhotometry(model, BC03MilesBasis(), post.filters)(theta)[0]
    pick = rng.integers(0, len(seds), n)
    true = seds[pick] * 10 ** rng.uniform(-1.0, 1.5, (n, 1))
    err = np.hypot(10 * post.noise.depth, 0.05 * true)
    flux = true + err * rng.standard_normal(true.shape)
    table = Table({"id": np.arange(n), "redshift": theta[pick, idx["zred"].start]})
    for j, band in enumerate(post.filters):
        name = short_band_name(band)
        table[name] = flux[:, j] * 3631e9
        table[f"unc_{name}"] = err[:, j] * 3631e9
        table[name].unit = table[f"unc_{name}"].unit = "nJy"
    table.write(path, overwrite=True)


def fit_peak(catalogue: Path, out: Path, args: argparse.Namespace) -> tuple[float, float]:
    """Run ``prospect-sbi fit`` in a subprocess: (wall seconds, peak RSS in GB)."""
    cmd = [
        sys.executable,
        "-m",
        "prospect_sbi.cli",
        "fit",
        str(catalogue),
        args.model,
        "-o",
        str(out),
        "--draws",
        str(args.draws),
        "--chunk-size",
        str(args.chunk_size),
        "--refine",
        args.refine,
        *(["--no-ppc"] if args.no_ppc else []),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    line = proc.stdout.read().decode().strip()
    if status != 0:
        raise SystemExit(f"prospect-sbi fit failed ({status}): {line}")
    print(f"  {line[:150]}")
    return wall, usage.ru_maxrss / 1024**2  # KiB -> GiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2e4 and 1e5 rows, extrapolated")
    parser.add_argument("--rows", type=int, nargs="+", help="catalogue sizes to fit")
    parser.add_argument("--draws", type=int, default=50, help="posterior draws per object")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--formats", nargs="+", default=["ecsv", "fits"])
    parser.add_argument("--model", default="jades-parametric", help="pretrained estimator")
    parser.add_argument("--refine", default="never", choices=("never", "auto", "always"))
    parser.add_argument("--no-ppc", action="store_true", help="skip the predictive check")
    parser.add_argument("--folder", help="where to write (default: a temporary folder)")
    args = parser.parse_args()
    sizes = args.rows or ([20_000, 100_000] if args.quick else [1_000_000])
    folder = Path(args.folder or tempfile.mkdtemp(prefix="fit_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in sizes:
        catalogue = folder / f"cat_{n}.fits"
        if not catalogue.exists():
            make_catalogue(catalogue, n, args.model)
        for fmt in args.formats:
            out = folder / f"fit_{n}.{fmt}"
            out.unlink(missing_ok=True)
            print(f"fitting {n} rows -> {out.name} ...", flush=True)
            wall, peak = fit_peak(catalogue, out, args)
            rows.append(
                (
                    n,
                    fmt,
                    wall,
                    peak,
                    catalogue.stat().st_size / 1024**3,
                    out.stat().st_size / 1024**3,
                )
            )
    print(
        "\n| rows | output | draws | wall (s) | rows/s | peak RSS (GB) | catalogue (GB) | "
        "output (GB) |\n|---|---|---|---|---|---|---|---|"
    )
    for n, fmt, wall, peak, cat_gb, out_gb in rows:
        print(
            f"| {n:,} | {fmt} | {args.draws} | {wall:.0f} | {n / wall:.0f} | {peak:.2f} | "
            f"{cat_gb:.3f} | {out_gb:.3f} |"
        )
    worst = {n: max(p for m, _, _, p, _, _ in rows if m == n) for n in sizes}
    if 1_000_000 in worst:
        print(f"\nRESULT peak_rss_gb_1e6_rows={worst[1_000_000]:.2f}")
    elif len(worst) >= 2:
        (n0, p0), (n1, p1) = sorted(worst.items())[:1] + sorted(worst.items())[-1:]
        slope = (p1 - p0) / (n1 - n0)
        est = p1 + slope * (1_000_000 - n1)
        print(
            f"\npeak RSS grows {slope * 1e5:.3f} GB per 10^5 rows; 10^6 rows extrapolated "
            f"linearly from {n0:,} and {n1:,} rows (not measured)"
        )
        print(f"RESULT peak_rss_gb_1e6_rows={est:.2f} (extrapolated)")
    else:
        print(f"\nRESULT peak_rss_gb_{sizes[0]}_rows={worst[sizes[0]]:.2f}")


if __name__ == "__main__":
    main()
