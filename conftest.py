"""Pytest setup for every test and doctest: each starts from the same seeds.

This file sits at the repository root so that it also applies to the doctests of
``prospect_sbi`` (collected with ``--doctest-modules``, see ``pyproject.toml``);
``tests/conftest.py`` holds the fixtures of the test suite proper.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

#: numpy's legacy global generator (``np.random.seed``), as the suite always had it.
NUMPY_SEED = 1234
#: torch's global generator and python's ``random``.
TORCH_SEED = 0


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """Seed torch, numpy's legacy global generator and ``random`` before every test.

    A test (or a doctest) that draws from a global generator then gets the same numbers
    whether it runs alone or after any other test.
    """
    np.random.seed(NUMPY_SEED)
    random.seed(TORCH_SEED)
    torch.manual_seed(TORCH_SEED)


@pytest.fixture(autouse=True)
def _doctests_from_the_root(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run doctests from the repository root, where their relative paths (``examples/``) lie."""
    if isinstance(request.node, pytest.DoctestItem):
        monkeypatch.chdir(request.config.rootpath)
