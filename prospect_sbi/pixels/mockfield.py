"""A realistic test field: JADES-like mosaics, a segmentation map and a redshift catalogue.

:func:`make_test_field` writes, for the 14 JADES bands, one mosaic per band as a survey
releases it (``SCI`` and ``ERR`` extensions in MJy/sr with ``PIXAR_SR``, a TAN WCS), a
segmentation map on the same grid and an ECSV catalogue (``id``, ``z``). The frame is sky
noise at the JADES pixel depths (:class:`~prospect_sbi.noise.JadesPixelNoise`); into it go
the three real JOF cutouts of ``../shared/data`` (when given: their 65 x 65 pixels verbatim,
the central galaxy's segment labelled with its JOF id) and synthetic galaxies whose pixels
are simulated SEDs (two stellar populations, an older core and a younger disc, mixed along an
exponential profile) with the JADES pixel noise. Files are written in row strips
(:class:`~prospect_sbi.pixels.field.FitsPlanes`), so a 10,000 x 10,000 frame never sits in
memory.
"""

from __future__ import annotations

__all__ = ["TestField", "make_test_field"]

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from astropy.table import Table

from .._io import atomic_path
from ..constants import ARCSEC_PER_RAD, JY_PER_MAGGIE
from ..filters import JADES_BANDS
from .field import FitsPlanes
from .images import PixelImages


@dataclass
class TestField:
    """The files of :func:`make_test_field` and where each galaxy went.

    Attributes
    ----------
    mosaics : dict of str -> pathlib.Path
        Band (sedpy name) -> mosaic FITS file.
    segmap, catalog : pathlib.Path
    galaxies : astropy.table.Table
        ``id``, ``z``, ``kind`` (``"jof"`` or ``"synthetic"``), ``y0``, ``x0`` (corner of the
        stamp in the frame), ``ny``, ``nx`` (stamp size), ``n_segment`` (pixels).
    wcs : astropy.wcs.WCS
    shape : (int, int)
    pixar_sr : float
        Pixel solid angle, steradian.
    """

    __test__ = False  # not a pytest class

    mosaics: dict[str, Path]
    segmap: Path
    catalog: Path
    galaxies: Table
    wcs: Any
    shape: tuple[int, int]
    pixar_sr: float


def _wcs(shape: tuple[int, int], pixel_scale: float) -> Any:
    from astropy.wcs import WCS

    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [53.16, -27.78]  # the JADES Origin Field
    wcs.wcs.crpix = [(shape[1] + 1) / 2, (shape[0] + 1) / 2]
    wcs.wcs.cdelt = [-pixel_scale / 3600.0, pixel_scale / 3600.0]
    return wcs


def _unit_seds(
    model: Any, sps: Any, bands: list[str], zred: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Maggies per Msun formed of an old core and a young disc per galaxy, (G, 2, L)."""
    from ..forward import ModelPhotometry
    from ..transforms import draw_theta

    n = len(zred)
    theta = draw_theta(model, rng.uniform(size=(2 * n, model.ndim)))
    idx = model.theta_index
    labels = model.theta_labels()

    def put(name: str, values: Any) -> None:
        if name in labels:
            theta[:, idx[name].start] = values

    put("zred", np.repeat(zred, 2))
    put("mass", 1e8)
    put("logmass", 8.0)
    core = np.tile([1.0, 0.0], n).astype(bool)
    put("tage", np.where(core, rng.uniform(1.0, 2.0, 2 * n), rng.uniform(0.05, 0.5, 2 * n)))
    put("tau", np.where(core, 0.3, 2.0))
    put("dust2", np.where(core, rng.uniform(0.0, 0.3, 2 * n), rng.uniform(0.2, 0.8, 2 * n)))
    put("logzsol", rng.uniform(-1.0, 0.0, 2 * n))
    maggies, _ = ModelPhotometry(model, sps, bands)(theta)
    return (np.asarray(maggies) / 1e8).reshape(n, 2, len(bands))


def _synthetic(
    n: int,
    cells: list[tuple[int, int]],
    cell: int,
    zred_range: tuple[float, float],
    radius: tuple[float, float],
    log_mass: tuple[float, float],
    bands: list[str],
    noise: Any,
    model: Any,
    sps: Any,
    rng: np.random.Generator,
) -> list[dict]:
    """Stamps of ``n`` synthetic galaxies, one in each of the first ``n`` ``cells``."""
    zred = rng.uniform(*zred_range, n)
    seds = _unit_seds(model, sps, bands, zred, rng)
    stamps = []
    for i in range(n):
        r_e = rng.uniform(*radius)
        q, pa = rng.uniform(0.5, 1.0), rng.uniform(0, np.pi)
        half = min(int(np.ceil(2.5 * r_e)), cell // 2 - 1)
        yy, xx = np.mgrid[-half : half + 1, -half : half + 1].astype(float)
        u = xx * np.cos(pa) + yy * np.sin(pa)
        v = (-xx * np.sin(pa) + yy * np.cos(pa)) / q
        r = np.hypot(u, v)
        seg = r <= 2.5 * r_e
        profile = np.where(seg, np.exp(-r / r_e), 0.0)
        mass = 10 ** rng.uniform(*log_mass) * profile / profile.sum()
        w = np.exp(-r / r_e)[..., None]
        maggies = mass[..., None] * (w * seds[i, 0] + (1 - w) * seds[i, 1])  # (h, w, L)
        flux, err = noise.apply(maggies[seg], rng)
        f = np.zeros(maggies.shape)
        e = np.zeros(maggies.shape)
        f[seg], e[seg] = flux, err
        cy, cx = cells[i]
        stamps.append(
            {
                "z": float(zred[i]),
                "y0": cy + cell // 2 - half,
                "x0": cx + cell // 2 - half,
                "flux": f.transpose(2, 0, 1).astype(np.float32),
                "err": e.transpose(2, 0, 1).astype(np.float32),
                "seg": seg,
                "kind": "synthetic",
            }
        )
    return stamps


def _jof(cutouts: Mapping[int, PixelImages], corners: list[tuple[int, int]]) -> list[dict]:
    """Stamps of the JOF cutouts (maggies, in the JADES band order), at ``corners``."""
    stamps = []
    for (gid, images), (y0, x0) in zip(sorted(cutouts.items()), corners, strict=False):
        matched = images.matched(JADES_BANDS)
        seg = np.asarray(images.segmap)
        cy, cx = (n // 2 for n in seg.shape)
        stamps.append(
            {
                "id": int(gid),
                "z": float(images.zred),
                "y0": y0,
                "x0": x0,
                "flux": matched.flux,
                "err": matched.err,
                "seg": seg == seg[cy, cx],
                "kind": "jof",
                "full": True,
            }
        )
    return stamps


def make_test_field(
    folder: str | os.PathLike,
    n_synthetic: int = 20,
    shape: tuple[int, int] = (300, 300),
    *,
    jof: Mapping[int, PixelImages] | None = None,
    seed: int = 0,
    zred_range: tuple[float, float] = (1.0, 4.0),
    radius: tuple[float, float] = (1.5, 4.0),
    log_mass: tuple[float, float] = (8.5, 9.5),
    cell: int = 40,
    pixel_scale: float = 0.03,
    model: Any = None,
    sps: Any = None,
    strip: int = 512,
) -> TestField:
    """Write a JADES-like test field: 14 mosaics, a segmentation map and a catalogue.

    Parameters
    ----------
    folder : path-like
        Where the files go (created): ``<band>.fits`` per band, ``segmap.fits``,
        ``catalog.ecsv``.
    n_synthetic : int
        Synthetic galaxies, one per ``cell`` x ``cell`` cell of the frame, at random cells.
    shape : (int, int)
        (ny, nx) of the frame, pixels.
    jof : dict, optional
        Galaxy id -> :class:`PixelImages` with a segmentation map and a redshift, e.g. the
        three JOF cutouts of :func:`prospect_sbi.jades_data.read_jof_cutouts`: they go in the
        first row of cells, verbatim (segment ids 36, 370, 778, their photometric redshifts).
    seed : int
        Same seed, same files.
    zred_range : (float, float)
        Redshifts of the synthetic galaxies (uniform).
    radius : (float, float)
        Exponential scale length, pixels (uniform); a segment reaches 2.5 of it.
    log_mass : (float, float)
        Stellar mass formed of a synthetic galaxy, log10 Msun (uniform).
    cell : int
        Cell side, pixels (at least 70 with ``jof``).
    pixel_scale : float
        Arcsec.
    model, sps
        The Prospector model of the synthetic SEDs (default ``build_model("parametric_sfh",
        zred=zred_range)``) and its source (default a new ``BC03MilesBasis``).
    strip : int
        Rows per write.

    Returns
    -------
    TestField

    Raises
    ------
    ValueError
        More galaxies than free cells.
    """
    from ..noise import JadesPixelNoise

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ny, nx = (int(s) for s in shape)
    bands = list(JADES_BANDS)
    noise = JadesPixelNoise(bands)
    cells = [(y, x) for y in range(0, ny - cell + 1, cell) for x in range(0, nx - cell + 1, cell)]
    stamps: list[dict] = []
    if jof is not None:
        side = max(max(images.shape) for images in jof.values())
        if cell < side + 5:
            raise ValueError(
                f"cell={cell}: the JOF cutouts need cells of at least {side + 5} pixels"
            )
        corners = [(y + 2, x + 2) for y, x in cells[: len(jof)]]
        stamps += _jof(jof, corners)
        cells = cells[len(stamps) :]
    if n_synthetic > len(cells):
        raise ValueError(
            f"{n_synthetic} synthetic galaxies do not fit in the {len(cells)} free "
            f"{cell}-pixel cells of a {shape} frame"
        )
    if n_synthetic:
        if model is None:
            from ..models import build_model

            model = build_model("parametric_sfh", zred=tuple(zred_range))
        if sps is None:
            from ..sources import BC03MilesBasis

            sps = BC03MilesBasis()
        picked = [cells[i] for i in sorted(rng.choice(len(cells), n_synthetic, replace=False))]
        stamps += _synthetic(
            n_synthetic, picked, cell, zred_range, radius, log_mass, bands, noise, model, sps, rng
        )
    next_id = 1000
    for s in stamps:
        if "id" not in s:
            s["id"], next_id = next_id, next_id + 1
    stamps.sort(key=lambda s: s["y0"])
    wcs = _wcs((ny, nx), pixel_scale)
    pixar = (pixel_scale / ARCSEC_PER_RAD) ** 2
    to_mjysr = JY_PER_MAGGIE / (1e6 * pixar)  # maggies per pixel -> MJy/sr
    header = wcs.to_header()
    header["PIXAR_SR"] = (pixar, "pixel solid angle, sr")

    def rows_of(y0: int, y1: int) -> list[tuple[dict, slice, slice]]:
        """Stamps overlapping rows [y0, y1): (stamp, rows in it, rows in the strip)."""
        out = []
        for s in stamps:
            h = s["flux"].shape[1]
            a, b = max(y0, s["y0"]), min(y1, s["y0"] + h)
            if a < b:
                out.append((s, slice(a - s["y0"], b - s["y0"]), slice(a - y0, b - y0)))
        return out

    mosaics = {}
    for k, band in enumerate(bands):
        depth = noise.depth[k]

        def fill(name: str, y0: int, y1: int, k: int = k, depth: float = depth) -> np.ndarray:
            if name == "SCI":
                g = np.random.default_rng([seed, k, y0])
                rows = g.normal(0.0, depth, (y1 - y0, nx))
            else:
                rows = np.full((y1 - y0, nx), depth)
            key = "flux" if name == "SCI" else "err"
            for s, src, dst in rows_of(y0, y1):
                w = s["flux"].shape[2]
                where = (
                    np.ones((src.stop - src.start, w), bool) if s.get("full") else s["seg"][src]
                )
                view = rows[dst, s["x0"] : s["x0"] + w]
                view[where] = s[key][k][src][where]
            return (rows * to_mjysr).astype(np.float32)

        path = folder / f"{band}.fits"
        with atomic_path(path, overwrite=True) as tmp:
            FitsPlanes(
                tmp,
                (ny, nx),
                ["SCI", "ERR"],
                header,
                {"SCI": "MJy/sr", "ERR": "MJy/sr"},
                {
                    "TELESCOP": "JWST" if band.startswith("jwst") else "HST",
                    "FILTER": band.rsplit("_", 1)[-1].upper(),
                    "PIXAR_SR": pixar,
                },
                fill=fill,
                strip=strip,
            )
        mosaics[band] = path

    def seg_fill(name: str, y0: int, y1: int) -> np.ndarray:
        rows = np.zeros((y1 - y0, nx), np.int32)
        for s, src, dst in rows_of(y0, y1):
            w = s["flux"].shape[2]
            view = rows[dst, s["x0"] : s["x0"] + w]
            view[s["seg"][src]] = s["id"]
        return rows

    segmap = folder / "segmap.fits"
    with atomic_path(segmap, overwrite=True) as tmp:
        FitsPlanes(
            tmp,
            (ny, nx),
            ["SEG"],
            wcs.to_header(),
            {"SEG": "segment id"},
            fill=seg_fill,
            strip=strip,
            dtype=np.int32,
        )
    galaxies = Table(
        rows=[
            (s["id"], s["z"], s["kind"], s["y0"], s["x0"], *s["seg"].shape, int(s["seg"].sum()))
            for s in sorted(stamps, key=lambda s: s["id"])
        ],
        names=("id", "z", "kind", "y0", "x0", "ny", "nx", "n_segment"),
    )
    catalog = folder / "catalog.ecsv"
    with atomic_path(catalog, overwrite=True) as tmp:
        galaxies[["id", "z"]].write(tmp, format="ascii.ecsv")
    return TestField(mosaics, segmap, catalog, galaxies, wcs, (ny, nx), pixar)
