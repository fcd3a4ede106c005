"""``prospect-sbi fit``: posterior summaries of every object of a catalogue, resumable."""

from __future__ import annotations

__all__ = ["add_fit_args", "fit_catalog", "run_fit"]

import argparse
from pathlib import Path

import numpy as np

from .common import add_refine_args
from .train import add_catalog_args


def add_fit_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``prospect-sbi fit``."""
    parser.description = (
        "Fit every row of a photometric catalogue (FITS, ECSV, ...) with an estimator and "
        "write a table of posterior summaries (<label>_p16/_p50/_p84/_mean/_std per "
        "parameter and derived quantity). Rows are never dropped: an object with no valid "
        "band or a redshift outside the training range gets NaN and a flag. Chunks are kept "
        "as they finish, so an interrupted run resumes when rerun."
    )
    parser.add_argument("catalog", help="catalogue table")
    parser.add_argument("estimator", help="estimator file (.sbi) or pretrained name")
    parser.add_argument("-o", "--out", required=True, help="output table (.ecsv or .fits)")
    add_catalog_args(parser)
    parser.add_argument("--zred-column", default="redshift",
                        help="redshift column, for estimators conditioned on it")  # fmt: skip
    parser.add_argument("--id-column", default=None, help="id column (default: row number)")
    parser.add_argument("--err-floor", type=float, default=0.0,
                        help="fractional error floor added in quadrature, err = hypot(err, "
                             "FRAC * flux), e.g. 0.05 for integrated photometry (default 0)")
    parser.add_argument("--draws", type=int, default=1000, help="posterior draws per object")
    parser.add_argument("--chunk-size", type=int, default=1024, help="objects per chunk")
    parser.add_argument("--seed", type=int, default=0)
    add_refine_args(parser, "auto")


def fit_catalog(post: object, catalog: object, draws: int = 1000, seed: int = 0,
                chunk_size: int = 1024, out: Path | None = None,
                fingerprint: dict | None = None, progress: bool = True,
                refine: str = "auto", likelihood: str = "flux") -> object:  # fmt: skip
    """Summaries of every catalogue row; rows that cannot be fitted get NaN and a flag.

    Parameters
    ----------
    post : AmortizedPosterior
    catalog : prospect_sbi.catalog.Catalog
        In the estimator's band order.
    out : Path, optional
        Output file; when given, finished chunks are kept beside it (resumable).
    refine : {"auto", "always", "never"}
        ``AmortizedPosterior.summarize``'s: refine the objects that need it (default), all or
        none; the table then has the per-object diagnostics too.
    likelihood : {"flux", "noise"}
        Likelihood of the refinement.

    Returns
    -------
    astropy.table.Table
        ``id``, ``zred``, ``flag`` (``ok``, ``no_valid_band``, ``zred_missing``,
        ``zred_outside_training_range``), ``n_bands``, then the summary columns (and
        ``refined``, ``ess``, ``khat``, ``logz``, ``khat_flag`` unless ``refine="never"``).

    Raises
    ------
    ValueError
        An unknown ``refine`` or ``likelihood``, a missing redshift column.
    """
    from astropy.table import Table, hstack, vstack

    from ..posterior.checks import outside_zred_range
    from ..posterior.refine import check_refine
    from .common import run_chunks

    check_refine(refine)
    if refine != "never":
        post.refiner(None, likelihood)  # a likelihood the noise model lacks fails here
    flag = np.full(len(catalog.flux), "ok", dtype="U32")
    n_bands = np.sum(np.isfinite(catalog.flux), axis=1)
    flag[n_bands == 0] = "no_valid_band"
    z = catalog.zred
    if post.redshift == "known":
        if z is None:
            raise ValueError("this estimator is conditioned on the redshift: name the "
                             "catalogue's redshift column (--zred-column)")  # fmt: skip
        flag[(flag == "ok") & ~np.isfinite(z)] = "zred_missing"
        outside = outside_zred_range(z, post.header.get("zred_range"))
        flag[(flag == "ok") & outside] = "zred_outside_training_range"

    def work(rows: slice) -> Table:
        ok = np.flatnonzero(flag[rows] == "ok") + rows.start
        zred = None if post.redshift != "known" else z[ok]
        if ok.size:
            summ = post.summarize(catalog.flux[ok], catalog.err[ok], zred=zred, n=draws,
                                  seed=seed + rows.start, refine=refine,
                                  likelihood=likelihood)  # fmt: skip
        full = Table({c: np.full(rows.stop - rows.start, np.nan) for c in _columns(post)}
                     | ({} if refine == "never" else _diagnostics(rows.stop - rows.start)))
        for c in full.colnames:
            if ok.size:
                full[c][ok - rows.start] = summ[c]
        return full

    n = len(flag)
    if out is None:
        tables = [work(slice(s, min(s + chunk_size, n))) for s in range(0, n, chunk_size)]
    else:
        tables = run_chunks(n, chunk_size, out, fingerprint or {}, work, progress)
    head = Table({"id": catalog.ids, "zred": np.full(n, np.nan) if z is None else z,
                  "flag": flag, "n_bands": n_bands})  # fmt: skip
    result = hstack([head, vstack(tables)], join_type="exact")
    result.meta.update(estimator_model_hash=post.model_hash, n_draws=draws, seed=seed,
                       refine=refine)  # fmt: skip
    return result


def _columns(post: object) -> list[str]:
    return [f"{label}_{s}" for label in post.labels for s in ("p50", "p16", "p84", "mean", "std")]


def _diagnostics(n: int) -> dict[str, np.ndarray]:
    from ..posterior.refine import DIAGNOSTICS

    return {k: np.zeros(n, t) if t is bool else np.full(n, np.nan) for k, t in DIAGNOSTICS.items()}


def run_fit(args: argparse.Namespace) -> int:
    """Run ``prospect-sbi fit``."""
    from .._io import atomic_path
    from ..catalog import read_catalog
    from ..posterior import AmortizedPosterior
    from .common import estimator_file, file_id, finish_chunks

    post = AmortizedPosterior.resolve(args.estimator)
    zcol = args.zred_column if post.redshift == "known" else None
    catalog = read_catalog(args.catalog, post.filters, unit=args.unit,
                           flux_format=args.flux_format, err_format=args.err_format,
                           zred_column=zcol, id_column=args.id_column,
                           err_floor=args.err_floor)  # fmt: skip
    out = Path(args.out)
    fingerprint = {"catalog": file_id(args.catalog),
                   "estimator": file_id(estimator_file(args.estimator)), "draws": args.draws,
                   "seed": args.seed, "chunk": args.chunk_size, "unit": args.unit,
                   "err_floor": args.err_floor, "refine": args.refine,
                   "likelihood": args.likelihood}  # fmt: skip
    table = fit_catalog(post, catalog, args.draws, args.seed, args.chunk_size, out, fingerprint,
                        refine=args.refine, likelihood=args.likelihood)  # fmt: skip
    with atomic_path(out, overwrite=True) as tmp:
        table.write(tmp, format="ascii.ecsv" if out.suffix == ".ecsv" else "fits")
    finish_chunks(out)
    counts = {f: int(np.sum(table["flag"] == f)) for f in np.unique(table["flag"])}
    refined = "" if args.refine == "never" else f"; {int(np.sum(table['refined']))} refined"
    print(f"{out}: {len(table)} objects ({', '.join(f'{v} {k}' for k, v in counts.items())})"
          f"{refined}")
    return 0
