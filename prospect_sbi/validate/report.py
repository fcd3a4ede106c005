"""The calibration report of an estimator: held-out mocks, misspecified mocks, PNGs, Markdown."""

from __future__ import annotations

__all__ = ["ValidationReport", "validate"]

import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._io import atomic_path, save_figure, write_table
from .misspecification import MISSPECIFICATIONS, shared_labels
from .mocks import misspecified_model, mock_observations, test_set_observations
from .photoz import OUTLIER_DZ
from .results import CalibrationReport, calibrate

if TYPE_CHECKING:
    from ..posterior.estimator import AmortizedPosterior

#: Labels summarised side by side in the misspecification table (those the mocks have).
KEY_LABELS = ("log_mstar", "log_sfr100", "mwa", "logzsol", "dust2")
#: Photo-z statistics of the summary table (:attr:`CalibrationReport.photoz`, all objects).
PHOTOZ_COLUMNS = ("sigma_nmad", "outlier_frac", "bias", "coverage_68")


@dataclass
class ValidationReport:
    """Calibration of one estimator on held-out mocks, and on misspecified mocks.

    Attributes
    ----------
    estimator : str
        Name or path of the estimator, with its model hash.
    matched : CalibrationReport
        Mocks from the training model (never used in training).
    misspecified : dict of str to CalibrationReport
        Mocks from other models, by kind (:data:`MISSPECIFICATIONS`).
    meta : dict
        Settings of the run.
    """

    estimator: str
    matched: CalibrationReport
    misspecified: dict[str, CalibrationReport] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def reports(self) -> list[CalibrationReport]:
        """The matched report, then the misspecified ones."""
        return [self.matched, *self.misspecified.values()]

    def summary_table(self, labels: Sequence[str] = KEY_LABELS) -> Any:
        """Summarise every test set in one row.

        Returns
        -------
        astropy.table.Table
            ``test_set``, ``n``, ``tarp_err``, ``ood_share`` (NaN when not computed),
            ``<label>_bias``, ``<label>_scatter``, ``<label>_coverage_err`` for each of
            ``labels`` (NaN where the set lacks it), and for an estimator that infers the
            redshift ``zphot_sigma_nmad``, ``zphot_outlier_frac``, ``zphot_bias`` and
            ``zphot_coverage_68`` over all objects (:attr:`CalibrationReport.photoz`; NaN
            without ``zred``).
        """
        from astropy.table import Table

        rows = []
        for rep in self.reports:
            table = rep.table
            names = list(table["name"])
            row = {
                "test_set": rep.name,
                "n": len(rep),
                "tarp_err": rep.tarp_err,
                "ood_share": np.nan if rep.ood is None else rep.ood_share,
            }
            for label in labels:
                i = names.index(label) if label in names else None
                for col in ("bias", "scatter", "coverage_err"):
                    row[f"{label}_{col}"] = np.nan if i is None else float(table[col][i])
            photoz = rep.photoz
            for col in PHOTOZ_COLUMNS:
                row[f"zphot_{col}"] = np.nan if photoz is None else float(photoz[col][0])
            rows.append(row)
        return Table(rows=rows)

    def write(self, folder: str | os.PathLike) -> Path:
        """Write the PNGs, one ECSV table per test set and ``report.md`` into ``folder``.

        Each file atomically (a killed run leaves the previous file, never half of one);
        ``report.md`` last, so that its links name files already written.

        For an estimator that infers the redshift, also ``photoz_<set>.png`` (z_phot against
        the true z) and ``photoz_<set>.ecsv`` (:attr:`CalibrationReport.photoz`) per set.

        Returns
        -------
        pathlib.Path
            The Markdown file.
        """
        from ..plotting.calibration import (
            plot_coverage,
            plot_photoz,
            plot_predicted,
            plot_sbc,
            plot_tarp,
        )

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        figures: dict[str, list[str]] = {}
        for rep in self.reports:
            slug = _slug(rep.name)
            names = []
            for kind, plot in (
                ("predicted", plot_predicted),
                ("coverage", plot_coverage),
                ("sbc", plot_sbc),
            ):
                name = f"{kind}_{slug}.png"
                save_figure(plot(rep), folder / name, dpi=110)
                names.append(name)
            write_table(folder / f"metrics_{slug}.ecsv", rep.table, overwrite=True)
            if "zred" in rep.labels:
                i = rep.labels.index("zred")
                name = f"photoz_{slug}.png"
                fig = plot_photoz(
                    rep.truth[:, i], rep.p50[:, i], rep.p16[:, i], rep.p84[:, i], rep.name
                )
                save_figure(fig, folder / name, dpi=110)
                names.append(name)
                write_table(folder / f"photoz_{slug}.ecsv", rep.photoz, overwrite=True)
            figures[rep.name] = names
        save_figure(plot_tarp(self.reports), folder / "tarp.png", dpi=110)
        path = folder / "report.md"
        with atomic_path(path, overwrite=True) as tmp:
            tmp.write_text(self.to_markdown(figures))
        return path

    def to_markdown(self, figures: dict[str, list[str]] | None = None) -> str:
        """Render the one-page summary: metric tables, misspecification summary, figure links."""
        m = self.meta
        lines = [
            f"# Calibration report: {self.estimator}",
            "",
            f"{len(self.matched)} held-out mocks ({m.get('source', '?')}), "
            f"{self.matched.n_draws} posterior draws each, seed {m.get('seed', 0)}; "
            f"written {time.strftime('%Y-%m-%d %H:%M')}. "
            f"Recalibration: {m.get('recalibration') or 'none'}.",
            "",
            "R2, bias (median of posterior median - truth) and scatter (1.4826 MAD) of the "
            "posterior median; outliers: residual > 3 scatter from the bias; cov68: "
            "coverage of the central 68% interval; cov err: largest |coverage - level| "
            "over levels 0.02-0.98; SBC p: chi2 uniformity p-value of the ranks; TARP err: "
            "largest distance of the TARP curve from the diagonal (joint calibration); "
            "OOD: share flagged by the posterior-predictive check.",
            "",
        ]
        if self.misspecified:
            lines += [
                "## Summary: held-out and misspecified mocks",
                "",
                _summary_markdown(self),
                "",
            ]
            if figures:
                lines += ["![tarp](tarp.png)", ""]
        for rep in self.reports:
            lines += [
                f"## {rep.name}",
                "",
                _markdown_table(rep),
                "",
                f"TARP err {rep.tarp_err:.3f}; "
                + (
                    "OOD share not computed"
                    if rep.ood is None
                    else f"OOD share {rep.ood_share:.3f} (median reduced chi2 "
                    f"{np.median(rep.chi2_red):.3g})"
                )
                + f"; {len(rep)} objects; a calibrated posterior would show a cov err "
                f"up to {rep.summary['coverage_err_noise']:.3f} on as many (95%).",
                "",
            ]
            if rep.photoz is not None:
                lines += [_photoz_markdown(rep.photoz), ""]
            for name in (figures or {}).get(rep.name, []):
                lines.append(f"![{name}]({name})")
            lines.append("")
        if figures and not self.misspecified:
            lines += ["![tarp](tarp.png)", ""]
        return "\n".join(lines)


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _markdown_table(rep: CalibrationReport) -> str:
    table = rep.table
    head = "| label | R2 | bias | scatter | outliers | cov68 | cov err | SBC p |"
    lines = [head, "|" + "---|" * 8]
    for r in table:
        lines.append(
            f"| {r['name']} | {r['r2']:.3f} | {r['bias']:+.3f} | {r['scatter']:.3f} | "
            f"{r['outlier_frac']:.3f} | {r['coverage_68']:.3f} | "
            f"{r['coverage_err']:.3f} | {r['sbc_p']:.2g} |"
        )
    return "\n".join(lines)


def _photoz_markdown(table: Any) -> str:
    lines = [
        "Photometric redshift: z_phot is the posterior median of zred, dz = (z_phot - z) / "
        f"(1 + z); sigma_NMAD = 1.48 median(|dz - bias|), outliers |dz| > {OUTLIER_DZ:g}, "
        "bias median(dz); cov68, cov95: coverage of the z posterior's central intervals.",
        "",
        "| subset | true z | N | sigma_NMAD | outliers | bias | cov68 | cov95 |",
        "|" + "---|" * 8,
    ]
    for r in table:
        if r["n"] == 0:
            continue
        lines.append(
            f"| {r['subset']} | {r['z_bin']} | {r['n']} | {r['sigma_nmad']:.3f} | "
            f"{100 * r['outlier_frac']:.1f}% | {r['bias']:+.3f} | {r['coverage_68']:.2f} | "
            f"{r['coverage_95']:.2f} |"
        )
    return "\n".join(lines)


def _summary_markdown(report: ValidationReport) -> str:
    table = report.summary_table()
    labels = [x for x in KEY_LABELS if np.isfinite(table[f"{x}_bias"]).any()]
    head = ["test set", "N", "OOD", "TARP err"] + [f"{x} bias / scatter / cov err" for x in labels]
    photoz = bool(np.isfinite(table["zphot_sigma_nmad"]).any())
    if photoz:
        head.append("z_phot sigma_NMAD / outliers / cov68")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table:
        cells = [
            str(r["test_set"]),
            str(r["n"]),
            "-" if not np.isfinite(r["ood_share"]) else f"{r['ood_share']:.3f}",
            f"{r['tarp_err']:.3f}",
        ]
        for x in labels:
            b, s, c = (r[f"{x}_{k}"] for k in ("bias", "scatter", "coverage_err"))
            cells.append("-" if not np.isfinite(b) else f"{b:+.3f} / {s:.3f} / {c:.3f}")
        if photoz:
            s, o, c = (r[f"zphot_{k}"] for k in ("sigma_nmad", "outlier_frac", "coverage_68"))
            cells.append("-" if not np.isfinite(s) else f"{s:.3f} / {100 * o:.1f}% / {c:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _recalibration_note(estimator: AmortizedPosterior) -> str | None:
    """Where the estimator's recalibration maps came from, for the report; None without."""
    recal = estimator.recalibration
    if recal is None:
        return None
    return f"{recal!r}, fitted on {recal.info.get('mocks', 'unrecorded mocks')}"


def _resolve(estimator: Any, model: object) -> tuple:
    """Return the posterior, a display name, and the model (for a pretrained name)."""
    from ..posterior import AmortizedPosterior
    from ..pretrained import PRETRAINED, pretrained_model

    if isinstance(estimator, AmortizedPosterior):
        return estimator, "estimator", model
    name = str(estimator)
    if name in PRETRAINED and not Path(name).exists():
        model = pretrained_model(name) if model is None else model
        return AmortizedPosterior.resolve(name), name, model
    if not Path(name).is_file():
        raise FileNotFoundError(
            f"no estimator file {name} (pretrained names: {sorted(PRETRAINED)})"
        )
    return AmortizedPosterior.resolve(name), name, model


def _run_check(check: Any, rep: CalibrationReport, obs: dict) -> None:
    """Set the posterior-predictive chi-square and OOD flags of a report's objects."""
    if check is None:
        return
    chi2_red, ood = check(
        obs["flux"], obs["err"], obs["zred"], rep.medians, spread_draws=rep.spread_draws
    )
    rep.chi2_red, rep.ood = np.asarray(chi2_red), np.asarray(ood, dtype=bool)


def validate(
    estimator: AmortizedPosterior | str | os.PathLike,
    folder: str | os.PathLike | None = None,
    *,
    testset: str | os.PathLike | Any = None,
    model: object = None,
    n_mocks: int = 1000,
    draws: int = 1000,
    seed: int = 0,
    misspecification: bool | Sequence[str] = False,
    sps: object = None,
    ppc: bool = True,
) -> ValidationReport:
    """Calibration report of an estimator on held-out (and optionally misspecified) mocks.

    Parameters
    ----------
    estimator : str, path-like or AmortizedPosterior
        An estimator file, a pretrained name (``"jades-parametric"``) or the estimator.
    folder : path-like, optional
        Where to write the PNGs, the ECSV tables, ``report.md`` and the mock simulations
        (``mocks/``). Nothing is written when None.
    testset : path-like or TrainingSet, optional
        Simulations of the estimator's model never used in training; its first ``n_mocks``
        rows are used. Without it, ``n_mocks`` mocks are simulated from ``model``.
    model : prospect.models.SpecModel, optional
        The estimator's model (checked against its hash). Default: the pretrained model for a
        pretrained name, else rebuilt from the estimator's header
        (:meth:`~prospect_sbi.posterior.AmortizedPosterior.model`; a parameter file's model
        when its functions are not Prospector's).
    n_mocks : int
        Test objects per test set.
    draws : int
        Posterior draws per object.
    seed : int
        Seed of the mocks, their noise and the draws.
    misspecification : bool or sequence of str
        Also test on misspecified mocks: True for every kind of :data:`MISSPECIFICATIONS`
        (``"sfh"``, ``"dust"``, ``"nebular"``), or a list of kinds.
    sps : object, optional
        SPS source of the mocks (default: a new ``BC03MilesBasis``).
    ppc : bool
        Run the posterior-predictive check on each set of mocks and report the share flagged
        out of distribution (needs the model).

    Returns
    -------
    ValidationReport

    Raises
    ------
    ValueError
        A model or test set that does not match the estimator, an estimator whose model cannot
        be rebuilt when neither is given, an unknown misspecification kind.
    FileNotFoundError
        No estimator file or test set at the path given.

    Examples
    --------
    >>> report = validate("jades-parametric", "report/", n_mocks=500,
    ...                   misspecification=True)  # doctest: +SKIP
    >>> report.matched.table  # R2, bias, scatter, ... per label  # doctest: +SKIP
    """
    post, name, model = _resolve(estimator, model)
    kinds = list(MISSPECIFICATIONS) if misspecification is True else list(misspecification or [])
    for kind in kinds:
        if kind not in MISSPECIFICATIONS:
            raise ValueError(f"unknown misspecification {kind!r}; use {list(MISSPECIFICATIONS)}")
    if model is not None:
        post.check(model=model)
    elif testset is None or kinds or ppc:
        try:
            model = post.model()
        except ValueError as err:
            if testset is None or kinds:
                raise ValueError(f"{err}; pass model= or testset=") from err
    scratch = None if folder is not None else tempfile.TemporaryDirectory()
    mock_dir = Path(folder) / "mocks" if folder is not None else Path(scratch.name)
    mock_dir.mkdir(parents=True, exist_ok=True)
    if sps is None and (testset is None or kinds or (ppc and model is not None)):
        from ..sources import BC03MilesBasis

        sps = BC03MilesBasis()
    try:
        if testset is not None:
            obs, path = test_set_observations(post, testset, n_mocks, seed)
            source = f"test set {path}"
        else:
            mocks = mock_observations(post, model, sps, n_mocks, mock_dir / "matched.h5", seed)
            truth = np.stack([mocks["truth"][x] for x in post.labels], 1)
            obs = dict(mocks, truth=truth)
            source = "simulated from the training model"
        check = None
        if ppc and model is not None:
            from ..ppc import PredictiveCheck

            check = PredictiveCheck(post, model, sps)
        matched = calibrate(
            post,
            obs["flux"],
            obs["err"],
            obs["truth"],
            obs["zred"],
            n=draws,
            seed=seed,
            name="held-out mocks",
        )
        _run_check(check, matched, obs)
        misspecified = {}
        if kinds:
            for kind in kinds:
                label, other = misspecified_model(post, model, kind)
                mocks = mock_observations(
                    post, other, sps, n_mocks, mock_dir / f"{_slug(label)}.h5", seed
                )
                labels = shared_labels(post, mocks["truth"])
                truth = np.stack([mocks["truth"][x] for x in labels], 1)
                rep = calibrate(
                    post,
                    mocks["flux"],
                    mocks["err"],
                    truth,
                    mocks["zred"],
                    labels,
                    n=draws,
                    seed=seed,
                    name=label,
                )
                _run_check(check, rep, mocks)
                misspecified[kind] = rep
    finally:
        if scratch is not None:
            scratch.cleanup()
    report = ValidationReport(
        f"{name} (model {post.model_hash})",
        matched,
        misspecified,
        meta={
            "source": source,
            "seed": int(seed),
            "draws": int(draws),
            "n_mocks": int(n_mocks),
            "recalibration": _recalibration_note(post),
        },
    )
    if folder is not None:
        report.write(folder)
    return report
