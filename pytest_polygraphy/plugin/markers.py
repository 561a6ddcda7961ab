"""The plugin's markers: how their arguments are read. (Their signatures, registered at
every start, are in the option table: ``optionspecs.MARKERS``, from ``options.json``;
this module is imported when a test's markers are first read.)

Markers are read with ``get_closest_marker``, so a marker on a test wins over one on its
class, which wins over a module's ``pytestmark``. A marker is the test's own explicit
choice, so it wins over every other setting: the command line, per-model settings, the
ini file and the defaults. A bad marker argument fails that test only (at setup), never
the collection of the others. Stdlib and pytest only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.optionspecs import MARKERS as MARKERS
from pytest_polygraphy.plugin.vocabulary import OptionValueError, ShapeSet

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.modelsettings import Layer


def _fail(marker: str, err: Exception) -> OptionValueError:
    return OptionValueError(f"@pytest.mark.{marker}: {err}")


def _path_argument(node: pytest.Item, name: str) -> Path | None:
    """The one path argument of the closest ``name`` marker, anchored at the test file's
    folder (None without the marker)."""
    marker = node.get_closest_marker(name)
    if marker is None:
        return None
    path = marker.args[0] if marker.args else marker.kwargs.get("path")
    if len(marker.args) + len(marker.kwargs) != 1 or path is None:
        raise _fail(name, ValueError(f"expected {name}(path), got {marker.args or marker.kwargs}"))
    path = Path(path)
    return path if path.is_absolute() else node.path.parent / path


def model_path(node: pytest.Item) -> Path | None:
    """The path given by the closest ``model`` marker, anchored at the test file's folder."""
    return _path_argument(node, "model")


def engine_path(node: pytest.Item) -> Path | None:
    """The engine file of the closest ``engine`` marker, anchored at the test file's
    folder; OptionValueError for a bad argument, a missing file or another suffix."""
    from pytest_polygraphy.plugin.vocabulary import ENGINE_SUFFIXES

    path = _path_argument(node, "engine")
    if path is None:
        return None
    if path.suffix not in ENGINE_SUFFIXES:
        raise _fail(
            "engine",
            ValueError(f"{path} is not an engine file (expected {' or '.join(ENGINE_SUFFIXES)})"),
        )
    if not path.is_file():
        raise _fail("engine", ValueError(f"engine file {path} does not exist"))
    return path


def _names(node: Any, name: str, parse: Any) -> tuple[str, ...] | None:
    """The closest ``name`` marker's arguments (names, or one list of them), parsed."""
    marker = node.get_closest_marker(name)
    if marker is None:
        return None
    names = marker.args
    if len(names) == 1 and isinstance(names[0], list | tuple):
        names = tuple(names[0])
    try:
        return parse(names)
    except OptionValueError as err:
        raise _fail(name, err) from None


def precisions(node: Any) -> tuple[str, ...] | None:
    """The precisions of the closest ``precisions`` marker, validated."""
    from pytest_polygraphy.plugin import syntax

    return _names(node, "precisions", syntax.parse_precisions)


def shape_sets(node: Any) -> tuple[ShapeSet, ...] | None:
    """The shape sets of the closest ``shapes`` marker, validated."""
    from pytest_polygraphy.plugin import syntax

    marker = node.get_closest_marker("shapes")
    if marker is None:
        return None
    if not marker.args:
        raise _fail("shapes", ValueError("expected at least one shape set"))
    try:
        return tuple(syntax.parse_shape_set(item) for item in marker.args)
    except OptionValueError as err:
        raise _fail("shapes", err) from None


def keep_fp32(node: Any) -> tuple[str, ...] | None:
    """The node names of the closest ``keep_fp32`` marker, validated."""
    from pytest_polygraphy.plugin import syntax

    return _names(node, "keep_fp32", lambda names: syntax.parse_node_names(list(names)))


def keep_fp16(node: Any) -> tuple[str, ...] | None:
    """The node names of the closest ``keep_fp16`` marker, validated."""
    from pytest_polygraphy.plugin import syntax

    return _names(node, "keep_fp16", lambda names: syntax.parse_node_names(list(names)))


def tolerance(node: Any) -> dict[str, Any]:
    """The closest ``tolerance`` marker as settings (``rtol``, ``atol``, ``check_error_stat``,
    ``error_quantile`` parsed per output; anything else under ``compare_args``)."""
    from pytest_polygraphy.plugin import syntax

    marker = node.get_closest_marker("tolerance")
    if marker is None:
        return {}
    if marker.args:
        raise _fail("tolerance", ValueError("takes keyword arguments only, e.g. rtol=1e-3"))
    parsers = {
        "rtol": lambda v: syntax.parse_tolerances(v, "rtol"),
        "atol": lambda v: syntax.parse_tolerances(v, "atol"),
        "check_error_stat": syntax.parse_error_stats,
        "error_quantile": syntax.parse_quantiles,
    }
    settings: dict[str, Any] = {}
    compare_args: dict[str, Any] = {}
    for key, value in marker.kwargs.items():
        if value is None:
            continue
        if key in parsers:
            try:
                settings[key] = parsers[key](value)
            except OptionValueError as err:
                raise _fail("tolerance", err) from None
        else:
            compare_args[key] = value
    if compare_args:
        settings["compare_args"] = compare_args
    return settings


def layers(node: Any) -> list[Layer]:
    """The ``precisions``, ``shapes``, ``keep_fp32``, ``keep_fp16`` and ``tolerance``
    markers of ``node`` as settings layers (the highest of all; see ``settings``). Raises
    OptionValueError for a bad one."""
    from pytest_polygraphy.plugin.modelsettings import Layer

    found = []
    names = precisions(node)
    if names:
        found.append(Layer("@pytest.mark.precisions", {"precisions": names}))
    shapes = shape_sets(node)
    if shapes:
        found.append(Layer("@pytest.mark.shapes", {"input_shapes": shapes}))
    kept = keep_fp32(node)
    if kept:
        found.append(Layer("@pytest.mark.keep_fp32", {"keep_fp32": kept}))
    kept16 = keep_fp16(node)
    if kept16:
        found.append(Layer("@pytest.mark.keep_fp16", {"keep_fp16": kept16}))
    tolerances = tolerance(node)
    if tolerances:
        found.append(Layer("@pytest.mark.tolerance", tolerances))
    return found
