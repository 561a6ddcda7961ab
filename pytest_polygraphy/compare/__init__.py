"""Comparison functions for model outputs, with Polygraphy's semantics.

Each factory of ``CompareFunc`` returns a callable
``func(actual, expected, *, outputs=None) -> CompareResult`` over two mappings of output
name -> array::

    func = CompareFunc.simple(rtol=1e-3, atol=1e-3)
    result = func(actual, expected)
    assert result, result.report()
"""

from __future__ import annotations

from typing import Any

from pytest_polygraphy.compare.base import CompareFunction
from pytest_polygraphy.compare.distance import DistanceCompare
from pytest_polygraphy.compare.indices import IndicesCompare
from pytest_polygraphy.compare.quality import QualityCompare
from pytest_polygraphy.compare.results import (
    CompareResult,
    DistanceResult,
    ElementDiff,
    IndexMismatch,
    IndicesResult,
    NonFinite,
    OutputCompareResult,
    OutputResult,
    QualityResult,
)
from pytest_polygraphy.compare.simple import SimpleCompare
from pytest_polygraphy.compare.tolerances import (
    PRECISION_TOLERANCES,
    Tolerance,
    default_tolerances,
)

__all__ = [
    "PRECISION_TOLERANCES",
    "CompareFunc",
    "CompareFunction",
    "CompareResult",
    "DistanceCompare",
    "DistanceResult",
    "ElementDiff",
    "IndexMismatch",
    "IndicesCompare",
    "IndicesResult",
    "NonFinite",
    "OutputCompareResult",
    "OutputResult",
    "QualityCompare",
    "QualityResult",
    "SimpleCompare",
    "Tolerance",
    "default_tolerances",
]


class CompareFunc:
    """Factories of comparison functions (the names of Polygraphy's ``CompareFunc``)."""

    @staticmethod
    def simple(
        rtol: Any = 1e-5,
        atol: Any = 1e-5,
        check_error_stat: Any = "elemwise",
        error_quantile: Any = 0.99,
        infinities_compare_equal: bool = False,
        check_shapes: bool = True,
        check_dtypes: bool = False,
        rule: str = "polygraphy",
    ) -> SimpleCompare:
        """Tolerance comparison; see ``SimpleCompare`` for the exact rules.

        ``rule="polygraphy"``: an element fails when
        ``(absdiff > atol or NaN) and (absdiff / |expected| > rtol or NaN)``.
        ``rule="allclose"``: an element passes when ``absdiff <= atol + rtol * |expected|``.
        """
        return SimpleCompare(
            rtol=rtol,
            atol=atol,
            check_error_stat=check_error_stat,
            error_quantile=error_quantile,
            infinities_compare_equal=infinities_compare_equal,
            check_shapes=check_shapes,
            check_dtypes=check_dtypes,
            rule=rule,
        )

    @staticmethod
    def indices(index_tolerance: Any = 0) -> IndicesCompare:
        """Index outputs (e.g. Top-K); see ``IndicesCompare``."""
        return IndicesCompare(index_tolerance=index_tolerance)

    @staticmethod
    def distance_metrics(
        l2_tolerance: Any = 1e-5,
        cosine_similarity_threshold: Any = 0.997,
        check_shapes: bool = True,
    ) -> DistanceCompare:
        """L2 distance and cosine similarity, both must pass; see ``DistanceCompare``."""
        return DistanceCompare(
            l2_tolerance=l2_tolerance,
            cosine_similarity_threshold=cosine_similarity_threshold,
            check_shapes=check_shapes,
        )

    @staticmethod
    def quality_metrics(
        psnr_tolerance: Any = 30.0, snr_tolerance: Any = 20.0, check_shapes: bool = True
    ) -> QualityCompare:
        """PSNR and SNR in dB, both must pass; see ``QualityCompare``."""
        return QualityCompare(
            psnr_tolerance=psnr_tolerance, snr_tolerance=snr_tolerance, check_shapes=check_shapes
        )
