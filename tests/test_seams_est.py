"""The seams of the estimator and the fitting path: public names only, no cycles, one check."""

from __future__ import annotations

import ast
import pkgutil
import sys
from pathlib import Path

import numpy as np

import prospect_sbi
from prospect_sbi import fit_model
from prospect_sbi.posterior import checks

PACKAGES = ("prospect_sbi.posterior", "prospect_sbi.fitting")
ROOT = Path(prospect_sbi.__file__).parent

#: Private attributes of other libraries' objects used on purpose (each with a comment there).
FOREIGN = {"_version"}  # torch.Tensor's in-place version counter (posterior/network.py)


def _modules() -> dict[str, ast.Module]:
    out = {"prospect_sbi.ppc": ast.parse((ROOT / "ppc.py").read_text(), "ppc")}
    for package in PACKAGES:
        path = ROOT / package.split(".", 1)[1]
        for info in pkgutil.iter_modules([str(path)]):
            name = f"{package}.{info.name}"
            out[name] = ast.parse((path / f"{info.name}.py").read_text(), name)
    return out


def _target(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (relative imports resolved)."""
    if not node.level:
        return node.module or ""
    base = module.split(".")[: -node.level]
    return ".".join(base + ([node.module] if node.module else []))


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names():
    seen = []
    for module, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node)
                seen += [
                    f"{module} imports {target}.{a.name}"
                    for a in node.names
                    if target.startswith("prospect_sbi") and _private(a.name) and target != module
                ]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                owner = node.value
                if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                    continue
                if node.attr not in FOREIGN:
                    seen.append(f"{module}:{node.lineno} .{node.attr}")
    assert seen == []


def test_no_import_cycles_among_estimator_and_fitting_modules():
    trees = _modules()
    edges = {m: set() for m in trees}
    for module, tree in trees.items():
        for node in ast.walk(tree):  # lazy and type-only imports too: no cycle even on paper
            if isinstance(node, ast.ImportFrom):
                target = _target(module, node)
                names = [target] + [f"{target}.{a.name}" for a in node.names]
                edges[module] |= {t for t in names if t in trees and t != module}
    # a depth-first search for a path back to the start
    cycles = []
    for start in edges:
        stack, visited = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    cycles.append(" -> ".join(path + [start]))
                elif nxt not in visited:
                    visited.add(nxt)
                    stack.append((nxt, path + [nxt]))
    assert cycles == []
    # the ones the issue named, in both directions
    assert "prospect_sbi.posterior.estimator" not in edges["prospect_sbi.posterior.recalibration"]
    assert "prospect_sbi.fitting.fit" not in edges["prospect_sbi.fitting.registry"]
    assert "prospect_sbi.fitting.fit" not in edges["prospect_sbi.fitting.sbi"]


def test_fit_model_checks_the_observations_once(monkeypatch, z2_mock, z2_model, small_estimator):
    calls = []
    original = checks.check_observations

    def counted(*args, **kwargs):
        calls.append(np.shape(args[0]))
        return original(*args, **kwargs)

    # every module that imported the real function gets the counting one
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("prospect_sbi")
            and getattr(module, "check_observations", None) is original
        ):
            monkeypatch.setattr(module, "check_observations", counted)
    obs, _ = z2_mock
    out = fit_model(
        dict(obs),
        z2_model,
        None,
        sbi=True,
        estimator=small_estimator,
        sbi_ndraws=200,
        sbi_seed=3,
        refine="never",
    )
    assert calls == [(14,)]
    # the draws are those of the estimator's own sample(), with the same seed
    draws = small_estimator.sample(
        obs["maggies"], obs["maggies_unc"], 200, zred=obs["zred"], seed=3
    )
    labels = small_estimator.labels
    chain = out["sampling"][0]["samples"]
    for i, name in enumerate(z2_model.theta_labels()):
        if name in labels:
            np.testing.assert_array_equal(chain[:, i], draws[:, labels.index(name)])
