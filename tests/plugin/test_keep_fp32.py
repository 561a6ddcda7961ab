"""``keep_fp32``: one name everywhere (option, ini, sidecar key, marker); kept nodes are
not converted, and a wrong name fails with the closest names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.debug import models
from tests.plugin.harness import MODES, run_pytest

ARGS = ["--onnxref", "--polygraphy-precisions", "fp16"]
#: The planted overflow and the Log that reads it: both must stay fp32 for the chain to pass.
CULPRITS = ["planted_exp", "log24"]

HAND_WRITTEN = """
import pytest


@pytest.mark.model("models/chain.onnx")
@pytest.mark.keep_fp32("planted_exp", "log24")
def test_marked(accuracy):
    accuracy.check()


@pytest.mark.model("models/chain.onnx")
def test_unmarked(accuracy):
    accuracy.check()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    models.chain(path=(tmp_path / "models").mkdir() or tmp_path / "models" / "chain.onnx")
    (tmp_path / "test_hand.py").write_text(HAND_WRITTEN)
    return tmp_path


@pytest.mark.parametrize("mode", list(MODES))
def test_the_option_keeps_nodes_in_fp32(project: Path, mode: str) -> None:
    plain = run_pytest(project, "models", *ARGS, *MODES[mode])
    assert plain.outcome("models/chain.onnx::accuracy[fp16]") == "failed"
    kept = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp32", *CULPRITS, *MODES[mode])
    assert kept.outcome("models/chain.onnx::accuracy[fp16]") == "passed", kept.output
    only_one = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp32", "planted_exp")
    assert only_one.outcome("models/chain.onnx::accuracy[fp16]") == "failed"


def test_the_ini_and_the_sidecar(project: Path) -> None:
    (project / "pytest.ini").write_text("[pytest]\npolygraphy_keep_fp32 = planted_exp log24\n")
    assert (
        run_pytest(project, "models", *ARGS).outcome("models/chain.onnx::accuracy[fp16]")
        == "passed"
    )
    (project / "pytest.ini").unlink()
    sidecar = project / "models" / "chain.polygraphy.json"
    sidecar.write_text(json.dumps({"keep_fp32": CULPRITS}))
    assert (
        run_pytest(project, "models", *ARGS).outcome("models/chain.onnx::accuracy[fp16]")
        == "passed"
    )


def test_the_marker(project: Path) -> None:
    run = run_pytest(project, "test_hand.py", *ARGS)
    assert run.outcome("test_hand.py::test_marked[fp16]") == "passed", run.output
    assert run.outcome("test_hand.py::test_unmarked[fp16]") == "failed"


def test_a_wrong_name_names_the_closest(project: Path) -> None:
    run = run_pytest(project, "models", *ARGS, "--polygraphy-keep-fp32", "planted_ex", "--")
    assert run.outcome("models/chain.onnx::accuracy[fp16]") == "failed"
    message = run.message("models/chain.onnx::accuracy[fp16]")
    assert "'planted_ex' (closest: 'planted_exp'" in message, message
    fp32 = run_pytest(project, "models", "--onnxref", "--onnxrt", "--polygraphy-keep-fp32", "nope")
    assert fp32.outcome("models/chain.onnx::accuracy[fp32]") == "failed"  # even at fp32
