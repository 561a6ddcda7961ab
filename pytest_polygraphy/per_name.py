"""Options given once for every tensor or per tensor name: ``1e-3``, or
``{"": 1e-3, "boxes": 1e-2}`` where ``""`` is the default for the names not listed.

A key may be a shell-style wildcard pattern, as in Polygraphy: ``inp_*``, ``out?``,
``[ab]_mask`` (``fnmatch`` semantics, case-sensitive). A tensor's value is its own entry
when the dict has one, else the first pattern, in the dict's order, that matches its name,
else the ``""`` entry.

One rule for all of them (rtol/atol per output, value ranges and shapes per input, ...),
so a dict means the same thing wherever the project accepts one."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Collection, Mapping
from typing import TypeVar, overload

T = TypeVar("T")


@overload
def value_for(option: T | Mapping[str, T], name: str) -> T | None: ...
@overload
def value_for(option: T | Mapping[str, T], name: str, default: T) -> T: ...
def value_for(option: T | Mapping[str, T], name: str, default: T | None = None) -> T | None:
    """The option's value for tensor ``name``: its own entry, else the first matching
    pattern, else the ``""`` entry, else ``default``. A value that is not a dict applies
    to every name."""
    if isinstance(option, Mapping):
        key = entry_for(option, name)
        if key is not None:
            return option[key]
        return option.get("", default)
    return option


def is_pattern(key: str) -> bool:
    """True when ``key`` holds a wildcard character (``*``, ``?`` or ``[``)."""
    return any(char in key for char in "*?[")


def entry_for(option: object, name: str) -> str | None:
    """The key of the entry of its own that a per-name dict has for ``name`` (the name
    itself, or the first pattern that matches it); None when only ``""`` or nothing
    applies, or ``option`` is not a dict."""
    if not isinstance(option, Mapping):
        return None
    if name in option:
        return name
    for key in option:
        if isinstance(key, str) and key and is_pattern(key) and fnmatch.fnmatchcase(name, key):
            return key
    return None


def unknown_names(option: object, names: Collection[str]) -> list[str]:
    """The keys of a per-name dict that name none of ``names`` (``""`` aside): a name that
    is not among them, or a pattern that matches none. Usually a typo that would otherwise
    silently get the default."""
    if not isinstance(option, Mapping):
        return []
    return [
        key
        for key in option
        if key != ""
        and key not in names
        and not (
            isinstance(key, str)
            and is_pattern(key)
            and any(fnmatch.fnmatchcase(name, key) for name in names)
        )
    ]


def closest_name(key: str, names: Collection[str]) -> str | None:
    """The name in ``names`` most like ``key`` (a typo's likely intent), None if empty."""
    matches = difflib.get_close_matches(key, list(names), n=1, cutoff=0.0)
    return matches[0] if matches else None
