"""Pixel selection: inside the galaxy's segment and above a mean S/N in the reddest bands."""

from __future__ import annotations

__all__ = ["SNR_BANDS", "detection_snr", "parse_segment", "select_pixels", "snr_map"]

from collections.abc import Sequence

import numpy as np

from ..filters import resolve_band_names
from .images import PixelImages

#: Bands of the S/N cut of Iglesias-Navarro et al. (2025): NIRCam F277W, F356W, F444W.
SNR_BANDS: tuple[str, ...] = ("F277W", "F356W", "F444W")


def snr_map(images: PixelImages, bands: Sequence[str] = SNR_BANDS) -> np.ndarray:
    """Mean S/N per pixel over ``bands``: the mean flux over the mean error.

    The ratio of means (sum of fluxes / sum of errors) rather than the mean of ratios, so a
    single band with a tiny error does not dominate; a band missing in a pixel is left out of
    both sums there.

    Parameters
    ----------
    images : PixelImages
    bands : sequence of str
        Band names (short or sedpy).

    Returns
    -------
    numpy.ndarray, (ny, nx)
        NaN where none of ``bands`` is valid.

    Raises
    ------
    ValueError
        A band not among the images'.
    """
    names = resolve_band_names(bands)
    missing = [b for b in names if b not in images.bands]
    if missing:
        raise ValueError(f"S/N band {missing[0]} is not among the images' bands")
    idx = [images.bands.index(b) for b in names]
    return detection_snr(images.flux[idx], images.err[idx], axis=0)


def detection_snr(flux: np.ndarray, err: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sum of fluxes over sum of errors along the band ``axis``, leaving NaN bands out.

    The S/N of :func:`snr_map` for arrays of photometry (e.g. mocks, ``(N, F)`` restricted
    to the S/N bands); NaN where no band is valid.
    """
    valid = np.isfinite(flux) & np.isfinite(err)
    num = np.where(valid, flux, 0.0).sum(axis)
    den = np.where(valid, err, 0.0).sum(axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid.any(axis), num / den, np.nan)


def select_pixels(
    images: PixelImages,
    snr_min: float = 5.0,
    bands: Sequence[str] = SNR_BANDS,
    segment: int | str | None = "centre",
) -> np.ndarray:
    """Pixels to fit: inside the segment, with mean S/N >= ``snr_min`` over ``bands``.

    Parameters
    ----------
    images : PixelImages
    snr_min : float
        Threshold on :func:`snr_map`.
    bands : sequence of str
        Bands of the S/N.
    segment : int, "centre", "all" or None
        Segment id to keep; ``"centre"``: the segment under the central pixel; ``"all"``:
        every non-zero segment (a field); None: ignore the segmentation map.

    Returns
    -------
    numpy.ndarray, bool, (ny, nx)

    Raises
    ------
    ValueError
        A segment asked for without a segmentation map, a centre on the background, or an id
        absent from the map.
    """
    keep = snr_map(images, bands) >= float(snr_min)
    if segment is None:
        return keep
    seg = images.segmap
    if seg is None:
        raise ValueError(
            f"segment={segment!r} needs a segmentation map; pass segment=None "
            "to select on S/N alone"
        )
    if segment == "all":
        return keep & (seg > 0)
    if segment in ("centre", "center"):
        ny, nx = seg.shape
        segment = int(seg[ny // 2, nx // 2])
        if segment == 0:
            raise ValueError("the central pixel is background (segment 0): give segment=<id>")
    if not np.any(seg == int(segment)):
        raise ValueError(f"segment {segment} is not in the segmentation map")
    return keep & (seg == int(segment))


def parse_segment(value: int | str | None) -> int | str | None:
    """Return a segment choice given as text (``--segment``) as :func:`select_pixels` takes it.

    Parameters
    ----------
    value : int, str or None
        ``"centre"`` (or ``"center"``), ``"all"``, ``"none"`` (or None), or a segment id
        (an int or its digits).

    Returns
    -------
    int, "centre", "all" or None

    Raises
    ------
    ValueError
        Any other text.

    Examples
    --------
    >>> parse_segment("center"), parse_segment("none"), parse_segment("12")
    ('centre', None, 12)
    """
    if value is None or isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return None if value is None else int(value)
    segment = {"none": None, "centre": "centre", "center": "centre", "all": "all"}.get(
        str(value), ""
    )
    if segment == "":
        if not str(value).lstrip("-").isdigit():
            raise ValueError(f"--segment takes centre, all, none or a segment id; got {value!r}")
        segment = int(value)
    return segment
