"""First divergence under --polygraphy-mark-all (``plugin/divergence.py``): every tensor
compared in topological order in memory-bounded batches, the earliest one over the
tolerance on the way to the failing output reported with its node, op and growth."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.compare import CompareFunc
from pytest_polygraphy.plugin import divergence
from pytest_polygraphy.plugin.divergence import GraphOrder, find, scan
from tests.plugin import harness

#: Inputs all 0, so that x, a and side are exact in fp16 and b = 1.1 is the first that is not.
EXACT = ["--polygraphy-val-range", "x:[0,0]"]


def chain_model() -> onnx.ModelProto:
    """``x[2,3]`` -> a = x + 1 -> b = a * 1.1 (first inexact in fp16) -> c = b * 3.3 -> y;
    a side branch ``s = x - 1`` feeds output ``side``, listed first in the file."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("side", "y")]
    consts = [
        numpy_helper.from_array(np.full([1], v, np.float32), n)
        for n, v in (("one", 1.0), ("k1", 1.1), ("k2", 3.3))
    ]
    nodes = [
        helper.make_node("Sub", ["x", "one"], ["side"], name="side_sub"),
        helper.make_node("Add", ["x", "one"], ["a"], name="add"),
        helper.make_node("Mul", ["a", "k1"], ["b"], name="scale_1"),
        helper.make_node("Mul", ["b", "k2"], ["c"], name="scale_2"),
        helper.make_node("Exp", ["c"], ["y"], name="exp"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], outs, consts),
        opset_imports=[helper.make_opsetid("", 17)],
    )
    model.ir_version = 9
    return model


def test_scan_compares_in_topological_order_in_bounded_batches() -> None:
    order = GraphOrder.of(chain_model())
    assert order.tensors == ["side", "a", "b", "c", "y"]
    rng = np.random.default_rng(0)
    values = {name: rng.normal(size=(64, 64)).astype(np.float32) for name in order.tensors}
    wrong = {**values, "b": values["b"] + 1, "c": values["c"] + 2, "y": values["y"] + 3}
    batches: list[list[str]] = []

    def expected(batch: Any) -> dict[str, np.ndarray]:
        batches.append(list(batch))
        return {name: values[name] for name in batch}

    one_tensor = 64 * 64 * 4
    table = scan(
        order, list(reversed(order.tensors)), expected,
        lambda batch: {name: wrong[name] for name in batch},
        CompareFunc.simple(rtol=1e-3, atol=1e-3), batch_bytes=2 * (2 * one_tensor),
    )  # fmt: skip
    assert [row.tensor for row in table] == order.tensors
    assert [row.passed for row in table] == [True, True, False, False, False]
    assert table[2].node == "scale_1" and table[2].op == "Mul"
    # The first batch is BATCH_START tensors at most; then two tensors of both sides fit.
    assert all(len(batch) <= 2 for batch in batches[1:])
    assert sum(len(batch) for batch in batches) == 5

    found = find(order, table, ["y"])
    assert found["first"]["tensor"] == "b"
    assert [row["tensor"] for row in found["path"]] == ["b", "c", "y"]
    text = divergence.summary(found, "x vs y, iteration 0", (1e-3, 1e-3))
    assert "3 of 5 compared tensors exceed the tolerance" in text
    assert "tensor 'b', made by node 'scale_1' (Mul)" in text


def test_the_first_divergence_is_on_the_path_to_the_failing_output() -> None:
    order = GraphOrder.of(chain_model())
    rows = [
        divergence.TensorError(i, name, "n", "Op", 1.0, 1.0, 1, 6, passed)
        for i, (name, passed) in enumerate(
            [("side", False), ("a", True), ("b", False), ("c", False), ("y", False)]
        )
    ]
    found = find(order, rows, ["y"])
    assert found["first"]["tensor"] == "b"
    assert found["earliest"]["tensor"] == "side"  # earlier, but y does not depend on it


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    harness.save(chain_model(), pytester.path / "chain.onnx")
    return pytester


def failure(result: pytest.RunResult) -> str:
    return result.stdout.str().split("= FAILURES =")[1].split("short test summary")[0]


def test_mark_all_reports_the_first_divergence_and_the_table_goes_to_the_report(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest(
        "chain.onnx", *EXACT, "--onnxref", "--polygraphy-precisions", "fp16",
        "--polygraphy-mark-all",
        "--polygraphy-rtol", "1e-5", "--polygraphy-atol", "1e-5", "--polygraphy-report", "r.html",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "(expected = onnxref at fp32, actual = onnxref[fp16])" in text
    assert "first divergence: tensor 'b', made by node 'scale_1' (Mul)" in text
    assert "growth along the path to output 'y' (3 tensors):" in text
    assert "--polygraphy-mark-all --polygraphy-precision" in text  # fp16: the precision session
    # The terminal table lists the model's outputs only; every tensor is in the report.
    table = result.stdout.str().split("polygraphy accuracy:")[1]
    assert " b " not in table and " y " in table
    data = json.loads((project.path / "r.json").read_text())
    [found] = data["divergences"]
    assert [row["tensor"] for row in found["tensors"]] == ["side", "a", "b", "c", "y"]
    assert found["first"]["node"] == "scale_1"
    page = (project.path / "r.html").read_text()
    assert "First divergence" in page and "scale_1" in page


def test_mark_all_fails_on_an_intermediate_even_when_the_outputs_pass(
    project: pytest.Pytester,
) -> None:
    result = project.runpytest(
        "chain.onnx", *EXACT, "--onnxref", "--polygraphy-precisions", "fp16",
        "--polygraphy-mark-all",
        "--polygraphy-rtol", "1e-5", "y:1", "--polygraphy-atol", "1e-5", "y:1",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "every model output passed, but" in text
    assert "first divergence: tensor 'b'" in text


def test_mark_all_against_a_golden_file_that_holds_intermediates(
    project: pytest.Pytester,
) -> None:
    base = ["chain.onnx", *EXACT, "--onnxref", "--polygraphy-reference", "golden",
            "--polygraphy-mark-all", "--polygraphy-precisions", "fp16"]  # fmt: skip
    project.runpytest(*base, "--polygraphy-update-golden").assert_outcomes(passed=1)
    result = project.runpytest(*base, "--polygraphy-rtol", "1e-5", "--polygraphy-atol", "1e-5")
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "expected = golden file" in text
    assert "first divergence: tensor 'b', made by node 'scale_1' (Mul)" in text


def test_mark_all_on_onnx_runtime_against_the_reference(project: pytest.Pytester) -> None:
    pytest.importorskip("onnxruntime")
    result = project.runpytest(
        "chain.onnx", *EXACT, "--onnxrt", "--onnxref", "--polygraphy-precisions", "fp16",
        "--polygraphy-mark-all", "--polygraphy-rtol", "1e-5", "--polygraphy-atol", "1e-5",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    assert "onnxrt[fp16] vs onnxref, iteration 0:" in failure(result)
    assert "first divergence: tensor '" in failure(result)
