"""Training-set simulation speed per core: fast path, generic path and bagpipes, side by side.

Workload (issue 4): Prospector's ``continuity_sfh`` (6 bins following the redshift), Calzetti
dust, nebular emission (free logU), free redshift 0.1-10, the 14 JADES bands. All three run in
this process, one after the other, single-threaded (BLAS/OpenMP threads set to 1 before numpy
loads), so SEDs/s is per core:

- fast: ``simulate(..., method="fast")`` end to end (prior draws, transforms, batched
  photometry, derived quantities, HDF5 writes);
- generic: ``simulate(..., method="generic")``, i.e. ``SpecModel.predict`` per draw;
- bagpipes: ``model_galaxy.update()`` photometry-only (no spectrum requested) on the same 14
  filters, with its ``continuity`` SFH, Calzetti dust and nebular emission, at its default
  ``R_phot``, over the same kind of draws.

Then a separate process simulates ``--rss-n`` SEDs (10^6 by default) with the fast path and
reports its peak resident memory.

Usage: ``python benchmarks/simulate.py [--quick]``
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

ZRANGE = (0.1, 10.0)  # bagpipes' IGM table stops at z = 10


def workload_model():
    from prospect_sbi import build_model

    return build_model("continuity_sfh", zred=ZRANGE, nbins=6, nebular=True, dust_type=2)


def time_simulate(method: str, n: int, folder: Path, batch: int) -> tuple[float, int, float]:
    """SEDs/s of simulate() end to end, after a warm-up; and the one-off set-up time (s)."""
    from prospect_sbi import BC03MilesBasis, jades_filters, simulate

    model = workload_model()
    sps = BC03MilesBasis()
    start = time.perf_counter()
    # One-offs, not part of the rate: loading the grids and filters, the fast path's tables.
    filters = jades_filters()
    simulate(
        model,
        sps,
        filters,
        1,
        folder / f"warm_{method}.h5",
        batch_size=1,
        method=method,
        progress=False,
    )
    setup = time.perf_counter() - start
    start = time.perf_counter()
    ts = simulate(
        model,
        sps,
        filters,
        n,
        folder / f"{method}.h5",
        batch_size=batch,
        method=method,
        progress=False,
    )
    elapsed = time.perf_counter() - start
    assert len(ts) == n and np.all(np.isfinite(ts.photometry[: min(n, 1000)]))
    return n / elapsed, n, setup


def time_bagpipes(n: int, folder: Path) -> tuple[float, int, float]:
    import bagpipes

    from prospect_sbi import jades_filters
    from prospect_sbi.transforms import batch_params, draw_theta

    paths = []
    for f in jades_filters():
        path = folder / f"{f.name}.dat"
        np.savetxt(path, np.column_stack([f.wavelength, f.transmission]))
        paths.append(str(path))
    model = workload_model()
    rng = np.random.default_rng(1)
    params = batch_params(model, draw_theta(model, rng.uniform(size=(n, model.ndim))))

    def components(i: int) -> dict:
        zred = float(params["zred"][i])
        # Same step SFH: bin edges in Myr (youngest first), log SFR ratios of each bin to the
        # next older one.
        edges = 10 ** np.concatenate([[0.0], params["agebins"][i][:, 1]]) / 1e6
        edges[-1] = min(edges[-1], 0.999e3 * float(bagpipes.utils.cosmo.age(zred).value))
        sfr = (params["mass"][i] / np.diff(edges))[::-1]  # bagpipes: oldest bin first
        cont = {
            "bin_edges": edges.tolist(),
            "massformed": float(params["logmass"][i]),
            "metallicity": float(10 ** params["logzsol"][i]),
        }
        for k in range(1, len(sfr)):
            cont[f"dsfr{k}"] = float(np.log10(sfr[k] / sfr[k - 1]))
        return {
            "redshift": zred,
            "t_bc": 0.01,
            "continuity": cont,
            "dust": {"type": "Calzetti", "Av": float(1.0857 * params["dust2"][i])},
            "nebular": {"logU": float(params["gas_logu"][i])},
        }

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        galaxy = bagpipes.model_galaxy(components(0), filt_list=paths)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        for i in range(1, n):
            galaxy.update(components(i))
        elapsed = time.perf_counter() - start
    assert np.all(np.isfinite(galaxy.photometry))
    return (n - 1) / elapsed, n - 1, setup


def peak_rss(n: int, folder: Path) -> float:
    """Peak RSS (GB) of a fresh process that simulates n SEDs with the fast path."""
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "import simulate as b; from prospect_sbi import BC03MilesBasis, jades_filters, simulate; "
        f"simulate(b.workload_model(), BC03MilesBasis(), jades_filters(), {n}, "
        f"{str(folder / 'rss.h5')!r}, batch_size=4096, progress=False)"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([sys.executable, "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(before, after) * 1024 / 1e9  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts (a few minutes)")
    parser.add_argument("--rss-n", type=int, default=None, help="SEDs for the memory run")
    args = parser.parse_args()
    n_fast, n_generic, n_bagpipes = (20_000, 100, 100) if args.quick else (100_000, 400, 400)
    rss_n = args.rss_n or (100_000 if args.quick else 1_000_000)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = {
            "fast (BC03MilesBasis batched)": time_simulate("fast", n_fast, folder, 4096),
            "generic (SpecModel.predict)": time_simulate("generic", n_generic, folder, 100),
            "bagpipes model_galaxy.update": time_bagpipes(n_bagpipes, folder),
        }
        rss = peak_rss(rss_n, folder)
    fast, generic, peer = (rows[k][0] for k in rows)
    print(
        "\ncontinuity_sfh (6 bins), Calzetti dust, nebular, zred 0.1-10, 14 JADES bands; one core"
    )
    print(f"{'path':34s} {'SEDs':>8s} {'SEDs/s/core':>12s} {'vs bagpipes':>12s} {'set-up s':>9s}")
    for name, (rate, count, setup) in rows.items():
        print(f"{name:34s} {count:8d} {rate:12.1f} {rate / peer:11.1f}x {setup:9.1f}")
    print(f"peak RSS simulating {rss_n:.0e} SEDs (fast path, batch 4096): {rss:.2f} GB")
    print(
        f"RESULT fast_seds_per_s_core={fast:.0f} generic_seds_per_s_core={generic:.1f} "
        f"bagpipes_seds_per_s_core={peer:.1f} ratio_vs_bagpipes={fast / peer:.1f} "
        f"peak_rss_gb={rss:.2f}"
    )


if __name__ == "__main__":
    main()
