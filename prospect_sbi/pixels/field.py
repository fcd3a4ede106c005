"""A whole field: mosaics, a segmentation map and a redshift catalogue -> maps of every galaxy.

:func:`map_field` reads one FITS mosaic per band lazily (only each galaxy's bounding box, by
file reads of the rows it spans: never the whole mosaic, never a memory map), finds each
galaxy's bounding box in one scan of the segmentation map in row strips, and maps every
galaxy of the catalogue with :func:`~prospect_sbi.pixels.map_galaxy` (one resumable unit per
galaxy, in ``<out>/galaxies/``), serially or on the workers of a dask ``Client``. It then
writes the field catalogue (one row per galaxy, ECSV and FITS), one field-wide FITS file per
map quantity on the mosaic's own WCS (float32, NaN outside the fitted pixels, built at the
end from the per-galaxy maps by row-strip file writes, never whole in memory) and the
resolved-vs-integrated mass figure. Resident memory is bounded by one galaxy's cutout, one
row strip of the segmentation map and one chunk of pixel draws, whatever the mosaic's size.
"""

from __future__ import annotations

__all__ = [
    "FIELD_QUANTITIES",
    "FieldMaps",
    "FitsPlanes",
    "Mosaic",
    "bounding_boxes",
    "map_field",
    "read_field_catalog",
]

import os
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table
from tqdm.auto import tqdm

from .._io import atomic_path, check_sendable, run_ordered, save_figure
from ..filters import resolve_band_names
from ..fitting.redshift import ZRED_RULED_OUT, read_zred_table, zred_given
from ..fitting.zeropoints import ZeroPoints
from .galaxy import galaxy_files, map_galaxy
from .images import PixelImages, flux_unit_factor, load_cube
from .io import read_maps, write_table
from .maps import MAP_QUANTITIES
from .select import SNR_BANDS, select_pixels

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: Field-wide maps written by default: each of :data:`MAP_QUANTITIES` (HDUs P50, P16, P84),
#: and the predictive check's ``chi2_red`` and ``ood`` (one HDU each).
FIELD_QUANTITIES: tuple[str, ...] = (*MAP_QUANTITIES, "chi2_red", "ood")

_BLOCK = 2880


class FitsPlanes:
    """A FITS file of float32 (ny, nx) image HDUs written by rows, never held in memory.

    The primary HDU holds only ``primary`` cards; then one image HDU per name, each with
    ``header`` (WCS, units) and ``BUNIT`` from ``units``. The data are filled on creation, in
    strips of ``strip`` rows, by ``fill(name, y0, y1) -> (y1 - y0, nx)`` or with NaN; then
    :meth:`paste` changes pixels of a box in place (file reads and writes of the rows it spans).

    Parameters
    ----------
    path : path-like
        File to create (give a temporary path from :func:`~prospect_sbi._io.atomic_path`).
    shape : (int, int)
        (ny, nx).
    names : sequence of str
        EXTNAME of each image HDU.
    header : astropy.io.fits.Header or dict, optional
        Cards of every image HDU (e.g. ``wcs.to_header()``).
    units : mapping of str -> str, optional
        ``BUNIT`` per name.
    primary : mapping of str -> value or (value, comment), optional
    fill : callable, optional
    strip : int
        Rows per write.
    dtype : numpy.float32 or numpy.int32
        Pixel type; float32 files are filled with NaN, int32 files with 0 by default.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int],
        names: Sequence[str],
        header: Any = None,
        units: Mapping[str, str] | None = None,
        primary: Mapping[str, Any] | None = None,
        fill: Callable[[str, int, int], np.ndarray] | None = None,
        strip: int = 512,
        dtype: Any = np.float32,
    ) -> None:
        from astropy.io import fits

        self.path, self.shape = Path(path), (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype).newbyteorder(">")
        ny, nx = self.shape
        self.offsets: dict[str, int] = {}
        head = fits.PrimaryHDU().header
        head["EXTEND"] = True
        for key, value in (primary or {}).items():
            head[key] = value
        size = ny * nx * 4
        with open(self.path, "wb") as fh:
            fh.write(head.tostring().encode("ascii"))
            for name in names:
                hdu = fits.ImageHDU(np.zeros((1, 1), dtype), name=str(name).upper())
                if header is not None:
                    hdu.header.update(header)
                hdu.header["BUNIT"] = str((units or {}).get(name, ""))[:68]
                hdu.header["NAXIS1"], hdu.header["NAXIS2"] = nx, ny
                fh.write(hdu.header.tostring().encode("ascii"))
                self.offsets[str(name)] = fh.tell()
                for y0 in range(0, ny, strip):
                    y1 = min(y0 + strip, ny)
                    rows = (
                        np.full((y1 - y0, nx), np.nan if self.dtype.kind == "f" else 0)
                        if fill is None
                        else fill(str(name), y0, y1)
                    )
                    fh.write(np.ascontiguousarray(rows, dtype=self.dtype).tobytes())
                fh.write(b"\0" * (-size % _BLOCK))

    def paste(self, name: str, y0: int, x0: int, values: np.ndarray, mask: np.ndarray) -> None:
        """Set the pixels of the box at (y0, x0) where ``mask`` (h, w) is True to ``values``."""
        ny, nx = self.shape
        h, w = mask.shape
        if y0 < 0 or x0 < 0 or y0 + h > ny or x0 + w > nx:
            raise ValueError(f"box ({y0}, {x0}) + {mask.shape} is outside the {self.shape} grid")
        base = self.offsets[name]
        with open(self.path, "r+b") as fh:
            for i in np.flatnonzero(mask.any(axis=1)):
                at = base + ((y0 + int(i)) * nx + x0) * 4
                fh.seek(at)
                row = np.frombuffer(fh.read(w * 4), dtype=self.dtype).copy()
                row[mask[i]] = values[i][mask[i]]
                fh.seek(at)
                fh.write(row.tobytes())


class Mosaic:
    """The mosaics of L bands on one pixel grid, read lazily one box at a time.

    Each band's file is opened without a memory map; :meth:`cutout` reads the rows of a box
    from the files (``ImageHDU.section``), so memory holds one cutout, not the mosaic.

    Parameters
    ----------
    files : mapping
        Band (sedpy or short name) -> FITS file with ``SCI`` and ``ERR`` (or ``WHT``,
        inverse variance) image extensions, a celestial WCS and ``BUNIT`` (MJy/sr with
        ``PIXAR_SR`` or a WCS pixel scale, or a flux per pixel such as nJy).
    unit : str, optional
        Use this unit for every band instead of ``BUNIT``.

    Raises
    ------
    ValueError
        Naming the band: a file without ``SCI`` (or a 2-d image), without ``ERR`` or ``WHT``,
        without a celestial WCS or unit; a band of another shape or pixel grid than the first.
    """

    def __init__(self, files: Mapping[str, Any], unit: str | None = None) -> None:
        from astropy.io import fits

        if not files:
            raise ValueError("no mosaics given: one FITS file per band")
        self.bands = resolve_band_names(list(files))
        if len(set(self.bands)) != len(self.bands):
            dup = next(b for b in self.bands if self.bands.count(b) > 1)
            raise ValueError(f"two mosaics name the same band {dup}")
        self.files = {b: Path(p) for b, p in zip(self.bands, files.values(), strict=True)}
        self._hdus, self._lock = [], threading.Lock()
        self._sci: list[Any] = []
        self._noise: list[tuple[Any, bool]] = []
        self.factors: list[float] = []
        self.shape = self.wcs = self.pixel_scale = None
        try:
            for band, path in self.files.items():
                hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
                self._hdus.append(hdul)
                sci, noise, weight = self._extensions(hdul, band, path)
                self._check_band(band, path, sci.header, hdul[0].header, unit)
                self._sci.append(sci)
                self._noise.append((noise, weight))
        except Exception:
            self.close()
            raise

    @staticmethod
    def _extensions(hdul: Any, band: str, path: Path) -> tuple[Any, Any, bool]:
        def get(name: str) -> Any:
            try:
                return hdul[name]
            except (KeyError, IndexError):
                return None

        sci = get("SCI")
        if sci is None:
            raise ValueError(f"mosaic of {band} ({path.name}) has no SCI extension")
        if sci.header.get("NAXIS") != 2:
            raise ValueError(f"mosaic of {band} ({path.name}): SCI is not a 2-d image")
        err, wht = get("ERR"), get("WHT")
        if err is None and wht is None:
            raise ValueError(
                f"mosaic of {band} ({path.name}) has neither an ERR nor a WHT extension"
            )
        noise = err if err is not None else wht
        if (noise.header.get("NAXIS2"), noise.header.get("NAXIS1")) != (
            sci.header["NAXIS2"],
            sci.header["NAXIS1"],
        ):
            raise ValueError(
                f"mosaic of {band} ({path.name}): {noise.name} is not the shape of SCI"
            )
        return sci, noise, err is None

    def _check_band(
        self, band: str, path: Path, header: Any, primary: Any, unit: str | None
    ) -> None:
        from astropy.wcs import WCS

        shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wcs = WCS(header).celestial if "CTYPE1" in header else None
        if wcs is None or not wcs.has_celestial or wcs.naxis != 2:
            raise ValueError(
                f"mosaic of {band} ({path.name}) has no celestial WCS in its SCI header"
            )
        if self.shape is None:
            from astropy.wcs.utils import proj_plane_pixel_scales

            self.shape, self.wcs = shape, wcs
            self.pixel_scale = float(np.sqrt(np.prod(proj_plane_pixel_scales(wcs) * 3600.0)))
        else:
            first = self.bands[0]
            if shape != self.shape:
                raise ValueError(
                    f"mosaic of {band} has shape {shape}; {first}'s is "
                    f"{self.shape}: the bands must share one pixel grid"
                )
            ny, nx = shape
            corners = np.array([[0, 0], [nx - 1, ny - 1], [0, ny - 1]], dtype=float)
            off = np.max(
                np.abs(wcs.all_world2pix(self.wcs.all_pix2world(corners, 0), 0) - corners)
            )
            if not off <= 0.1:
                raise ValueError(
                    f"mosaic of {band} is on another pixel grid than {first}'s "
                    f"(WCS differs by {off:.2f} pixels): the bands must share "
                    "one grid"
                )
        bunit = unit or header.get("BUNIT") or primary.get("BUNIT")
        if not bunit:
            raise ValueError(
                f"mosaic of {band} ({path.name}) has no BUNIT: give its unit (unit=, --unit)"
            )
        area = header.get("PIXAR_SR", primary.get("PIXAR_SR"))
        try:
            self.factors.append(flux_unit_factor(bunit, self.pixel_scale, area))
        except ValueError as err:
            raise ValueError(f"mosaic of {band} ({path.name}): {err}") from None

    def cutout(self, y0: int, y1: int, x0: int, x1: int) -> tuple[np.ndarray, np.ndarray]:
        """Flux and 1-sigma error of the box [y0:y1, x0:x1], maggies, (L, h, w) each.

        A zero, negative or non-finite error (or a zero weight) leaves the band missing in
        that pixel (NaN in both, as :class:`~prospect_sbi.pixels.PixelImages` has it).
        """
        box = (slice(int(y0), int(y1)), slice(int(x0), int(x1)))
        flux, err = [], []
        with self._lock:  # one file handle per band: reads are serialised
            for sci, (noise, weight), f in zip(self._sci, self._noise, self.factors, strict=True):
                flux.append(np.asarray(sci.section[box], dtype=float) * f)
                sigma = np.asarray(noise.section[box], dtype=float)
                if weight:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        sigma = 1.0 / np.sqrt(sigma)
                err.append(sigma * f)
        return np.stack(flux), np.stack(err)

    def close(self) -> None:
        """Close the files."""
        for hdul in self._hdus:
            hdul.close()
        self._hdus = []

    def __enter__(self) -> Mosaic:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _open_segmap(path: str | os.PathLike) -> tuple[Any, Any]:
    """Open a segmentation map lazily: its HDU list and its first 2-d image HDU."""
    from astropy.io import fits

    hdul = fits.open(path, memmap=False, lazy_load_hdus=True)
    for hdu in hdul:
        if hdu.header.get("NAXIS") == 2 and hdu.header.get("NAXIS1"):
            return hdul, hdu
    hdul.close()
    raise ValueError(f"segmentation map {path} has no 2-d image")


def bounding_boxes(segmap: str | os.PathLike, strip: int = 256) -> dict[int, tuple[int, ...]]:
    """Bounding box and pixel count of every segment, from one scan in row strips.

    Parameters
    ----------
    segmap : path-like
        FITS segmentation map (0: background); read ``strip`` rows at a time, never whole.
    strip : int
        Rows per read.

    Returns
    -------
    dict
        Segment id -> ``(y0, y1, x0, x1, n_pixels)``, the box being ``[y0:y1, x0:x1]``.
    """
    hdul, hdu = _open_segmap(segmap)
    boxes: dict[int, list[int]] = {}
    try:
        ny = int(hdu.header["NAXIS2"])
        for s0 in range(0, ny, int(strip)):
            rows = np.asarray(hdu.section[s0 : min(s0 + int(strip), ny), :])
            ys, xs = np.nonzero(rows)
            if not len(ys):
                continue
            ids, inv = np.unique(rows[ys, xs], return_inverse=True)
            n = len(ids)
            lo_y, hi_y = np.full(n, np.iinfo(np.int64).max), np.full(n, -1)
            lo_x, hi_x = lo_y.copy(), hi_y.copy()
            np.minimum.at(lo_y, inv, ys + s0)
            np.maximum.at(hi_y, inv, ys + s0)
            np.minimum.at(lo_x, inv, xs)
            np.maximum.at(hi_x, inv, xs)
            count = np.bincount(inv, minlength=n)
            for j, g in enumerate(ids.tolist()):
                b = boxes.get(int(g))
                new = [
                    int(lo_y[j]),
                    int(hi_y[j]) + 1,
                    int(lo_x[j]),
                    int(hi_x[j]) + 1,
                    int(count[j]),
                ]
                boxes[int(g)] = (
                    new
                    if b is None
                    else [
                        min(b[0], new[0]),
                        max(b[1], new[1]),
                        min(b[2], new[2]),
                        max(b[3], new[3]),
                        b[4] + new[4],
                    ]
                )
    finally:
        hdul.close()
    return {g: tuple(b) for g, b in sorted(boxes.items())}


def read_field_catalog(
    path: str | os.PathLike, id_column: str = "id", zred_column: str | None = "z"
) -> tuple[np.ndarray, np.ndarray]:
    """Segment ids and redshifts of a catalogue (FITS, ECSV or CSV).

    :func:`~prospect_sbi.fitting.read_zred_table`: ``zred_column=None`` reads the ids alone.

    Returns
    -------
    ids : numpy.ndarray, int, (N,)
    zred : numpy.ndarray, float, (N,)
        NaN where the redshift is masked, not finite or <= 0 (such rows are skipped).

    Raises
    ------
    ValueError
        A missing column (the columns there are named), ids that are not integers or repeat.
    """
    return read_zred_table(path, id_column, zred_column)


@dataclass
class FieldMaps:
    """What :func:`map_field` wrote for a field.

    Attributes
    ----------
    catalog : astropy.table.Table
        One row per catalogue galaxy (see :func:`map_field`).
    files : dict of str -> pathlib.Path
        ``catalog`` (ECSV), ``catalog_fits``, ``figure`` (PNG), ``galaxies`` (folder) and
        ``map_<quantity>`` per field-wide map.
    errors : dict of int -> str
        Galaxies that failed: the one-line reason.
    no_zred : list of int
        Catalogue ids skipped for want of a usable redshift.
    fitted, skipped : int
        Galaxies fitted in this call, and finished before (their done marker).
    """

    catalog: Table
    files: dict[str, Path]
    errors: dict[int, str] = field(default_factory=dict)
    no_zred: list[int] = field(default_factory=list)
    fitted: int = 0
    skipped: int = 0


_STATE: dict[str, Any] = {}  # per process: the predictive check's model and SPS source


def _check_parts(post: Any, model: Any, sps: Any) -> tuple[Any, Any]:
    """Return the model and SPS source of the predictive check, built once per process."""
    if model is False:
        return False, None
    key = post.digest()
    if model is None:
        if _STATE.get("key") != key:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                try:
                    built = post.model()
                except ValueError:
                    built = False
            _STATE.update(key=key, model=built)
        model = _STATE["model"]
    if model is not False and sps is None:
        if "sps" not in _STATE:
            from ..sources import BC03MilesBasis

            _STATE["sps"] = BC03MilesBasis()
        sps = _STATE["sps"]
    return model, sps


def _galaxy_row(files: dict[str, Path]) -> dict:
    """Return the field-catalogue numbers of a mapped galaxy, from its pixel and outshining files.

    The integrated numbers are the galaxy's own outshining table's (the estimator's posterior
    of the summed photometry of its fitted pixels, with the map's error floor).
    """
    pix = Table.read(files["pixels"])
    out = Table.read(files["outshining"], format="ascii.ecsv")[0]
    row: dict[str, Any] = {"n_pixels": len(pix)}
    for q in ("", "_p16", "_p84"):
        row[f"log_mstar_pix{q or '_p50'}"] = float(out[f"log_mstar_resolved{q}"])
        row[f"log_mstar_int{q or '_p50'}"] = float(out[f"log_mstar_integrated{q}"])
        if f"log_sfr100_integrated{q}" in out.colnames:
            row[f"log_sfr_int{q or '_p50'}"] = float(out[f"log_sfr100_integrated{q}"])
    if "log_sfr100_p50" in pix.colnames:
        for q in (16, 50, 84):  # sum of the pixels' percentiles (p16/p84: correlated bounds)
            row[f"log_sfr_pix_p{q}"] = float(
                np.log10(np.sum(10.0 ** np.asarray(pix[f"log_sfr100_p{q}"], dtype=float)))
            )
    row["delta_mstar"] = float(out["delta"])
    from astropy.io import fits

    head = fits.getheader(files["maps"])
    if "ZPHOT" in head:
        row |= {
            "zphot_p16": float(head["ZPHOT16"]),
            "zphot_p50": float(head["ZPHOT"]),
            "zphot_p84": float(head["ZPHOT84"]),
            "zphot_nmodes": int(head["ZNMODES"]),
            "zphot_exact": bool(head.get("ZPHOTEXA", False)),
            "flags": (["zphot_multimodal"] if head["ZMULTI"] else [])
            + (["zphot_unconverged"] if head.get("ZUNCONV", False) else [])
            + ([ZRED_RULED_OUT] if head.get("ZRULED", False) else []),
        }
    if "ood" in pix.colnames:
        row["ood_share"] = float(np.mean(np.asarray(pix["ood"], dtype=float)))
        row["chi2_median"] = float(np.nanmedian(np.asarray(pix["chi2_red"], dtype=float)))
    return row


def _map_one(
    post: Any,
    model: Any,
    sps: Any,
    options: dict,
    images: PixelImages,
    mask: np.ndarray,
    out: str,
    name: str,
    zred: float | None,
) -> dict:
    """Map one galaxy here or on a dask worker (:func:`~prospect_sbi._io.run_ordered`).

    Returns ``{"skipped": bool, "row": {...}}``, or ``{"error": "one line"}``.
    """
    try:
        model, sps = _check_parts(post, model, sps)
        done = map_galaxy(post, images, out, name, mask, model=model, sps=sps, **options)
        row = _galaxy_row(done.files)
        return {"skipped": done.skipped, "row": row, "flags": row.pop("flags", [])}
    except (ValueError, OSError, RuntimeError) as err:
        return {
            "error": f"{type(err).__name__}: {err}"
            if not isinstance(err, ValueError)
            else str(err)
        }


_COLUMNS = (
    "log_mstar_pix_p16",
    "log_mstar_pix_p50",
    "log_mstar_pix_p84",
    "log_mstar_int_p16",
    "log_mstar_int_p50",
    "log_mstar_int_p84",
    "delta_mstar",
    "log_sfr_pix_p16",
    "log_sfr_pix_p50",
    "log_sfr_pix_p84",
    "log_sfr_int_p16",
    "log_sfr_int_p50",
    "log_sfr_int_p84",
    "ood_share",
    "chi2_median",
    "zphot_p16",
    "zphot_p50",
    "zphot_p84",
)


def _catalog(ids: np.ndarray, zred: np.ndarray, boxes: dict, results: dict[int, dict]) -> Table:
    rows = []
    for g, z in zip(ids.tolist(), zred.tolist(), strict=True):
        res = results.get(g, {})
        num = res.get("row", {})
        flags = list(res.get("flags", []))
        b = boxes.get(g)
        rows.append(
            (
                g,
                float(num["zphot_p50"]) if "zphot_p50" in num and not np.isfinite(z) else z,
                int(num.get("n_pixels", 0)),
                int(b[4]) if b else 0,
                *(float(num.get(c, np.nan)) for c in _COLUMNS),
                int(num.get("zphot_nmodes", 0)),
                bool(num.get("zphot_exact", False)),
                ",".join(flags),
                res.get("error", ""),
            )
        )
    names = ("id", "zred", "n_pixels", "n_segment", *_COLUMNS, "zphot_nmodes", "zphot_exact")
    names += ("flags", "error")
    dtype = (int, float, int, int, *([float] * len(_COLUMNS)), int, bool, str, str)
    table = Table(rows=rows or None, names=names, dtype=dtype)
    table.meta["comments"] = [
        "log_mstar_pix: sum of the pixels' stellar masses (draw k = sum of each pixel's draw k)",
        "log_mstar_int, log_sfr_int: posterior of the summed photometry of the fitted pixels",
        "log_sfr_pix: sum of the pixels' SFR100 percentiles (p16/p84: fully correlated bounds)",
        "delta_mstar: log_mstar_pix_p50 - log_mstar_int_p50, dex; ood_share: share of pixels "
        "flagged out of distribution; chi2_median: median reduced chi2 of the pixels",
        "zphot_p16/p50/p84, zphot_nmodes: the galaxy's photo-z posterior (zred='infer', or a "
        "given zred checked with photoz=; zred is its median when inferred); zphot_exact: "
        "drawn from the exact posterior; flags zphot_multimodal, zphot_unconverged (exact "
        "photo-z draws not vouched for: ESS or k-hat), zred_ruled_out",
    ]
    return table


def _field_maps(
    folder: Path,
    mosaic_shape: tuple[int, int],
    wcs: Any,
    quantities: Sequence[str],
    boxes: dict,
    names: dict[int, str],
    galaxies: Path,
    primary: dict,
) -> dict[str, Path]:
    """Write one FITS per quantity on the mosaic grid, NaN outside the fitted pixels."""
    header = wcs.to_header()
    files = {}
    for q in quantities:
        planes = [f"{q}_p{p}" for p in (50, 16, 84)] if q in MAP_QUANTITIES else [q]
        path = folder / f"field_{q}.fits"
        units = {}
        with atomic_path(path, overwrite=True) as tmp:
            out = FitsPlanes(tmp, mosaic_shape, planes, header, units, primary)
            for g, name in names.items():
                maps_file = galaxy_files(galaxies, name)["maps"]
                maps, _, _ = read_maps(maps_file)
                y0, _, x0 = boxes[g][:3]
                mask = maps["mask"] > 0
                for plane in planes:
                    if plane in maps:
                        out.paste(plane, y0, x0, maps[plane].astype(np.float32), mask)
            del out
        files[f"map_{q}"] = path
    return files


def _plot(table: Table, path: Path) -> None:
    """Plot resolved - integrated stellar mass against integrated mass, one point per galaxy."""
    from matplotlib.figure import Figure

    ok = np.isfinite(np.asarray(table["delta_mstar"], dtype=float))
    t = table[ok]
    fig = Figure(figsize=(5.2, 4.0), layout="constrained")
    ax = fig.subplots()
    x = np.asarray(t["log_mstar_int_p50"], dtype=float)
    y = np.asarray(t["delta_mstar"], dtype=float)
    xerr = np.abs([x - t["log_mstar_int_p16"], t["log_mstar_int_p84"] - x])
    yerr = np.hypot(
        0.5 * (t["log_mstar_pix_p84"] - t["log_mstar_pix_p16"]),
        0.5 * (t["log_mstar_int_p84"] - t["log_mstar_int_p16"]),
    )
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", ms=3, capsize=0, alpha=0.7, lw=0.8)
    ax.axhline(0.0, color="k", ls="--", lw=1)
    if len(y):
        ax.set_title(f"{len(y)} galaxies; median difference {np.median(y):+.2f} dex", fontsize=9)
    ax.set(
        xlabel=r"integrated $\log M_*/M_\odot$",
        ylabel=r"pixel-summed $-$ integrated $\log M_*$ (dex)",
    )
    save_figure(fig, path, dpi=110)


def _inputs(
    mosaic: Mosaic,
    segmap: Any,
    ids: np.ndarray,
    zred: np.ndarray,
    boxes: dict,
    margin: int,
    post: Any,
    snr_min: float,
    snr_bands: Sequence[str],
    flags: dict[int, list],
    errors: dict[int, str],
    infer: bool = False,
) -> Iterator[tuple[int, Any]]:
    """Yield ``(id, (images, mask))`` of each galaxy to fit; record the others' errors."""
    ny, nx = mosaic.shape
    zr = post.header.get("zred_range") if post.redshift == "known" else None
    for g, z in zip(ids.tolist(), zred.tolist(), strict=True):
        if not infer and not np.isfinite(z):
            continue
        if g not in boxes:
            errors[g] = f"galaxy {g}: id {g} is not in the segmentation map"
            continue
        if zr is not None and not infer:
            tol = 1e-3 * (zr[1] - zr[0]) + 1e-9
            if not zr[0] - tol <= z <= zr[1] + tol:
                errors[g] = (
                    f"galaxy {g}: redshift {z:g} is outside the estimator's range "
                    f"[{zr[0]:g}, {zr[1]:g}]"
                )
                continue
        b0, b1, c0, c1, _ = boxes[g]
        y0, y1 = max(b0 - margin, 0), min(b1 + margin, ny)
        x0, x1 = max(c0 - margin, 0), min(c1 + margin, nx)
        if y0 == 0 or x0 == 0 or y1 == ny or x1 == nx:
            flags[g].append("edge")
        try:
            flux, err = mosaic.cutout(y0, y1, x0, x1)
            seg = np.asarray(segmap.section[y0:y1, x0:x1]).astype(np.int64)
            images = load_cube(
                flux,
                err,
                mosaic.bands,
                "maggies",
                wcs=mosaic.wcs[y0:y1, x0:x1],
                segmap=seg,
                zred=None if infer else float(z),
            )
            images = images.matched(post.filters)
            mask = select_pixels(images, snr_min, snr_bands, segment=g)
            if not mask.any():
                raise ValueError(
                    f"no pixel of its segment has S/N >= {snr_min:g} over {', '.join(snr_bands)}"
                )
        except ValueError as err:
            errors[g] = f"galaxy {g}: {err}"
            continue
        boxes[g] = (y0, y1, x0, x1, boxes[g][4])
        yield g, (images, mask)


def map_field(
    estimator: AmortizedPosterior | str | os.PathLike,
    mosaics: Mapping[str, Any],
    segmap: str | os.PathLike,
    catalog: str | os.PathLike,
    out: str | os.PathLike,
    *,
    id_column: str = "id",
    zred_column: str = "z",
    zred: Any = "catalog",
    photoz: Any = None,
    n_zred: int = 20,
    photoz_refine: str = "auto",
    unit: str | None = None,
    margin: int = 5,
    snr_min: float = 5.0,
    snr_bands: Sequence[str] = SNR_BANDS,
    quantities: Sequence[str] = FIELD_QUANTITIES,
    model: Any = None,
    sps: Any = None,
    client: Any = None,
    overwrite: bool = False,
    png: bool = True,
    progress: bool = True,
    strip: int = 256,
    zeropoints: Any = None,
    **fit_options: Any,
) -> FieldMaps:
    """Map every galaxy of a field from mosaics, a segmentation map and a redshift catalogue.

    Per galaxy (catalogue row): the bounding box of its segment plus ``margin`` pixels is
    read from the mosaics, its pixels are those of its segment with S/N >= ``snr_min``
    (:func:`~prospect_sbi.pixels.select_pixels`), and :func:`~prospect_sbi.pixels.map_galaxy`
    fits them and writes ``<out>/galaxies/gal<id>_maps.fits`` (WCS: the mosaic's, cut),
    ``_maps.png``, ``_pixels.fits``, ``_outshining.ecsv`` and the done marker. Every galaxy
    uses the same ``seed``, so its maps equal those of ``map_galaxy`` on the same cutout.
    A galaxy with a done marker is not fitted again (only its row is recomputed).

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator, its file or a pretrained name
        (:meth:`~prospect_sbi.posterior.AmortizedPosterior.resolve`).
    mosaics : mapping
        Band -> FITS file (:class:`Mosaic`); bands in any order, on one pixel grid.
    segmap : path-like
        FITS segmentation map on the mosaics' grid (0: background).
    catalog : path-like
        FITS or ECSV catalogue with the segment id and redshift of each galaxy.
    out : path-like
        Output folder.
    id_column, zred_column : str
        Catalogue columns. Rows whose redshift is masked, not finite or <= 0 are skipped
        and listed (``FieldMaps.no_zred``, flag ``no_zred``).
    zred : "catalog", "infer", float, mapping, table or path-like
        Where redshifts come from: the catalogue's ``zred_column``; ``"infer"``: each
        galaxy's photo-z posterior from its integrated photometry, propagated into its pixels
        (:func:`~prospect_sbi.pixels.fit_pixels`; the catalogue needs no redshift column); one
        number for every galaxy; or segment id -> redshift
        (:func:`~prospect_sbi.fitting.zred_given`).
    photoz : AmortizedPosterior, path-like or str, optional
        Photometric-redshift estimator of ``"infer"`` (default the pretrained
        ``<estimator>-photoz``); with given redshifts it checks them (flag ``zred_ruled_out``).
    n_zred : int
        Redshifts of each galaxy's posterior its pixels are fitted at (``"infer"``).
    photoz_refine : {"auto", "always", "never"}
        How each galaxy's redshift posterior is drawn
        (:func:`~prospect_sbi.fitting.zred_given`; by default exact where the flow's draws
        need it).
    unit : str, optional
        Flux unit of every mosaic instead of its ``BUNIT``.
    margin : int
        Pixels around each segment's bounding box.
    snr_min : float
    snr_bands : sequence of str
    quantities : sequence of str
        Field-wide maps to write (:data:`FIELD_QUANTITIES`); one FITS file per quantity.
    model, sps
        Predictive check of :func:`~prospect_sbi.pixels.fit_pixels`; default: the
        estimator's model and one ``BC03MilesBasis`` per process; ``model=False`` skips it.
    client : dask.distributed.Client, optional
        Map galaxies on its workers (the driver reads the cutouts and sends them).
    overwrite : bool
        Map again galaxies already done.
    png : bool
        Write each galaxy's PNG panel (about 1 s a galaxy; the field figure is always made).
    progress : bool
        A bar over galaxies (and, without a client, one over each galaxy's pixel chunks).
    strip : int
        Rows per read of the segmentation map and per write of the field maps.
    zeropoints : ZeroPoints or path-like, optional
        Per-band corrections of every galaxy's fluxes and errors
        (:func:`~prospect_sbi.pixels.map_galaxy`), read once before any galaxy is mapped.
    **fit_options
        ``n_draws``, ``seed``, ``chunk_size``, ``refine``, ``likelihood``, ... of
        :func:`~prospect_sbi.pixels.fit_pixels`.

    Returns
    -------
    FieldMaps
        Its ``catalog`` has per galaxy ``id``, ``zred``, ``n_pixels`` (fitted),
        ``n_segment``, ``log_mstar_pix_p16/p50/p84`` (pixel-summed), ``log_mstar_int_*``
        (integrated), ``delta_mstar``, ``log_sfr_pix_*``, ``log_sfr_int_*`` (SFR over 100
        Myr), ``ood_share``, ``chi2_median``, ``zphot_p16/p50/p84`` and ``zphot_nmodes`` (the
        galaxy's photo-z posterior, with ``"infer"`` or ``photoz=``; then ``zred`` is its
        median when inferred), ``flags`` (comma-separated: ``no_zred``, ``edge``, ``error``,
        ``zphot_multimodal``, ``zphot_unconverged``, ``zred_ruled_out``) and ``error`` (the
        one-line reason a galaxy failed).

    Raises
    ------
    ValueError
        A ``zred`` :func:`~prospect_sbi.fitting.zred_given` refuses, no photo-z estimator for
        ``"infer"``; naming the band: mosaics on different grids, without a WCS, a unit,
        SCI or ERR/WHT; a segmentation map of another shape; catalogue columns missing; a
        ``client`` with an SPS source that does not pickle (python-fsps).
        A galaxy's own failure (id absent from the segmentation map, redshift outside the
        estimator's range, no pixel selected, a fit error) is not raised: it is in
        ``errors`` and in the catalogue, and the other galaxies go on.
    """
    unknown = [q for q in quantities if q not in FIELD_QUANTITIES]
    if unknown:
        raise ValueError(
            f"unknown field map {unknown[0]!r}; choose from {', '.join(FIELD_QUANTITIES)}"
        )
    from ..posterior import AmortizedPosterior

    post = AmortizedPosterior.resolve(estimator)
    if post.redshift != "known":
        raise ValueError(
            "map_field needs an estimator conditioned on the redshift (redshift='known')"
        )
    check_sendable(sps, client)
    out = Path(out)
    galaxies = out / "galaxies"
    from_catalog = isinstance(zred, str) and zred == "catalog"
    infer = isinstance(zred, str) and zred == "infer"
    ids, zcat = read_field_catalog(catalog, id_column, zred_column if from_catalog else None)
    given = zred_given(
        dict(zip(ids.tolist(), zcat.tolist(), strict=True)) if from_catalog else zred,
        estimator,
        photoz,
        n_zred=n_zred,
        photoz_refine=photoz_refine,
        id_column=id_column,
        zred_column=zred_column,
    )
    infer = given.kind == "infer"
    if not infer:
        zcat = np.array([given.of(g) for g in ids.tolist()], dtype=float)
    no_zred = [] if infer else ids[~np.isfinite(zcat)].tolist()
    zp = None if zeropoints is None else ZeroPoints.resolve(zeropoints)  # a bad file: now
    with Mosaic(mosaics, unit) as mosaic:
        seg_hdul, seg_hdu = _open_segmap(segmap)
        try:
            shape = (int(seg_hdu.header["NAXIS2"]), int(seg_hdu.header["NAXIS1"]))
            if shape != mosaic.shape:
                raise ValueError(
                    f"segmentation map has shape {shape}; the mosaics are {mosaic.shape}"
                )
            boxes = bounding_boxes(segmap, strip)
            flags: dict[int, list] = {g: [] for g in ids.tolist()}
            for g in no_zred:
                flags[g].append("no_zred")
            errors: dict[int, str] = {}
            results: dict[int, dict] = {}
            names = {}
            options = {"overwrite": overwrite, "png": png, **fit_options}
            if zp is not None:
                options["zeropoints"] = zp
            if infer:
                options["zred"] = given
            elif given.photoz is not None:
                options |= {
                    "photoz": given.photoz,
                    "n_zred": given.n_zred,
                    "photoz_refine": given.refine,
                }
            if client is None:
                options["progress"] = progress
            else:
                options.setdefault("torch_threads", 1)
                options["progress"] = False
            galaxies.mkdir(parents=True, exist_ok=True)
            todo = _inputs(
                mosaic,
                seg_hdu,
                ids,
                zcat,
                boxes,
                int(margin),
                post,
                snr_min,
                tuple(snr_bands),
                flags,
                errors,
                infer,
            )
            n_todo = len(ids) if infer else int(np.sum(np.isfinite(zcat)))
            bar = tqdm(total=n_todo, unit="gal", desc="map galaxies", disable=not progress)
            opts = {**options, "snr_bands": tuple(snr_bands)}
            items = (
                (g, (images, mask, str(galaxies), f"gal{g}", images.zred))
                for g, (images, mask) in todo
            )
            try:
                for g, res in run_ordered(
                    _map_one, items, client, shared=(post, model, sps, opts)
                ):
                    results[g] = res
                    flags[g].extend(res.pop("flags", []))
                    if "error" in res:
                        errors[g] = f"galaxy {g}: {res['error']}"
                    else:
                        names[g] = f"gal{g}"
                    bar.update(1)
                bar.update(max(0, n_todo - bar.n))
            finally:
                bar.close()
        finally:
            seg_hdul.close()
        for g, msg in errors.items():
            results.setdefault(g, {})["error"] = msg
            flags[g].append("error")
        for g in flags:
            results.setdefault(g, {})["flags"] = flags[g]
        table = _catalog(ids, zcat, boxes, results)
        files = {
            "catalog": out / "field_catalog.ecsv",
            "catalog_fits": out / "field_catalog.fits",
            "figure": out / "field_outshining.png",
            "galaxies": galaxies,
        }
        write_table(files["catalog"], table, overwrite=True)
        write_table(files["catalog_fits"], table, overwrite=True)
        _plot(table, files["figure"])
        primary = {
            "NGAL": (len(names), "galaxies mapped"),
            "SEED": (int(fit_options.get("seed", 0)), "seed of every galaxy's draws"),
            "ZEROPTS": (zp is not None, "fluxes multiplied by zero points (galaxy maps)"),
        }
        files |= _field_maps(
            out, mosaic.shape, mosaic.wcs, quantities, boxes, names, galaxies, primary
        )
    n_skipped = sum(1 for r in results.values() if r.get("skipped"))
    return FieldMaps(
        table,
        files,
        {g: errors[g] for g in sorted(errors)},
        no_zred,
        len(names) - n_skipped,
        n_skipped,
    )
