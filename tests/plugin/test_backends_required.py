"""A backend asked for on the command line must run, or the run stops at start saying why
and how to install it; ``--polygraphy-skip-unavailable`` turns that into skips. Model files
seen without a backend switch get a line saying how to select one."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_polygraphy.plugin.availability import demanded_backends, unavailable_reason
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.runners import cuda_unavailable_reason, tensorrt_unavailable_reason
from tests.plugin import harness

needs_no_tensorrt = pytest.mark.skipif(
    tensorrt_unavailable_reason() is None, reason="TensorRT is installed here"
)
needs_no_cuda = pytest.mark.skipif(
    cuda_unavailable_reason() is None, reason="a CUDA GPU is present here"
)

HAND_WRITTEN = """
import pytest

pytestmark = pytest.mark.model("models/m.onnx")


def test_trt(trt_runner):
    raise AssertionError("TensorRT cannot run here: this test must not pass")
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    harness.save(harness.scale_model(), tmp_path / "models" / "m.onnx")
    (tmp_path / "test_trt.py").write_text(HAND_WRITTEN)
    return tmp_path


@needs_no_tensorrt
@pytest.mark.parametrize("mode", list(harness.MODES))
def test_a_missing_backend_asked_for_is_a_usage_error(project: Path, mode: str) -> None:
    result = harness.run_pytest(project, "models", "--onnxrt", "--trt", *harness.MODES[mode])
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.output
    assert "ERROR: backends asked for on the command line cannot run here:" in result.output
    assert "--trt: TensorRT is not installed: pip install 'pytest-polygraphy[trt]'" in result.output
    assert "--polygraphy-skip-unavailable" in result.output
    assert "--onnxrt:" not in result.output  # ONNX Runtime on the CPU runs here
    assert result.reports == []  # nothing ran


@needs_no_tensorrt
def test_a_backend_named_as_reference_is_asked_for_too(project: Path) -> None:
    result = harness.run_pytest(project, "models", "--onnxrt", "--polygraphy-reference", "trt")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.output
    assert "--trt: TensorRT is not installed" in result.output


@needs_no_cuda
def test_a_missing_onnx_runtime_provider_is_a_usage_error(project: Path) -> None:
    result = harness.run_pytest(
        project, "models", "--onnxrt", "--polygraphy-providers", "cuda", "-n", "2"
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.output
    assert "--onnxrt: " in result.output
    assert "onnxruntime-gpu" in result.output or "needs a CUDA GPU" in result.output


@needs_no_tensorrt
@pytest.mark.parametrize("mode", list(harness.MODES))
@pytest.mark.parametrize("how", ["option", "ini"])
def test_skip_unavailable_turns_the_error_into_skips(project: Path, mode: str, how: str) -> None:
    args = ["models", "test_trt.py", "--onnxrt", "--trt", "-rs", *harness.MODES[mode]]
    if how == "option":
        args.append("--polygraphy-skip-unavailable")
    else:
        (project / "pytest.ini").write_text("[pytest]\npolygraphy_skip_unavailable = true\n")
    result = harness.run_pytest(project, *args)
    assert result.returncode == 0, result.output
    assert "their tests skip (--polygraphy-skip-unavailable):" in result.output
    for nodeid in ("models/m.onnx::accuracy[fp32]", "test_trt.py::test_trt[fp32]"):
        assert result.outcome(nodeid) == "skipped", result.output
        assert "TensorRT is not installed" in result.message(nodeid)


@needs_no_tensorrt
def test_backends_from_the_ini_file_still_skip(project: Path) -> None:
    """The ini's polygraphy_backends is a project default, not a demand of this run."""
    (project / "pytest.ini").write_text("[pytest]\npolygraphy_backends = onnxrt trt\n")
    result = harness.run_pytest(project, "test_trt.py", "-rs")
    assert result.outcome("test_trt.py::test_trt[fp32]") == "skipped", result.output


@needs_no_tensorrt
def test_listing_tests_needs_no_backend(project: Path) -> None:
    result = harness.run_pytest(project, "models", "--trt", "--co", "-q")
    assert result.returncode == 0, result.output
    assert "models/m.onnx::accuracy[fp32]" in result.output


def test_which_backends_are_demanded() -> None:
    assert demanded_backends(PolygraphyOptions(backends=("onnxrt", "trt"))) == ()
    cli = PolygraphyOptions(backends=("onnxref", "trt"), backends_on_command_line=True)
    assert demanded_backends(cli) == ("onnxref", "trt")
    reference = PolygraphyOptions(
        backends=("onnxrt",),
        backends_on_command_line=True,
        reference="trt",
        command_line=frozenset({"reference"}),
    )
    assert demanded_backends(reference) == ("onnxrt", "trt")
    golden = PolygraphyOptions(reference="golden", command_line=frozenset({"reference"}))
    assert demanded_backends(golden) == ()
    assert unavailable_reason("onnxref", PolygraphyOptions()) is None
    assert unavailable_reason("onnxrt", PolygraphyOptions()) is None


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_model_files_without_a_backend_say_how_to_select_one(project: Path, mode: str) -> None:
    (project / "test_trt.py").unlink()
    result = harness.run_pytest(project, "models", *harness.MODES[mode])
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
    assert (
        "polygraphy: 1 model file(s) (*.onnx) were found but not collected as tests, because "
        "no backend switch was given: select backends with --onnxrt, --onnxref and/or --trt"
    ) in result.output


def test_a_project_whose_tests_ran_gets_no_backend_hint(project: Path) -> None:
    (project / "test_trt.py").write_text("def test_plain():\n    pass\n")
    result = harness.run_pytest(project)
    assert result.returncode == 0, result.output
    assert "not collected as tests" not in result.output
