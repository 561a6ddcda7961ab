"""Settings precedence, end to end (plain and under ``-n 2``): markers over the command line,
the command line over per-model settings, per-model settings over the ini file, the ini
file over the defaults; ``-v`` lists where each setting of each test came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin import harness
from tests.plugin.harness import Run

INI = """[pytest]
polygraphy_precisions = fp32
polygraphy_rtol = 0.5
polygraphy_seed = 7
polygraphy_model_settings =
    net.onnx {"seed": 8, "atol": {"z": 0.25}}
"""

SIDECAR = '{"precisions": ["fp16", "int8"], "rtol": {"": 0.1, "y": 0.2}, "input_shapes": "x:[2,4]"}'

TESTS = """
import pytest

pytestmark = pytest.mark.model("models/net.onnx")


@pytest.mark.precisions("fp16")
@pytest.mark.tolerance(rtol={"z": 0.04})
def test_marked(accuracy, polygraphy_settings):
    assert polygraphy_settings.tolerance("z")[0] == 0.04
    accuracy.check()


def test_unmarked(accuracy):
    accuracy.check()
"""


def write_project(project: Path) -> None:
    (project / "pytest.ini").write_text(INI)
    harness.save(harness.exp_sigmoid_model(), project / "models" / "net.onnx")
    (project / "models" / "net.polygraphy.json").write_text(SIDECAR)
    (project / "test_net.py").write_text(TESTS)


@pytest.fixture(scope="module", params=list(harness.MODES))
def project(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp(f"precedence-{request.param}")
    write_project(path)
    path.joinpath("mode").write_text(request.param)
    return path


def run(project: Path, *args: str) -> Run:
    mode = harness.MODES[project.joinpath("mode").read_text()]
    return harness.run_pytest(
        project, "models", "test_net.py", "--onnxrt", "--onnxref", *args, *mode
    )


@pytest.fixture(scope="module")
def sidecar_run(project: Path) -> Run:
    """No precision nor tolerance on the command line: the sidecar beats the ini."""
    return run(project, "-v")


@pytest.fixture(scope="module")
def command_line_run(project: Path) -> Run:
    """The issue's case: --polygraphy-precisions fp32 must not run the sidecar's fp16, int8."""
    return run(project, "--polygraphy-precisions", "fp32", "--polygraphy-rtol", "0.3", "-v")


def rtols(result: Run, nodeid: str) -> dict[str, float]:
    return {r["output"]: r["rtol"] for r in result.records(nodeid)}


def test_a_sidecar_wins_over_the_ini_file(sidecar_run: Run) -> None:
    ids = {n for n in sidecar_run.nodeids() if n.startswith("models/")}
    assert ids == {
        "models/net.onnx::accuracy[fp16-x=2x4]",
        "models/net.onnx::accuracy[int8-x=2x4]",
    }
    assert rtols(sidecar_run, "models/net.onnx::accuracy[fp16-x=2x4]") == {"y": 0.2, "z": 0.1}


def test_the_command_line_wins_over_a_sidecar(command_line_run: Run) -> None:
    nodeid = "models/net.onnx::accuracy[fp32-x=2x4]"
    assert {n for n in command_line_run.nodeids() if n.startswith("models/")} == {nodeid}
    assert command_line_run.outcome(nodeid) == "passed", command_line_run.message(nodeid)
    assert command_line_run.returncode == 0, command_line_run.output


def test_the_command_line_tolerance_replaces_the_sidecar_default_only(project: Path) -> None:
    """A bare value replaces the sidecar's default; the output the sidecar names keeps its own."""
    result = run(project, "--polygraphy-precisions", "fp16", "--polygraphy-rtol", "0.3")
    assert rtols(result, "models/net.onnx::accuracy[fp16-x=2x4]") == {"y": 0.2, "z": 0.3}


def test_markers_win_over_the_command_line(command_line_run: Run) -> None:
    marked = "test_net.py::test_marked[fp16-x=2x4]"
    assert command_line_run.outcome(marked) == "passed", command_line_run.message(marked)
    assert rtols(command_line_run, marked) == {"y": 0.2, "z": 0.04}
    assert "test_net.py::test_unmarked[fp32-x=2x4]" in command_line_run.nodeids()


def source_lines(output: str, nodeid: str) -> list[str]:
    """The ``-v`` lines under ``nodeid`` in the "where each came from" section."""
    section = output.split("polygraphy settings: where each came from")[1]
    lines = section.split(f"\n{nodeid}\n")[1].splitlines()
    block = []
    for line in lines:
        if not line.startswith("    "):
            break
        block.append(line.strip())
    return block


def test_verbose_runs_say_where_each_setting_came_from(command_line_run: Run) -> None:
    output = command_line_run.output
    model = source_lines(output, "models/net.onnx::accuracy[fp32-x=2x4]")
    assert model[0] == "command line: precision, rtol", model
    assert model[1:3] == [
        "net.polygraphy.json: input_shapes, rtol[y]",
        "ini polygraphy_model_settings net.onnx: seed, atol[z]",
    ]
    assert "default (fp32): atol" in model
    marked = source_lines(output, "test_net.py::test_marked[fp16-x=2x4]")
    assert set(marked[:2]) == {
        "@pytest.mark.precisions: precision",
        "@pytest.mark.tolerance: rtol[z]",
    }
    assert marked[2] == "command line: rtol"


def test_sources_stay_out_of_the_terminal_without_verbose(project: Path) -> None:
    result = run(project, "--polygraphy-precisions", "fp32")
    assert "where each came from" not in result.output


def test_help_states_the_precedence(pytester: pytest.Pytester) -> None:
    text = " ".join(pytester.runpytest("--help").stdout.str().split())
    assert (
        "Precedence, highest first: a test's markers (precisions, shapes, tolerance), the "
        "command line, per-model settings" in text
    )
