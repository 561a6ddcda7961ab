"""``--polygraphy-precision-to float16``: the precision session keeps nodes in fp16, names
a planted int8 culprit, prints the keep_fp16 lines (which make the test pass), saves the
passing int8 model with that node in fp16 (its node types checked), and refuses fp16 and
fp32 tests, for which fp16 has nothing to gain."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any

import onnx
import pytest

from pytest_polygraphy.debug.precision import float_candidates
from tests.debug import models
from tests.plugin.harness import MODES, run_pytest

INT8 = ["--onnxrt", "--polygraphy-precisions", "int8"]
ARGS = [*INT8, "--polygraphy-precision", "--polygraphy-precision-to", "float16"]
NODEID = "models/outlier.onnx::accuracy[int8]"

HAND_WRITTEN = """
import pytest


@pytest.mark.model("models/chain.onnx")
@pytest.mark.precisions("fp16")
def test_fp16(accuracy):
    accuracy.check()
"""


@pytest.fixture(scope="module", params=list(MODES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = tmp_path_factory.mktemp(f"precision_to_{request.param}")
    (project / "models").mkdir()
    models.int8_outlier(path=project / "models" / "outlier.onnx")
    return project, run_pytest(project, "models", *ARGS, *MODES[request.param])


def _line(result: dict[str, Any], prefix: str) -> str:
    return next(s for s in result["summary"].splitlines() if s.startswith(prefix))


def test_the_planted_int8_culprit_is_found_and_kept_in_fp16(case) -> None:
    project, run = case
    assert run.outcome(NODEID) == "failed"  # the test's own outcome stays
    result = run.debug_session(NODEID, "precision")
    assert result["status"] == "found", result["summary"]
    assert result["nodes"] == [["planted_mul", "Mul"]]
    assert "keep in fp16: 1 of 4 float compute nodes" in result["summary"]
    n = len(float_candidates(onnx.load(str(project / "models" / "outlier.onnx"))))
    assert result["checks"] <= math.ceil(math.log2(n)) + 2, result["summary"]
    assert result["reproduces"] is True  # confirmed with keep_fp16
    sidecar = json.loads("{" + _line(result, "sidecar: ").split(":", 1)[1] + "}")
    assert sidecar == {"keep_fp16": ["planted_mul"]}
    assert _line(result, "command line").endswith("--polygraphy-keep-fp16 planted_mul")
    assert (
        "note: ONNX Runtime's CPU provider has float16 kernels for few ops" in (result["summary"])
    )


def test_the_passing_int8_model_runs_the_culprit_in_fp16(case) -> None:
    project, _ = case
    (saved,) = (project / "polygraphy-debug").glob(
        "models_outlier.onnx*/precision/passing_int8_keep_fp16.onnx"
    )
    model = onnx.shape_inference.infer_shapes(onnx.load(str(saved)))
    types = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    types |= {init.name: init.data_type for init in model.graph.initializer}
    ops = {node.op_type for node in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # the rest is still int8
    planted = next(node for node in model.graph.node if node.name == "planted_mul")
    assert {types[name] for name in [*planted.input, *planted.output]} == {onnx.TensorProto.FLOAT16}
    assert not list((project / "polygraphy-debug").glob("*/precision/passing_fp16.onnx"))


def test_the_printed_line_makes_the_test_pass(case) -> None:
    project, run = case
    result = run.debug_session(NODEID, "precision")
    args = shlex.split(_line(result, "command line").split(":", 1)[1])
    again = run_pytest(project, "models", *INT8, *args)
    assert again.outcome(NODEID) == "passed", again.output


def test_float16_for_fp16_tests_is_a_usage_error(tmp_path: Path) -> None:
    models.chain(path=tmp_path / "chain.onnx")
    refused = run_pytest(
        tmp_path,
        "chain.onnx",
        "--onnxref",
        "--polygraphy-precisions",
        "fp16",
        "--polygraphy-precision",
        "--polygraphy-precision-to",
        "float16",
    )
    assert refused.returncode == 4, refused.output
    assert "--polygraphy-precision-to float16 with --polygraphy-precisions fp16" in refused.output
    assert "nothing to gain" in refused.output
    bad = run_pytest(tmp_path, "chain.onnx", "--onnxref", "--polygraphy-precision-to", "bf16")
    assert bad.returncode == 4 and "expected one of float32, float16" in bad.output


def test_float16_for_a_test_marked_fp16_is_refused_by_the_session(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    models.chain(path=tmp_path / "models" / "chain.onnx")
    (tmp_path / "test_hand.py").write_text(HAND_WRITTEN)
    run = run_pytest(
        tmp_path,
        "test_hand.py",
        "--onnxref",
        "--polygraphy-precision",
        "--polygraphy-precision-to",
        "float16",
    )
    result = run.debug_session("test_hand.py::test_fp16[fp16]", "precision")
    assert result["status"] == "usage error", result["summary"]
    assert "cannot help a fp16 test" in result["summary"]
    assert result["checks"] == 0
