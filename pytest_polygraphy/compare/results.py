"""What a comparison found: one result per output, their collection, and their reports.

Every result is immutable, ``bool()`` gives its verdict, and ``to_dict()`` gives plain
Python values (lists, floats, ints, str, None) that ``json.dumps`` accepts; NaN and
infinite metrics stay floats (``json.dumps`` writes them as ``NaN``/``Infinity``, as
Polygraphy's JSON does).

Reports (``report()``) are in the spirit of torch.testing: a failing output gets its
names, dtypes, shapes, rule and tolerances, the mismatch count, where the worst differences
are with both values, the summary statistics, non-finite values and where they first
appear, a short table of the worst elements, and the tolerances that would have passed. A
passing output gets one line.
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
        return format_result(self)

    def __repr__(self) -> str:
        verdict = "passed" if self.passed else f"failed {self.failed}"
        return f"<CompareResult {self.compare}: {len(self)} outputs, {verdict}>"


def is_finite_number(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# Reports

INDENT = "  "


def format_result(result: CompareResult) -> str:
    """The whole report: a header, each failing output in full, then the passing ones."""
    failed = result.failed
    if failed:
        names = ", ".join(repr(name) for name in failed)
        header = f"Outputs are not close: {len(failed)} of {len(result)} failed ({names})"
    else:
        header = f"All {len(result)} outputs are close"
    lines = [header, f"Comparison: {result.compare}"]
    for name in failed:
        lines.append("")
        lines.extend(format_output(result[name]))
    passed = [result[name] for name in result if result[name].passed]
    if passed:
        lines.append("")
        lines.extend(summary_line(output) for output in passed)
    return "\n".join(lines)


def format_output(output: OutputResult) -> list[str]:
    """The full report lines of one output (passing or failing)."""
    verdict = "passed" if output.passed else "FAILED"
    lines = [f"Output {output.name!r} {verdict}"]
    body = [_dtypes(output), _shapes(output)]
    if output.reason:
        body.append(f"Reason: {output.reason}")
    if isinstance(output, OutputCompareResult):
        body.extend(_simple(output))
    elif isinstance(output, IndicesResult):
        body.extend(_indices(output))
    elif isinstance(output, DistanceResult):
        body.extend(_distance(output))
    elif isinstance(output, QualityResult):
        body.extend(_quality(output))
    return lines + [INDENT + line for line in body]


def summary_line(output: OutputResult) -> str:
    """One line for an output, e.g. the passing ones at the end of a report."""
    verdict = "passed" if output.passed else "FAILED"
    detail = ""
    if isinstance(output, OutputCompareResult) and output.compared:
        detail = (
            f": max absdiff {num(output.max_absdiff)}, max reldiff {num(output.max_reldiff)}"
            f" (rtol={num(output.rtol)}, atol={num(output.atol)})"
        )
    elif isinstance(output, IndicesResult):
        detail = f": {output.mismatch_count} / {output.total} values moved too far"
    elif isinstance(output, DistanceResult) and output.l2_norm is not None:
        detail = f": L2 {num(output.l2_norm)}, cosine {num(output.cosine_similarity)}"
    elif isinstance(output, QualityResult) and output.psnr is not None:
        detail = f": PSNR {num(output.psnr)} dB, SNR {num(output.snr)} dB"
    return f"Output {output.name!r} {verdict}{detail}"


def num(value: Any) -> str:
    """A compact number: ints and bools as they are, floats to 6 significant digits."""
    if value is None:
        return "n/a"
    if isinstance(value, (bool, int)):
        return repr(value)
    return f"{value:.6g}"


def _dtypes(output: OutputResult) -> str:
    line = f"dtype: actual {output.actual_dtype}, expected {output.expected_dtype}"
    compared = getattr(output, "compared_dtype", None)
    if compared and (compared != output.actual_dtype or compared != output.expected_dtype):
        line += f" (compared as {compared})"
    return line


def _shapes(output: OutputResult) -> str:
    if output.actual_shape == output.expected_shape:
        return f"shape: {output.actual_shape}"
    return f"shape: actual {output.actual_shape}, expected {output.expected_shape}"


def _simple(output: OutputCompareResult) -> list[str]:
    if output.rule == "allclose":
        rule = "fail where |actual - expected| > atol + rtol * |expected| (allclose)"
    else:
        rule = "fail where |actual - expected| > atol and |actual - expected| / |expected| > rtol"
    lines = [
        f"Rule: {rule}; rtol={num(output.rtol)}, atol={num(output.atol)}, "
        f"check_error_stat={output.check_error_stat}"
    ]
    if not output.compared:
        return lines
    percent = 100 * output.mismatch_fraction
    mismatched = f"Mismatched elements: {output.mismatch_count} / {output.total} ({percent:.3g}%)"
    if output.first_mismatch_index is not None:
        mismatched += f", first at index {output.first_mismatch_index}"
    lines.append(mismatched)
    if output.check_error_stat != "elemwise":
        lines.append(_statistic_verdict(output))
    for label, element, diff in (
        ("absolute", output.worst_abs, "absdiff"),
        ("relative", output.worst_rel, "reldiff"),
    ):
        if element is not None:
            lines.append(
                f"Greatest {label} difference: {num(getattr(element, diff))} at index "
                f"{element.index} (actual {num(element.actual)}, expected {num(element.expected)})"
            )
    lines.extend(_statistics(output))
    lines.extend(_non_finite(output))
    if output.worst_elements:
        lines.append("Worst mismatched elements (by absolute difference):")
        lines.extend(INDENT + row for row in _table(output.worst_elements))
    lines.append(_would_pass(output))
    return lines


def _statistic_verdict(output: OutputCompareResult) -> str:
    stat = output.check_error_stat
    label = f"{num(output.error_quantile)}-quantile" if stat == "quantile" else stat
    absolute = getattr(output, f"{stat}_absdiff")
    relative = getattr(output, f"{stat}_reldiff")
    return (
        f"Checked statistic: {label} absdiff {num(absolute)} vs atol {num(output.atol)}, "
        f"{label} reldiff {num(relative)} vs rtol {num(output.rtol)} "
        "(fails when both exceed)"
    )


def _statistics(output: OutputCompareResult) -> list[str]:
    approximate = {field for field in output.approximate if not math.isnan(getattr(output, field))}
    quantile = f"p{num(100 * output.error_quantile)}"

    def value(field: str) -> str:
        mark = "~" if field in approximate else ""
        return mark + num(getattr(output, field))

    lines = []
    for side in ("absdiff", "reldiff"):
        lines.append(
            f"{side}: max {value('max_' + side)}, mean {value('mean_' + side)}, "
            f"median {value('median_' + side)}, {quantile} {value('quantile_' + side)}"
        )
    if approximate:
        lines.append(f"(~ approximate: {output.approximation})")
    if output.nan_absdiff_count or output.nan_reldiff_count:
        lines.append(
            f"NaN differences: {output.nan_absdiff_count} absdiff, "
            f"{output.nan_reldiff_count} reldiff (they make these statistics NaN)"
        )
    return lines


def _non_finite(output: OutputCompareResult) -> list[str]:
    if not output.actual_nonfinite and not output.expected_nonfinite:
        return []
    parts = [
        f"{side} {_describe_non_finite(values)}"
        for side, values in (
            ("actual", output.actual_nonfinite),
            ("expected", output.expected_nonfinite),
        )
    ]
    return ["Non-finite values: " + "; ".join(parts)]


def _describe_non_finite(values: NonFinite) -> str:
    if not values:
        return "has none"
    parts = []
    if values.nan_count:
        parts.append(f"{values.nan_count} NaN (first at {values.first_nan_index})")
    if values.inf_count:
        parts.append(f"{values.inf_count} Inf (first at {values.first_inf_index})")
    return "has " + ", ".join(parts)


def _table(elements: tuple[ElementDiff, ...]) -> list[str]:
    header = ("index", "actual", "expected", "absdiff", "reldiff")
    rows = [
        (str(e.index), num(e.actual), num(e.expected), num(e.absdiff), num(e.reldiff))
        for e in elements
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in [header, *rows]
    ]


def _would_pass(output: OutputCompareResult) -> str:
    def tolerance(name: str, value: float | None) -> str:
        if value is None or math.isinf(value):
            return f"no {name} (non-finite differences)"
        return f"{name}={num(value)}"

    return (
        f"Smallest tolerance that passes alone: {tolerance('atol', output.required_atol)} "
        f"with rtol=0, or {tolerance('rtol', output.required_rtol)} with atol=0"
    )


def _indices(output: IndicesResult) -> list[str]:
    lines = [f"index_tolerance={output.index_tolerance}"]
    if output.reason:
        return lines
    percent = 100 * output.mismatch_count / output.total if output.total else 0.0
    lines.append(
        f"Mismatched values: {output.mismatch_count} / {output.total} ({percent:.3g}%) "
        f"in {output.failed_batches} batches"
    )
    first = output.first_mismatch
    if first is not None:
        where = (
            f"expected holds it at position {first.expected_position}"
            if first.expected_position is not None
            else "expected does not hold it"
        )
        lines.append(
            f"First mismatch: batch {first.batch}, position {first.position}: "
            f"actual value {num(first.value)}, {where}"
        )
    return lines


def _check(label: str, value: float | None, limit: float, higher_is_better: bool, unit: str) -> str:
    if value is None:
        return f"{label}: not computed"
    ok = value >= limit if higher_is_better else value <= limit
    bound = "min required" if higher_is_better else "tolerance"
    verdict = "ok" if ok else "FAILED"
    return f"{label}: {num(value)}{unit} ({bound} {num(limit)}{unit}) {verdict}"


def _distance(output: DistanceResult) -> list[str]:
    return [
        _check("L2 norm", output.l2_norm, output.l2_tolerance, False, ""),
        _check(
            "Cosine similarity",
            output.cosine_similarity,
            output.cosine_similarity_threshold,
            True,
            "",
        ),
    ]


def _quality(output: QualityResult) -> list[str]:
    return [
        _check("PSNR", output.psnr, output.psnr_tolerance, True, " dB"),
        _check("SNR", output.snr, output.snr_tolerance, True, " dB"),
    ]
