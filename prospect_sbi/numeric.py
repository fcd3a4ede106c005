"""Checks of numeric arguments (counts, sizes, rates), each failing with a one-line error.

One home for what every stage asks of a number it is given: a real, finite number that is
not a bool (``True`` is an ``int`` to Python, never a count to a user), and for counts an
integral value (``3`` or ``3.0``, not ``3.5``, ``nan``, ``"3"`` or ``None``). Errors name the
argument, what was given and what is expected.

Examples
--------
>>> from prospect_sbi.numeric import check_count, is_integer
>>> check_count("n", 1000.0)
1000
>>> is_integer(True), is_integer(2.5), is_integer(float("nan"))
(False, False, False)
>>> check_count("chunk_size", 0)
Traceback (most recent call last):
...
ValueError: chunk_size must be an integer >= 1; got 0
"""

from __future__ import annotations

__all__ = ["check_count", "is_integer", "is_number"]

import math
import numbers
from typing import Any


def is_number(value: Any) -> bool:
    """Return whether ``value`` is a finite real number (Python or NumPy scalar), not a bool.

    NumPy registers its integer and floating scalars as :class:`numbers.Real` and not its
    bool, so this needs no NumPy import.
    """
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: Any) -> bool:
    """Return whether ``value`` is a finite number of integral value (3 or 3.0, not 3.5)."""
    return is_number(value) and float(value).is_integer()


def check_count(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` as an int if it is an integral number >= ``minimum``.

    Raises
    ------
    ValueError
        Anything else, naming ``name``, the value given and the range expected.
    """
    if not (is_integer(value) and value >= minimum):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)
