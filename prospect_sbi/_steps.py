"""Warnings said once per step: collected in a block, merged, and said with the step's name.

A chunked job (pixels, catalogue rows) meets the same condition in many chunks, each warning
with its own count ("12 non-detections ..."); said chunk by chunk they repeat, and warnings
raised in dask workers never reach the user. :func:`record` keeps a block's warnings as
plain ``(category, message)`` pairs (which travel from workers and into chunk files),
:func:`merge` adds up the counts of messages that differ only in them, and
:func:`step_warnings` says each merged warning once, prefixed by the step that raised it
(``"fit: 596 non-detections ..."``).
"""

from __future__ import annotations

__all__ = [
    "category_name",
    "from_text",
    "kind",
    "merge",
    "record",
    "say",
    "step_warnings",
    "to_text",
]

import contextlib
import importlib
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

#: A message's leading count, ``"12 ..."`` or ``"12 of 40 ..."``: the part :func:`merge` adds.
_COUNTS = re.compile(r"^(\d+)( of (\d+))?(?= )")


def category_name(category: type) -> str:
    """``module:qualname`` of a warning class (what :func:`record` keeps)."""
    return f"{category.__module__}:{category.__qualname__}"


def _category(name: str) -> type[Warning]:
    """Return the warning class named by :func:`category_name` (else ``UserWarning``)."""
    module, _, qualname = name.partition(":")
    try:
        found = importlib.import_module(module)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError, ValueError):
        return UserWarning
    return found if isinstance(found, type) and issubclass(found, Warning) else UserWarning


@contextlib.contextmanager
def record() -> Iterator[list[tuple[str, str]]]:
    """Collect the warnings of a block, every one (none is shown): ``[(category, message)]``.

    Categories are :func:`category_name` strings, so the list pickles and fits in an
    ``.npz`` as text.
    """
    kept: list[tuple[str, str]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield kept
        finally:
            kept.extend((category_name(w.category), str(w.message)) for w in caught)


def kind(category: str, message: str) -> tuple[str, bool | None, str]:
    """Return what :func:`merge` merges on: category, and message less its leading counts."""
    m = _COUNTS.match(message)
    if m is None:
        return category, None, message
    return category, m.group(2) is not None, message[m.end() :]


def to_text(records: Iterable[tuple[str, str]]) -> list[str]:
    """Return records of :func:`record` as strings, category and message tab-joined.

    What a chunk file keeps (an array of strings); :func:`from_text` reads them back.

    Examples
    --------
    >>> from_text(to_text([("w", "2 bands"), ("v", "odd")]))
    [('w', '2 bands'), ('v', 'odd')]
    """
    return ["\t".join(w) for w in records]


def from_text(texts: Iterable[Any]) -> list[tuple[str, str]]:
    """Inverse of :func:`to_text` (strings or numpy string scalars)."""
    return [tuple(str(w).split("\t", 1)) for w in texts]  # type: ignore[misc]


def merge(records: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Merge warnings that differ only in their leading counts, adding the counts up.

    ``"3 of 10 objects ..."`` and ``"5 of 12 objects ..."`` become ``"8 of 22 objects ..."``;
    other messages are kept once each, in the order first seen.

    Examples
    --------
    >>> merge([("w", "3 of 10 objects are odd"), ("w", "hello"), ("w", "5 of 12 objects are "
    ...        "odd"), ("w", "hello"), ("w", "2 bands")])
    [('w', '8 of 22 objects are odd'), ('w', 'hello'), ('w', '2 bands')]
    """
    merged: dict[tuple[str, bool | None, str], list[int]] = {}
    for category, message in records:
        m = _COUNTS.match(message)
        counts = merged.setdefault(kind(category, message), [0, 0])
        if m is not None:
            counts[0] += int(m.group(1))
            counts[1] += int(m.group(3) or 0)
    out = []
    for (category, of, rest), (k, n) in merged.items():
        head = "" if of is None else (f"{k} of {n}" if of else f"{k}")
        out.append((category, head + rest))
    return out


def say(
    records: Iterable[tuple[str, str]],
    step: str | None = None,
    replace: dict[str, str] | None = None,
    said: set | None = None,
    stacklevel: int = 2,
) -> None:
    """Warn once per merged record (:func:`merge`), prefixed ``"<step>: "`` when given.

    ``replace`` maps text of the messages to what replaces it (advice naming what the
    caller can set). ``said``: the :func:`kind` of warnings already said (by earlier steps),
    left out; those said now are added to it.
    """
    for category, message in merge(records):
        if said is not None:
            if kind(category, message) in said:
                continue
            said.add(kind(category, message))
        for old, new in (replace or {}).items():
            message = message.replace(old, new)
        text = message if step is None else f"{step}: {message}"
        warnings.warn(text, _category(category), stacklevel=stacklevel + 1)


@contextlib.contextmanager
def step_warnings(
    step: str, replace: dict[str, str] | None = None, said: set | None = None
) -> Iterator[list[tuple[str, str]]]:
    """Say the warnings of a block once each, merged (:func:`merge`), as ``"<step>: ..."``.

    Parameters
    ----------
    step : str
        Name of the step, e.g. ``"fit"``, ``"outshining"``.
    replace : dict of str -> str, optional
        Text to replace in the messages (advice that names what the step's caller can set).
    said : set, optional
        Shared by the steps of one job: a kind of warning (:func:`kind`) an earlier step
        said is not said again.

    Yields
    ------
    list of (category, message)
        Append records made elsewhere (dask workers, kept chunks) to say them too.
    """
    more: list[tuple[str, str]] = []
    try:
        with record() as kept:
            yield more
    finally:
        say([*kept, *more], step, replace, said, stacklevel=4)
