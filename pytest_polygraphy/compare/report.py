"""Human-readable reports of comparison results, in the spirit of torch.testing.

A failing output gets its names, dtypes, shapes, rule and tolerances, the mismatch count,
where the worst differences are with both values, the summary statistics, non-finite
values and where they first appear, a short table of the worst elements, and the
tolerances that would have passed. A passing output gets one line.
"""

from __future__ import annotations

import math
from typing import Any

from pytest_polygraphy.compare.results import (
    CompareResult,
    DistanceResult,
    ElementDiff,
    IndicesResult,
    NonFinite,
    OutputCompareResult,
    OutputResult,
    QualityResult,
)

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
