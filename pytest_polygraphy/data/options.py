"""Per-input options (value ranges, shapes) as Polygraphy takes them: one value for every
input, or a dict ``{input name: value}`` where the key ``""`` gives the default."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np

from pytest_polygraphy.data import dtypes
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMetadata
from pytest_polygraphy.per_name import closest_name, entry_for, is_pattern, unknown_names, value_for

T = TypeVar("T")

#: A value range: ``(min, max)``, both inclusive; ``None`` in either place takes the default.
Range = tuple[float | None, float | None] | Sequence[float | None]
ValRange = Range | Mapping[str, Range] | None
Shape = Sequence[int]
InputShapes = Shape | Mapping[str, Shape] | None

#: Polygraphy's default value range, for every dtype (integers inclusive, so 0 or 1).
DEFAULT_VAL_RANGE: tuple[float, float] = (0.0, 1.0)


def check_names(option: object, metadata: TensorMetadata, option_name: str) -> None:
    """InputError for a per-input entry that names no input of the model (a name not among
    them, or a wildcard pattern that matches none): the test would otherwise run with the
    default for that input while its settings say otherwise. The message lists the
    model's inputs and suggests the closest name."""
    unknown = unknown_names(option, metadata)
    if not unknown:
        return
    key = unknown[0]
    matches = "a pattern that matches no input" if is_pattern(key) else "not an input"
    closest = closest_name(key, metadata)
    hint = f" (did you mean {closest!r}?)" if closest is not None else ""
    others = f"; also unknown: {unknown[1:]}" if len(unknown) > 1 else ""
    raise InputError(
        f"{option_name} names {key!r}, which is {matches} of the model{hint}{others}; the "
        f"model's inputs are {metadata}. Give one of these names, a wildcard pattern that "
        "matches some (inp_*, [ab]_mask), or a bare value for every input."
    )


def value_range(val_range: ValRange, name: str, dtype: np.dtype) -> tuple[float, float]:
    """The inclusive ``(min, max)`` to draw input ``name`` of ``dtype`` from.

    Bounds are cast like Polygraphy does: ``int()`` (truncation) for integer inputs,
    ``bool()`` for boolean inputs, ``float()`` otherwise. Raises InputError for a range
    that is malformed, reversed, or outside what ``dtype`` can hold.
    """
    given = value_for(val_range, name)
    if given is None:
        given = DEFAULT_VAL_RANGE
    if isinstance(given, str | bytes) or not isinstance(given, Sequence) or len(given) != 2:
        raise InputError(f"val_range for input {name!r}: expected (min, max), got {given!r}")
    kind = dtypes.kind(dtype)
    cast = {"int": int, "bool": bool}.get(kind, float)
    try:
        low, high = (
            cast(default if bound is None else bound)
            for bound, default in zip(given, DEFAULT_VAL_RANGE, strict=True)
        )
    except (TypeError, ValueError, OverflowError) as err:
        raise InputError(
            f"val_range for input {name!r}: expected two numbers (finite for an integer input), "
            f"got {given!r}"
        ) from err
    if any(isinstance(bound, float) and math.isnan(bound) for bound in (low, high)):
        raise InputError(f"val_range for input {name!r}: NaN is not a bound, got {given!r}")
    if not low <= high:
        raise InputError(
            f"val_range for input {name!r}: min must not exceed max, got [{low}, {high}]"
        )
    if kind in ("int", "float"):
        dtype_low, dtype_high = dtypes.finite_range(dtype)
        for bound in (low, high):
            if math.isfinite(bound) and not dtype_low <= bound <= dtype_high:
                raise InputError(
                    f"val_range for input {name!r}: [{low}, {high}] does not fit its dtype "
                    f"{dtypes.name(dtype)}, whose values lie in [{dtype_low}, {dtype_high}]"
                )
    return low, high


def given_shape(input_shapes: InputShapes, name: str) -> tuple[int, ...] | None:
    """The concrete shape given for input ``name``, if any; InputError if it is not one."""
    shape = value_for(input_shapes, name)
    if shape is None:
        return None
    if isinstance(shape, str | bytes) or not isinstance(shape, Sequence):
        raise InputError(f"input_shapes for input {name!r}: expected a list of ints, got {shape!r}")
    if not all(
        isinstance(d, int | np.integer) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise InputError(
            f"input_shapes for input {name!r}: every dim must be a non-negative int, "
            f"got {list(shape)!r}"
        )
    return tuple(int(d) for d in shape)


def is_named(option: object, name: str) -> bool:
    """True when ``option`` is a dict with an entry of its own for ``name`` (its name or a
    pattern that matches it, not the ``""`` default)."""
    return entry_for(option, name) is not None
