"""One copy of the physics: constants in one module, one formula per law, no private reach-ins.

The exact path (``BC03MilesBasis``) and the fast path (``FastPhotometry``) share the SFH,
dust and IGM code of ``sources/sfh.py``, ``dust.py``, ``igm.py``, and every constant comes
from ``prospect_sbi.constants``.
"""

import ast
import importlib
import pkgutil
from pathlib import Path

import numpy as np
import pytest

import prospect_sbi
from prospect_sbi import constants
from prospect_sbi.sources.dust import bump, bump_strength, calzetti, diffuse_tau
from prospect_sbi.sources.fast_attenuation import FastAttenuation
from prospect_sbi.sources.fast_grid import LogGrid
from prospect_sbi.sources.igm import igm_edges, igm_transmission
from prospect_sbi.sources.sfh import bin_masses, step_bin_masses

ROOT = Path(prospect_sbi.__file__).parent
SUBPACKAGES = ("sources", "noise")
# Values that must be spelled once, in constants.py.
LITERALS = {2.998e18: "LIGHTSPEED", 3631e-23: "MAGGIE_CGS", 911.75: "LYMAN_LIMIT"}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for sub in SUBPACKAGES:
        for info in pkgutil.iter_modules([str(ROOT / sub)]):
            out.append((f"prospect_sbi.{sub}.{info.name}", ROOT / sub / f"{info.name}.py"))
        out.append((f"prospect_sbi.{sub}", ROOT / sub / "__init__.py"))
    return out


def _private_reach_ins(name: str, path: Path) -> list[str]:
    """``from X import _y`` and ``Imported._y`` of a module (``__dunder__`` names allowed)."""
    tree = ast.parse(path.read_text())
    imported, found = set(), []

    def private(attr: str) -> bool:
        return attr.startswith("_") and not attr.startswith("__")

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                imported.add(alias.asname or alias.name)
                if private(alias.name):
                    found.append(
                        f"{name}: from {'.' * node.level}{node.module} import {alias.name}"
                    )
        elif isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and private(node.attr)
            and isinstance(node.value, ast.Name)
            and node.value.id in imported
        ):
            found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    return found


def test_no_module_reaches_into_another_modules_private_names():
    found = [hit for name, path in _modules() for hit in _private_reach_ins(name, path)]
    assert found == []


def test_physical_constants_are_spelled_only_in_constants():
    found = []
    for name, path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and type(node.value) in (int, float):
                if node.value in LITERALS:
                    use = LITERALS[node.value]
                    found.append(f"{name}:{node.lineno}: {node.value} (use {use})")
            if isinstance(node, ast.BinOp) and "0.4 * np.log(10" in ast.unparse(node):
                found.append(f"{name}:{node.lineno}: {ast.unparse(node)} (use DMAG)")
    assert found == []
    assert constants.LIGHTSPEED == 2.998e18 and constants.MAGGIE_CGS == 3631e-23
    assert constants.LYMAN_LIMIT == 911.75 and constants.UJY_TO_MAGGIES == 1e-6 / 3631
    assert constants.DMAG == pytest.approx(0.921034037)


def test_every_module_of_the_physics_has_all():
    for name, _ in _modules():
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "__all__", None), list), name
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert missing == [], name


def test_kriek_conroy_law_is_one_formula():
    wave = np.geomspace(1000.0, 30000.0, 500)
    index = np.array([-1.0, -0.3, 0.4])
    tau = diffuse_tau(wave, 4, np.ones(3), index)
    slope = index[:, None]
    expected = (calzetti(wave) + (0.85 - 1.9 * slope) * bump(wave)) * (wave / 5500) ** slope
    np.testing.assert_allclose(tau, expected, rtol=1e-14)
    assert bump(np.array([2175.0]))[0] == pytest.approx(1 / 4.05, rel=1e-14)  # peak, per strength
    assert bump_strength(np.float32(0.1)).dtype == np.float32


@pytest.fixture(scope="module")
def grid(jades):
    return LogGrid(jades, resolution=250.0, zmax=4.0, phases=4)


@pytest.mark.parametrize("dust_type", [None, 0, 2])
def test_fast_dust_is_the_exact_law_on_the_rest_pixels(grid, dust_type):
    # The fast path's attenuation on its pixels is exp(-tau) of dust.py's laws (float32).
    att = FastAttenuation(grid, np.array([1215.67, 6564.6]), "madau1995", zmax=4.0, dz=0.01)
    depth, index = np.array([0.3, 1.5]), np.array([-0.7, -0.2])
    i0, i1 = 100, 900
    got = att.continuum(depth, index, dust_type, i0, i1)
    wave = grid.rest_wave[i0:i1]
    law = 0 if dust_type is None else dust_type
    expected = np.exp(-diffuse_tau(wave, law, depth, index))
    np.testing.assert_allclose(got, expected, rtol=2e-6)


def test_fast_igm_edges_and_tables_follow_igm_py(grid):
    edges = igm_edges("madau1995")
    assert edges[0] == constants.LYMAN_ALPHA and edges[-1] == constants.LYMAN_LIMIT
    assert len(igm_edges("inoue2014")) > 30
    att = FastAttenuation(
        grid, np.array([1025.72, 1215.67, 6564.6]), "madau1995", zmax=4.0, dz=0.01
    )
    z = np.array([2.0, 3.5])
    trans = att.igm("lines", z, np.ones(2), slice(None))
    exact = igm_transmission(np.nextafter(np.array([1025.72, 1215.67]), 0.0), z)
    np.testing.assert_allclose(trans, exact, rtol=1e-6)


def test_step_sfh_bin_masses_match_cumulative_mass(rng):
    edges = np.concatenate([[0.0], np.geomspace(1e5, 1.4e10, 60)])
    agebins = np.array([[0.0, 7.5], [7.5, 8.0], [8.0, 9.0], [9.0, 9.8]])
    mass = 10 ** rng.uniform(7, 10, (5, 4))
    params = dict(agebins=np.broadcast_to(agebins, (5, 4, 2)), mass=mass)
    lo, hi = 10.0 ** agebins[:, 0], 10.0 ** agebins[:, 1]
    sfr = mass / (hi - lo) / mass.sum(-1, keepdims=True)
    fast = step_bin_masses(edges, np.broadcast_to(lo, (5, 4)), np.broadcast_to(hi, (5, 4)), sfr)
    np.testing.assert_allclose(fast, bin_masses(edges, 3, params), rtol=1e-9, atol=1e-15)
