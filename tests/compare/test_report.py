"""The failure report says what failed, where, by how much, and what would pass."""

from __future__ import annotations

import numpy as np

from pytest_polygraphy.compare import CompareFunc


def failing_pair() -> tuple[dict, dict]:
    expected = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    actual = expected.copy()
    actual[0, 1, 1] += 0.25
    actual[1, 0, 2] -= 0.5
    actual[1, 2, 3] = np.nan
    return (
        {"logits": actual, "ok": np.ones(3, np.float32)},
        {"logits": expected, "ok": np.ones(3, np.float32)},
    )


def test_report_of_a_failing_output() -> None:
    actual, expected = failing_pair()
    result = CompareFunc.simple(rtol=1e-3, atol=1e-3)(actual, expected)
    report = result.report()
    lines = report.splitlines()
    assert lines[0] == "Outputs are not close: 1 of 2 failed ('logits')"
    assert lines[1].startswith("Comparison: simple(rtol=0.001, atol=0.001")
    assert "Output 'logits' FAILED" in lines
    assert "  dtype: actual float32, expected float32" in lines
    assert "  shape: (2, 3, 4)" in lines
    assert "  Mismatched elements: 3 / 24 (12.5%), first at index (0, 1, 1)" in lines
    worst = result["logits"].worst_abs
    assert worst is not None and worst.index == (1, 0, 2)
    assert (
        f"  Greatest absolute difference: 0.5 at index (1, 0, 2) "
        f"(actual {worst.actual:.6g}, expected {worst.expected:.6g})"
    ) in lines
    assert any(line.startswith("  Greatest relative difference:") for line in lines)
    assert "  absdiff: max nan, mean nan, median nan, p99 nan" in lines
    assert "  Non-finite values: actual has 1 NaN (first at (1, 2, 3)); expected has none" in lines
    table = lines.index("  Worst mismatched elements (by absolute difference):")
    assert lines[table + 1].split() == ["index", "actual", "expected", "absdiff", "reldiff"]
    assert lines[table + 2].split()[:3] == ["(1,", "2,", "3)"]  # NaN ranks first
    assert lines[table + 3].split()[:3] == ["(1,", "0,", "2)"]
    assert "no atol (non-finite differences)" in lines[table + 5]
    assert lines[-1].startswith("Output 'ok' passed: max absdiff 0")


def test_report_names_the_tolerances_that_would_pass() -> None:
    expected = {"y": np.array([1.0, 2.0, 4.0])}
    actual = {"y": np.array([1.0, 2.5, 4.1])}
    result = CompareFunc.simple()(actual, expected)
    assert (
        "Smallest tolerance that passes alone: atol=0.5 with rtol=0, or rtol=0.25 with atol=0"
        in result.report()
    )
    assert CompareFunc.simple(atol=0.5, rtol=0)(actual, expected)
    assert CompareFunc.simple(rtol=0.25, atol=0)(actual, expected)


def test_report_marks_approximate_statistics() -> None:
    expected = {"y": np.linspace(1, 2, 1000)}
    actual = {"y": np.linspace(1, 2, 1000) * 1.01}
    report = CompareFunc.simple()(actual, expected).report()
    assert "median ~" in report and "approximate" in report
    exact = CompareFunc.simple(check_error_stat="median")(actual, expected).report()
    assert "median ~" not in exact
    assert "Checked statistic: median absdiff" in exact


def test_report_of_shape_and_dtype_failures() -> None:
    result = CompareFunc.simple(check_dtypes=True)(
        {"a": np.zeros((2, 3)), "b": np.zeros(2, np.float32)},
        {"a": np.zeros((3, 2)), "b": np.zeros(2, np.float64)},
    )
    report = result.report()
    assert "shape: actual (2, 3), expected (3, 2)" in report
    assert "Reason: shape mismatch: actual shape (2, 3) != expected shape (3, 2)" in report
    assert "Reason: dtype mismatch: actual float32 != expected float64" in report
    assert "compared as float64" in report


def test_reports_of_the_other_comparisons() -> None:
    indices = CompareFunc.indices()({"i": np.array([[0, 1, 2]])}, {"i": np.array([[0, 2, 1]])})
    assert (
        "First mismatch: batch (0,), position 1: actual value 1, expected holds it at position 2"
        in indices.report()
    )
    distance = CompareFunc.distance_metrics()({"x": np.ones(4)}, {"x": np.zeros(4)})
    assert "L2 norm: 2 (tolerance 1e-05) FAILED" in distance.report()
    assert "Cosine similarity: 0 (min required 0.997) FAILED" in distance.report()
    quality = CompareFunc.quality_metrics()({"x": np.ones(4)}, {"x": np.ones(4)})
    assert "Output 'x' passed: PSNR inf dB, SNR inf dB" in quality.report()
    assert quality["x"].report().splitlines()[0] == "Output 'x' passed"
