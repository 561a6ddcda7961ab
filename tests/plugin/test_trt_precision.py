"""The TensorRT parts of keep_fp32 and ``--polygraphy-precision``, end to end through
pytest: the layer names in the precision session's answer (and keep_fp32.json), and the
requested precisions TensorRT ignored, in a test's report section and failure text and in
the session's answer.

TensorRT cannot be installed here. The conftest below replaces ``TrtRunner`` with
``FakeTrtRunnerForOrchestration``: it runs onnx's reference evaluator on the model
converted to fp16 with the kept nodes left in fp32 (what keep_fp32 asks TensorRT for),
names layers for each node as a parsed network would (``network_layers``; an Identity
becomes none), and reads back precisions from inspector JSON it writes itself, in which
the node named by ``FAKE_TRT_IGNORES`` ran in fp16. Orchestration only: these verdicts
say nothing about TensorRT (the parsing of TensorRT's real inspector JSON is tested in
tests/runners/test_trt_precisions.py)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.debug import models
from tests.plugin.harness import run_pytest

FAKE_CONFTEST = '''
"""FakeTrtRunnerForOrchestration: see tests/plugin/test_trt_precision.py. Orchestration
only: nothing here is a TensorRT result."""
import json
import os

import pytest_polygraphy.runners.trt as trt
from pytest_polygraphy.models import convert_to_fp16, load_model
from pytest_polygraphy.runners import trt_precisions
from pytest_polygraphy.runners.onnxref import OnnxrefRunner


class FakeTrtRunnerForOrchestration(OnnxrefRunner):
    def __init__(self, model, precision="fp32", keep_fp32=(), **kwargs):
        proto = load_model(model)
        self.ops = {node.name: node.op_type for node in proto.graph.node}
        if precision == "fp16":
            proto = convert_to_fp16(proto, block_list=keep_fp32)
        super().__init__(proto, name="trt" if precision == "fp32" else f"trt[{precision}]")
        ignores = os.environ.get("FAKE_TRT_IGNORES", "")
        inspector_json = [
            json.dumps({
                "Name": name,
                "Metadata": f"[ONNX Layer: {name}]",
                "Inputs": [{"Format/Datatype": "Half" if name == ignores else "Float"}],
                "Outputs": [{"Format/Datatype": "Half" if name == ignores else "Float"}],
            })
            for name in keep_fp32
        ]
        layers = [trt_precisions.parse_layer_information(text) for text in inspector_json]
        self.precision_readback = (
            trt_precisions.check_precisions(layers, tuple(keep_fp32)) if keep_fp32 else None
        )

    def network_layers(self, nodes):
        return {
            name: [] if self.ops.get(name) == "Identity" else [name, f"{name}_shuffle"]
            for name in nodes
        }


trt.TrtRunner = FakeTrtRunnerForOrchestration
'''

ARGS = ["--trt", "--onnxref", "--polygraphy-skip-unavailable", "--polygraphy-precisions", "fp16"]
NODEID = "one.onnx::accuracy[fp16]"


def project(tmp_path: Path) -> Path:
    models.normalizing(1, path=tmp_path / "one.onnx")
    (tmp_path / "conftest.py").write_text(FAKE_CONFTEST)
    return tmp_path


def test_the_precision_answer_names_the_tensorrt_layers_of_each_node(tmp_path: Path) -> None:
    root = project(tmp_path)
    run = run_pytest(root, "one.onnx", *ARGS, "--polygraphy-precision")
    result = run.debug_session(NODEID, "precision")
    assert result["status"] == "found", result["summary"]
    assert [name for name, _ in result["nodes"]] == ["norm0"]
    summary = result["summary"]
    assert "  norm0 (ReduceL2) -> TensorRT layers: norm0, norm0_shuffle" in summary
    assert "1 float compute nodes become no TensorRT layer (folded away by the parser)" in (summary)
    assert "are not candidates: output" in summary
    assert "keep in fp32: 1 of 12 float compute nodes" in summary  # Identity 'output' dropped
    assert "read back from the confirming run's TensorRT engine:" in summary
    assert "trt[fp16]: TensorRT built every requested precision" in summary
    saved = json.loads(next(root.glob("polygraphy-debug/*/precision/keep_fp32.json")).read_text())
    assert saved["keep_fp32"] == ["norm0"]
    assert saved["tensorrt_layers"] == {"norm0": ["norm0", "norm0_shuffle"]}
    assert saved["tensorrt_readback"] == [
        "trt[fp16]: TensorRT built every requested precision (1 requests, read back from "
        "the engine inspector)"
    ]


def test_a_precision_tensorrt_ignored_is_in_the_answer(tmp_path: Path) -> None:
    root = project(tmp_path)
    run = run_pytest(
        root, "one.onnx", *ARGS, "--polygraphy-precision", env={"FAKE_TRT_IGNORES": "norm0"}
    )
    summary = run.debug_session(NODEID, "precision")["summary"]
    assert (
        "  trt[fp16]: TensorRT ignored keep_fp32 node 'norm0': asked for fp32, engine layer "
        "'norm0' (from norm0) ran with inputs fp16, outputs fp16"
    ) in summary


def test_ignored_precisions_are_in_the_failure_text_and_the_report_section(
    tmp_path: Path,
) -> None:
    root = project(tmp_path)
    failing = run_pytest(
        root, "one.onnx", *ARGS, "--polygraphy-keep-fp32", "pre0", "-rA",
        env={"FAKE_TRT_IGNORES": "pre0"},
    )  # fmt: skip
    assert failing.outcome(NODEID) == "failed"  # norm0, the culprit, is not kept
    message = failing.message(NODEID)
    assert "trt[fp16]: requested layer precisions, read back from the engine:" in message
    assert "TensorRT ignored keep_fp32 node 'pre0': asked for fp32" in message
    assert "polygraphy TensorRT precisions" in failing.output
    passing = run_pytest(root, "one.onnx", *ARGS, "--polygraphy-keep-fp32", "norm0", "-rA")
    assert passing.outcome(NODEID) == "passed", passing.output
    assert "polygraphy TensorRT precisions" in passing.output
    assert "trt[fp16]: TensorRT built every requested precision (1 requests" in passing.output
    props = [
        value
        for report in passing.reports
        if report["nodeid"] == NODEID and report["when"] == "teardown"
        for name, value in report["props"]
        if name == "polygraphy_trt_precisions"
    ]
    assert props and props[0]["runner"] == "trt[fp16]" and props[0]["ignored"] == []
