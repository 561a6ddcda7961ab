"""Data loader scripts: a Python file whose function yields feed dicts.

As Polygraphy's ``--data-loader-script path.py:function`` (the function name defaults to
``load_data``): the function takes no arguments and returns an iterable (a generator, a
list) of ``{input name: array}`` dicts, one per iteration.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import ModuleType

import numpy as np

from pytest_polygraphy.errors import InputError

DEFAULT_FUNCTION = "load_data"


class ScriptLoader(Iterable[dict[str, np.ndarray]]):
    """The feeds of a data loader script; each iteration calls the function afresh, so a
    generator function can be iterated more than once."""

    def __init__(self, path: Path, function_name: str, function: Callable[[], object]) -> None:
        self.path = path
        self.function_name = function_name
        self._function = function

    @property
    def source(self) -> str:
        """``path.py:function``, as given to name this loader in messages."""
        return f"{self.path}:{self.function_name}"

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        try:
            produced = self._function()
        except Exception as err:
            raise InputError(f"{self.source}: the data loader function raised {err!r}") from err
        if isinstance(produced, Mapping) or not isinstance(produced, Iterable):
            raise InputError(
                f"{self.source}: the data loader function must return an iterable of feed "
                f"dicts, got {type(produced).__name__}"
            )
        for index, feed in enumerate(produced):
            if not isinstance(feed, Mapping) or not all(isinstance(k, str) for k in feed):
                raise InputError(
                    f"{self.source}: iteration {index} is not a feed dict "
                    f"{{input name: array}}, got {type(feed).__name__}"
                )
            yield dict(feed)

    def __repr__(self) -> str:
        return f"ScriptLoader({self.source!r})"


def parse_script_spec(spec: str) -> tuple[Path, str]:
    """``"path.py:function"`` -> ``(path, function)``; the function defaults to ``load_data``.

    The last ``:`` separates the function, unless what follows it is not an identifier
    (a Windows drive, ``C:\\data.py``, keeps its colon)."""
    drive, rest = os.path.splitdrive(spec)
    path, sep, function = rest.rpartition(":")
    if not sep or not function.isidentifier():
        path, function = rest, DEFAULT_FUNCTION
    return Path(drive + path), function


def load_script_loader(spec: str) -> ScriptLoader:
    """The data loader named by ``spec`` (``"path.py:function"`` or ``"path.py"``).

    The script runs once, now, with its own folder first on ``sys.path`` so it can import
    its neighbours. Raises InputError naming the file when it is missing, fails to import,
    or lacks a callable of that name."""
    path, function_name = parse_script_spec(spec)
    if not path.is_file():
        raise InputError(f"{path}: data loader script not found")
    module = _import_script(path)
    function = getattr(module, function_name, None)
    if function is None:
        public = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise InputError(
            f"{path}: has no function {function_name!r} (callables defined there: {public})"
        )
    if not callable(function):
        raise InputError(f"{path}: {function_name!r} is not a function")
    return ScriptLoader(path, function_name, function)


def _import_script(path: Path) -> ModuleType:
    module_name = f"_pytest_polygraphy_script_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"{path}: cannot be imported as a Python script (is it a .py file?)")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise InputError(f"{path}: importing the data loader script failed: {err!r}") from err
    finally:
        if sys.path and sys.path[0] == folder:
            del sys.path[0]
    return module
