"""Options given once for every tensor or per tensor name: ``1e-3``, or
``{"": 1e-3, "boxes": 1e-2}`` where ``""`` is the default for the names not listed.

One rule for all of them (rtol/atol per output, value ranges and shapes per input, ...),
so a dict means the same thing wherever the project accepts one."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TypeVar, overload

T = TypeVar("T")


@overload
def value_for(option: T | Mapping[str, T], name: str) -> T | None: ...
@overload
def value_for(option: T | Mapping[str, T], name: str, default: T) -> T: ...
def value_for(option: T | Mapping[str, T], name: str, default: T | None = None) -> T | None:
    """The option's value for tensor ``name``: its own entry, else the ``""`` entry, else
    ``default``. A value that is not a dict applies to every name."""
    if isinstance(option, Mapping):
        if name in option:
            return option[name]
        return option.get("", default)
    return option


def unknown_names(option: object, names: Collection[str]) -> list[str]:
    """The keys of a per-name dict that name none of ``names`` (``""`` aside): usually a
    typo that would otherwise silently get the default."""
    if not isinstance(option, Mapping):
        return []
    return [key for key in option if key != "" and key not in names]
