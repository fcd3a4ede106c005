"""Batched posterior sampling speed: pixels/s and ms per pixel, one core and all cores.

Workload (issue 5): an estimator for Prospector's ``parametric_sfh`` (zred 0.5-4, known), the
14 JADES bands and ``JadesPixelNoise``; 1000 held-out mock pixels; ``posterior.sample`` with 100
and 1000 draws per pixel, batched, on one thread and on all cores (and on the GPU when there is
one). Speed depends on the architecture, not on how well the estimator is trained, so the
estimator here is trained briefly unless ``--estimator`` names a saved one. An estimator with
recalibration maps is also timed without them (one thread, 1000 draws:
``ms_per_pixel_1000_flow``).

The timings run in a separate process that only loads the estimator and samples, so its peak
resident memory is that of inference.

Usage: ``python benchmarks/inference.py [--quick] [--estimator FILE] [--pixels N]``
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

ZRED = (0.5, 4.0)


def build(folder: Path, quick: bool) -> Path:
    """Simulate, train briefly and save an estimator; return its path."""
    import torch

    from prospect_sbi import BC03MilesBasis, JadesPixelNoise, build_model, jades_filters, simulate
    from prospect_sbi.posterior import train

    torch.set_num_threads(1)
    n = 12_000 if quick else 60_000
    model = build_model("parametric_sfh", zred=ZRED)
    ts = simulate(
        model, BC03MilesBasis(), jades_filters(), n, folder / "train.h5", seed=1, progress=False
    )
    post = train(ts, JadesPixelNoise(), max_epochs=3 if quick else 20, progress=False)
    return post.save(folder / "estimator.sbi")


def mocks(estimator: Path, folder: Path, pixels: int) -> Path:
    """Held-out mock pixels of the estimator's model (another seed) as an npz file."""
    from prospect_sbi import BC03MilesBasis, simulate
    from prospect_sbi.posterior import AmortizedPosterior, held_out

    post = AmortizedPosterior.resolve(str(estimator))
    ts = simulate(
        post.model(),
        BC03MilesBasis(),
        post.filters,
        pixels,
        folder / "mocks.h5",
        seed=987,
        progress=False,
    )
    obs = held_out(post, ts, slice(0, pixels), seed=5)
    path = folder / "mocks.npz"
    np.savez(path, flux=obs["flux"], err=obs["err"], zred=obs["zred"])
    return path


def peak_rss_gb() -> float:
    """Peak resident memory of this process, GB.

    On Linux ``ru_maxrss`` survives ``fork`` + ``exec``, so a worker started by a process that
    trained a network would report the parent's peak; ``VmHWM`` belongs to the new address
    space only.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # KiB on Linux


def worker(estimator: str, data: str, out: str) -> None:
    """Time sample() for every (draws, threads, device) setting; write JSON to ``out``."""
    import torch

    from prospect_sbi.posterior import AmortizedPosterior

    obs = np.load(data)
    post = AmortizedPosterior.resolve(estimator)
    cores = os.cpu_count() or 1
    settings = [("cpu", 1), ("cpu", cores)] if cores > 1 else [("cpu", 1)]
    if torch.cuda.is_available():
        settings.append(("cuda", cores))
    rows = []
    # the recalibration maps' cost, side by side: the flow's own draws too, on one thread
    runs = [(d, t, n, True) for d, t in settings for n in (100, 1000)]
    if post.recalibration is not None:
        runs.insert(2, ("cpu", 1, 1000, False))
    for device, threads, n, recal in runs:
        torch.set_num_threads(threads)
        post.to(device)
        post.sample(obs["flux"][:16], obs["err"][:16], n, zred=obs["zred"][:16])  # warm up
        best = np.inf
        for _ in range(3):
            start = time.perf_counter()
            post.sample(obs["flux"], obs["err"], n, zred=obs["zred"], recalibrate=recal)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - start)
        pixels = len(obs["flux"])
        rows.append(
            {
                "device": device,
                "threads": threads,
                "draws": n,
                "recalibrated": recal and post.recalibration is not None,
                "pixels_per_s": pixels / best,
                "ms_per_pixel": 1e3 * best / pixels,
            }
        )
    peak = peak_rss_gb()
    Path(out).write_text(
        json.dumps(
            {
                "rows": rows,
                "peak_rss_gb": peak,
                "network": post.network.config,
                "labels": len(post.labels),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small training set, 3 epochs")
    parser.add_argument("--estimator", help="a saved AmortizedPosterior or a pretrained name")
    parser.add_argument("--pixels", type=int, default=1000, help="pixels per batch")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        estimator = args.estimator or build(folder, args.quick)
        data = mocks(estimator, folder, args.pixels)
        out = folder / "timings.json"
        subprocess.run(
            [sys.executable, __file__, "--worker", str(estimator), str(data), str(out)], check=True
        )
        result = json.loads(out.read_text())
    net = result["network"]
    name = args.estimator or "parametric_sfh trained here"
    print(
        f"\n{name} ({result['labels']} labels), 14 JADES bands, JadesPixelNoise, zred known; "
        f"{args.pixels} pixels; flow {net['flow']} x{net['transforms']} hidden "
        f"{net['hidden']}"
    )
    print(
        f"{'device':8s} {'threads':>7s} {'draws':>6s} {'recal':>5s} {'pixels/s':>10s} "
        f"{'ms/pixel':>9s}"
    )
    for r in result["rows"]:
        print(
            f"{r['device']:8s} {r['threads']:7d} {r['draws']:6d} "
            f"{'yes' if r['recalibrated'] else 'no':>5s} {r['pixels_per_s']:10.1f} "
            f"{r['ms_per_pixel']:9.3f}"
        )
    print(f"peak RSS of the sampling process: {result['peak_rss_gb']:.2f} GB")
    main_rows = [r for r in result["rows"] if r["threads"] == 1 and r["device"] == "cpu"]
    one = {r["draws"]: r["ms_per_pixel"] for r in main_rows if r["recalibrated"]}
    one = one or {r["draws"]: r["ms_per_pixel"] for r in main_rows}
    flow = [r["ms_per_pixel"] for r in main_rows if not r["recalibrated"] and r["draws"] == 1000]
    print(
        f"RESULT ms_per_pixel_100={one[100]:.3f} ms_per_pixel_1000={one[1000]:.3f} "
        f"peak_rss_gb={result['peak_rss_gb']:.2f}"
        + (f" ms_per_pixel_1000_flow={flow[0]:.3f}" if flow else "")
    )


if __name__ == "__main__":
    main()
