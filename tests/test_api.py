"""Public names, and what ``import prospect_sbi`` does (and does not do)."""

import os
import subprocess
import sys

import pytest

import prospect_sbi
import prospect_sbi.sources


@pytest.mark.parametrize("name", prospect_sbi.__all__)
def test_package_all_names_exist(name):
    assert hasattr(prospect_sbi, name)
    assert getattr(prospect_sbi, name) is not None


@pytest.mark.parametrize("name", prospect_sbi.sources.__all__)
def test_sources_all_names_exist(name):
    assert hasattr(prospect_sbi.sources, name)


def test_all_lists_have_no_duplicates():
    assert len(set(prospect_sbi.__all__)) == len(prospect_sbi.__all__)
    assert len(set(prospect_sbi.sources.__all__)) == len(prospect_sbi.sources.__all__)


def test_star_import_matches_all():
    namespace: dict = {}
    exec("from prospect_sbi import *", namespace)  # noqa: S102
    exec("from prospect_sbi.sources import *", namespace)  # noqa: S102
    for name in prospect_sbi.__all__ + prospect_sbi.sources.__all__:
        assert name in namespace


def test_version_string():
    parts = prospect_sbi.__version__.split(".")
    assert len(parts) >= 2 and all(p.isdigit() for p in parts[:2])


def test_import_does_not_set_sps_home():
    env = {k: v for k, v in os.environ.items() if k != "SPS_HOME"}
    code = (
        "import os, prospect_sbi\n"
        "from prospect.models import SpecModel\n"
        "from prospect.models.templates import TemplateLibrary\n"
        "spec = TemplateLibrary['parametric_sfh']; spec['imf_type']['init'] = 1\n"
        "m = SpecModel(spec)\n"
        "print(repr(os.environ.get('SPS_HOME')), len(m.emline_info))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    sps_home, nlines = out.stdout.split()
    assert sps_home == "None"
    assert int(nlines) > 50
    # in this process too (the autouse fixture removed any SPS_HOME before the test)
    assert "SPS_HOME" not in os.environ


def test_specmodel_patch_is_idempotent():
    from prospect.models import sedmodel

    before = sedmodel.SpecModel.init_eline_info
    prospect_sbi._patch_specmodel()
    prospect_sbi._patch_specmodel()
    assert sedmodel.SpecModel.init_eline_info is before
    assert getattr(before, "_prospect_sbi", False)
