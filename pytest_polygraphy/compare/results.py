"""What a comparison found: one result per output, and their collection.

Every result is immutable, ``bool()`` gives its verdict, and ``to_dict()`` gives plain
Python values (lists, floats, ints, str, None) that ``json.dumps`` accepts; NaN and
infinite metrics stay floats (``json.dumps`` writes them as ``NaN``/``Infinity``, as
Polygraphy's JSON does).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

Index = tuple[int, ...]


def to_plain(value: Any) -> Any:
    """Converts numpy scalars, tuples and nested results into JSON-friendly values."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return to_plain(value.item())
    return value


def _plain_fields(obj: Any) -> dict[str, Any]:
    return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


@dataclass(frozen=True)
class ElementDiff:
    """One element of a compared output: where it is, both values and both differences."""

    index: Index
    actual: Any
    expected: Any
    absdiff: float
    reldiff: float

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self)


@dataclass(frozen=True)
class NonFinite:
    """NaN and Inf values on one side of a comparison, and where each first appears."""

    nan_count: int = 0
    first_nan_index: Index | None = None
    inf_count: int = 0
    first_inf_index: Index | None = None

    def __bool__(self) -> bool:
        return bool(self.nan_count or self.inf_count)

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self)


@dataclass(frozen=True, kw_only=True)
class OutputResult:
    """Base of every per-output result: the output, the verdict and why it failed early.

    ``reason`` is set when the output could not be compared as asked (shapes differ, or
    dtypes differ with ``check_dtypes=True``); the metrics are then absent or only shown.
    """

    kind: ClassVar[str] = "output"

    name: str
    passed: bool
    actual_dtype: str
    expected_dtype: str
    actual_shape: Index
    expected_shape: Index
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **_plain_fields(self)}

    def report(self) -> str:
        """This output's part of a failure report."""
        from pytest_polygraphy.compare.report import format_output

        return "\n".join(format_output(self))


@dataclass(frozen=True, kw_only=True)
class OutputCompareResult(OutputResult):
    """Result of ``CompareFunc.simple`` for one output.

    The ``*_absdiff``/``*_reldiff`` statistics follow Polygraphy: a NaN difference anywhere
    makes them NaN, and they are None when the output was not compared (shape mismatch).
    Medians and quantiles named in ``approximate`` come from a histogram, as
    ``approximation`` says: within 0.4 % (relative) of the exact value, or of the value of
    a 1-in-16 random sample for outputs of more than 2**18 elements. They are exact when
    ``check_error_stat`` is "median" or "quantile". ``required_atol``/``required_rtol``
    are the smallest tolerances that pass when used alone (the other one set to 0); None
    when no value does (a NaN difference).
    """

    kind: ClassVar[str] = "simple"

    rule: str
    rtol: float
    atol: float
    check_error_stat: str
    error_quantile: float
    compared_dtype: str | None = None
    total: int = 0
    mismatch_count: int = 0
    first_mismatch_index: Index | None = None
    max_absdiff: float | None = None
    max_reldiff: float | None = None
    mean_absdiff: float | None = None
    mean_reldiff: float | None = None
    median_absdiff: float | None = None
    median_reldiff: float | None = None
    quantile_absdiff: float | None = None
    quantile_reldiff: float | None = None
    approximate: tuple[str, ...] = ()
    approximation: str | None = None
    nan_absdiff_count: int = 0
    nan_reldiff_count: int = 0
    worst_abs: ElementDiff | None = None
    worst_rel: ElementDiff | None = None
    worst_elements: tuple[ElementDiff, ...] = ()
    actual_nonfinite: NonFinite = NonFinite()
    expected_nonfinite: NonFinite = NonFinite()
    required_atol: float | None = None
    required_rtol: float | None = None

    @property
    def mismatch_fraction(self) -> float:
        return self.mismatch_count / self.total if self.total else 0.0

    @property
    def compared(self) -> bool:
        """Whether the values were compared at all (not stopped by a shape mismatch)."""
        return self.max_absdiff is not None


@dataclass(frozen=True)
class IndexMismatch:
    """An index value of ``actual`` that ``expected`` lacks or holds too far away."""

    batch: Index
    position: int
    value: Any
    expected_position: int | None  # None: not found in the expected batch

    def to_dict(self) -> dict[str, Any]:
        return _plain_fields(self)


@dataclass(frozen=True, kw_only=True)
class IndicesResult(OutputResult):
    """Result of ``CompareFunc.indices`` for one output (e.g. Top-K indices)."""

    kind: ClassVar[str] = "indices"

    index_tolerance: int
    total: int = 0
    mismatch_count: int = 0
    failed_batches: int = 0
    first_mismatch: IndexMismatch | None = None


@dataclass(frozen=True, kw_only=True)
class DistanceResult(OutputResult):
    """Result of ``CompareFunc.distance_metrics`` for one output."""

    kind: ClassVar[str] = "distance_metrics"

    l2_tolerance: float
    cosine_similarity_threshold: float
    l2_norm: float | None = None
    cosine_similarity: float | None = None


@dataclass(frozen=True, kw_only=True)
class QualityResult(OutputResult):
    """Result of ``CompareFunc.quality_metrics`` for one output (dB)."""

    kind: ClassVar[str] = "quality_metrics"

    psnr_tolerance: float
    snr_tolerance: float
    psnr: float | None = None
    snr: float | None = None


class CompareResult(Mapping[str, OutputResult]):
    """Results of one comparison, by output name, in comparison order.

    ``bool(result)`` is True when every compared output passed; ``result.failed`` lists
    the outputs that did not; ``result.report()`` is the human-readable failure report.
    """

    def __init__(self, outputs: Mapping[str, OutputResult], compare: str) -> None:
        self._outputs = dict(outputs)
        self.compare = compare
        """How the comparison was made, e.g. ``simple(rtol=1e-05, ...)``."""

    def __getitem__(self, name: str) -> OutputResult:
        return self._outputs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._outputs)

    def __len__(self) -> int:
        return len(self._outputs)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self._outputs.values())

    @property
    def failed(self) -> list[str]:
        return [name for name, result in self._outputs.items() if not result.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "compare": self.compare,
            "outputs": {name: result.to_dict() for name, result in self._outputs.items()},
        }

    def report(self) -> str:
        from pytest_polygraphy.compare.report import format_result

        return format_result(self)

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"failed {self.failed}"
        return f"<CompareResult {self.compare}: {len(self)} outputs, {verdict}>"


def is_finite_number(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
