"""The shape every comparison function shares.

A comparison function is called as ``func(actual, expected, *, outputs=None)`` with two
mappings of output name -> array and returns a ``CompareResult``. This base pairs the
outputs by name, turns values into arrays, checks per-output option keys, and leaves the
per-output work to ``compare_output``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from pytest_polygraphy.compare.pairing import pair_outputs, warn_unknown_keys
from pytest_polygraphy.compare.results import CompareResult, OutputResult
from pytest_polygraphy.errors import InputError


class CompareFunction:
    """Base of the callables returned by ``CompareFunc``'s factories."""

    kind: ClassVar[str] = "compare"
    per_output_options: ClassVar[tuple[str, ...]] = ()

    def __call__(
        self,
        actual: Mapping[str, Any],
        expected: Mapping[str, Any],
        *,
        outputs: Sequence[str] | None = None,
    ) -> CompareResult:
        for side, value in (("actual", actual), ("expected", expected)):
            if not isinstance(value, Mapping):
                raise InputError(
                    f"{side} must be a mapping of output name -> array, got {type(value).__name__}"
                )
        names = pair_outputs(actual, expected, outputs)
        known = set(actual) | set(expected)
        for option in self.per_output_options:
            warn_unknown_keys(option, getattr(self, option), known)
        results = {}
        for name in names:
            a = as_array(actual[name], "actual", name)
            e = as_array(expected[name], "expected", name)
            results[name] = self.compare_output(name, a, e)
        return CompareResult(results, compare=repr(self))

    def compare_output(self, name: str, actual: np.ndarray, expected: np.ndarray) -> OutputResult:
        raise NotImplementedError

    def parameters(self) -> dict[str, Any]:
        """The arguments this function was created with, for reports and ``repr``."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.parameters().items())
        return f"{self.kind}({args})"


def as_array(value: Any, side: str, name: str) -> np.ndarray:
    """The value as an array without copying arrays; InputError names what failed."""
    if isinstance(value, np.ndarray):
        return value
    try:
        array = np.asarray(value)
    except Exception as error:
        raise InputError(
            f"Output {name!r} of {side} is not array-like ({type(value).__name__}): {error}"
        ) from error
    if array.dtype == object:
        raise InputError(f"Output {name!r} of {side} is not a numeric array: {value!r:.80}")
    return array


def output_fields(name: str, actual: np.ndarray, expected: np.ndarray) -> dict[str, Any]:
    """The ``OutputResult`` fields every comparison fills the same way."""
    return {
        "name": name,
        "actual_dtype": str(actual.dtype),
        "expected_dtype": str(expected.dtype),
        "actual_shape": tuple(actual.shape),
        "expected_shape": tuple(expected.shape),
    }


def align_shapes(
    actual: np.ndarray, expected: np.ndarray, check_shapes: bool
) -> tuple[np.ndarray, np.ndarray] | str:
    """Both arrays in ``actual``'s shape, or the reason they cannot be compared.

    With ``check_shapes=False`` an ``expected`` of the same volume is reshaped (never
    permuted, unlike Polygraphy, whose guessed transposes hide layout bugs).
    """
    if actual.shape == expected.shape:
        return actual, expected
    shapes = f"actual shape {tuple(actual.shape)} != expected shape {tuple(expected.shape)}"
    if check_shapes:
        return f"shape mismatch: {shapes}"
    if actual.size != expected.size:
        volumes = f"({actual.size} vs {expected.size} elements)"
        return f"shape mismatch: {shapes}, and their volumes differ {volumes}"
    return actual, expected.reshape(actual.shape)


def check_number(value: Any, *, minimum: float | None = None, maximum: float | None = None) -> bool:
    """Whether ``value`` is a real number (not bool, not NaN) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    if math.isnan(value):
        return False
    if minimum is not None and value < minimum:
        return False
    return not (maximum is not None and value > maximum)
