"""Plain whole-array numpy formulas of Polygraphy's comparisons, the tests' oracle.

Written from Polygraphy's documented rules, array by array, with none of the chunking,
threading, shortcuts or histograms of the implementation under test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

EPSILON = 2.220446049250313e-16


def cast_up(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float16:
        return x.astype(np.float32)
    if x.dtype in (np.int8, np.uint8, np.int16, np.uint16):
        return x.astype(np.int32)
    if x.dtype == np.uint32:
        return x.astype(np.int64)
    return x


def diffs(
    actual: np.ndarray, expected: np.ndarray, infinities_compare_equal: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Polygraphy's absdiff and reldiff arrays."""
    with np.errstate(all="ignore"):
        if actual.dtype == bool and expected.dtype == bool:
            absdiff = np.logical_xor(actual, expected).astype(np.float64)
        elif actual.dtype.kind in "iub" and expected.dtype.kind in "iub":
            # Exact integers (Polygraphy's int32/int64 subtraction may wrap; ours must not).
            exact = actual.astype(object) - expected.astype(object)
            absdiff = np.abs(exact).astype(np.float64)
        else:
            absdiff = np.abs(cast_up(actual) - cast_up(expected))
            if infinities_compare_equal:
                absdiff = np.where(np.isinf(actual) & (actual == expected), 0, absdiff)
        absdiff = np.asarray(absdiff)
        magnitude = np.array(np.abs(cast_up(expected)), dtype=absdiff.dtype)
        if np.issubdtype(cast_up(expected).dtype, np.floating):
            magnitude[magnitude == 0] = magnitude.dtype.type(EPSILON)
        reldiff = np.asarray(absdiff / magnitude)
    return absdiff, reldiff


def mismatches(
    actual: np.ndarray,
    expected: np.ndarray,
    rtol: float,
    atol: float,
    infinities_compare_equal: bool = False,
) -> np.ndarray:
    """Polygraphy's elementwise failure mask."""
    absdiff, reldiff = diffs(actual, expected, infinities_compare_equal)
    return ((absdiff > atol) | np.isnan(absdiff)) & ((reldiff > rtol) | np.isnan(reldiff))


def allclose_mismatches(
    actual: np.ndarray, expected: np.ndarray, rtol: float, atol: float
) -> np.ndarray:
    """numpy/torch's rule; non-finite differences never pass."""
    absdiff, _ = diffs(actual, expected)
    with np.errstate(all="ignore"):
        limit = atol + rtol * np.abs(cast_up(expected)).astype(absdiff.dtype)
        close = (absdiff <= limit) & np.isfinite(absdiff)
    return ~close


def statistic_fails(absolute: Any, relative: Any, atol: float, rtol: float) -> bool:
    """Polygraphy's statistic check; numpy scalars meet Python tolerances in their dtype."""
    return bool((np.isnan(absolute) or absolute > atol) and (np.isnan(relative) or relative > rtol))


def indices_pass(actual: np.ndarray, expected: np.ndarray, tolerance: int) -> bool:
    """Polygraphy's top-k index comparison, loop for loop."""
    if actual.shape != expected.shape:
        return False
    for batch in np.ndindex(actual.shape[:-1]):
        values = actual[batch]
        if tolerance > 0:
            values = values[:-tolerance]
        reference = expected[batch]
        for position, value in enumerate(values):
            if value == reference[position]:
                continue
            found = np.argwhere(reference == value).ravel()
            if found.size < 1 or abs(int(found[0]) - position) > tolerance:
                return False
    return True
