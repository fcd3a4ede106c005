"""One galaxy's maps as one unit: a resumable pixel fit, atomic outputs, a done marker last.

:func:`map_galaxy` is the one map call: it puts the images' bands in the estimator's order,
selects the pixels, fits them, makes the maps and measures the outshining. It writes four
files, ``<name>_maps.fits``, ``<name>_maps.png``, ``<name>_pixels.fits`` and
``<name>_outshining.ecsv``, each atomically, then the marker
``<name>_done.json``. Whether a galaxy is finished is decided by the marker alone: a job killed
after writing some of the files (or during the fit) is resumed on the next call, which fits only
the chunks of pixels missing from ``<name>.parts/`` and rewrites every output.
"""

from __future__ import annotations

__all__ = [
    "FLOOR_ADVICE",
    "FLOOR_OPTION",
    "GalaxyMaps",
    "check_name",
    "galaxy_files",
    "is_done",
    "map_galaxy",
]

import hashlib
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from astropy.table import Table

from .._io import atomic_path, hash_arrays
from .._steps import step_warnings
from ..fitting.redshift import zred_given
from .fit import PixelFit, fit_pixels
from .images import PixelImages
from .io import write_table
from .maps import PixelMaps, make_maps
from .resolved import outshining as outshining_table
from .select import SNR_BANDS, select_pixels

if TYPE_CHECKING:
    from ..posterior import AmortizedPosterior

#: The advice of :class:`~prospect_sbi.posterior.ObservationWarning` for data more precise than
#: the training noise; :func:`map_galaxy` names the option that sets the floor instead.
FLOOR_ADVICE = "add an error floor, e.g. err = hypot(err, 0.05 * flux)"
#: What :func:`map_galaxy` says instead: the option that sets the floor.
FLOOR_OPTION = "map_galaxy(..., err_floor=0.05)"


def check_name(name: str) -> str:
    """Return ``name`` if it is a plain file-name prefix, one that stays in the output folder.

    Raises
    ------
    ValueError
        An empty name, or one with a path separator or ``..`` (``"../../x"`` wrote outside
        the output folder).
    """
    if (
        not isinstance(name, str)
        or not name
        or any(c in name for c in ("/", "\\", "\0"))
        or (".." in name)
    ):
        raise ValueError(
            f"name {name!r} is not a plain file name: no '/', '\\', '..' or empty "
            "name; the outputs go in the output folder"
        )
    return name


def galaxy_files(out: str | os.PathLike, name: str) -> dict[str, Path]:
    """Paths of a galaxy's outputs, its done marker and its folder of fitted chunks.

    Returns
    -------
    dict
        ``maps`` (FITS), ``png``, ``pixels`` (FITS table), ``outshining`` (ECSV), ``done``
        (the marker) and ``parts`` (folder), under ``out``.
    """
    out, name = Path(out), check_name(name)
    return {
        "maps": out / f"{name}_maps.fits",
        "png": out / f"{name}_maps.png",
        "pixels": out / f"{name}_pixels.fits",
        "outshining": out / f"{name}_outshining.ecsv",
        "done": out / f"{name}_done.json",
        "parts": out / f"{name}.parts",
    }


def is_done(out: str | os.PathLike, name: str) -> bool:
    """Whether :func:`map_galaxy` finished ``name`` in ``out`` (its done marker exists)."""
    return galaxy_files(out, name)["done"].is_file()


@dataclass
class GalaxyMaps:
    """What :func:`map_galaxy` wrote for one galaxy.

    Attributes
    ----------
    name : str
    files : dict of str -> pathlib.Path
        :func:`galaxy_files`.
    outshining : astropy.table.Table or None
        Resolved against integrated stellar mass (:func:`~prospect_sbi.pixels.outshining`);
        None when not measured (``outshining=False``).
    fit : PixelFit or None
        The pixel fit; None when the galaxy was already done (``skipped``).
    maps : PixelMaps or None
        The maps; None when skipped.
    skipped : bool
        The done marker existed: nothing was fitted or written.
    """

    name: str
    files: dict[str, Path]
    outshining: Table | None
    fit: PixelFit | None = None
    maps: PixelMaps | None = None
    skipped: bool = False


def map_galaxy(
    estimator: AmortizedPosterior | str | os.PathLike,
    images: PixelImages,
    out: str | os.PathLike,
    name: str = "galaxy",
    mask: np.ndarray | None = None,
    *,
    model: Any = None,
    sps: Any = None,
    n_draws: int = 200,
    seed: int = 0,
    snr_min: float = 5.0,
    segment: int | str | None = "centre",
    snr_bands: tuple[str, ...] = SNR_BANDS,
    drop_unknown: bool = False,
    overwrite: bool = False,
    err_floor: float = 0.0,
    png: bool = True,
    outshining: bool = True,
    zred: Any = None,
    photoz: Any = None,
    n_zred: int = 20,
    photoz_refine: str = "auto",
    zeropoints: Any = None,
    **fit_options: Any,
) -> GalaxyMaps:
    """Map one galaxy: align its bands, select, fit, map and measure outshining, resumably.

    Parameters
    ----------
    estimator : AmortizedPosterior, path-like or str
        The estimator, a file of it or a pretrained name (resolved once).
    images : PixelImages
        In any band order: put in the estimator's once (:meth:`PixelImages.matched`).
    out : path-like
        Output folder (created).
    name : str
        Prefix of the files (:func:`galaxy_files`); a plain file name.
    mask : numpy.ndarray, bool, (ny, nx), optional
        Pixels to fit (default :func:`~prospect_sbi.pixels.select_pixels` with ``snr_min``,
        ``snr_bands`` and ``segment``, on the images before ``err_floor``).
    model, sps
        Prospector model and SPS of the predictive check (:func:`fit_pixels`; ``model=False``:
        no check).
    n_draws : int
        Posterior draws per pixel.
    seed : int
        Seed of the draws.
    snr_min : float
        Mean S/N a pixel needs over ``snr_bands`` to be selected (without ``mask``).
    segment : int, "centre", "all" or None
        Segment of the selection (:func:`~prospect_sbi.pixels.select_pixels`); a string of
        ``--segment`` goes through :func:`~prospect_sbi.pixels.parse_segment` first.
    snr_bands : tuple of str
        Bands of the selection S/N and of the S/N map.
    drop_unknown : bool
        Leave out image bands the estimator does not know, with one warning (default: refuse
        them).
    overwrite : bool
        Fit again a galaxy already done (its marker and kept chunks are removed first).
    err_floor : float
        Fractional error floor added in quadrature to every pixel's errors and to the
        integrated photometry of the outshining table, ``err = hypot(err, err_floor *
        |flux|)``; 0.05 is usual for integrated photometry.
    png : bool
        Write the PNG panel (~1 s a galaxy; a field of thousands may do without).
    outshining : bool
        Measure and write the outshining table (a benchmark of the pixel fit alone may do
        without).
    zred : float, mapping, table, path-like or "infer", optional
        The galaxy's redshift (default ``images.zred``), or ``"infer"``: its redshift
        posterior from the integrated photometry of the selected pixels, propagated into
        every pixel's draws (:func:`~prospect_sbi.pixels.fit_pixels`). The maps' header gets
        its median (``ZPHOT``), 16/84 (``ZPHOT16``/``ZPHOT84``), modes (``ZNMODES``,
        ``ZMODE1``...), ``ZMULTI`` (multi-modal) and ``ZUNCONV`` (exact draws not vouched
        for: ESS or k-hat), the FITS file its draws (``ZRED_DRAWS``).
    photoz : AmortizedPosterior, path-like or str, optional
        Photometric-redshift estimator; default the pretrained ``<estimator>-photoz``. With a
        given redshift it checks it (header ``ZRULED``, pixel column ``zred_ruled_out``).
    n_zred : int
        Redshifts of the posterior each pixel is fitted at (``zred="infer"``).
    photoz_refine : {"auto", "always", "never"}
        How the galaxy's redshift posterior is drawn (:func:`~prospect_sbi.fitting.zred_given`;
        by default exact where the flow's draws need it).
    zeropoints : ZeroPoints or path-like, optional
        Per-band corrections (:func:`~prospect_sbi.fitting.calibrate_zeropoints`, or its
        file) that multiply every pixel's fluxes and errors before anything else
        (:meth:`PixelImages.with_zeropoints`): those of a catalogue measured on the same
        images. The maps' header records them (``ZEROPTS``, ``ZPF001``...).
    **fit_options
        ``chunk_size``, ``client``, ``refine``, ``progress``, ... of
        :func:`~prospect_sbi.pixels.fit_pixels`; its chunks are kept in ``<name>.parts/``
        until the marker is written.

    Returns
    -------
    GalaxyMaps
        With ``skipped=True`` (and the outshining table read back) when the marker existed
        for the same estimator, images and options.

    Raises
    ------
    ValueError
        A name that is not a plain file name; bands of :meth:`PixelImages.matched`; errors of
        :func:`~prospect_sbi.pixels.select_pixels`, :func:`fit_pixels` and
        :func:`~prospect_sbi.pixels.make_maps`; kept chunks of another fit (other images,
        estimator or options): remove ``<name>.parts/`` or pass ``overwrite=True``; a
        marker of another estimator, other images or other options (each named): pass
        ``overwrite=True`` to map the galaxy again; images without a pixel scale (checked
        before any fitting).

    Warns
    -----
    UserWarning
        Each warning of a step once, prefixed by the step: ``"images: ..."`` (bands left
        out), ``"select: ..."``, ``"fit: ..."`` (the pixel fit, counts added over its
        chunks), ``"maps: ..."``, ``"outshining: ..."`` (the fit of the integrated
        photometry, which leaves out what the pixel fit already said).
    """
    from ..posterior import AmortizedPosterior

    files = galaxy_files(out, name)
    if images.pixel_scale is None:
        raise ValueError(
            "the images have no pixel scale (no WCS): pass pixel_scale= to "
            "load_cube (--pixel-scale)"
        )
    post = AmortizedPosterior.resolve(estimator)
    advice, said = {FLOOR_ADVICE: f"add an error floor, {FLOOR_OPTION}"}, set()
    with step_warnings("images", advice, said):
        images = images.matched(post.filters, drop_unknown=drop_unknown)
    if zeropoints is not None:
        images = images.with_zeropoints(zeropoints)
    # markers of versions that fitted the default selection inside fit_pixels hashed no mask
    default = (
        mask is None
        and not err_floor
        and (snr_min, tuple(snr_bands), segment) == (5.0, SNR_BANDS, "centre")
    )
    if mask is None:
        with step_warnings("select", advice, said):
            mask = select_pixels(images, snr_min, snr_bands, segment)
    images = images.with_err_floor(err_floor)
    if overwrite:
        files["done"].unlink(missing_ok=True)
        shutil.rmtree(files["parts"], ignore_errors=True)
    fit_options |= {"model": model, "sps": sps, "n_draws": n_draws, "seed": seed}
    if zred is not None or photoz is not None:
        fit_options["zred"] = zred_given(
            images.zred if zred is None else zred,
            estimator,
            photoz,
            n_zred=n_zred,
            photoz_refine=photoz_refine,
        )
    request = (
        _request(post, images, mask, fit_options)
        | ({} if png else {"png": False})
        | ({} if outshining else {"outshining": False})
    )
    if files["done"].is_file():
        legacy = _request(post, images, None, fit_options)["images"] if default else None
        _check_marker(files["done"], request, legacy)
        shutil.rmtree(files["parts"], ignore_errors=True)  # left by a kill after the marker
        table = Table.read(files["outshining"], format="ascii.ecsv") if outshining else None
        return GalaxyMaps(name, files, table, skipped=True)
    files["maps"].parent.mkdir(parents=True, exist_ok=True)
    with step_warnings("fit", advice, said):
        fit = fit_pixels(post, images, mask, parts=files["parts"], **fit_options)
    with step_warnings("maps", advice, said):
        maps = make_maps(post, fit, images, snr_bands=snr_bands)
        maps.write(
            files["maps"],
            png_path=files["png"] if png else None,
            table_path=files["pixels"],
            overwrite=True,
        )
    table = None
    if outshining:
        with step_warnings("outshining", advice, said):
            table = outshining_table(post, fit, images, err_floor=err_floor)
        write_table(files["outshining"], table, overwrite=True)
    done = {
        "name": name,
        "n_pixels": len(fit),
        "resumed_chunks": fit.resumed_chunks,
        "files": {
            k: v.name
            for k, v in files.items()
            if k not in ("done", "parts")
            and (png or k != "png")
            and (outshining or k != "outshining")
        },
        "model_hash": fit.meta["model_hash"],
        "request": request,
    }
    with atomic_path(files["done"], overwrite=True) as tmp:
        tmp.write_text(json.dumps(done, indent=1))
    shutil.rmtree(files["parts"], ignore_errors=True)
    return GalaxyMaps(name, files, table, fit, maps)


#: What a request holds only when given (a redshift, zero points): its absence differs too.
_GIVEN = ("zred", "zeropoints")
#: Options of :func:`~prospect_sbi.pixels.fit_pixels` that change a galaxy's maps.
_RESULT_OPTIONS = ("n_draws", "seed", "chunk_size", "p_value", "refine", "likelihood")


def _request(
    post: AmortizedPosterior, images: PixelImages, mask: np.ndarray | None, options: dict
) -> dict:
    """Describe what a galaxy's outputs depend on: estimator, images, pixels, fit options."""
    defaults = {k: p.default for k, p in inspect.signature(fit_pixels).parameters.items()}
    h = hashlib.sha256()
    hash_arrays(h, (images.flux, images.err, mask))
    h.update(
        json.dumps(
            np.asarray(images.zred, float).tolist() if images.zred is not None else None
        ).encode()
    )
    given = options.get("zred")
    return {
        "estimator": post.digest(),
        "images": h.hexdigest(),
        "check": options.get("model", defaults["model"]) is not False,
        **{k: options.get(k, defaults[k]) for k in _RESULT_OPTIONS},
        **({} if given is None else {"zred": given.describe()}),
        **({"zeropoints": images.meta["zeropoints"]} if "zeropoints" in images.meta else {}),
    }


def _check_marker(path: Path, request: dict, legacy: str | None = None) -> None:
    """Refuse to skip a galaxy whose marker records another estimator, images or options.

    ``legacy``: the images' digest without a mask, which markers of the default selection
    recorded before :func:`map_galaxy` selected the pixels itself; it counts as the same.
    """
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is damaged ({err}); remove it to map the galaxy again") from None
    old = done.get("request")
    if old is None:  # a marker written before markers kept what they were made with
        return
    if legacy is not None and old.get("images") == legacy:
        old = {**old, "images": request["images"]}
    diff = [
        f"{k}: {old.get(k)!r} then, {v!r} now"
        for k, v in request.items()
        if old.get(k) != v and k != "outshining"
    ]
    diff += [f"{k}: {old[k]!r} then, none now" for k in _GIVEN if k in old and k not in request]
    if old.get("outshining", True) is False and request.get("outshining", True):
        diff.append("outshining: False then, True now")  # no table to give back
    if diff:
        raise ValueError(
            f"{path.name[: -len('_done.json')]} was mapped with other inputs "
            f"({'; '.join(diff)}): pass overwrite=True (--overwrite) to map it "
            "again"
        )
