"""SBI against dynesty on mock JADES galaxies drawn from the prior (known redshift).

For each estimator (a file or a pretrained name; default ``jades-parametric`` and
``jades-continuity``) draws mocks from the model's prior
(tage cut at the age of the universe, as in training), adds the estimator's noise, fits each
with dynesty (Prospector, the noise model's likelihood) and with SBI, and prints per model
and parameter the medians over mocks of |delta median| / sigma_dynesty, the 68% width ratio,
the 1-D Wasserstein distance and the wall times.

Targets (issue 6): median |dmed|/sigma <= 0.3 for log M*, log SFR, dust; width ratio in
[0.8, 1.25]; SBI >= 1e4 times faster per object. Last line:
``RESULT dmed_over_sigma=... width_ratio=... speedup=...`` (medians over mocks and the named
parameters of every model; speedup = median dynesty time / SBI time per object in a batch of
the mocks repeated to 1000 objects, best of 3; the single-object time is in the table). A
second table splits the mocks by their detection S/N (that of the pixel selection,
:func:`prospect_sbi.pixels.snr_map`, over F277W, F356W, F444W).

``--refine`` also fits every mock with the exact posterior of the same likelihood by importance
sampling (``fit_model(..., refine="always")``, :mod:`prospect_sbi.posterior.refine`) and adds
its rows (``sbi+is``) and, to the RESULT line, ``dmed_over_sigma_refined=...
width_ratio_refined=...`` (as the SBI keys), ``logz_diff=...`` (median |logz refined - logz
dynesty|, same likelihood and prior), ``ms_per_refined_object=...`` (one core, the bright mocks
refined in one batch: ``sample(..., refine="always")``; the median over the mocks of both
models of each mock's share of its batch's time, in proportion to the importance draws it
took, ``is_draws``), ``ms_mean_per_refined_object=...`` (the batches' time over their mocks),
``speedup_refined=...`` (median dynesty time over the median ms), ``ess_refined=...`` and
``khat_refined=...`` (median ESS and largest k-hat of that batch), and the earlier keys
``dmed_over_sigma_is``, ``width_ratio_is``, ``speedup_is`` (unbatched, one object at a time)
and ``ess``. Per mock it also prints the best log-likelihood each sampler found (refined minus
dynesty), and per model how many mocks one of them missed by more than ``MISSED`` (2): where
the posteriors disagree, that says which one did not reach the best fit.

    python benchmarks/vs_dynesty.py --quick
    python benchmarks/vs_dynesty.py --n-mocks 20 --estimator my_estimator.sbi
    python benchmarks/vs_dynesty.py --jobs 2   # two dynesty fits at a time, one per core
    python benchmarks/vs_dynesty.py --refine   # and SBI + importance sampling
    python benchmarks/vs_dynesty.py --timing-only --n-timing 16   # refinement alone, no dynesty
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch

from prospect_sbi.fitting.comparison import MISSED_LNL as MISSED
from prospect_sbi.posterior.refine import ROUND_DRAWS

DEFAULTS = ["jades-parametric", "jades-continuity"]
NAMED = ("log_mstar", "log_sfr100", "dust2")
#: S/N bins of the second table.
SNR_BINS = {"<5": (-np.inf, 5.0), "5-20": (5.0, 20.0), ">=20": (20.0, np.inf)}


def load(spec: str):
    """A name for the table, the estimator (pretrained name or file) and its model."""
    from prospect_sbi.posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(spec)
    return Path(spec).stem, post, post.model()


def mocks(model, post, sps, n: int, rng: np.random.Generator) -> list:
    from prospect_sbi.fitting import fixed_redshift_model
    from prospect_sbi.forward import ModelPhotometry

    lo, hi = post.header["zred_range"]
    out = []
    while len(out) < n:
        z = float(rng.uniform(lo, hi))
        fixed = fixed_redshift_model(model, z)
        theta = fixed.prior_transform(rng.random(fixed.ndim))
        maggies, _ = ModelPhotometry(fixed, sps, post.filters)(theta)
        flux, err = post.noise.apply(maggies, rng)
        truth = dict(zip(fixed.theta_labels(), theta, strict=True))
        out.append(
            ({"maggies": flux, "maggies_unc": err, "filters": post.filters, "zred": z}, truth)
        )
    return out


def mock_arrays(post, objs: list) -> tuple[np.ndarray, ...]:
    """Fluxes, errors (B, F), redshifts (B,) of the mocks and their detection S/N (B,), that
    of the pixel selection (:func:`prospect_sbi.pixels.snr_map`)."""
    from prospect_sbi.filters import resolve_band_names
    from prospect_sbi.pixels import SNR_BANDS, detection_snr

    flux = np.stack([o["maggies"] for o, _ in objs])
    err = np.stack([o["maggies_unc"] for o, _ in objs])
    zred = np.array([o["zred"] for o, _ in objs])
    cols = [post.filters.index(b) for b in resolve_band_names(SNR_BANDS)]
    return flux, err, zred, detection_snr(flux[:, cols], err[:, cols])


def batch_seconds(post, flux, err, zred, n_draws: int, n_objects: int = 1000) -> float:
    """SBI seconds per object in a batch of ``n_objects`` (the mocks repeated), best of 3.

    Amortised inference is used on catalogues and pixel maps, so the per-object cost is that
    of a large batch; a batch of the 20 mocks alone is dominated by fixed overheads.
    """
    reps = -(-n_objects // len(flux))
    flux, err, zred = (np.concatenate([a] * reps)[:n_objects] for a in (flux, err, zred))
    post.sample(flux[:10], err[:10], 10, zred=zred[:10])  # warm-up
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        post.sample(flux, err, n_draws, zred=zred)
        times.append((time.perf_counter() - t0) / n_objects)
    return min(times)


_WORKER: dict = {}


def _init_worker(spec: str) -> None:
    """A dynesty worker process: one torch thread, its own estimator, model and SPS."""
    from prospect_sbi import BC03MilesBasis

    torch.set_num_threads(1)
    template, post, model = load(spec)
    _WORKER.update(template=template, post=post, model=model, sps=BC03MilesBasis())


def refine_batch(model, post, sps, n: int, rng: np.random.Generator) -> dict:
    """Refine ``n`` bright mocks (detection S/N >= 20, drawn as the others) in one batch, one
    core: ms per object (``per``: each mock's share of the batch's time, in proportion to its
    importance draws; ``ms``: their median; ``mean``: the batch's time over n), ESS, k-hat,
    draws."""
    parts = []
    while sum(len(p[0]) for p in parts) < n:
        f, e, z, s = mock_arrays(post, mocks(model, post, sps, n, rng))
        keep = np.flatnonzero(s >= SNR_BINS[">=20"][0])
        parts.append((f[keep], e[keep], z[keep]))
    flux, err, zred = (np.concatenate([p[j] for p in parts])[:n] for j in range(3))
    args = flux, err, 1000
    post.sample(
        flux[:1], err[:1], 10, zred=zred[:1], refine="always", sps=sps, likelihood="noise", seed=0
    )  # warm-up: the forward model's tables
    t0 = time.perf_counter()
    draws = post.sample(*args, zred=zred, refine="always", sps=sps, likelihood="noise", seed=1)
    seconds = time.perf_counter() - t0
    per = 1e3 * seconds * draws.is_draws / draws.is_draws.sum()
    return {
        "ms": float(np.median(per)),
        "mean": 1e3 * seconds / n,
        "per": per,
        "draws": draws.is_draws,
        "ess": draws.ess,
        "khat": draws.khat,
        "n": n,
    }


def fit_mock(i: int, obs: dict, truth: dict, args: argparse.Namespace) -> tuple:
    """Compare SBI and dynesty on mock ``i``: (rows by parameter, dynesty s, SBI s, refined s,
    ESS, logz refined, logz dynesty, best ln L refined, best ln L dynesty)."""
    from prospect_sbi.fitting import compare

    w = _WORKER
    plot = args.out / f"{w['template']}_{i}.png" if i < args.plots else None
    c = compare(
        obs,
        w["model"],
        w["sps"],
        w["post"],
        n_draws=args.n_draws,
        seed=i,
        plot=plot,
        truths=truth,
        refine=args.refine,
        refine_ndraws=args.refine_ndraws,
        nested_nlive_init=args.nlive,
        nested_dlogz_init=args.dlogz,
        nested_sample="rwalk",
        nested_walks=args.walks,
    )
    return (
        {r["param"]: dict(r) for r in c.table},
        c.t_dynesty,
        c.t_sbi,
        c.t_refine,
        c.ess,
        c.logz_refined,
        c.logz_dynesty,
        c.best_lnlike_refined,
        c.best_lnlike_dynesty,
    )


def run_model(spec, args, sps, rng) -> dict:
    template, post, model = load(spec)
    objs = mocks(model, post, sps, args.n_mocks, rng)
    flux, err, zred, snr = mock_arrays(post, objs)
    t_batch = batch_seconds(post, flux, err, zred, args.n_draws)
    batch = refine_batch(model, post, sps, args.n_timing, rng) if args.refine else None
    out = [None] * len(objs)

    def report(i: int, res: tuple) -> None:
        out[i] = res
        each = " ".join(
            f"{p} {res[0][p]['dmed_over_sigma']:+.2f}/{res[0][p]['width_ratio']:.2f}"
            for p in NAMED
            if p in res[0]
        )
        line = (
            f"  {template} mock {i}: z={objs[i][0]['zred']:.2f} S/N={snr[i]:.1f} dynesty "
            f"{res[1]:.1f} s, sbi {res[2] * 1e3:.1f} ms; dmed/sig/width: {each}"
        )
        if args.refine:
            line += f"; sbi+is {res[3]:.2f} s, ESS {res[4]:.0f}: " + " ".join(
                f"{p} {res[0][p]['is_dmed_over_sigma']:+.2f}/{res[0][p]['is_width_ratio']:.2f}"
                for p in NAMED
                if p in res[0]
            )
            line += f"; best ln L refined - dynesty {res[7] - res[8]:+.1f}"
        print(line, flush=True)

    if args.jobs == 1:
        _WORKER.update(template=template, post=post, model=model, sps=sps)
        for i, (obs, truth) in enumerate(objs):
            report(i, fit_mock(i, obs, truth, args))
    else:
        # one dynesty fit per core; each worker times its own fits on its own core
        with ProcessPoolExecutor(
            args.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(spec,)
        ) as pool:
            futures = {
                pool.submit(fit_mock, i, obs, truth, args): i
                for i, (obs, truth) in enumerate(objs)
            }
            for f in as_completed(futures):
                report(futures[f], f.result())
    rows, t_dyn, t_one, t_refine, ess, logz_r, logz_d, best_r, best_d = zip(*out, strict=True)
    return {
        "template": template,
        "rows": list(rows),
        "t_dyn": np.array(t_dyn),
        "t_one": np.array(t_one),
        "t_batch": t_batch,
        "snr": snr,
        "t_refine": np.array(t_refine),
        "ess": np.array(ess),
        "batch": batch,
        "logz_diff": np.abs(np.array(logz_r) - np.array(logz_d)),
        "best_diff": np.array(best_r) - np.array(best_d),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--estimator",
        action="append",
        help="estimator file or pretrained name (repeatable; default the two pretrained)",
    )
    ap.add_argument("--n-mocks", type=int, default=20)
    ap.add_argument(
        "--n-draws",
        type=int,
        default=1000,
        help="SBI draws per object (1000, as the inference target of issue 5)",
    )
    ap.add_argument("--nlive", type=int, default=150)
    ap.add_argument("--dlogz", type=float, default=0.2)
    ap.add_argument("--walks", type=int, default=16, help="dynesty rwalk steps")
    ap.add_argument("--plots", type=int, default=1, help="corner plots per model")
    ap.add_argument("--out", type=Path, default=Path("vs_dynesty_out"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="dynesty fits run side by side, one per core (each timed on its own)",
    )
    ap.add_argument(
        "--refine", action="store_true", help="also SBI + importance sampling with the likelihood"
    )
    ap.add_argument(
        "--refine-ndraws", type=int, default=ROUND_DRAWS, help="draws per round of the refined fit"
    )
    ap.add_argument(
        "--n-timing",
        type=int,
        default=16,
        help="bright mocks refined in one batch for ms_per_refined_object",
    )
    ap.add_argument(
        "--timing-only",
        action="store_true",
        help="only refine --n-timing bright mocks per model (no dynesty)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="3 mocks, nlive 30, 8 walks, dlogz 1, 1000 draws, 8 bright mocks timed",
    )
    args = ap.parse_args()
    if args.quick:
        args.n_mocks, args.nlive, args.walks, args.dlogz, args.n_draws = 3, 30, 8, 1.0, 1000
        args.n_timing = 8
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)

    from prospect_sbi import BC03MilesBasis

    sps, rng = BC03MilesBasis(), np.random.default_rng(args.seed)
    if args.timing_only:
        timing_only(args, sps, rng)
        return
    results = [run_model(s, args, sps, rng) for s in (args.estimator or DEFAULTS)]

    methods = {"sbi": ""} | ({"sbi+is": "is_"} if args.refine else {})
    head = (
        f"{'model':16s} {'method':7s} {'param':12s} {'|dmed|/sig':>10s} {'width':>7s} "
        f"{'W1':>8s} {'t_dyn s':>8s} {'t_fit ms':>8s} {'t_batch ms':>10s} "
        f"{'speedup':>9s}"
    )
    print(head)
    print("-" * len(head))
    pooled = {m: ([], [], []) for m in methods}  # |dmed|/sigma, width ratio, speed-up
    for r in results:
        for method, pre in methods.items():
            t_fit = np.median(r["t_one"] if method == "sbi" else r["t_refine"])
            # amortised SBI is used in batches; refining is per object
            t_per = r["t_batch"] if method == "sbi" else t_fit
            sp = np.median(r["t_dyn"]) / t_per
            pooled[method][2].append(sp)
            for p in NAMED:
                d = np.abs([row[p][f"{pre}dmed_over_sigma"] for row in r["rows"] if p in row])
                w = np.array([row[p][f"{pre}width_ratio"] for row in r["rows"] if p in row])
                w1 = np.array([row[p][f"{pre}wasserstein"] for row in r["rows"] if p in row])
                pooled[method][0].extend(d)
                pooled[method][1].extend(w)
                print(
                    f"{r['template']:16s} {method:7s} {p:12s} {np.median(d):10.3f} "
                    f"{np.median(w):7.3f} {np.median(w1):8.3f} {np.median(r['t_dyn']):8.1f} "
                    f"{t_fit * 1e3:8.1f} {t_per * 1e3:10.2f} {sp:9.3g}"
                )
    print(
        f"\n{'model':16s} {'method':7s} {'S/N':>10s} {'mocks':>5s} {'|dmed|/sig':>10s} "
        f"{'width':>7s}"
    )
    for r in results:
        for method, pre in methods.items():
            for label, (lo, hi) in SNR_BINS.items():
                sel = np.flatnonzero((r["snr"] >= lo) & (r["snr"] < hi))
                d = [abs(r["rows"][i][p][f"{pre}dmed_over_sigma"]) for i in sel for p in NAMED]
                w = [r["rows"][i][p][f"{pre}width_ratio"] for i in sel for p in NAMED]
                print(
                    f"{r['template']:16s} {method:7s} {label:>10s} {len(sel):5d} "
                    f"{np.median(d) if d else np.nan:10.3f} "
                    f"{np.median(w) if w else np.nan:7.3f}"
                )
    if args.refine:
        print(
            f"\n{'model':16s} {'bright':>6s} {'ms/object':>9s} {'ms mean':>7s} {'ESS med':>7s} "
            f"{'ESS min':>7s} {'k-hat max':>9s} {'|dlogz| med':>11s} {'speedup':>8s}"
        )
        for r in results:
            b = r["batch"]
            sp = np.median(r["t_dyn"]) / (b["ms"] / 1e3)
            print(
                f"{r['template']:16s} {b.get('n', 0):6d} {b['ms']:9.1f} {b['mean']:7.1f} "
                f"{np.nanmedian(b['ess']):7.0f} {np.nanmin(b['ess']):7.0f} "
                f"{np.nanmax(b['khat']):9.2f} {np.median(r['logz_diff']):11.2f} {sp:8.3g}"
            )
        for r in results:
            e, best = r["ess"], r["best_diff"]
            print(
                f"{r['template']}: ESS of the unbatched refined fits: median "
                f"{np.median(e):.0f}, min {e.min():.0f}, mocks with ESS < 50: "
                f"{int((e < 50).sum())}; best ln L found, refined - dynesty: median "
                f"{np.median(best):+.2f}, dynesty's worse by > {MISSED:g} on "
                f"{int((best > MISSED).sum())}, the refined fit's on {int((best < -MISSED).sum())}"
            )
    print(
        f"n_mocks={args.n_mocks} per model, nlive={args.nlive}, walks={args.walks}, "
        f"dlogz={args.dlogz}, jobs={args.jobs}, n_draws={args.n_draws}"
        + (f", refine_ndraws={args.refine_ndraws}" if args.refine else "")
        + "; sbi speedup uses the batched per-object SBI time, sbi+is the per-object time"
    )
    line = " ".join(
        f"{k}{'' if m == 'sbi' else '_is'}={f(v)}"
        for m, vals in pooled.items()
        for k, v, f in zip(
            ("dmed_over_sigma", "width_ratio", "speedup"), vals, (_f3, _f3, _g3), strict=True
        )
    )
    if args.refine:
        line += f" ess={np.median(np.concatenate([r['ess'] for r in results])):.0f}"
        ms, mean = _batch_ms([r["batch"] for r in results])
        t_dyn = np.median(np.concatenate([r["t_dyn"] for r in results]))
        ess = np.concatenate([r["batch"]["ess"] for r in results])
        khat = np.concatenate([r["batch"]["khat"] for r in results])
        line += (
            f" dmed_over_sigma_refined={_f3(pooled['sbi+is'][0])} "
            f"width_ratio_refined={_f3(pooled['sbi+is'][1])} "
            f"logz_diff={np.median(np.concatenate([r['logz_diff'] for r in results])):.3f}"
            f" ms_per_refined_object={ms:.1f} ms_mean_per_refined_object={mean:.1f}"
            f" speedup_refined={t_dyn / (ms / 1e3):.3g}"
            f" ess_refined={np.nanmedian(ess):.0f} khat_refined={np.nanmax(khat):.2f}"
        )
    print(f"RESULT {line}")


def timing_only(args: argparse.Namespace, sps, rng: np.random.Generator) -> None:
    """Refine ``--n-timing`` bright mocks per model in one batch; table and RESULT line."""
    rows = []
    print(
        f"{'model':16s} {'bright':>6s} {'ms/object':>9s} {'ms mean':>7s} {'draws med':>9s} "
        f"{'draws mean':>10s} {'ESS med':>7s} {'ESS min':>7s} {'k-hat med':>9s} {'k-hat max':>9s} "
        f"{'flagged':>7s}"
    )
    for spec in args.estimator or DEFAULTS:
        template, post, model = load(spec)
        b = refine_batch(model, post, sps, args.n_timing, rng)
        rows.append(b)
        print(
            f"{template:16s} {b['n']:6d} {b['ms']:9.1f} {b['mean']:7.1f} "
            f"{np.median(b['draws']):9.0f} {np.mean(b['draws']):10.0f} {np.median(b['ess']):7.0f} "
            f"{b['ess'].min():7.0f} {np.median(b['khat']):9.2f} {b['khat'].max():9.2f} "
            f"{int((b['khat'] > 0.7).sum()):7d}"
        )
    ess = np.concatenate([b["ess"] for b in rows])
    ms, mean = _batch_ms(rows)
    print(
        f"RESULT ms_per_refined_object={ms:.1f} ms_mean_per_refined_object={mean:.1f} "
        f"ess_refined={np.median(ess):.0f} "
        f"khat_refined={np.max(np.concatenate([b['khat'] for b in rows])):.2f}"
    )


def _batch_ms(batches: list) -> tuple[float, float]:
    """Median ms over the mocks of every batch (each its share), and their mean."""
    per = np.concatenate([b["per"] for b in batches])
    return float(np.median(per)), float(np.mean(per))


def _f3(v: list) -> str:
    return f"{np.median(v):.3f}"


def _g3(v: list) -> str:
    return f"{np.median(v):.3g}"


if __name__ == "__main__":
    main()
