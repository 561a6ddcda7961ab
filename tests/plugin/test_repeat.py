"""``--polygraphy-repeat`` and ``--polygraphy-build``: pass rates of a flaky test, runs
until the first good or bad one, artifacts sorted into good/ and bad/, fresh sessions."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.debug import models
from tests.plugin.harness import MODES, Run, run_pytest

FLAKY = """
import pytest

RUNS = {"n": 0}


@pytest.mark.model("models/chain.onnx")
@pytest.mark.precisions("fp32")
def test_flaky(accuracy, tmp_path_factory):
    RUNS["n"] += 1
    with open("out.txt", "w") as stream:
        stream.write(f"run {RUNS['n']}")
    accuracy.check()
    assert RUNS["n"] % 3 != 0, "every third run of this backend fails"
"""


def session(run: Run, nodeid: str, kind: str) -> dict[str, Any]:
    return run.debug_session(nodeid, kind)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    models.chain(path=tmp_path / "models" / "chain.onnx")
    (tmp_path / "test_flaky.py").write_text(FLAKY)
    return tmp_path


@pytest.mark.parametrize("mode", list(MODES))
def test_repeat_reports_the_pass_rate_and_sorts_artifacts(project: Path, mode: str) -> None:
    args = ["--onnxref", "--onnxrt", "--polygraphy-artifacts", "out.txt"]
    run = run_pytest(project, "test_flaky.py", *args, "--polygraphy-repeat", "5", *MODES[mode])
    assert run.outcome("test_flaky.py::test_flaky[fp32]") == "passed"  # its own run passed
    result = session(run, "test_flaky.py::test_flaky[fp32]", "repeat")
    # the original run is run 1; repeats are runs 2..6, and runs 3 and 6 fail
    assert "pass rate: 3 of 5 runs passed (60%), 2 failed" in result["summary"], result
    assert result["status"] == "nondeterministic"
    folder = next((project / "polygraphy-debug").glob("test_flaky*/repeat"))
    good = sorted(p.name for p in (folder / "good").iterdir())
    bad = sorted(p.name for p in (folder / "bad").iterdir())
    assert [n for n in bad if n.startswith("out.")] == [
        n for n in bad if n.startswith("out.iter2.") or n.startswith("out.iter5.")
    ]
    assert len([n for n in bad if n.startswith("out.")]) == 2
    assert len([n for n in good if n.startswith("out.")]) == 3
    assert all(n.endswith(".bad.txt") for n in bad if n.startswith("out."))
    bad_text = (folder / "bad" / next(n for n in bad if n.startswith("out.iter2."))).read_text()
    assert bad_text == "run 3"  # the file as that run left it
    assert any(n.startswith("chain.iter") and n.endswith(".onnx") for n in good)  # the model


def test_until_bad_stops_at_the_first_bad_run(project: Path) -> None:
    run = run_pytest(
        project, "test_flaky.py", "--onnxref", "--onnxrt", "--polygraphy-repeat", "bad"
    )
    result = session(run, "test_flaky.py::test_flaky[fp32]", "repeat")
    assert "runs: good bad" in result["summary"] and result["checks"] == 2, result


def test_build_rebuilds_the_sessions_each_run(project: Path) -> None:
    (project / "conftest.py").write_text(
        "import pytest_polygraphy.runners.onnxref as onnxref\n"
        "BUILT = {'n': 0}\n"
        "original = onnxref.OnnxrefRunner._activate\n"
        "def counted(self):\n"
        "    BUILT['n'] += 1\n"
        "    original(self)\n"
        "onnxref.OnnxrefRunner._activate = counted\n"
        "def pytest_sessionfinish(session):\n"
        "    open('built.json', 'w').write(str(BUILT['n']))\n"
    )
    run = run_pytest(project, "test_flaky.py", "--onnxref", "--onnxrt", "--polygraphy-build", "2")
    assert session(run, "test_flaky.py::test_flaky[fp32]", "build")["checks"] == 2
    assert json.loads((project / "built.json").read_text()) == 3  # the run + 2 rebuilt
    repeat = run_pytest(
        project, "test_flaky.py", "--onnxref", "--onnxrt", "--polygraphy-repeat", "2"
    )
    assert session(repeat, "test_flaky.py::test_flaky[fp32]", "repeat")["checks"] == 2
    assert json.loads((project / "built.json").read_text()) == 1  # repeat reuses the session


def test_a_bad_value_is_a_usage_error(project: Path) -> None:
    run = run_pytest(project, "test_flaky.py", "--onnxref", "--polygraphy-repeat", "sometimes")
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert "expected a number of runs >= 1, good or bad" in run.output


FAKE_TRT_CONFTEST = '''
"""FakeTrtRunnerForOrchestration: a stand-in for TrtRunner (TensorRT is not installable
here) that runs ONNX Runtime, counts its "builds", and writes a stand-in engine and
timing cache naming the build they came from. Orchestration only: nothing here is a
TensorRT result."""
import json
import os
from pathlib import Path

import pytest_polygraphy.runners.trt as trt
from pytest_polygraphy.files import write_bytes_atomically
from pytest_polygraphy.runners.onnxrt import OnnxrtRunner

BUILDS = {"n": 0}


class FakeTrtRunnerForOrchestration(OnnxrtRunner):
    def __init__(self, model, precision="fp32", use_cache=True, **kwargs):
        super().__init__(model, name="trt" if precision == "fp32" else f"trt[{precision}]")
        self.use_cache = use_cache
        self.engine_was_built = None

    def _activate(self):
        super()._activate()
        BUILDS["n"] += 1
        self.build = BUILDS["n"]
        self.engine_was_built = True
        with open("builds.jsonl", "a") as log:
            log.write(json.dumps({"build": self.build, "use_cache": self.use_cache}) + "\\n")

    def save_engine(self, path):
        return write_bytes_atomically(path, f"engine of build {self.build}".encode())

    def save_timing_cache(self, path):
        return write_bytes_atomically(path, f"timing cache of build {self.build}".encode())


trt.TrtRunner = FakeTrtRunnerForOrchestration
'''


def test_build_sorts_each_runs_engine_and_its_own_timing_cache(project: Path) -> None:
    """With FakeTrtRunnerForOrchestration (see FAKE_TRT_CONFTEST): each run rebuilds
    without the engine cache, and its engine and timing cache are sorted by outcome."""
    (project / "conftest.py").write_text(FAKE_TRT_CONFTEST)
    args = ["--trt", "--onnxref", "--polygraphy-skip-unavailable", "--polygraphy-build", "3"]
    run = run_pytest(project, "test_flaky.py", *args)
    result = session(run, "test_flaky.py::test_flaky[fp32]", "build")
    assert "runs: good bad good" in result["summary"], result["summary"]
    assert "with each run's own engine, timing cache" in result["summary"]
    assert "not found" not in result["summary"]
    builds = [json.loads(line) for line in (project / "builds.jsonl").read_text().splitlines()]
    assert [b["use_cache"] for b in builds] == [False] * 4  # the test's run + 3 rebuilt
    folder = next((project / "polygraphy-debug").glob("test_flaky*/build"))
    good = sorted(p.name for p in (folder / "good").iterdir())
    bad = sorted(p.name for p in (folder / "bad").iterdir())
    # run 2 failed: its engine and timing cache, named <stem>.iter2.<timestamp>.bad<suffix>
    assert [re.sub(r"\.\d{8}T\d{6}\.", ".<ts>.", n) for n in bad] == [
        "chain.iter2.<ts>.bad.onnx",  # the model, as before
        "trt.iter2.<ts>.bad.engine",
        "trt.timing.iter2.<ts>.bad.cache",
    ]
    assert all(".good." in n for n in good)
    bad_cache = next(n for n in bad if n.startswith("trt.timing.iter2.") and n.endswith(".cache"))
    assert (folder / "bad" / bad_cache).read_text() == "timing cache of build 3"
    assert len([n for n in good if n.endswith(".engine")]) == 2
    assert not list((folder / ".built").iterdir())  # moved, not left behind


def test_build_on_onnx_runtime_saves_no_timing_cache_and_says_nothing_wrong(
    project: Path,
) -> None:
    run = run_pytest(project, "test_flaky.py", "--onnxref", "--onnxrt", "--polygraphy-build", "2")
    result = session(run, "test_flaky.py::test_flaky[fp32]", "build")
    assert result["status"] == "nondeterministic", result["summary"]
    assert "timing cache" not in result["summary"] and "not found" not in result["summary"]
    folder = next((project / "polygraphy-debug").glob("test_flaky*/build"))
    sorted_files = [p.name for p in folder.glob("*/*")]
    assert len(sorted_files) == 2 and all(n.startswith("chain.iter") for n in sorted_files)
