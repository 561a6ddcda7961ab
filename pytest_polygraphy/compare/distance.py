"""``CompareFunc.distance_metrics``: L2 distance and cosine similarity, both must pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pytest_polygraphy.compare._moments import moments
from pytest_polygraphy.compare.base import (
    CompareFunction,
    align_shapes,
    check_number,
    output_fields,
)
from pytest_polygraphy.compare.pairing import check_option
from pytest_polygraphy.compare.results import DistanceResult
from pytest_polygraphy.compare.simple import comparison_dtype
from pytest_polygraphy.per_name import value_for


class DistanceCompare(CompareFunction):
    """Passes an output when ``l2_norm <= l2_tolerance`` and
    ``cosine_similarity >= cosine_similarity_threshold``; a NaN never passes.

    ``l2_norm`` is the unnormalized Euclidean distance ``sqrt(sum((actual - expected)**2))``
    (it grows with the output size: scale ``l2_tolerance`` accordingly).
    ``cosine_similarity`` is ``dot(actual, expected) / (|actual| |expected|)`` clipped to
    [-1, 1]; two all-zero outputs have similarity 1 and one all-zero output 0 (Polygraphy's
    conventions). Both thresholds take a value or a dict per output with ``""`` as the
    default key. Sums accumulate in float64.
    """

    kind = "distance_metrics"
    per_output_options = ("l2_tolerance", "cosine_similarity_threshold")

    def __init__(
        self,
        l2_tolerance: Any = 1e-5,
        cosine_similarity_threshold: Any = 0.997,
        check_shapes: bool = True,
    ) -> None:
        check_option(
            "l2_tolerance", l2_tolerance, lambda v: check_number(v, minimum=0), "a number >= 0"
        )
        check_option(
            "cosine_similarity_threshold",
            cosine_similarity_threshold,
            lambda v: check_number(v, minimum=-1, maximum=1),
            "a number in [-1, 1]",
        )
        self.l2_tolerance = l2_tolerance
        self.cosine_similarity_threshold = cosine_similarity_threshold
        self.check_shapes = bool(check_shapes)

    def parameters(self) -> dict[str, Any]:
        return {
            "l2_tolerance": self.l2_tolerance,
            "cosine_similarity_threshold": self.cosine_similarity_threshold,
            "check_shapes": self.check_shapes,
        }

    def compare_output(self, name: str, actual: np.ndarray, expected: np.ndarray) -> DistanceResult:
        fields: dict[str, Any] = {
            **output_fields(name, actual, expected),
            "l2_tolerance": float(value_for(self.l2_tolerance, name, 1e-5)),
            "cosine_similarity_threshold": float(
                value_for(self.cosine_similarity_threshold, name, 0.997)
            ),
        }
        comparison_dtype(actual.dtype, expected.dtype, name)  # rejects unsupported dtypes
        aligned = align_shapes(actual, expected, self.check_shapes)
        if isinstance(aligned, str):
            return DistanceResult(passed=False, reason=aligned, **fields)
        sums = moments(*aligned)
        l2_norm = math.sqrt(sums.sum_sq_diff)
        cosine = cosine_similarity(sums.dot, sums.sum_sq_actual, sums.sum_sq_expected)
        passed = (
            l2_norm <= fields["l2_tolerance"] and cosine >= fields["cosine_similarity_threshold"]
        )
        return DistanceResult(passed=passed, l2_norm=l2_norm, cosine_similarity=cosine, **fields)


def cosine_similarity(dot: float, sum_sq_actual: float, sum_sq_expected: float) -> float:
    norm_actual, norm_expected = math.sqrt(sum_sq_actual), math.sqrt(sum_sq_expected)
    if norm_actual == 0 and norm_expected == 0:
        return 1.0
    if norm_actual == 0 or norm_expected == 0:
        return 0.0
    value = dot / (norm_actual * norm_expected)
    if math.isnan(value):
        return value
    return max(-1.0, min(1.0, value))
