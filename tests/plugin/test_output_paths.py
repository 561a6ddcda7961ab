"""Output paths (report, its artifacts, golden folder, engine cache) are checked at start:
one that cannot be written is a usage error naming it. A report that still cannot be
written at the end costs a red line, never the run's summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_polygraphy.files import folder_write_problem
from tests.plugin import harness

PASSING = """
def test_plain():
    pass
"""

# Makes the report's own path a folder while the tests run: the start check passed, the
# write at the end fails (as on a disk that filled up or a share that went away).
BLOCKING = """
from pathlib import Path


def test_blocks_the_report():
    Path("acc.html").mkdir()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    harness.save(harness.scale_model(), tmp_path / "models" / "m.onnx")
    (tmp_path / "test_plain.py").write_text(PASSING)
    (tmp_path / "a_file").write_text("not a folder")
    return tmp_path


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_an_unwritable_report_path_is_a_usage_error_at_start(project: Path, mode: str) -> None:
    result = harness.run_pytest(
        project, "models", "--onnxrt", "--onnxref", "--polygraphy-report", "a_file/acc.html",
        *harness.MODES[mode],
    )  # fmt: skip
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.output
    assert (
        f"ERROR: --polygraphy-report {project}/a_file/acc.html: cannot write into "
        f"{project}/a_file: {project}/a_file is a file, not a folder"
    ) in result.output
    assert result.reports == [] and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--polygraphy-report", "models"], "models: is a folder; give a file name"),
        (
            ["--polygraphy-update-golden", "--polygraphy-golden-dir", "a_file/golden"],
            "--polygraphy-golden-dir",
        ),
    ],
    ids=["report-is-a-folder", "golden-dir"],
)
def test_other_unwritable_outputs_are_usage_errors(
    project: Path, args: list[str], says: str
) -> None:
    result = harness.run_pytest(project, "test_plain.py", *args)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.output
    assert says in result.output


def test_collect_only_writes_nothing_and_checks_nothing(project: Path) -> None:
    result = harness.run_pytest(project, "--co", "--polygraphy-report", "a_file/acc.html")
    assert result.returncode == 0, result.output


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_a_report_that_fails_at_the_end_keeps_the_summary(project: Path, mode: str) -> None:
    (project / "test_plain.py").write_text(BLOCKING)
    result = harness.run_pytest(
        project,
        "models",
        "test_plain.py",
        "--onnxrt",
        "--onnxref",
        "--polygraphy-report",
        "acc.html",
        *harness.MODES[mode],
    )
    assert "INTERNALERROR" not in result.output and "Traceback" not in result.output
    assert "2 passed" in result.output, result.output
    assert f"polygraphy report: could not write {project}/acc.html: " in result.output
    assert result.returncode == 0


def test_folder_write_problem(tmp_path: Path) -> None:
    assert folder_write_problem(tmp_path / "new" / "deeper") is None
    assert (tmp_path / "new" / "deeper").is_dir()
    assert list((tmp_path / "new" / "deeper").iterdir()) == []  # the probe is gone
    (tmp_path / "file").write_text("x")
    assert (
        folder_write_problem(tmp_path / "file" / "sub")
        == f"{tmp_path}/file is a file, not a folder"
    )


GOLDEN = """
import numpy as np


def test_golden(golden):
    golden.check({"y": np.ones(2)})


def test_other():
    pass
"""


def test_a_golden_file_that_cannot_be_written_fails_its_test_only(tmp_path: Path) -> None:
    """Golden files beside the tests (no --polygraphy-golden-dir to check at start)."""
    (tmp_path / "test_g.py").write_text(GOLDEN)
    (tmp_path / "golden").write_text("a file where the golden folder would go")
    result = harness.run_pytest(tmp_path, "--polygraphy-update-golden")
    assert result.outcome("test_g.py::test_golden") == "failed"
    message = result.message("test_g.py::test_golden")
    assert f"{tmp_path}/golden/test_g/test_golden.npz: cannot write" in message
    assert "Traceback" not in message
    assert result.outcome("test_g.py::test_other") == "passed"
