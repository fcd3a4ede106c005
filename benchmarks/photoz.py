"""Photometric redshifts: a photo-z estimator on the JADES spec-z galaxies and on fresh mocks.

Workload (issue 23): an estimator trained with ``redshift="infer"`` (``zred`` is a target;
default the shipped ``jades-parametric-photoz``, or any estimator file). z_phot is the
posterior median of ``zred``; with ``dz = (z_phot - z_spec) / (1 + z_spec)``:
``sigma_NMAD = 1.48 median(|dz - median(dz)|)``, the outlier fraction ``|dz| > 0.15`` and the
bias ``median(dz)``.

- Real galaxies: the 99 JADES GOODS-S galaxies with spectroscopic redshifts of
  ``../shared/data/jades_specz_catalogue_subset.fits`` (Jy, read by
  :func:`prospect_sbi.jades_data.read_specz_catalogue`; a NaN band is a missing band), with a
  5% error floor in quadrature, as the other benchmarks. Skipped with a one-line message when
  the data folder is absent.
- Mocks: drawn from the estimator's own model and prior (seed 2311, never a training seed),
  with its noise (:func:`prospect_sbi.posterior.held_out`); the same statistics by
  true-redshift bin (0-1, 1-3, 3-6, 6-10, 10-20), for all mocks and for those detected as the
  reference selects pixels (S/N >= 5 over F277W, F356W, F444W), and the calibration of the z
  posterior: the coverage of central 68% and 95% intervals
  (:func:`prospect_sbi.posterior.coverage`, as the accuracy benchmark). ``coverage_err_z`` is
  the largest ``|empirical - nominal|`` over both levels on all mocks, shown with what a
  calibrated posterior reaches by chance on as many mocks.
- ``ms_per_object``: wall time of ``sample`` per object for 1000 draws, one thread.

Targets (issue 23): sigma_NMAD <= 0.03 and outliers <= 8% on the real galaxies; coverage error
at chance on the mocks. Figures: ``photoz_specz.png`` (z_phot against z_spec, 16-84% bars)
and ``photoz_mocks.png`` (the same for the mocks) in ``--out``; with ``--refine``
``photoz_specz_refined.png``, with ``--zeropoints`` the same with ``_zero_points``.

Usage::

    python benchmarks/photoz.py --quick                      # 1000 mocks, minutes
    python benchmarks/photoz.py --quick --refine             # and the exact posteriors
    python benchmarks/photoz.py --quick --refine --zeropoints  # and with zero points
    python benchmarks/photoz.py --estimator my_photoz.sbi    # 10000 mocks
    python benchmarks/photoz.py --quick --eazy ../eazy-photoz  # and EAZY side by side

With ``--refine``, the real galaxies also get the exact posterior of the estimator's model
(importance sampling, ``refine="always"``): what the model, its prior and the catalogue's
errors give, the flow's own error aside.

With ``--zeropoints``, the real galaxies are fitted again with zero-point corrections
(:func:`prospect_sbi.fitting.calibrate_zeropoints`, as template photo-z codes calibrate theirs
on a spec-z sample), cross-validated: the galaxies are dealt into two folds and each fold is
corrected by the factors calibrated, at z_spec, on the other, so that no galaxy's correction
has seen its own redshift.

With ``--eazy EAZY_PHOTOZ`` (``pip install eazy`` and a clone of
github.com/gbrammer/eazy-photoz for its templates), the template code EAZY fits the same real
galaxies, with the same errors, filter curves and zero-point folds (:func:`eazy_photoz`): a
peer on the same data, since the targets quote template codes on other samples.

Last line: ``RESULT sigma_nmad=... outlier_frac=... bias=... coverage_err_z=...
ms_per_object=... sigma_nmad_refined=... outlier_frac_refined=... bias_refined=...
ms_per_refined_object=... sigma_nmad_zp=... outlier_frac_zp=... bias_zp=...
sigma_nmad_refined_zp=... outlier_frac_refined_zp=... bias_refined_zp=...
sigma_nmad_eazy=... outlier_frac_eazy=... sigma_nmad_eazy_zp=... outlier_frac_eazy_zp=...``
(the real galaxies' statistics, ``nan`` without the data; the refined ones ``nan`` without
``--refine``, the ``_zp`` ones without ``--zeropoints``, the ``_eazy`` ones without
``--eazy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from prospect_sbi.validate.photoz import OUTLIER_DZ as OUTLIER
from prospect_sbi.validate.photoz import photoz_stats

#: Credibility levels of the z-posterior calibration.
LEVELS = (0.68, 0.95)
#: Fractional flux error floor added in quadrature to the real catalogue's errors.
ERR_FLOOR = 0.05
#: Seed of the mocks' simulation and noise (training sets use other seeds).
MOCK_SEED = 2311
#: Folds of the cross-validated zero points (``--zeropoints``), and the seed that deals them.
ZP_FOLDS = 2
ZP_SEED = 0
#: EAZY's files used by ``--eazy``, inside a clone of github.com/gbrammer/eazy-photoz: its
#: JWST-era template set and its template error function.
EAZY_FILES = ("templates/sfhz/blue_sfhz_13.param", "templates/template_error_cosmos2020.txt")


def z_coverage(z_draws: np.ndarray, z_true: np.ndarray) -> np.ndarray:
    """Coverage of the central intervals of :data:`LEVELS` by ``z_draws`` (B, n): (K,)."""
    from prospect_sbi.posterior import coverage

    return coverage(z_draws[:, :, None], np.asarray(z_true)[:, None], np.array(LEVELS))[0]


def z_draws(post, flux: np.ndarray, err: np.ndarray, n: int) -> np.ndarray:
    """Draws of ``zred`` (B, n) from a photo-z estimator."""
    draws = post.sample(flux, err, n, seed=0, chunk_size=max(1, 200_000 // n))
    return np.asarray(draws[..., post.labels.index("zred")], dtype=float)


def best_lnlike(post, obs) -> np.ndarray:
    """Largest log-likelihood (B,) among the refinement's draws of prepared ``obs``."""
    return post.refiner().run(obs, 10, seed=1).best_fit()[1]


def outlier_fits(post, known, cat, z_phot: np.ndarray) -> dict[str, np.ndarray]:
    """Is an outlier the model's or the sampler's? Best fits at its photo-z and its z_spec.

    For the real galaxies with ``|dz| > OUTLIER`` (within the known-z estimator's range), the
    largest log-likelihood among the exact photo-z posterior's draws and among the exact
    posterior's draws of ``known`` (an estimator of the same model at known redshift) at
    z_spec. ``delta = best at z_spec - best at the photo-z``: well below 0, the model fits the
    true redshift worse (no estimator of it can find that redshift); near or above 0, the
    sampler missed a mode.
    """
    lo, hi = known.header.get("zred_range") or (0.0, np.inf)
    dz = (z_phot - cat.zred) / (1 + cat.zred)
    rows = np.flatnonzero((np.abs(dz) > OUTLIER) & (cat.zred >= lo) & (cat.zred <= hi))
    at_phot = best_lnlike(post, post.prepare(cat.flux[rows], cat.err[rows]))
    at_spec = best_lnlike(known, known.prepare(cat.flux[rows], cat.err[rows], cat.zred[rows]))
    return {"rows": rows, "delta": at_spec - at_phot}


def specz_catalogue(post):
    """The JADES spec-z galaxies in ``post``'s bands, 5% floor; None (and a message) without."""
    from prospect_sbi.jades_data import CATALOGUE, find_data_dir, read_specz_catalogue

    data = find_data_dir()
    if data is None or not (data / CATALOGUE).is_file():
        print(
            f"real galaxies skipped: {CATALOGUE} not found (../shared/data or $PROSPECT_SBI_DATA)"
        )
        return None
    return read_specz_catalogue(data, post.filters, err_floor=ERR_FLOOR)


def cross_validated_zeropoints(known, cat) -> np.ndarray:
    """Zero-point factors (B, F) of every galaxy, calibrated on the other fold (ZP_FOLDS).

    :func:`prospect_sbi.fitting.calibrate_zeropoints` with ``known`` on all the galaxies but
    those of a fold, applied to that fold: no galaxy's correction has seen its own redshift.
    """
    from prospect_sbi.fitting import calibrate_zeropoints

    fold = zeropoint_folds(len(cat.zred))
    factors = np.ones_like(cat.flux)
    for k in range(ZP_FOLDS):
        rest = fold != k
        zp = calibrate_zeropoints(known, cat.flux[rest], cat.err[rest], cat.zred[rest])
        factors[fold == k] = zp.factors
        print(
            f"zero points of fold {k + 1} (from {int(rest.sum())} galaxies), mag: "
            + " ".join(f"{m:+.3f}" for m in zp.offsets_mag)
        )
    return factors


def zeropoint_folds(n: int) -> np.ndarray:
    """The fold (0 .. ZP_FOLDS - 1) of each of ``n`` galaxies (cross-validated zero points)."""
    return np.random.default_rng(ZP_SEED).permutation(n) % ZP_FOLDS


def eazy_photoz(cat, filters: list[str], repo: Path, out: Path) -> dict[str, dict]:
    """EAZY (``pip install eazy``) on the same galaxies: a template code side by side.

    The same fluxes and errors (5% floor; EAZY adds no systematic error of its own,
    ``SYS_ERR`` 0), the same sedpy filter curves (resampled to 300 points), the templates
    ``blue_sfhz_13`` of ``repo`` (a clone of github.com/gbrammer/eazy-photoz) with its
    template error function (``template_error_cosmos2020``, ``TEMP_ERR_A2`` 0.2), z 0.01-20,
    no magnitude prior. z_phot is the median of p(z), as here; also EAZY's ``z_ml``.
    Zero points cross-validated on the same folds: EAZY's own iteration
    (``iterate_zp_templates``, 5 iterations at z_spec, ``FIX_ZSPEC``) on one fold, applied to
    the other.

    Returns
    -------
    dict
        ``"plain"`` and ``"zero points"``: :func:`photoz_stats` of the p(z) medians with
        ``coverage`` (68% only, the p(z)'s 16-84% interval) and ``z_ml`` (its stats);
        ``"seconds"``: EAZY's wall time (template grid and fits), one process. Figures
        ``photoz_specz_eazy.png`` and ``photoz_specz_eazy_zero_points.png`` in ``out``.
    """
    import contextlib
    import io
    import logging
    import os
    import warnings

    from astropy.table import Table
    from sedpy.observate import load_filters

    quiet = io.StringIO()  # EAZY's own printing (its listing of the bands, each iteration)
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        import eazy.photoz
    logging.getLogger("matplotlib.font_manager").setLevel(logging.WARNING)  # its figures' fonts

    start, said = time.perf_counter(), []
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            os.symlink(Path(repo).resolve() / "templates", "templates")
            with open("jades.res", "w") as fp:
                for f in load_filters(filters):
                    on = np.flatnonzero(f.transmission > 1e-3 * f.transmission.max())
                    lo, hi = max(on[0] - 1, 0), min(on[-1] + 1, len(f.wavelength) - 1)
                    w = np.linspace(f.wavelength[lo], f.wavelength[hi], 300)
                    t = np.interp(w, f.wavelength, f.transmission)
                    fp.write(f"{len(w)} {f.name} lambda_c= {f.wave_effective:.1f}\n")
                    fp.writelines(
                        f"{i + 1:6d} {a:.5e} {b:.5e}\n"
                        for i, (a, b) in enumerate(zip(w, t, strict=True))
                    )
            # uJy (PRIOR_ABZP 23.9); -99 marks a missing band for EAZY
            missing = ~(np.isfinite(cat.flux) & np.isfinite(cat.err))
            flux = np.where(missing, -99.0, cat.flux * 3631e6)
            err = np.where(missing, -99.0, cat.err * 3631e6)
            table = Table({"id": np.arange(len(cat.zred)), "z_spec": cat.zred})
            with open("jades.translate", "w") as fp:
                for b in range(len(filters)):
                    table[f"f_{b + 1}"], table[f"e_{b + 1}"] = flux[:, b], err[:, b]
                    fp.write(f"f_{b + 1} F{b + 1}\ne_{b + 1} E{b + 1}\n")
            table.write("jades.fits")
            params = {
                "CATALOG_FILE": "jades.fits", "CATALOG_FORMAT": "fits", "FILTERS_RES": "jades.res",
                "MAIN_OUTPUT_FILE": "eazy", "TEMPLATES_FILE": EAZY_FILES[0],
                "TEMP_ERR_FILE": EAZY_FILES[1], "TEMP_ERR_A2": 0.2,
                "SYS_ERR": 0.0, "Z_MIN": 0.01, "Z_MAX": 20.0, "Z_STEP": 0.01, "Z_STEP_TYPE": 1,
                "MW_EBV": 0.0, "CAT_HAS_EXTCORR": True, "PRIOR_FILTER": len(filters),
                "PRIOR_ABZP": 23.9, "APPLY_PRIOR": "n", "FIX_ZSPEC": False,
            }  # fmt: skip
            with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
                warnings.simplefilter("ignore")
                pz = eazy.photoz.PhotoZ(
                    translate_file="jades.translate", params=params, load_prior=False, n_proc=1
                )
                ones = np.ones(len(filters))

                def fit(zp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                    pz.zp, pz.param.params["FIX_ZSPEC"] = zp.copy(), False
                    pz.fit_catalog(n_proc=1, prior=False, verbose=False)
                    return pz.zml.copy(), pz.pz_percentiles([16, 50, 84], oversample=5)

                runs = {"plain": fit(ones)}
                fold = zeropoint_folds(len(cat.zred))
                zml, pc = np.zeros(len(fold)), np.zeros((len(fold), 3))
                for k in range(ZP_FOLDS):
                    pz.zp, pz.param.params["FIX_ZSPEC"] = ones.copy(), True
                    for it in range(5):
                        pz.iterate_zp_templates(
                            idx=np.flatnonzero(fold != k), update_templates=False, iter=it,
                            n_proc=1, prior=False,
                        )  # fmt: skip
                    said.append(
                        f"EAZY zero points of fold {k + 1}, mag: "
                        + " ".join(f"{m:+.3f}" for m in -2.5 * np.log10(pz.zp))
                    )
                    a, b = fit(pz.zp)
                    zml[fold == k], pc[fold == k] = a[fold == k], b[fold == k]
                runs["zero points"] = (zml, pc)
        finally:
            os.chdir(here)
    print("\n".join(said))
    stats = {"seconds": time.perf_counter() - start}
    for name, (zml, pc) in runs.items():
        title = f"{len(cat.zred)} JADES spec-z galaxies, EAZY" + (", " + name) * (name != "plain")
        suffix = "_eazy" + ("_" + name.replace(" ", "_")) * (name != "plain")
        plot_zz(cat.zred, pc[:, 1], pc[:, 0], pc[:, 2], title, out / f"photoz_specz{suffix}.png")
        inside = (cat.zred >= pc[:, 0]) & (cat.zred <= pc[:, 2])
        stats[name] = photoz_stats(pc[:, 1], cat.zred) | {
            "coverage": np.array([np.mean(inside), np.nan]),
            "z_ml": photoz_stats(zml, cat.zred),
            "outliers": np.flatnonzero(np.abs(pc[:, 1] - cat.zred) / (1 + cat.zred) > OUTLIER),
        }
    return stats


def specz_figure(z: np.ndarray, z_spec: np.ndarray, title: str, path: Path) -> np.ndarray:
    """Plot z_phot (the medians of draws ``z`` (B, n)) against ``z_spec``; return z_phot (B,)."""
    z_phot = np.median(z, axis=1)
    lo, hi = np.percentile(z, [16, 84], axis=1)
    plot_zz(z_spec, z_phot, lo, hi, title, path)
    return z_phot


def real_galaxies(
    post, cat, draws: int, out: Path, refine: bool = False, known=None, label: str = ""
) -> dict:
    """Photo-z of the JADES spec-z galaxies ``cat``.

    With ``refine``, also those of the exact posterior (``refine="always"``, one thread) under
    ``"refined"``, with ``ms_per_object``: what the model itself gives, flow error aside; with
    ``known`` too, its outliers' :func:`outlier_fits`. ``label`` names the figure's variant.
    """
    title = f"{len(cat.zred)} JADES spec-z galaxies" + (f", {label}" if label else "")
    suffix = f"_{label.replace(' ', '_')}" if label else ""
    z = z_draws(post, cat.flux, cat.err, draws)
    z_phot = specz_figure(z, cat.zred, title, out / f"photoz_specz{suffix}.png")
    stats = photoz_stats(z_phot, cat.zred)
    stats["coverage"] = z_coverage(z, cat.zred)
    worst = np.argsort(-np.abs(z_phot - cat.zred) / (1 + cat.zred))[:5]
    print(
        "largest |dz|: "
        + ", ".join(f"id {cat.ids[i]} z_spec {cat.zred[i]:.2f} -> {z_phot[i]:.2f}" for i in worst)
    )
    if refine:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            start = time.perf_counter()
            exact = post.sample(cat.flux, cat.err, draws, seed=0, refine="always")
            ms = 1e3 * (time.perf_counter() - start) / len(cat.zred)
        finally:
            torch.set_num_threads(threads)
        z_exact = np.asarray(exact[..., post.labels.index("zred")], dtype=float)
        z_med = specz_figure(
            z_exact, cat.zred, f"{title}, exact", out / f"photoz_specz_refined{suffix}.png"
        )
        stats["refined"] = photoz_stats(z_med, cat.zred) | {
            "coverage": z_coverage(z_exact, cat.zred),
            "ms_per_object": ms,
            "khat_flagged": float(np.mean(exact.khat_flag)),
        }
        if known is not None:
            fits = outlier_fits(post, known, cat, z_med)
            print("refined outliers: best ln L at z_spec - best ln L at the photo-z")
            for i, d in zip(fits["rows"], fits["delta"], strict=True):
                print(f"  id {cat.ids[i]} z_spec {cat.zred[i]:.2f} -> {z_med[i]:.2f}: {d:+.1f}")
            worse = int(np.sum(fits["delta"] < -2))
            print(
                f"  {worse} fit worse at z_spec (model-limited), "
                f"{len(fits['rows']) - worse} as well or better (modes the sampler missed)"
            )
            stats["refined"]["model_limited"] = worse
    return stats


def mocks(post, n_mocks: int, draws: int, folder: Path, out: Path) -> dict[str, object]:
    """Photo-z statistics and z coverage of fresh mocks of the estimator's own model."""
    from prospect_sbi import BC03MilesBasis, simulate
    from prospect_sbi.posterior import coverage_noise, held_out

    model = post.model()
    ts = simulate(
        model, BC03MilesBasis(), post.filters, n_mocks, folder / "mocks.h5", seed=MOCK_SEED
    )  # a progress bar: minutes for 10^4 mocks on one core
    obs = held_out(post, ts, slice(0, n_mocks), seed=MOCK_SEED + 1)
    ts.close()
    z_true = obs["truth"][:, post.labels.index("zred")]
    z = z_draws(post, obs["flux"], obs["err"], draws)
    z_phot = np.median(z, axis=1)
    # detected as the reference selects pixels (S/N >= 5 over F277W, F356W, F444W): a mock far
    # below the depth has the prior for its posterior, and mocks go down to the prior's mass
    from prospect_sbi.filters import resolve_band_names
    from prospect_sbi.pixels import SNR_BANDS, detection_snr

    cols = [post.filters.index(b) for b in resolve_band_names(SNR_BANDS)]
    detected = detection_snr(obs["flux"][:, cols], obs["err"][:, cols]) >= 5
    from prospect_sbi.posterior import sbc_ranks
    from prospect_sbi.validate import photoz_table

    rank = sbc_ranks(z[:, :, None], z_true[:, None])[:, 0] / draws  # what z_coverage uses
    table = photoz_table(
        z_phot, z_true, rank, subsets={"mocks": np.ones(n_mocks, bool), "S/N>=5": detected}
    )
    stats = ("n", "sigma_nmad", "outlier_frac", "bias")
    rows = {
        f"{r['subset']} z {r['z_bin']}": {k: r[k] for k in stats}
        | {"coverage": np.array([r["coverage_68"], r["coverage_95"]])}
        for r in table
    }
    levels = np.array(LEVELS)
    noise = coverage_noise(n_mocks, draws, levels=levels)
    lo16, hi84 = np.percentile(z, [16, 84], axis=1)
    plot_zz(z_true, z_phot, lo16, hi84, f"{n_mocks} mocks", out / "photoz_mocks.png")
    return {"rows": rows, "noise": noise, "flux": obs["flux"], "err": obs["err"]}


def ms_per_object(post, flux: np.ndarray, err: np.ndarray, n_objects: int) -> float:
    """Wall time (ms) per object of ``sample`` with 1000 draws, one torch thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        post.sample(flux[:8], err[:8], 1000, seed=0)  # warm-up
        start = time.perf_counter()
        post.sample(flux[:n_objects], err[:n_objects], 1000, seed=1)
        return 1e3 * (time.perf_counter() - start) / min(n_objects, len(flux))
    finally:
        torch.set_num_threads(threads)


def plot_zz(z_true, z_phot, lo, hi, title: str, path: Path) -> None:
    """z_phot (median, 16-84% bars) against the true redshift, written to ``path``."""
    from prospect_sbi._io import save_figure
    from prospect_sbi.plotting.calibration import plot_photoz

    save_figure(plot_photoz(z_true, z_phot, lo, hi, title), path, dpi=120)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--estimator",
        default="jades-parametric-photoz",
        help="pretrained name or .sbi file of an estimator trained with redshift='infer'",
    )
    parser.add_argument("--quick", action="store_true", help="1000 mocks, 500 draws (minutes)")
    parser.add_argument("--n-mocks", type=int, default=None, help="10000 (1000 with --quick)")
    parser.add_argument("--draws", type=int, default=None, help="1000 (500 with --quick)")
    parser.add_argument("--n-time", type=int, default=200, help="objects timed for ms_per_object")
    parser.add_argument(
        "--known",
        default=None,
        help="with --refine: an estimator of the same model at known redshift, to tell the "
        "model's outliers from the sampler's and to guide the refinement of an estimator "
        "file (default jades-<sfh> for jades-<sfh>-photoz)",
    )
    parser.add_argument(
        "--refine",
        action="store_true",
        help="also the real galaxies' exact posteriors (refine='always'; about a minute)",
    )
    parser.add_argument(
        "--zeropoints",
        action="store_true",
        help="also the real galaxies with zero points cross-validated in two folds: each "
        "half corrected by calibrate_zeropoints on the other half (needs --known)",
    )
    parser.add_argument(
        "--eazy",
        type=Path,
        default=None,
        metavar="EAZY_PHOTOZ",
        help="also EAZY (pip install eazy) on the same real galaxies, floor and zero-point "
        "folds, side by side; EAZY_PHOTOZ is a clone of github.com/gbrammer/eazy-photoz "
        "(its templates)",
    )
    parser.add_argument("--out", type=Path, default=Path("photoz_out"), help="figures here")
    args = parser.parse_args(argv)
    if args.eazy is not None:
        try:
            import eazy  # noqa: F401
        except ImportError:
            sys.exit("--eazy needs eazy-py, which is not installed: pip install eazy")
        for name in EAZY_FILES:
            if not (args.eazy / name).is_file():
                sys.exit(
                    f"--eazy {args.eazy}: no {name} there (a clone of "
                    "github.com/gbrammer/eazy-photoz)"
                )
    from prospect_sbi.posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(args.estimator)
    if post.redshift != "infer" or "zred" not in post.labels:
        sys.exit(
            f"estimator {args.estimator} is conditioned on the redshift (redshift="
            f"{post.redshift!r}); this benchmark needs one trained with redshift='infer'"
        )
    n_mocks = args.n_mocks or (1000 if args.quick else 10_000)
    draws = args.draws or (500 if args.quick else 1000)
    args.out.mkdir(parents=True, exist_ok=True)
    zr = post.header.get("zred_range")
    print(
        f"estimator {args.estimator}: {len(post.labels)} labels, zred "
        f"{zr[0]:.3g}-{zr[1]:.3g}; {draws} draws per object"
        if zr is not None
        else f"estimator {args.estimator}: {len(post.labels)} labels; {draws} draws per object"
    )
    known = args.known
    if known is None and str(args.estimator).endswith("-photoz"):
        known = str(args.estimator).removesuffix("-photoz")
    if args.zeropoints and not known:
        sys.exit("--zeropoints needs --known: an estimator of the same model at known redshift")
    known = AmortizedPosterior.resolve(known) if (args.refine or args.zeropoints) else None
    if known is not None and post.redshift_guide is None:
        post.redshift_guide = known  # an estimator file: guided as the pretrained ones are
    cat = specz_catalogue(post)
    real = zp = None
    if cat is not None:
        real = real_galaxies(post, cat, draws, args.out, refine=args.refine, known=known)
    if cat is not None and args.zeropoints:
        factors = cross_validated_zeropoints(known, cat)
        corrected = dataclasses.replace(cat, flux=cat.flux * factors, err=cat.err * factors)
        zp = real_galaxies(
            post, corrected, draws, args.out, args.refine, known, label="zero points"
        )
    peer = None
    if cat is not None and args.eazy is not None:
        peer = eazy_photoz(cat, list(post.filters), args.eazy, args.out)
    head = f"{'set':27s} {'n':>6s} {'sigma_NMAD':>10s} {'outliers':>8s} {'bias':>8s}"
    head += "".join(f" {f'cov {a:.0%}':>8s}" for a in LEVELS)
    with tempfile.TemporaryDirectory() as tmp:
        mock = mocks(post, n_mocks, draws, Path(tmp), args.out)
    print(f"\n{head}\n{'-' * len(head)}")
    rows = {}
    for name, r in (("real (spec-z)", real), ("real, zero points", zp)):
        if r:
            rows[name] = r
            if "refined" in r:
                rows[name.replace("real", "real, refined")] = r["refined"]
    if peer:
        rows["EAZY (spec-z)"], rows["EAZY, zero points"] = peer["plain"], peer["zero points"]
    rows |= mock["rows"]
    for name, r in rows.items():
        cov = "".join(f" {c:8.3f}" for c in r["coverage"])
        print(
            f"{name:27s} {r['n']:6d} {r['sigma_nmad']:10.4f} {r['outlier_frac']:8.3f} "
            f"{r['bias']:8.4f}{cov}"
        )
    cov_all = mock["rows"]["mocks z all"]["coverage"]
    cov_err = float(np.max(np.abs(cov_all - np.array(LEVELS))))
    print(
        f"z coverage error on all mocks: {cov_err:.3f} (a calibrated posterior shows up to "
        f"{mock['noise']:.3f} by chance on {n_mocks} mocks); figures in {args.out}"
    )
    ms = ms_per_object(post, mock["flux"], mock["err"], args.n_time)
    print(f"sampling: {ms:.2f} ms per object for 1000 draws, one thread")
    nan = {"sigma_nmad": np.nan, "outlier_frac": np.nan, "bias": np.nan, "ms_per_object": np.nan}
    real, zp = real or nan, zp or nan
    exact, zp_exact = real.get("refined", nan), zp.get("refined", nan)
    if "refined" in real:
        print(
            f"refined (exact posterior): {exact['ms_per_object']:.0f} ms per object, one "
            f"thread; {exact['khat_flagged']:.0%} with k-hat > 0.7; model-limited outliers: "
            f"{exact.get('model_limited', 'not measured (no --known)')}"
        )
    eazy = (peer or {}).get("plain", nan) | {}
    eazy_zp = (peer or {}).get("zero points", nan) | {}
    if peer:
        for name in ("plain", "zero points"):
            r = peer[name]
            print(
                f"EAZY, {name}: z_ml {r['z_ml']['sigma_nmad']:.4f} / "
                f"{r['z_ml']['outlier_frac']:.3f}; outliers "
                + " ".join(f"{cat.ids[i]}" for i in r["outliers"])
            )
        print(f"EAZY: {peer['seconds']:.0f} s in all (template grid, fits, zero points)")
    print(
        f"RESULT sigma_nmad={real['sigma_nmad']:.4f} outlier_frac={real['outlier_frac']:.4f} "
        f"bias={real['bias']:.4f} coverage_err_z={cov_err:.4f} ms_per_object={ms:.3f} "
        f"sigma_nmad_refined={exact['sigma_nmad']:.4f} "
        f"outlier_frac_refined={exact['outlier_frac']:.4f} bias_refined={exact['bias']:.4f} "
        f"ms_per_refined_object={exact['ms_per_object']:.1f} "
        f"sigma_nmad_zp={zp['sigma_nmad']:.4f} outlier_frac_zp={zp['outlier_frac']:.4f} "
        f"bias_zp={zp['bias']:.4f} sigma_nmad_refined_zp={zp_exact['sigma_nmad']:.4f} "
        f"outlier_frac_refined_zp={zp_exact['outlier_frac']:.4f} "
        f"bias_refined_zp={zp_exact['bias']:.4f} sigma_nmad_eazy={eazy['sigma_nmad']:.4f} "
        f"outlier_frac_eazy={eazy['outlier_frac']:.4f} "
        f"sigma_nmad_eazy_zp={eazy_zp['sigma_nmad']:.4f} "
        f"outlier_frac_eazy_zp={eazy_zp['outlier_frac']:.4f}"
    )


if __name__ == "__main__":
    main()
