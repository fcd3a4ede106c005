"""JADES filter sets and band-name resolution."""

import pytest

import prospect_sbi
from prospect_sbi import JADES_BANDS, JADES_MEDIUM_BANDS, jades_filters, resolve_band_names

EXPECTED_BANDS = [
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
]

EXPECTED_MEDIUM = ["jwst_f182m", "jwst_f210m", "jwst_f430m", "jwst_f460m", "jwst_f480m"]


def test_jades_bands_exact_order_and_count():
    assert len(JADES_BANDS) == 14
    assert list(JADES_BANDS) == EXPECTED_BANDS


def test_jades_filters_names_match_bands(jades):
    assert [f.name for f in jades] == EXPECTED_BANDS
    # every filter is a real sedpy curve with positive throughput
    for f in jades:
        assert f.transmission.max() > 0
        assert f.wavelength.min() > 3000 and f.wavelength.max() < 60000


def test_medium_bands_appended():
    filters = jades_filters(medium=True)
    names = [f.name for f in filters]
    assert len(names) == 19
    assert names[:14] == EXPECTED_BANDS
    assert names[14:] == EXPECTED_MEDIUM
    assert list(JADES_MEDIUM_BANDS) == EXPECTED_MEDIUM


@pytest.mark.parametrize(
    ("short", "sedpy_name"),
    [
        ("F444W", "jwst_f444w"),
        ("f435w", "acs_wfc_f435w"),
        ("F850LP", "acs_wfc_f850lp"),
        ("F090W", "jwst_f090w"),
        ("F814W", "acs_wfc_f814w"),
        ("jwst_f200w", "jwst_f200w"),
        ("JWST_F410M", "jwst_f410m"),
        (" F335M ", "jwst_f335m"),
    ],
)
def test_short_names_resolve(short, sedpy_name):
    assert resolve_band_names([short]) == [sedpy_name]


def test_resolve_keeps_input_order_and_loads():
    names = resolve_band_names(["F444W", "f435w", "F850LP"])
    assert names == ["jwst_f444w", "acs_wfc_f435w", "acs_wfc_f850lp"]
    loaded = jades_filters(bands=["F444W", "f435w", "F850LP"])
    assert [f.name for f in loaded] == names


def test_unknown_band_raises_naming_it():
    with pytest.raises(ValueError, match="F999W") as info:
        resolve_band_names(["F444W", "F999W"])
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match=r"unknown filter 'F999W'"):
        jades_filters(bands=["F999W"])


def test_module_exports():
    assert prospect_sbi.JADES_BANDS is JADES_BANDS
    assert prospect_sbi.jades_filters is jades_filters
