"""Fit the 99 JADES galaxies with spectroscopic redshifts with SBI, and a few with dynesty.

Reads ``../shared/data/jades_specz_catalogue_subset.fits`` (14 bands, Jy; see its README),
converts to maggies (Jy / 3631), keeps every row (a NaN band is a missing band), and writes
to the output folder:

- ``sbi/<id>.h5``: Prospector HDF5 results per galaxy (``results_from`` reads them), with the
  derived quantities in ``sampling/derived``;
- ``summary.ecsv``: stellar mass, SFR, mass-weighted age and dust (p16, p50, p84) per galaxy,
  with a ``flag`` column (``ok``, or why there is no fit): rows outside the estimator's
  redshift range (e.g. the z = 13.2 galaxy) keep NaN results and say why;
- ``dynesty/<id>.h5`` and ``dynesty/<id>_corner.png`` for ``--n-dynesty`` galaxies, and
  ``mass_sbi_vs_dynesty.png``.

The dynesty fits use the Gaussian flux likelihood (``likelihood="flux"``): real catalogue
errors are not drawn from the estimator's pixel noise model. Every fit takes the catalogue
errors with a fractional floor added in quadrature (``--err-floor``, 5% as usual for SED fits
of integrated photometry): the catalogue's bright galaxies reach S/N 3000 in a band, which no
SED model fits (chi^2 ~ 1e6 at the best fit of one of them), and where the exact posterior is
then set by that misfit alone. ``fit_model``'s default ``refine="auto"`` gives the bright
galaxies (total S/N >= 20) and those the amortised draws fit badly the exact posterior of that
likelihood (importance sampling; ``sbi/<id>.h5`` then holds weighted draws and ``logz``).
``--refine`` also refines the dynesty galaxies in ``compare`` (``refine="always"``), writes them
to ``refined/<id>.h5`` and adds them to the PNG.

    python examples/jades_specz_catalogue.py out/ --n-dynesty 3 [--refine]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

QUANTITIES = ("log_mstar", "log_sfr100", "mwa", "dust2")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="output folder")
    ap.add_argument("--data", type=Path, help="JADES data folder (default ../shared/data)")
    ap.add_argument(
        "--estimator", default="jades-parametric", help="pretrained name or estimator file"
    )
    ap.add_argument("--n-draws", type=int, default=2000)
    ap.add_argument("--n-dynesty", type=int, default=3)
    ap.add_argument("--nlive", type=int, default=100)
    ap.add_argument(
        "--err-floor",
        type=float,
        default=0.05,
        help="fractional error floor added in quadrature (0: none)",
    )
    ap.add_argument(
        "--refine",
        action="store_true",
        help="also SBI + importance sampling for the dynesty galaxies",
    )
    args = ap.parse_args()
    from prospect_sbi.jades_data import CATALOGUE, find_data_dir, read_specz_catalogue

    data = find_data_dir(args.data)
    if data is None or not (data / CATALOGUE).is_file():
        sys.exit(
            f"needs {CATALOGUE} (JADES spec-z photometry in Jy) in ../shared/data beside "
            "the repository or $PROSPECT_SBI_DATA; pass --data FOLDER"
        )

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from astropy.table import Table

    from prospect_sbi import AmortizedPosterior, BC03MilesBasis
    from prospect_sbi._io import save_figure, write_table  # atomic, with the user's umask
    from prospect_sbi.fitting import compare, derived_chain, fit_model, write_results
    from prospect_sbi.fitting.comparison import weighted_quantile
    from prospect_sbi.fitting.likelihood import fixed_redshift_model

    torch.set_num_threads(1)
    post = AmortizedPosterior.resolve(args.estimator)
    model = post.model()
    sps = BC03MilesBasis()
    catalogue = read_specz_catalogue(data, post.filters, err_floor=args.err_floor)
    cat, flux, err = catalogue.table, catalogue.flux, catalogue.err
    zlo, zhi = post.header["zred_range"]
    for sub in ("sbi", "dynesty", *(("refined",) if args.refine else ())):
        (args.out / sub).mkdir(parents=True, exist_ok=True)

    rows, fitted = [], []
    t0 = time.perf_counter()
    for i, row in enumerate(cat):
        gid, z = int(row["id"]), float(row["redshift"])
        rec = {"id": gid, "zred": z, "n_bands": int(np.isfinite(flux[i]).sum()), "flag": "ok"}
        if not zlo <= z <= zhi:
            rec["flag"] = f"zred outside the estimator's range [{zlo:.2f}, {zhi:.2f}]"
        elif rec["n_bands"] == 0:
            rec["flag"] = "no valid band"
        obs = {"maggies": flux[i], "maggies_unc": err[i], "filters": post.filters, "zred": z}
        if rec["flag"] == "ok":
            try:
                out = fit_model(
                    obs, model, sps, sbi=True, estimator=post, sbi_ndraws=args.n_draws, sbi_seed=i
                )
            except ValueError as exc:  # e.g. brighter than every training galaxy
                rec["flag"] = str(exc)
        if rec["flag"] == "ok":
            res = out["sampling"][0]
            write_results(
                args.out / "sbi" / f"{gid}.h5",
                out,
                model,
                obs,
                {"fitter": "sbi", "id": gid},
                overwrite=True,
            )
            values = {k: res["derived"][k] for k in res["derived"].dtype.names}
            values["dust2"] = res["samples"][:, model.theta_labels().index("dust2")]
            fitted.append(i)
        for name in QUANTITIES:
            q = np.percentile(values[name], [16, 50, 84]) if rec["flag"] == "ok" else [np.nan] * 3
            rec.update({f"{name}_p16": q[0], f"{name}_p50": q[1], f"{name}_p84": q[2]})
        rows.append(rec)
    t_sbi = time.perf_counter() - t0
    summary = Table(rows=rows)
    summary.meta.update(
        estimator=repr(post),
        units="log_mstar: log10 Msun; log_sfr100: log10 Msun/yr; mwa: Gyr; dust2: optical depth",
    )
    write_table(args.out / "summary.ecsv", summary, overwrite=True)
    print(
        f"SBI: {len(fitted)} of {len(cat)} galaxies in {t_sbi:.1f} s "
        f"({len(cat) - len(fitted)} flagged)"
    )

    picks = [fitted[j] for j in np.linspace(0, len(fitted) - 1, args.n_dynesty).astype(int)]
    mass = []
    for i in sorted(set(picks)) if args.n_dynesty > 0 else []:
        gid, z = int(cat["id"][i]), float(cat["redshift"][i])
        obs = {"maggies": flux[i], "maggies_unc": err[i], "filters": post.filters, "zred": z}
        c = compare(
            obs,
            model,
            sps,
            post,
            n_draws=args.n_draws,
            seed=i,
            likelihood="flux",
            plot=args.out / "dynesty" / f"{gid}_corner.png",
            refine=args.refine,
            nested_nlive_init=args.nlive,
        )
        fixed = fixed_redshift_model(model, z)
        dres = c.dynesty["sampling"][0]
        derived = derived_chain(fixed, sps, post.filters, np.asarray(dres["samples"]))
        write_results(
            args.out / "dynesty" / f"{gid}.h5",
            c.dynesty,
            fixed,
            obs,
            {"fitter": "dynesty", "id": gid},
            derived=derived,
            overwrite=True,
        )
        k = list(c.table["param"]).index("log_mstar")
        qd = weighted_quantile(derived["log_mstar"], [0.16, 0.5, 0.84], c.samples["weights"])
        qs = np.percentile(c.samples["sbi"][:, k], [16, 50, 84])
        qr = np.full(3, np.nan)
        line = ""
        if args.refine:
            write_results(
                args.out / "refined" / f"{gid}.h5",
                c.refined,
                model,
                obs,
                {"fitter": "sbi", "sbi_refine": True, "id": gid},
                overwrite=True,
            )
            qr = weighted_quantile(
                c.samples["refined"][:, k], [0.16, 0.5, 0.84], c.samples["refined_weights"]
            )
            line = f", refined {qr[1]:.2f} (ESS {c.ess:.0f}, {c.t_refine:.1f} s)"
        mass.append((qs, qd, qr))
        print(
            f"  id {gid} z={z:.2f}: log M* SBI {qs[1]:.2f}, dynesty {qd[1]:.2f}{line}; "
            f"dynesty {c.t_dynesty:.0f} s, SBI {c.t_sbi * 1e3:.0f} ms"
        )
    if mass:
        s, d, r = (np.array([m[j] for m in mass]) for j in (0, 1, 2))
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        for y, label in ((s, "SBI"), (r, "SBI + importance sampling")):
            if np.isfinite(y).all():
                ax.errorbar(
                    d[:, 1],
                    y[:, 1],
                    xerr=[d[:, 1] - d[:, 0], d[:, 2] - d[:, 1]],
                    yerr=[y[:, 1] - y[:, 0], y[:, 2] - y[:, 1]],
                    fmt="o",
                    label=label,
                )
        lims = [np.nanmin([d, s, r]) - 0.3, np.nanmax([d, s, r]) + 0.3]
        ax.plot(lims, lims, "k--", lw=1)
        ax.set(xlabel="log M* dynesty", ylabel="log M* SBI", xlim=lims, ylim=lims)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        save_figure(fig, args.out / "mass_sbi_vs_dynesty.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
