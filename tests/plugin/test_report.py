"""The accuracy table, junitxml properties and record collection, with and without xdist."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from pytest_polygraphy.plugin import table
from pytest_polygraphy.plugin.report import junit_properties
from pytest_polygraphy.plugin.table import aggregate, format_table

# A conftest for pytester runs: registers the report and xdist plugins (and stand-ins for the
# two options) unless the plugin entry point already did; shared with the other report tests.
PYTESTER_CONFTEST = """
import pytest
from pytest_polygraphy.plugin.report import ReportPlugin
from pytest_polygraphy.plugin.xdist import XdistPlugin

STAND_INS = (("--polygraphy-report", "polygraphy_report"), ("--polygraphy-gpus", "polygraphy_gpus"))


def pytest_addoption(parser):
    group = parser.getgroup("polygraphy")
    for flag, dest in STAND_INS:
        try:
            group.addoption(flag, dest=dest, default=None)
        except ValueError:  # the plugin registered it
            continue
        parser.addini(dest, "stand-in", type="string")


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    for name, plugin in (("polygraphy-report", ReportPlugin), ("polygraphy-xdist", XdistPlugin)):
        if not config.pluginmanager.has_plugin(name):
            config.pluginmanager.register(plugin(config), name)
"""

# Test code that writes records as the plugin does (record_property appends to
# user_properties exactly like the plugin's comparisons).
RECORDING_TESTS = """
import pytest


def record(request, output, absdiff, passed, iteration=0):
    return {"test": request.node.nodeid, "output": output, "actual": "onnxrt",
            "reference": "onnxref", "iteration": iteration, "precision": "fp16",
            "max_absdiff": absdiff, "max_reldiff": 2 * absdiff,
            "mismatch_count": 0 if passed else 7, "total": 64, "rtol": 1e-3, "atol": 1e-4,
            "rule": "polygraphy", "passed": passed}


@pytest.mark.parametrize("case", range(4))
def test_close(case, request, record_property):
    for iteration in range(2):
        absdiff = 1e-5 * (case + 1) * (iteration + 1)
        record_property("polygraphy_compare", record(request, "y", absdiff, True, iteration))


def test_far(request, record_property):
    record_property("polygraphy_compare", record(request, "boxes", 0.25, False))
    record_property("polygraphy_compare", record(request, "scores", 1e-6, True))
    record_property("note", "kept")
    pytest.fail("outputs differ")


def test_without_records():
    pass
"""

MODES = [pytest.param([], id="serial"), pytest.param(["-n", "2"], id="xdist")]


def make_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "test": "t.py::test_a",
        "output": "y",
        "actual": "trt",
        "reference": "onnxref",
        "iteration": 0,
        "precision": "fp16",
        "max_absdiff": 1e-4,
        "max_reldiff": 1e-3,
        "mismatch_count": 0,
        "total": 10,
        "rtol": 1e-3,
        "atol": 1e-3,
        "rule": "polygraphy",
        "passed": True,
    }
    record.update(overrides)
    return record


def table_rows(outlines: list[str]) -> tuple[str, list[list[str]]]:
    """The title and the cell rows of the accuracy table in a run's output, each row with
    its test id put back as the second cell (the table prints it once per test)."""
    start = next(i for i, line in enumerate(outlines) if "polygraphy accuracy:" in line)
    return untable(outlines[start:])


def untable(lines: list[str]) -> tuple[str, list[list[str]]]:
    """``table_rows`` of a title line followed by the table's lines."""
    rows = []
    test = ""
    for line in lines[1:]:
        if re.match(r"=|polygraphy report:|\d+ (passed|failed)|\.\.\. and", line):
            break
        cells = re.split(r"\s{2,}", line.strip())
        if not line.startswith(" "):
            test = line.split(" ", 1)[1]
            continue
        rows.append([cells[0], "test" if not rows else test, *cells[1:]])
    return lines[0], rows


# ----------------------------------------------------------------------------- pure parts


def test_iterations_fold_into_their_worst_case() -> None:
    rows = aggregate(
        [
            make_record(iteration=0, max_absdiff=1e-4, max_reldiff=5e-3, mismatch_count=0),
            make_record(iteration=1, max_absdiff=3e-4, max_reldiff=1e-3, mismatch_count=2),
            make_record(iteration=2, max_absdiff=2e-4, passed=False, mismatch_count=1),
        ]
    )
    assert len(rows) == 1
    row = rows[0]
    assert (row.max_absdiff, row.max_reldiff) == (3e-4, 5e-3)
    assert (row.mismatch_count, row.total, row.iterations) == (3, 30, 3)
    assert row.passed is False
    assert row.backends == "trt vs onnxref"


def test_nan_is_the_worst_error_and_missing_metrics_stay_missing() -> None:
    (row,) = aggregate(
        [
            make_record(max_absdiff=float("nan"), max_reldiff=None),
            make_record(iteration=1, max_absdiff=5.0, max_reldiff=None),
        ]
    )
    assert math.isnan(row.max_absdiff)
    assert row.max_reldiff is None
    assert table.format_number(row.max_reldiff) == "-"


def test_rows_follow_collection_order_when_known() -> None:
    records = [make_record(test="t.py::b"), make_record(test="t.py::a")]
    assert [row.test for row in aggregate(records)] == ["t.py::b", "t.py::a"]
    order = {"t.py::a": 0, "t.py::b": 1}
    assert [row.test for row in aggregate(records, order)] == ["t.py::a", "t.py::b"]


def test_small_table_lists_every_row_failing_first() -> None:
    records = [make_record(test=f"t.py::test_{i}", passed=i != 2) for i in range(4)]
    lines = format_table(aggregate(records))
    assert [failing for _, failing in lines] == [False, True, True] + [False] * 6
    assert lines[1][0] == "FAIL t.py::test_2"
    assert lines[2][0].startswith("  FAIL     y  ")
    assert [line for line, _ in lines[3::2]] == [f"ok t.py::test_{i}" for i in (0, 1, 3)]
    assert all(len(line) == len(line.rstrip()) for line, _ in lines)


def test_big_table_shows_failures_and_counts_the_rest() -> None:
    count = table.SMALL_TABLE_ROWS + 5
    records = [make_record(test=f"t.py::test_{i}", passed=i % 10 != 3) for i in range(count)]
    lines = [line for line, _ in format_table(aggregate(records))]
    assert [line for line in lines[1:-1] if not line.startswith(" ")] == [
        "FAIL t.py::test_3",
        "FAIL t.py::test_13",
        "FAIL t.py::test_23",
    ]
    assert lines[-1] == f"... and {count - 3} passing outputs not listed (-v lists all)"
    assert len(format_table(aggregate(records), verbosity=1)) == 2 * count + 1


def test_failing_rows_are_capped_when_not_verbose(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(table, "MAX_FAILING_ROWS", 2)
    records = [make_record(test=f"t.py::test_{i}", passed=False) for i in range(30)]
    lines = [line for line, _ in format_table(aggregate(records))]
    assert len(lines) == 1 + 2 * 2 + 1
    assert lines[-1] == "... and 28 failing outputs not listed (-v lists all)"


def test_long_test_ids_keep_file_name_and_parameters() -> None:
    folder = "tests/" + "deep/" * 20
    tests = [
        f"{folder}ch_PP-OCRv4_{kind}_infer.onnx::accuracy[fp16-x=1x3x48x192]"
        for kind in ("det", "rec")
    ]
    rows = aggregate([make_record(test=test) for test in tests])
    heads = [line for line, _ in format_table(rows, width=80) if not line.startswith(" ")]
    for head, kind in zip(heads, ("det", "rec"), strict=True):
        assert head.startswith("ok ...")
        assert head.endswith(f"/ch_PP-OCRv4_{kind}_infer.onnx::accuracy[fp16-x=1x3x48x192]")
        assert len(head) == 80
    # Too narrow for even the file name and parameters: kept whole, never cut.
    narrow = [line for line, _ in format_table(rows, width=40) if not line.startswith(" ")]
    assert narrow[0] == "ok .../ch_PP-OCRv4_det_infer.onnx::accuracy[fp16-x=1x3x48x192]"
    assert [line for line, _ in format_table(rows, verbosity=2, width=40)][1] == f"ok {tests[0]}"


def test_table_fits_the_terminal_width_and_groups_rows_by_test() -> None:
    long_output = "save_infer_model/" * 6 + "scale_0.tmp_1"
    records = [
        make_record(test="t.py::test_a", output=long_output),
        make_record(test="t.py::test_b", output="y", passed=False),
        make_record(test="t.py::test_a", output="z"),
    ]
    wide = format_table(aggregate(records), width=250)
    assert [line for line, _ in wide if not line.startswith(" ")] == [
        "FAIL t.py::test_b",
        "ok t.py::test_a",
    ]
    assert any(long_output in line for line, _ in wide)
    narrow = format_table(aggregate(records), width=120)
    assert all(len(line) <= 120 for line, _ in narrow)
    shortened = next(line for line, _ in narrow if "..." in line)
    assert "scale_0.tmp_1" in shortened


def test_junit_properties_are_flat_and_worst_case() -> None:
    properties = dict(
        junit_properties(
            [
                make_record(output="boxes.0", max_absdiff=0.5, passed=False),
                make_record(output="boxes.0", iteration=1, max_absdiff=0.7, max_reldiff=None),
            ]
        )
    )
    prefix = "polygraphy.boxes.0.trt_vs_onnxref."
    assert properties[prefix + "max_absdiff"] == 0.7
    assert properties[prefix + "passed"] is False
    assert properties[prefix + "total"] == 20
    assert prefix + "max_reldiff" in properties  # 1e-3 from the first iteration


def test_junit_names_carry_the_precision_only_when_needed() -> None:
    names = {
        name.rsplit(".", 1)[0]
        for name, _ in junit_properties(
            [
                make_record(precision="fp16"),
                make_record(precision="int8"),
                make_record(actual="ort"),
            ]
        )
    }
    assert names == {
        "polygraphy.y.trt_vs_onnxref.fp16",
        "polygraphy.y.trt_vs_onnxref.int8",
        "polygraphy.y.ort_vs_onnxref",
    }


# ----------------------------------------------------------------------------- pytester runs


@pytest.mark.parametrize("mode", MODES)
def test_records_reach_table_and_junitxml(pytester: pytest.Pytester, mode: list[str]) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile(test_models=RECORDING_TESTS)
    result = pytester.runpytest(*mode, "-o", "junit_family=xunit1", "--junitxml=out.xml")
    result.assert_outcomes(passed=5, failed=1)

    title, rows = table_rows(result.outlines)
    assert "5 passed, 1 failed compared outputs" in title
    lines = result.outlines
    assert lines.index(title) > next(i for i, x in enumerate(lines) if "short test summary" in x)
    assert rows[0][:4] == ["verdict", "test", "output", "backends"]
    assert rows[1][:6] == [
        "FAIL",
        "test_models.py::test_far",
        "boxes",
        "onnxrt vs onnxref",
        "fp16",
        "0.25",
    ]
    assert rows[1][-1] == "7/64"
    # The failing test's passing output stays with it; the rest pass, in collection order
    # whatever the worker finishing order.
    assert [row[:3] for row in rows[2:]] == [
        ["ok", "test_models.py::test_far", "scores"],
        ["ok", "test_models.py::test_close[0]", "y"],
        ["ok", "test_models.py::test_close[1]", "y"],
        ["ok", "test_models.py::test_close[2]", "y"],
        ["ok", "test_models.py::test_close[3]", "y"],
    ]
    worst = [row[5] for row in rows[3:7]]
    assert worst == [table.format_number(2e-5 * (case + 1)) for case in range(4)]
    assert all(row[-1] == "0/128" for row in rows[3:7])

    cases = {
        case.get("name"): case for case in ET.parse(pytester.path / "out.xml").iter("testcase")
    }
    far = {p.get("name"): p.get("value") for p in cases["test_far"].iter("property")}
    assert far == {
        "note": "kept",
        **{
            f"polygraphy.{output}.onnxrt_vs_onnxref.{metric}": value
            for output, absdiff, passed, mismatches in (
                ("boxes", 0.25, "False", "7"),
                ("scores", 1e-6, "True", "0"),
            )
            for metric, value in (
                ("passed", passed),
                ("precision", "fp16"),
                ("max_absdiff", str(absdiff)),
                ("max_reldiff", str(2 * absdiff)),
                ("mismatch_count", mismatches),
                ("total", "64"),
                ("rtol", "0.001"),
                ("atol", "0.0001"),
                ("rule", "polygraphy"),
            )
        },
    }
    close = {p.get("name"): p.get("value") for p in cases["test_close[3]"].iter("property")}
    assert close["polygraphy.y.onnxrt_vs_onnxref.max_absdiff"] == str(8e-5)
    assert not any(
        "polygraphy_compare" in name
        for case in cases.values()
        for name in (p.get("name") for p in case.iter("property"))
    )


def test_no_table_without_records(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile("def test_plain(record_property):\n    record_property('x', 1)\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert "polygraphy accuracy" not in result.stdout.str()


def test_quiet_run_still_shows_failing_rows(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile(test_models=RECORDING_TESTS)
    result = pytester.runpytest("-q")
    _, rows = table_rows(result.outlines)
    assert rows[1][0] == "FAIL"
    assert len(rows) == 1 + 6


def test_report_and_xdist_modules_import_nothing_heavy() -> None:
    code = (
        "import sys\n"
        "import pytest_polygraphy.plugin.report, pytest_polygraphy.plugin.xdist\n"
        "heavy = ('numpy', 'onnx', 'onnxruntime', 'tensorrt', 'matplotlib')\n"
        "print(sorted(name for name in heavy if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_an_error_over_its_tolerance_never_prints_equal_to_it() -> None:
    from pytest_polygraphy.plugin.table import format_error

    assert format_error(0.00100106, 0.001) == "0.001001"
    assert format_error(0.0009999, 0.001) == "0.0009999"
    assert format_error(0.0123, 0.001) == "0.0123"  # three digits when they tell apart
    assert format_error(0.001, 0.001) == "0.001"
    assert format_error(float("nan"), 0.001) == "nan"
    assert format_error(None, 0.001) == "-"


def test_table_uses_the_terminal_width(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    folder = "models/" + "paddle/" * 12
    pytester.makepyfile(
        test_models=f"""
import pytest

@pytest.mark.parametrize("kind", ["det", "rec"])
def test_model(kind, record_property):
    test = "{folder}ch_PP-OCRv4_" + kind + "_infer.onnx::accuracy[fp16-x=1x3x48x192]"
    record_property("polygraphy_compare", {{"test": test, "output": "out", "actual": "onnxrt",
        "reference": "onnxref", "precision": "fp16", "max_absdiff": 1e-3, "max_reldiff": 1e-3,
        "mismatch_count": 1, "total": 9, "rtol": 1e-4, "atol": 1e-4, "passed": False}})
"""
    )
    for columns in (100, 250):
        monkeypatch.setenv("COLUMNS", str(columns))
        result = pytester.runpytest()
        start = next(i for i, x in enumerate(result.outlines) if "polygraphy accuracy:" in x)
        heads = [x for x in result.outlines[start + 1 : start + 6] if x.startswith("FAIL ")]
        assert [h.split("/")[-1] for h in heads] == [
            f"ch_PP-OCRv4_{kind}_infer.onnx::accuracy[fp16-x=1x3x48x192]" for kind in ("det", "rec")
        ]
        assert all(len(h) <= columns for h in heads)
        assert ("..." in heads[0]) == (columns == 100)
