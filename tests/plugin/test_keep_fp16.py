"""``keep_fp16``: one name everywhere (option, ini, sidecar key, marker), like keep_fp32.
In int8 variants the named nodes are not quantized and are converted to fp16; on ONNX
Runtime's CPU provider, which has no fp16 kernel for them, the run warns that they computed
in fp32 (the converted model's node types are checked in tests/models/test_int8.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.debug import models
from tests.plugin.harness import MODES, run_pytest

ARGS = ["--onnxrt", "--polygraphy-precisions", "int8"]
NODEID = "models/outlier.onnx::accuracy[int8]"

HAND_WRITTEN = """
import pytest


@pytest.mark.model("models/outlier.onnx")
@pytest.mark.keep_fp16("planted_mul")
def test_marked(accuracy):
    accuracy.check()


@pytest.mark.model("models/outlier.onnx")
def test_unmarked(accuracy):
    accuracy.check()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    models.int8_outlier(path=tmp_path / "models" / "outlier.onnx")
    (tmp_path / "test_hand.py").write_text(HAND_WRITTEN)
    return tmp_path


@pytest.mark.parametrize("mode", list(MODES))
def test_the_option_keeps_nodes_out_of_int8_in_fp16(project: Path, mode: str) -> None:
    plain = run_pytest(project, "models", *ARGS, *MODES[mode])
    assert plain.outcome(NODEID) == "failed"
    kept = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp16", "planted_mul", "--")
    assert kept.outcome(NODEID) == "passed", kept.output
    assert "no float16 kernel for 1 of the 1 keep_fp16 nodes ('planted_mul')" in kept.output
    other = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp16", "shift", "--")
    assert other.outcome(NODEID) == "failed"


def test_keep_fp32_leaves_onnx_runtime_int8_nodes_unquantized(project: Path) -> None:
    """The runner cache quantizes an int8 model once; it must leave the kept nodes out."""
    kept = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp32", "planted_mul", "--")
    assert kept.outcome(NODEID) == "passed", kept.output


def test_the_ini_the_sidecar_and_the_marker(project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\npolygraphy_keep_fp16 = planted_mul\n")
    assert run_pytest(project, "models", *ARGS).outcome(NODEID) == "passed"
    (project / "pytest.ini").unlink()
    sidecar = project / "models" / "outlier.polygraphy.json"
    sidecar.write_text(json.dumps({"keep_fp16": ["planted_mul"]}))
    assert run_pytest(project, "models", *ARGS).outcome(NODEID) == "passed"
    sidecar.unlink()
    run = run_pytest(project, "test_hand.py", *ARGS)
    assert run.outcome("test_hand.py::test_marked[int8]") == "passed", run.output
    assert run.outcome("test_hand.py::test_unmarked[int8]") == "failed"


def test_a_wrong_name_and_a_node_in_both_lists_are_errors(project: Path) -> None:
    run = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp16", "planted", "--")
    assert run.outcome(NODEID) == "failed"
    message = run.message(NODEID)
    assert "keep_fp16 names nodes" in message and "'planted' (closest: 'planted_mul'" in message
    both = run_pytest(
        project,
        "models",
        *ARGS,
        "--polygraphy-keep-fp16",
        "planted_mul",
        "--polygraphy-keep-fp32",
        "planted_mul",
        "shift",
        "--",
    )
    assert both.outcome(NODEID) == "failed"
    message = both.message(NODEID)
    assert "nodes ['planted_mul'] are kept both in fp32 (keep_fp32) and in fp16" in message
