"""How sharp the amortised posterior is: SBI against the exact posterior, on many mocks, fast.

``benchmarks/vs_dynesty.py`` measures SBI against dynesty, which takes minutes per mock and is
itself noisy on bright mocks (its run-to-run shifts reach a dynesty sigma). Here the reference
is the exact posterior of the same likelihood from importance sampling
(:func:`prospect_sbi.fitting.importance_sample`, the estimator's draws reweighted, ESS >= 1000;
it agrees with dynesty to widths within 1.01-1.08 in ``vs_dynesty.py --refine``), a few seconds
per mock, so a hundred mocks per model take minutes. Mocks as in ``vs_dynesty.py``: drawn from
the prior, the estimator's noise, known redshift, the same seed. For each model and parameter
(log M*, log SFR100, dust2): medians over mocks of |delta median| / sigma_exact and of the 68%
width ratio SBI / exact, for the estimator's draws ("sbi", with its recalibration maps) and
the flow's own ("flow", ``recalibrate=False``), overall and by detection S/N (that of
:func:`prospect_sbi.pixels.snr_map`), and the estimator's draws by total S/N (that of
``refine="auto"``). Use it to tell whether a retrained estimator is sharper
before running ``vs_dynesty.py``; the targets of issue 6 are those of ``vs_dynesty.py``
(|dmed|/sigma <= 0.3, width ratio 0.8-1.25).

Last line: ``RESULT width_ratio_flow_bright=... dmed_over_sigma_vs_is=... width_ratio_vs_is=...
width_ratio_vs_is_bright=... width_ratio_vs_is_flow=... ess=... left_out=...`` (medians over mocks
and the three parameters of every model; "bright": detection S/N >= 20; ``width_ratio_flow_bright``
is the flow alone, without its recalibration maps, on bright mocks: the target of issue 21 is
<= 1.5; mocks whose exact posterior has an ESS below
``--min-ess`` are left out of the medians and counted in ``left_out``).

    python benchmarks/sharpness.py --quick          # 10 mocks per model
    python benchmarks/sharpness.py --n-mocks 100 --jobs 2
    python benchmarks/sharpness.py --estimator jades-parametric --estimator my_estimator.sbi

Every estimator's mocks come from the same seed, so estimators of one model (a shipped one and
a retrained candidate) are measured on identical mocks.
"""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import numpy as np
import torch
from vs_dynesty import DEFAULTS, NAMED, SNR_BINS, load, mock_arrays, mocks

from prospect_sbi.posterior import total_snr
from prospect_sbi.posterior.refine import AUTO_SNR

#: Detection S/N from which a mock counts as bright (the last bin of ``SNR_BINS``).
BRIGHT = SNR_BINS[">=20"][0]
#: Bins of total S/N (:func:`prospect_sbi.posterior.total_snr`, the statistic of
#: ``refine="auto"``) of the third table.
TOTAL_BINS = {
    "<5": (-np.inf, 5.0),
    "5-10": (5.0, 10.0),
    "10-20": (10.0, AUTO_SNR),
    ">=20": (AUTO_SNR, np.inf),
}
_WORKER: dict = {}


def _init_worker(spec: str) -> None:
    """A worker process: one torch thread, its own estimator, model and SPS."""
    from prospect_sbi import BC03MilesBasis

    torch.set_num_threads(1)
    _, post, model = load(spec)
    _WORKER.update(post=post, model=model, sps=BC03MilesBasis())


def exact(i: int, obs: dict, n_draws: int) -> tuple[dict, float, float]:
    """Importance-sampled posterior of mock ``i``: (equal-weight draws by parameter, ESS, s)."""
    from prospect_sbi.fitting import importance_sample

    w = _WORKER
    t0 = time.perf_counter()
    res = importance_sample(
        w["post"],
        w["model"],
        w["sps"],
        obs["maggies"],
        obs["maggies_unc"],
        obs["zred"],
        likelihood="noise",
        seed=i,
    )
    seconds = time.perf_counter() - t0
    keep = res.resample(n_draws, seed=i)
    values = {lab: res.samples[keep, k] for k, lab in enumerate(res.labels)}
    values |= {name: v[keep] for name, v in res.derived.items()}
    return {p: values[p] for p in NAMED}, res.ess, seconds


def run_model(spec: str, args: argparse.Namespace, sps, rng: np.random.Generator) -> dict:
    from prospect_sbi.fitting import posterior_metrics

    template, post, model = load(spec)
    objs = mocks(model, post, sps, args.n_mocks, rng)
    flux, err, zred, snr = mock_arrays(post, objs)
    total = total_snr(flux, err)
    which = [post.labels.index(p) for p in NAMED]
    draws = {
        "sbi": post.sample(flux, err, args.n_draws, zred=zred, seed=args.seed)[..., which],
        "flow": post.sample(flux, err, args.n_draws, zred=zred, seed=args.seed, recalibrate=False)[
            ..., which
        ],
    }
    with ProcessPoolExecutor(
        args.jobs, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(spec,)
    ) as pool:
        ref = list(
            pool.map(exact, range(len(objs)), [o for o, _ in objs], [args.n_draws] * len(objs))
        )
    ess = np.array([r[1] for r in ref])
    # a reference with few effective draws is not exact: such mocks are left out, and counted
    good = np.flatnonzero(ess >= args.min_ess)
    metrics = {
        m: {
            p: [posterior_metrics(d[i, :, k], ref[i][0][p]) for i in good]
            for k, p in enumerate(NAMED)
        }
        for m, d in draws.items()
    }
    for j, i in enumerate(good):
        each = " ".join(
            f"{p} {metrics['sbi'][p][j]['dmed_over_sigma']:+.2f}/"
            f"{metrics['sbi'][p][j]['width_ratio']:.2f}"
            for p in NAMED
        )
        print(
            f"  {template} mock {i}: z={zred[i]:.2f} S/N={snr[i]:.1f} total {total[i]:.1f} "
            f"exact {ref[i][2]:.1f} s "
            f"ESS {ess[i]:.0f}; sbi dmed/sig/width: {each}",
            flush=True,
        )
    for i in np.setdiff1d(np.arange(len(objs)), good):
        print(
            f"  {template} mock {i}: z={zred[i]:.2f} S/N={snr[i]:.1f} left out: ESS "
            f"{ess[i]:.0f} < {args.min_ess:.0f}"
        )
    return {
        "template": template,
        "metrics": metrics,
        "snr": snr[good],
        "total_snr": total[good],
        "ess": ess,
        "t_exact": np.array([r[2] for r in ref]),
        "left_out": len(objs) - len(good),
    }


def _pooled(r: dict, method: str, key: str, sel: np.ndarray | None = None) -> list[float]:
    """``key`` of every mock (or those in ``sel``) and named parameter, |.| for shifts."""
    idx = range(len(r["snr"])) if sel is None else sel
    vals = [r["metrics"][method][p][i][key] for i in idx for p in NAMED]
    return [abs(v) for v in vals] if key == "dmed_over_sigma" else vals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--estimator",
        action="append",
        help="estimator file or pretrained name (repeatable; default the two pretrained)",
    )
    ap.add_argument("--n-mocks", type=int, default=100)
    ap.add_argument("--n-draws", type=int, default=1000, help="SBI draws per object")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="importance-sampling processes")
    ap.add_argument(
        "--min-ess",
        type=float,
        default=200.0,
        help="mocks whose exact posterior has a smaller ESS are left out",
    )
    ap.add_argument("--quick", action="store_true", help="10 mocks per model")
    args = ap.parse_args()
    if args.quick:
        args.n_mocks = 10
    torch.set_num_threads(1)

    from prospect_sbi import BC03MilesBasis

    # every estimator from the same seed: candidates of one model meet the same mocks
    sps = BC03MilesBasis()
    results = [
        run_model(s, args, sps, np.random.default_rng(args.seed))
        for s in (args.estimator or DEFAULTS)
    ]

    head = (
        f"{'model':16s} {'method':6s} {'param':12s} {'|dmed|/sig':>10s} {'width':>7s} "
        f"{'width S/N>=20':>13s}"
    )
    print(f"\nSBI against the importance-sampled exact posterior, medians over mocks\n{head}")
    print("-" * len(head))
    for r in results:
        bright = r["snr"] >= BRIGHT
        for method in ("sbi", "flow"):
            for p in NAMED:
                m = r["metrics"][method][p]
                d = np.median([abs(x["dmed_over_sigma"]) for x in m])
                w = np.median([x["width_ratio"] for x in m])
                wb = np.median(
                    [x["width_ratio"] for x, b in zip(m, bright, strict=True) if b] or [np.nan]
                )
                print(f"{r['template']:16s} {method:6s} {p:12s} {d:10.3f} {w:7.3f} {wb:13.3f}")
    print(
        f"\n{'model':16s} {'method':6s} {'S/N':>6s} {'mocks':>5s} {'|dmed|/sig':>10s} "
        f"{'width':>7s}"
    )
    for r in results:
        for method in ("sbi", "flow"):
            for label, (lo, hi) in SNR_BINS.items():
                sel = np.flatnonzero((r["snr"] >= lo) & (r["snr"] < hi))
                d, w = (_pooled(r, method, k, sel) for k in ("dmed_over_sigma", "width_ratio"))
                print(
                    f"{r['template']:16s} {method:6s} {label:>6s} {len(sel):5d} "
                    f"{np.median(d) if d else np.nan:10.3f} "
                    f"{np.median(w) if w else np.nan:7.3f}"
                )
    print(
        f"\nby total S/N (refine='auto' refines from {AUTO_SNR:g}), the estimator's draws\n"
        f"{'model':16s} {'total S/N':>9s} {'mocks':>5s} {'|dmed|/sig':>10s} {'width':>7s}"
    )
    for r in results:
        for label, (lo, hi) in TOTAL_BINS.items():
            sel = np.flatnonzero((r["total_snr"] >= lo) & (r["total_snr"] < hi))
            d, w = (_pooled(r, "sbi", k, sel) for k in ("dmed_over_sigma", "width_ratio"))
            print(
                f"{r['template']:16s} {label:>9s} {len(sel):5d} "
                f"{np.median(d) if d else np.nan:10.3f} {np.median(w) if w else np.nan:7.3f}"
            )
    for r in results:
        e, t = r["ess"], r["t_exact"]
        print(
            f"{r['template']}: exact posterior ESS median {np.median(e):.0f}, min {e.min():.0f}"
            f" ({r['left_out']} mocks left out); {np.median(t):.1f} s per mock (one core)"
        )
    print(f"n_mocks={args.n_mocks} per model, n_draws={args.n_draws}, seed={args.seed}")

    def med(method: str, key: str, bright: bool = False) -> str:
        vals = [
            v
            for r in results
            for v in _pooled(
                r, method, key, np.flatnonzero(r["snr"] >= BRIGHT) if bright else None
            )
        ]
        return f"{np.median(vals):.3f}"

    ess = np.median(np.concatenate([r["ess"] for r in results]))
    print(
        f"RESULT width_ratio_flow_bright={med('flow', 'width_ratio', True)} "
        f"dmed_over_sigma_vs_is={med('sbi', 'dmed_over_sigma')} "
        f"width_ratio_vs_is={med('sbi', 'width_ratio')} "
        f"width_ratio_vs_is_bright={med('sbi', 'width_ratio', True)} "
        f"width_ratio_vs_is_flow={med('flow', 'width_ratio')} ess={ess:.0f} "
        f"left_out={sum(r['left_out'] for r in results)}"
    )


if __name__ == "__main__":
    main()
