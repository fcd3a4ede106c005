"""Numeric arguments: one shared check, one-line errors naming the argument and the value."""

from __future__ import annotations

import numpy as np
import pytest

from prospect_sbi._io import chunk_slices
from prospect_sbi.fitting import zred_given
from prospect_sbi.numeric import check_count, is_integer, is_number
from prospect_sbi.posterior.metrics import coverage_noise


@pytest.mark.parametrize("value", [3, 3.0, np.int64(3), np.float32(3.0)])
def test_counts_of_integral_value_pass_as_int(value):
    out = check_count("n", value)
    assert out == 3 and type(out) is int


@pytest.mark.parametrize(
    "value",
    [0, -1, 2.5, float("nan"), float("inf"), True, np.bool_(True), "3", None, np.array([3])],
)
def test_anything_else_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"^k must be an integer >= 1; got ") as err:
        check_count("k", value)
    assert "\n" not in str(err.value) and repr(value) in str(err.value)


def test_minimum_and_predicates():
    assert check_count("lr_patience", 0, minimum=0) == 0
    assert is_number(np.float64(0.5)) and not is_number(float("nan")) and not is_number(False)
    assert is_integer(4.0) and not is_integer(4.5) and not is_integer("4")


@pytest.mark.parametrize(
    "call",
    [
        lambda: chunk_slices(10, 2.5),  # truncated to 2 before
        lambda: zred_given(2.0, n_zred=float("nan")),  # "cannot convert float NaN" before
        lambda: coverage_noise(0.5, 100, n_labels=3),  # truncated to 0 before
        lambda: coverage_noise(100, 2.5, n_labels=3),  # truncated to 2 before
        lambda: coverage_noise(100, 100, n_labels=0.5),  # truncated to 0 before
    ],
    ids=["chunk_size", "n_zred", "n_objects", "n_draws", "n_labels"],
)
def test_call_sites_use_the_shared_check(call):
    with pytest.raises(ValueError, match=r"must be an integer >= 1; got (2\.5|nan|0\.5)$"):
        call()


def test_sampler_counts_are_not_truncated():
    from prospect_sbi.posterior.importance import adaptive_importance

    with pytest.raises(ValueError, match=r"^rounds must be an integer >= 1; got 2\.5$"):
        adaptive_importance(None, 256, 2.5, 200.0)
    with pytest.raises(ValueError, match=r"^first must be an integer >= 2; got 1$"):
        adaptive_importance(None, 256, 4, 200.0, first=1)
