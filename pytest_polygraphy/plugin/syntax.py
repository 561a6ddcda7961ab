"""Parsing of option values written in ``polygraphy run``'s syntax.

One item per token, ``NAME:VALUE`` for a per-tensor value and a bare ``VALUE`` for the
default of every other tensor (stored under the key ``""``), e.g.::

    x:[1,3,224,224] mask:[1,1,224,224]     input shapes
    [0,1] ids:[0,30521]                    value ranges
    1e-3 boxes:1e-2                        tolerances

Tensor names may hold colons (``input:0:[1,3]``): the value is what follows the last one.
A name may be a shell-style wildcard pattern (``inp_*:[1,3]``, see ``per_name``). Items
are split at whitespace outside brackets also within one argument, so a quoted set
(``'x:[1,3] mask:[1,1]'``) is the same as its items given one by one.
Every function here is pure (stdlib only, so the plugin entry point stays light) and
raises ``OptionValueError`` with a message saying what is accepted; callers prefix it
with where the value came from (an option, an ini key, a marker, a settings file).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# The vocabulary, re-exported: most callers know these names from here.
from pytest_polygraphy.plugin.vocabulary import (  # noqa: F401
    BACKENDS,
    BELOW_FP16,
    CHECK_ERROR_STATS,
    COMPARE_FUNCS,
    ENGINE_SUFFIXES,
    FULL_PRECISION,
    PRECISIONS,
    REFERENCES,
    OptionValueError,
    ShapeSet,
)

_ITEM = re.compile(r"(?:[^\s\[]|\[[^\]]*\])+")


def split_items(text: str) -> list[str]:
    """Whitespace-separated items, where brackets may hold spaces: ``"x:[1, 3] y:[2]"``."""
    return _ITEM.findall(text)


def split_all(items: Iterable[object]) -> list[str]:
    """Every item of ``items``, each split with ``split_items``: a quoted set given as one
    argument (``'x:[1,512] state:[2,1,128]'``) is its items, never one name with spaces."""
    return [part for item in items for part in split_items(str(item))]


def split_name(item: str) -> tuple[str, str]:
    """``"boxes:1e-2"`` -> ``("boxes", "1e-2")``; ``"1e-2"`` -> ``("", "1e-2")``."""
    name, sep, value = item.rpartition(":")
    return (name, value) if sep else ("", item)


def parse_list(text: str, what: str, example: str) -> list[str]:
    """``"[1,3, 224]"`` -> ``["1", "3", "224"]`` (``"[]"`` -> ``[]``)."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise OptionValueError(f"{what} must be a bracketed list like {example}, got {text!r}")
    inner = text[1:-1].strip()
    return [part.strip() for part in inner.split(",")] if inner else []


def parse_shape(text: str, name: str = "") -> tuple[int, ...]:
    """``"[1,3,224,224]"`` -> ``(1, 3, 224, 224)``; dims must be non-negative ints."""
    what = f"shape of {name!r}" if name else "shape"
    dims = parse_list(text, what, "[1,3,224,224]")
    try:
        shape = tuple(int(dim) for dim in dims)
    except ValueError:
        shape = ()
        dims = [*dims, "?"]
    if len(shape) != len(dims) or any(dim < 0 for dim in shape):
        raise OptionValueError(f"{what}: every dim must be a non-negative int, got {text!r}")
    return shape


def parse_shape_set(items: Iterable[str] | str | Mapping[str, Sequence[int]]) -> ShapeSet:
    """A shape set from ``["x:[1,3]", "mask:[1,1]"]``, the same as one string
    ``"x:[1,3] mask:[1,1]"``, or a dict ``{"x": [1, 3]}``."""
    if isinstance(items, Mapping):
        shapes: ShapeSet = {}
        for name, shape in items.items():
            if isinstance(shape, str):
                shapes[str(name)] = parse_shape(shape, str(name))
                continue
            if (
                not isinstance(shape, Sequence)
                or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
                or any(d < 0 for d in shape)
            ):
                raise OptionValueError(
                    f"shape of {name!r}: expected a list of non-negative ints, got {shape!r}"
                )
            shapes[str(name)] = tuple(shape)
        if not shapes:
            raise OptionValueError("a shape set names no input; expected e.g. x:[1,3,224,224]")
        return shapes
    shapes = {}
    given: dict[str, str] = {}
    for item in split_items(items) if isinstance(items, str) else split_all(items):
        name, value = split_name(item)
        if name in given:
            raise OptionValueError(
                f"input {name!r} is given twice in one shape set ({given[name]!r} and "
                f"{item!r}): a shape set gives each input one shape; for several shape "
                "sets, give each its own option (or ini line)"
            )
        given[name] = item
        shapes[name] = parse_shape(value, name)
    if not shapes:
        raise OptionValueError("a shape set names no input; expected e.g. x:[1,3,224,224]")
    return shapes


def shape_set_id(shapes: Mapping[str, Sequence[int]]) -> str:
    """A stable test id for a shape set: ``x=8x3x224x224,mask=8x1x224x224``."""

    def dims(shape: Sequence[int]) -> str:
        return "x".join(str(d) for d in shape) if len(shape) else "scalar"

    return ",".join(
        f"{name}={dims(shape)}" if name else dims(shape) for name, shape in shapes.items()
    )


def format_shape_set(shapes: Mapping[str, Sequence[int]]) -> list[str]:
    """The inverse of ``parse_shape_set``: ``["x:[1,3]", ...]``."""
    return [
        (f"{name}:" if name else "") + "[" + ",".join(str(d) for d in shape) + "]"
        for name, shape in shapes.items()
    ]


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


def parse_range(text: str, name: str = "") -> tuple[int | float, int | float]:
    """``"[0,1]"`` -> ``(0, 1)``; ``"[-1.5,inf]"`` -> ``(-1.5, inf)``; min <= max."""
    what = f"value range of {name!r}" if name else "value range"
    bounds = parse_list(text, what, "[0,1]")
    try:
        low, high = (_number(b) for b in bounds)
    except ValueError:
        raise OptionValueError(f"{what} must be two numbers like [0,1], got {text!r}") from None
    if math.isnan(low) or math.isnan(high) or low > high:
        raise OptionValueError(f"{what} must be [min,max] with min <= max, got {text!r}")
    return low, high


def parse_ranges(items: Iterable[str] | Mapping[str, object]) -> dict[str, tuple[float, float]]:
    """Value ranges per input from ``["[0,1]", "ids:[0,100]"]`` or ``{"ids": [0, 100]}``."""
    ranges: dict[str, tuple[float, float]] = {}
    if isinstance(items, Mapping):
        for name, value in items.items():
            if isinstance(value, str):
                ranges[str(name)] = parse_range(value, str(name))
            elif isinstance(value, Sequence) and len(value) == 2:
                ranges[str(name)] = parse_range(f"[{value[0]},{value[1]}]", str(name))
            else:
                raise OptionValueError(f"value range of {name!r} must be [min,max], got {value!r}")
        return ranges
    for item in split_all(items):
        name, value = split_name(item)
        ranges[name] = parse_range(value, name)
    return ranges


def parse_tolerances(
    items: Iterable[str] | Mapping[str, object] | float, what: str
) -> dict[str, float]:
    """Tolerances per output from ``["1e-3", "boxes:1e-2"]``, ``{"": 1e-3}`` or ``1e-3``.

    ``what`` (``"rtol"``, ``"atol"``) names the option in the error message."""
    if isinstance(items, int | float) and not isinstance(items, bool):
        items = {"": items}
    elif isinstance(items, str):
        items = split_items(items)
    pairs = items.items() if isinstance(items, Mapping) else map(split_name, split_all(items))
    tolerances: dict[str, float] = {}
    for name, value in pairs:
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            number = math.nan
        if isinstance(value, bool) or not number >= 0 or math.isinf(number):
            label = f"{what} of {name!r}" if name else what
            raise OptionValueError(
                f"{label} must be a non-negative number (VALUE or OUTPUT:VALUE, "
                f"e.g. 1e-3 boxes:1e-2), got {value!r}"
            )
        tolerances[str(name)] = number
    return tolerances


def parse_quantiles(items: Iterable[str] | Mapping[str, object] | float) -> dict[str, float]:
    """``error_quantile`` per output: numbers in [0, 1]."""
    quantiles = parse_tolerances(items, "error_quantile")
    for name, value in quantiles.items():
        if value > 1:
            label = f"error_quantile of {name!r}" if name else "error_quantile"
            raise OptionValueError(f"{label} must lie in [0, 1], got {value!r}")
    return quantiles


def parse_error_stats(items: Iterable[str] | Mapping[str, object] | str) -> dict[str, str]:
    """``check_error_stat`` per output from ``["max", "boxes:elemwise"]`` or a dict."""
    if isinstance(items, str):
        items = items.split()
    pairs = items.items() if isinstance(items, Mapping) else map(split_name, split_all(items))
    stats: dict[str, str] = {}
    for name, value in pairs:
        if value not in CHECK_ERROR_STATS:
            label = f"check_error_stat of {name!r}" if name else "check_error_stat"
            raise OptionValueError(
                f"{label} must be one of {', '.join(CHECK_ERROR_STATS)} "
                f"(VALUE or OUTPUT:VALUE), got {value!r}"
            )
        stats[str(name)] = str(value)
    return stats


def parse_node_names(value: Any) -> tuple[str, ...]:
    """Node names (``keep_fp32``, ``keep_fp16``): one string, or a list of non-empty strings."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(
        isinstance(item, str) and item for item in items
    ):
        raise OptionValueError(f"expected node names (strings), got {value!r}")
    return tuple(dict.fromkeys(items))


def parse_precisions(names: Iterable[object]) -> tuple[str, ...]:
    """Validated precision names, in the given order, without duplicates."""
    result: list[str] = []
    for name in names:
        if name not in PRECISIONS:
            raise OptionValueError(f"unknown precision {name!r}; accepted: {', '.join(PRECISIONS)}")
        if name not in result:
            result.append(str(name))
    if not result:
        raise OptionValueError(f"no precision given; accepted: {', '.join(PRECISIONS)}")
    return tuple(result)


def parse_int(text: object, what: str, minimum: int) -> int:
    """An int of at least ``minimum``."""
    try:
        if isinstance(text, bool):
            raise ValueError
        value = int(text)  # type: ignore[call-overload]
        if isinstance(text, float) and value != text:
            raise ValueError
    except (TypeError, ValueError):
        raise OptionValueError(f"{what} must be an integer >= {minimum}, got {text!r}") from None
    if value < minimum:
        raise OptionValueError(f"{what} must be an integer >= {minimum}, got {text!r}")
    return value


def format_per_name(values: Mapping[str, object]) -> list[str]:
    """The inverse of the per-name parsers: ``["1e-3", "boxes:0.01"]``, ``["x:[0,1]"]``."""

    def text(value: object) -> str:
        if isinstance(value, tuple | list):
            return "[" + ",".join(str(v) for v in value) + "]"
        return str(value)

    return [f"{name}:{text(value)}" if name else text(value) for name, value in values.items()]
