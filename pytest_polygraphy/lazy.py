"""Lazy re-exports (PEP 562): a package's public names imported from their modules on first
use, so that importing the package (which pytest does for the plugin's entry point) stays
light, as hypothesis keeps its own import."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package``: ``exports`` maps each public name to
    the module that defines it (a relative name, ``".session"``, is taken from
    ``package``). Once imported, a name is kept in the package's namespace; any other name
    is an ``AttributeError``, as for a plain module."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
