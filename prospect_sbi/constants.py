"""Physical constants and unit factors shared by the sources, the noise models and the fits.

Each has one home here; the values are Prospector's (``prospect.sources.constants``) where it
defines them, so that photometry in maggies matches ``SpecModel.predict``.
"""

from __future__ import annotations

__all__ = [
    "ARCSEC_PER_RAD",
    "DMAG",
    "JY_PER_MAGGIE",
    "LIGHTSPEED",
    "LYMAN_ALPHA",
    "LYMAN_LIMIT",
    "MAGGIE_CGS",
    "UJY_PER_MAGGIE",
    "UJY_TO_MAGGIES",
    "V_BAND",
]

import numpy as np

#: Speed of light, AA/s (Prospector's ``lightspeed``, 2.998e18).
LIGHTSPEED = 2.998e18

#: One maggie (the AB zero point, 3631 Jy) in erg/s/cm^2/Hz.
MAGGIE_CGS = 3631e-23

#: Jansky per maggie (AB: 1 maggie = 3631 Jy).
JY_PER_MAGGIE = 3631.0

#: microJansky per maggie (3631e6 uJy).
UJY_PER_MAGGIE = 3631e6

#: microJansky -> maggies, maggies per uJy (1e-6 / 3631).
UJY_TO_MAGGIES = 1e-6 / JY_PER_MAGGIE

#: Lyman limit, AA (rest frame; FSPS's and Madau 1995's value).
LYMAN_LIMIT = 911.75

#: Lyman-alpha, AA (rest frame, vacuum).
LYMAN_ALPHA = 1215.67

#: Wavelength at which dust optical depths are normalised, AA (FSPS's ``dust2`` at 5500 AA).
V_BAND = 5500.0

#: d(flux) / (flux d(mag)) = 0.4 ln 10, dimensionless: sigma_flux = DMAG * flux * sigma_mag.
DMAG = 0.4 * np.log(10.0)

#: Arcseconds per radian (pixel scales and solid angles).
ARCSEC_PER_RAD = 180.0 * 3600.0 / np.pi
