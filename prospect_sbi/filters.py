"""Named JADES filter sets (sedpy names, fixed band order) and band-name matching."""

from __future__ import annotations

__all__ = ["JADES_BANDS", "JADES_MEDIUM_BANDS", "jades_filters", "resolve_band_names"]

from collections.abc import Iterable

#: The 14 HST/ACS + JWST/NIRCam bands of the JADES pixel analyses, in this order.
JADES_BANDS: tuple[str, ...] = (
    "acs_wfc_f435w",
    "acs_wfc_f606w",
    "acs_wfc_f775w",
    "acs_wfc_f814w",
    "acs_wfc_f850lp",
    "jwst_f090w",
    "jwst_f115w",
    "jwst_f150w",
    "jwst_f200w",
    "jwst_f277w",
    "jwst_f335m",
    "jwst_f356w",
    "jwst_f410m",
    "jwst_f444w",
)

#: JADES NIRCam medium bands that sedpy ships, beyond those in :data:`JADES_BANDS`.
JADES_MEDIUM_BANDS: tuple[str, ...] = (
    "jwst_f182m",
    "jwst_f210m",
    "jwst_f430m",
    "jwst_f460m",
    "jwst_f480m",
)

_ACS = {"F435W", "F606W", "F775W", "F814W", "F850LP"}


def _available() -> set[str]:
    from sedpy.observate import list_available_filters

    return set(list_available_filters())


def resolve_band_names(bands: Iterable[str]) -> list[str]:
    """Map band names to sedpy filter names.

    Accepts sedpy names (``"jwst_f444w"``) and short names (``"F444W"``, ``"f435w"``; ACS for
    F435W-F850LP, NIRCam otherwise), in any case.

    Parameters
    ----------
    bands : iterable of str
        Band names.

    Returns
    -------
    list of str
        sedpy names, in the input order.

    Raises
    ------
    ValueError
        Naming the first band sedpy does not ship.
    """
    available = _available()
    out = []
    for band in bands:
        name = str(band).strip()
        short = name.upper()
        if name.lower() in available:
            out.append(name.lower())
            continue
        candidate = ("acs_wfc_" if short in _ACS else "jwst_") + short.lower()
        if candidate not in available:
            raise ValueError(
                f"unknown filter {band!r}: not a sedpy filter name (e.g. 'jwst_f444w') or a "
                "JADES short name (e.g. 'F444W')"
            )
        out.append(candidate)
    return out


def jades_filters(medium: bool = False, bands: Iterable[str] | None = None) -> list:
    """Load the JADES filters as sedpy ``Filter`` objects.

    Parameters
    ----------
    medium : bool
        Append the medium bands of :data:`JADES_MEDIUM_BANDS` to the 14 of
        :data:`JADES_BANDS`.
    bands : iterable of str, optional
        Load these bands instead (sedpy or short names).

    Returns
    -------
    list of sedpy.observate.Filter

    Examples
    --------
    >>> from prospect_sbi import jades_filters
    >>> [f.name for f in jades_filters(bands=["F444W", "F435W"])]
    ['jwst_f444w', 'acs_wfc_f435w']
    """
    from sedpy.observate import load_filters

    if bands is None:
        names = list(JADES_BANDS) + (list(JADES_MEDIUM_BANDS) if medium else [])
    else:
        names = resolve_band_names(bands)
    return load_filters(names)
