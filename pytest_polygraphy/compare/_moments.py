"""Sums that the distance and quality metrics need, in one bounded-memory pass."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pytest_polygraphy.compare import _kernels


@dataclass
class Moments:
    """Float64 sums over all elements of two same-shape arrays."""

    count: int = 0
    sum_sq_diff: float = 0.0  # sum((actual - expected)**2)
    dot: float = 0.0  # sum(actual * expected)
    sum_sq_actual: float = 0.0
    sum_sq_expected: float = 0.0
    max_expected: float = -math.inf  # NaN if expected holds a NaN


def moments(actual: np.ndarray, expected: np.ndarray) -> Moments:
    """Accumulates in float64 chunk by chunk (Polygraphy sums in the operands' float
    dtype, which loses digits on large outputs)."""
    result = Moments(count=actual.size)
    size = min(_kernels.CHUNK_SIZE, max(actual.size, 1))
    a64, e64, tmp = (np.empty(size, np.float64) for _ in range(3))
    with np.errstate(all="ignore"):
        for _, a, e in _kernels.iter_chunks(actual, expected):
            n = a.size
            a_, e_, t = a64[:n], e64[:n], tmp[:n]
            np.copyto(a_, a, casting="unsafe")
            np.copyto(e_, e, casting="unsafe")
            result.dot += float(np.dot(a_, e_))
            result.sum_sq_actual += float(np.dot(a_, a_))
            result.sum_sq_expected += float(np.dot(e_, e_))
            np.subtract(a_, e_, out=t)
            result.sum_sq_diff += float(np.dot(t, t))
            chunk_max = float(e_.max())  # NaN if the chunk holds one; a NaN then stays
            if math.isnan(chunk_max) or chunk_max > result.max_expected:
                result.max_expected = chunk_max
    return result
