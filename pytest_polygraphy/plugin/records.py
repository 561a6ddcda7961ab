"""The record of one compared output, as the plugin hands it to the reports.

Every comparison the plugin makes (model-file tests, the ``accuracy`` and ``golden``
fixtures) appends ``(COMPARE_PROPERTY, record)`` to the test item's ``user_properties``,
one record per (output, backend pair, iteration). user_properties travel from xdist
workers to the controller with the test reports, where the reports (``report.py``) read
them. A record is a flat JSON-serializable dict::

    {"test": "tests/test_x.py::test_y[fp16]", "output": "logits",
     "actual": "onnxrt[fp16]", "reference": "onnxref", "iteration": 0,
     "precision": "fp16", "max_absdiff": 0.0012, "max_reldiff": 0.004,
     "mismatch_count": 0, "total": 1000, "rtol": 0.001, "atol": 0.001,
     "rule": "polygraphy", "passed": True}

Metrics a compare function does not compute (``indices`` has no ``max_reldiff``) are
``None``; a NaN metric stays a float NaN. Stdlib only.
"""

from __future__ import annotations

from typing import Any

import pytest

COMPARE_PROPERTY = "polygraphy_compare"
#: A debug session's result (``ReduceResult.to_dict()``), on the failed test's call report.
DEBUG_PROPERTY = "polygraphy_debug"
#: Under ``--polygraphy-mark-all``: the first divergence and the table of every compared
#: tensor of one backend under test (``divergence``), on the test's user_properties.
DIVERGENCE_PROPERTY = "polygraphy_divergence"
#: True on ``config.stash`` while a debug session re-runs a test: its comparisons are
#: the session's business, so they are neither recorded nor drawn.
DEBUG_CHECK_RUNNING = pytest.StashKey[bool]()

#: ``(TRT_PRECISIONS_PROPERTY, {"runner", "summary", "ignored", "unverified", "honoured"})``:
#: what a TensorRT runner's engine inspector says of the test's requested layer
#: precisions (``keep_fp32``, ``layer_precisions``), one per runner that was asked any;
#: shown as the test's "polygraphy TensorRT precisions" report section.
TRT_PRECISIONS_PROPERTY = "polygraphy_trt_precisions"

#: ``(SOURCES_PROPERTY, {setting: source})``: where each of a test's settings came from
#: (``AccuracySettings.sources``), appended once per resolved test; ``pytest -v`` lists it.
SOURCES_PROPERTY = "polygraphy_settings_sources"


def _metric(result: Any, name: str, kind: type) -> Any:
    value = getattr(result, name, None)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError, OverflowError):
        return None


def compare_record(
    nodeid: str,
    output_result: Any,
    *,
    actual: str,
    reference: str,
    iteration: int,
    precision: str,
    rtol: float | None,
    atol: float | None,
    rule: str,
) -> dict[str, Any]:
    """The record of one output's comparison (see the module docstring).

    Args:
        nodeid: the test's node id.
        output_result: an ``OutputCompareResult`` (its ``name``, ``passed`` and metrics).
        actual: name of the runner under test, e.g. ``"onnxrt[fp16]"``.
        reference: name of the runner (or ``"golden"``) it was compared with.
        iteration: index of the input (inference) the outputs belong to.
        precision: precision the runner under test ran at.
        rtol, atol: the tolerances that applied to this output (``None`` for compare
            functions without them).
        rule: how the tolerances combine (``"polygraphy"``, ``"allclose"``) or the name of
            the compare function when it is not ``simple``.
    """
    return {
        "test": nodeid,
        "output": str(output_result.name),
        "actual": actual,
        "reference": reference,
        "iteration": int(iteration),
        "precision": precision,
        "max_absdiff": _metric(output_result, "max_absdiff", float),
        "max_reldiff": _metric(output_result, "max_reldiff", float),
        "mismatch_count": _metric(output_result, "mismatch_count", int),
        "total": _metric(output_result, "total", int),
        "rtol": None if rtol is None else float(rtol),
        "atol": None if atol is None else float(atol),
        "rule": rule,
        "passed": bool(output_result.passed),
    }
