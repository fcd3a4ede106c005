"""Resolved maps of three real JADES Origin Field galaxies (PSF-matched 14-band cutouts).

Reads ``../shared/data/jof_psfmatched_cutouts.npz`` (microJy per pixel, 0.03"/pixel,
photometric redshifts) and maps each galaxy with one call, ``pixels.map_galaxy``: it selects
pixels (segment of the central galaxy, mean S/N >= 5 over F277W, F356W, F444W), fits them with
the pretrained ``jades-parametric`` estimator (or ``--estimator PATH``), and writes a
multi-extension FITS file of maps, a PNG panel, a table of per-pixel summaries and the
resolved-vs-integrated table; then one PNG of resolved vs integrated stellar masses. The file
has no WCS: a TAN WCS is built from each galaxy's RA/Dec and the pixel scale (centred on the
cutout centre), which is approximate.

With ``--zred infer`` each galaxy is mapped twice: at the catalogue's photometric redshift,
and with ``zred="infer"`` (its redshift posterior from its integrated photometry through
``--photoz``, default ``<estimator>-photoz``, propagated into every pixel); the table then
gives the galaxy's z posterior and how the maps change (stellar mass of the galaxy, median
per-pixel shift of log M* and its posterior width).

    python examples/jof_maps.py --out jof_maps [--estimator small.sbi] [--zred infer]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def fmt(row, key: str) -> str:
    med = row[key]
    return f"{med:6.2f} +{row[key + '_p84'] - med:.2f}/-{med - row[key + '_p16']:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, help="JADES data folder (default ../shared/data)")
    parser.add_argument("--out", type=Path, default=Path("jof_maps"))
    parser.add_argument("--pretrained", default="jades-parametric")
    parser.add_argument("--estimator", type=Path, help="an estimator file instead")
    parser.add_argument("--snr-bands", nargs="+", default=["F277W", "F356W", "F444W"])
    parser.add_argument("--n-draws", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--zred",
        choices=("catalogue", "infer"),
        default="catalogue",
        help="infer: map with zred='infer' too, and compare",
    )
    parser.add_argument("--photoz", help="photo-z estimator (default: <pretrained>-photoz)")
    args = parser.parse_args(argv)
    from prospect_sbi.jades_data import CUTOUTS, find_data_dir, read_jof_cutouts

    data = find_data_dir(args.data)
    if data is None or not (data / CUTOUTS).is_file():
        print(
            f"needs {CUTOUTS} in ../shared/data beside the repository or $PROSPECT_SBI_DATA;"
            " pass --data FOLDER",
            file=sys.stderr,
        )
        return 1
    import torch

    from prospect_sbi import AmortizedPosterior, BC03MilesBasis
    from prospect_sbi._io import save_figure
    from prospect_sbi.pixels import map_galaxy
    from prospect_sbi.plotting.maps import plot_outshining

    torch.set_num_threads(args.threads)
    post = AmortizedPosterior.resolve(args.estimator or args.pretrained)
    model = post.model()
    sps = BC03MilesBasis()
    tables = []
    print(
        f"{'id':>5} {'z':>6} {'pixels':>6} {'logM_pix':>17} {'logM_int':>17} {'OOD':>6} "
        f"{'ms/pix':>6}"
    )
    cutouts = read_jof_cutouts(data)
    for gid, images in cutouts.items():
        t0 = time.perf_counter()
        # each warning said once, named by its step ("fit: ...", "outshining: ...")
        done = map_galaxy(
            post,
            images,
            args.out,
            f"jof_{gid}",
            model=model,
            sps=sps,
            n_draws=args.n_draws,
            snr_bands=tuple(args.snr_bands),
            overwrite=True,
            progress=False,
        )
        dt = time.perf_counter() - t0
        fit, r = done.fit, done.outshining[0]
        tables.append(done.outshining)
        ood = float(np.mean(fit.ood)) if fit.ood is not None else float("nan")
        print(
            f"{gid:>5} {images.zred:6.3f} {len(fit):>6} {fmt(r, 'log_mstar_resolved'):>17} "
            f"{fmt(r, 'log_mstar_integrated'):>17} {ood:6.1%} {1e3 * dt / len(fit):6.2f}"
        )
    if args.zred == "infer":
        compare_inferred(args, post, model, sps, cutouts)
    fig = plot_outshining(tables, names=[f"JOF {g}" for g in cutouts])
    save_figure(fig, args.out / "jof_outshining.png", dpi=120)
    print(
        f"wrote {args.out}/jof_<id>_maps.fits, _maps.png, _pixels.fits, _outshining.ecsv, "
        "jof_outshining.png"
    )
    return 0


def compare_inferred(args, post, model, sps, cutouts) -> None:
    """Map every galaxy with ``zred="infer"`` and print how it differs from the catalogue z."""
    from prospect_sbi.pixels import map_galaxy

    photoz = args.photoz or (None if args.estimator else f"{args.pretrained}-photoz")
    print(
        f"\n{'id':>5} {'z_cat':>6} {'z_phot (16-84)':>20} {'modes':>14} {'logM known':>17} "
        f"{'logM infer':>17} {'dlogM_pix':>9} {'width x':>7} {'ruled out':>9}"
    )
    for gid, images in cutouts.items():
        runs = {}
        for how in ("known", "infer"):
            runs[how] = map_galaxy(
                post,
                images,
                args.out,
                f"jof_{gid}{'_zinfer' if how == 'infer' else ''}",
                model=model,
                sps=sps,
                n_draws=args.n_draws,
                snr_bands=tuple(args.snr_bands),
                overwrite=True,
                progress=False,
                photoz=photoz,
                **({"zred": "infer", "n_zred": 10} if how == "infer" else {}),
            )
        known, infer = runs["known"].fit, runs["infer"].fit
        zp = next(iter(infer.redshift.values()))
        ruled = any(runs["known"].fit.zred_ruled_out.values())
        i = known.labels.index("log_mstar")
        same = (known.index[:, None, :] == infer.index[None, :, :]).all(-1)
        a, b = np.nonzero(same)
        dm = np.median(infer.quantiles[b, i, 1] - known.quantiles[a, i, 1])
        wk = known.quantiles[a, i, 2] - known.quantiles[a, i, 0]
        wi = infer.quantiles[b, i, 2] - infer.quantiles[b, i, 0]
        rk, ri = runs["known"].outshining[0], runs["infer"].outshining[0]
        modes = ",".join(f"{m:.2f}" for m in zp.modes[:3])
        print(
            f"{gid:>5} {images.zred:6.3f} {zp.median:7.3f} ({zp.p16:5.2f}-{zp.p84:5.2f}) "
            f"{modes:>14} {fmt(rk, 'log_mstar_resolved'):>17} "
            f"{fmt(ri, 'log_mstar_resolved'):>17} {dm:+9.3f} {np.median(wi / wk):7.2f} "
            f"{str(ruled):>9}"
        )


if __name__ == "__main__":
    sys.exit(main())
