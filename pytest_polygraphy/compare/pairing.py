"""Pairing outputs by exact name, and per-output options.

Polygraphy silently falls back to substring or position matching when names differ; here
names pair exactly or the comparison stops with an ``OutputMismatchError`` that lists
both sides. Options such as ``rtol`` take one value or a dict per output name, where the
key ``""`` is the default for outputs not listed (Polygraphy's convention).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

from pytest_polygraphy.errors import InputError, OutputMismatchError
from pytest_polygraphy.per_name import unknown_names

T = TypeVar("T")


def pair_outputs(
    actual: Mapping[str, Any], expected: Mapping[str, Any], outputs: Sequence[str] | None
) -> list[str]:
    """Names to compare, in ``outputs`` order if given, else in ``expected``'s order.

    Without ``outputs`` both sides must hold the same names; with it, each named output
    must be on both sides and the others are ignored.
    """
    if isinstance(outputs, str):
        raise InputError(f"outputs= must be a sequence of names, not the string {outputs!r}")
    if outputs is not None:
        names = list(dict.fromkeys(outputs))
        missing_actual = [n for n in names if n not in actual]
        missing_expected = [n for n in names if n not in expected]
        if missing_actual or missing_expected:
            raise OutputMismatchError(
                _describe(actual, expected, missing_actual, missing_expected, restricted=True)
            )
        return names
    missing_actual = [n for n in expected if n not in actual]
    missing_expected = [n for n in actual if n not in expected]
    if missing_actual or missing_expected:
        raise OutputMismatchError(
            _describe(actual, expected, missing_actual, missing_expected, restricted=False)
        )
    return list(expected)


def _describe(
    actual: Mapping[str, Any],
    expected: Mapping[str, Any],
    missing_actual: list[str],
    missing_expected: list[str],
    *,
    restricted: bool,
) -> str:
    what = "Requested outputs are missing" if restricted else "Output names do not match"
    lines = [f"{what}:"]
    if missing_actual:
        lines.append(f"  missing from actual:   {missing_actual}")
    if missing_expected:
        lines.append(f"  missing from expected: {missing_expected}")
    lines.append(f"  actual outputs:   {list(actual)}")
    lines.append(f"  expected outputs: {list(expected)}")
    if not restricted:
        lines.append("Pass outputs=[...] to compare only the outputs both sides hold.")
    return "\n".join(lines)


def check_option(option: str, value: Any, valid: Callable[[Any], bool], requirement: str) -> None:
    """Raises ``InputError`` unless ``value`` (or every value of a per-output dict) is valid."""
    items = value.items() if isinstance(value, Mapping) else [(None, value)]
    for key, item in items:
        if not valid(item):
            where = f"{option}[{key!r}]" if key is not None else option
            raise InputError(f"{where}={item!r} is invalid: {requirement}")


def warn_unknown_keys(option: str, value: Any, names: Collection[str]) -> None:
    """Warns about per-output keys that name no output: usually a typo that would
    otherwise silently apply the default."""
    unknown = unknown_names(value, names)
    if unknown:
        warnings.warn(
            f"{option} names outputs that neither side holds: {unknown}; "
            f"outputs are {sorted(names)}",
            UserWarning,
            stacklevel=4,
        )
