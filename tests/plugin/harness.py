"""Shared pieces of the plugin's end-to-end tests: tiny ONNX models with numpy twins, and a
runner that executes pytest on a generated project once and keeps every test report.

Whole-suite runs are expensive (xdist spawns workers), so each scenario runs once per
mode (plain and ``-n 2``) in a module-scoped fixture, and many small tests assert on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import pytest_polygraphy

#: The checkout whose ``pytest_polygraphy`` these tests import, for the runs they start.
PACKAGE_ROOT = Path(pytest_polygraphy.__file__).resolve().parents[1]

#: The two ways every scenario runs.
MODES = {"serial": [], "xdist": ["-n", "2"]}

SCALE = np.array([1.1, 0.9, 1.3, 0.7], dtype=np.float32)


def _model(nodes: list, inputs: list, outputs: list, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def exp_sigmoid_model(batch: int | str = "batch") -> onnx.ModelProto:
    """``x[batch,4]`` -> ``m = x * SCALE``; outputs ``y = exp(m)``, ``z = sigmoid(m)``."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    outputs = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [batch, 4]) for name in "yz"]
    nodes = [
        helper.make_node("Mul", ["x", "scale"], ["m"], name="mul"),
        helper.make_node("Exp", ["m"], ["y"], name="exp"),
        helper.make_node("Sigmoid", ["m"], ["z"], name="sigmoid"),
    ]
    return _model(nodes, [x], outputs, [numpy_helper.from_array(SCALE, "scale")])


def exp_sigmoid(x: np.ndarray) -> dict[str, np.ndarray]:
    """The numpy twin of ``exp_sigmoid_model`` (computed in float64)."""
    m = x.astype(np.float64) * SCALE.astype(np.float64)
    return {"y": np.exp(m), "z": 1.0 / (1.0 + np.exp(-m))}


def scale_model() -> onnx.ModelProto:
    """``x[2,3]`` -> ``y = x * 1.1`` (1.1 is not a float16 number, so fp16 really differs)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    factor = numpy_helper.from_array(np.full([1], 1.1, np.float32), "factor")
    return _model([helper.make_node("Mul", ["x", "factor"], ["y"], name="mul")], [x], [y], [factor])


def log_model() -> onnx.ModelProto:
    """``x[2,3]`` -> ``y = log(x - 0.5)``: NaN wherever x < 0.5."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
    half = numpy_helper.from_array(np.full([1], 0.5, np.float32), "half")
    nodes = [
        helper.make_node("Sub", ["x", "half"], ["shifted"], name="sub"),
        helper.make_node("Log", ["shifted"], ["y"], name="log"),
    ]
    return _model(nodes, [x], [y], [half])


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


DUMP_PLUGIN = '''
"""Keeps every test report of the run (on the controller under xdist) in a JSON file."""
import json
import os

REPORTS = []


def _reason(report):
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return longrepr[2]
    return "" if longrepr is None else str(longrepr)


def pytest_runtest_logreport(report):
    REPORTS.append({
        "nodeid": report.nodeid, "when": report.when, "outcome": report.outcome,
        "longrepr": _reason(report),
        "props": [[name, value] for name, value in report.user_properties],
    })


def pytest_collectreport(report):
    if report.failed:
        REPORTS.append({"nodeid": report.nodeid, "when": "collect", "outcome": "error",
                        "longrepr": str(report.longrepr), "props": []})


def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        with open(os.environ["POLYGRAPHY_TEST_DUMP"], "w") as handle:
            json.dump(REPORTS, handle, default=str)
'''


#: A conftest that SIGKILLs pytest at the start of the test run numbered ``KILL_AT_RUN``
#: (counting re-runs): how the debug sessions' resume after a kill is tested.
#: A test file with every outcome a test can have without comparing anything: a setup
#: error, a failure, a skip, an xfail and a pass (the report must list each).
EVERY_KIND_OF_TEST = """
import pytest


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke before comparing")


def test_setup_error(broken):
    pass


def test_fails_before_comparing():
    raise ValueError("no outputs to compare")


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known")
def test_xfail():
    assert False


def test_passes():
    pass
"""


KILL_CONFTEST = """
import os
import signal

RUNS = {"n": 0}


def pytest_runtest_call(item):
    RUNS["n"] += 1
    if RUNS["n"] == int(os.environ.get("KILL_AT_RUN", "0")):
        os.kill(os.getpid(), signal.SIGKILL)
"""


@dataclass
class Run:
    """One pytest run's exit code, output and test reports."""

    returncode: int
    output: str
    reports: list[dict[str, Any]]

    def _for(self, nodeid: str) -> list[dict[str, Any]]:
        found = [r for r in self.reports if r["nodeid"] == nodeid]
        known = sorted({r["nodeid"] for r in self.reports})
        assert found, f"no report for {nodeid}; reports for {known}\n{self.output}"
        return found

    def outcome(self, nodeid: str) -> str:
        """``passed``, ``failed``, ``skipped`` or ``error`` (a setup/teardown failure)."""
        reports = self._for(nodeid)
        if any(r["when"] == "collect" for r in reports):
            return "error"
        for report in reports:
            if report["when"] != "call" and report["outcome"] == "failed":
                return "error"
            if report["outcome"] == "skipped":
                return "skipped"
        return next(r["outcome"] for r in reports if r["when"] == "call")

    def message(self, nodeid: str) -> str:
        """The failure report or skip reason."""
        return "\n".join(r["longrepr"] for r in self._for(nodeid) if r["longrepr"])

    def records(self, nodeid: str) -> list[dict[str, Any]]:
        """The comparison records of a test (from its teardown report)."""
        reports = [r for r in self._for(nodeid) if r["when"] == "teardown"]
        return [value for name, value in reports[-1]["props"] if name == "polygraphy_compare"]

    def debug_session(self, nodeid: str, kind: str) -> dict[str, Any]:
        """The result of the ``kind`` debug session (reduce, precision, repeat, build) of a
        test, from its call report; exactly one must be there."""
        found = [
            value
            for report in self._for(nodeid)
            if report["when"] == "call"
            for name, value in report["props"]
            if name == "polygraphy_debug" and value.get("session") == kind
        ]
        assert len(found) == 1, self.output
        return found[0]

    def nodeids(self) -> set[str]:
        return {r["nodeid"] for r in self.reports}


def clean_environ() -> dict[str, str]:
    """This process's environment without the outer pytest's variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}


def run_pytest(project: Path, *args: str, env: dict[str, str] | None = None) -> Run:
    """Run pytest in ``project`` in a fresh interpreter (as a user would)."""
    (project / "polygraphy_dump.py").write_text(DUMP_PLUGIN)
    dump = project / "reports.json"
    dump.unlink(missing_ok=True)
    environ = clean_environ()
    # The project first (its plugin module), then the outer path, so that a checkout run
    # with PYTHONPATH=$PWD tests its own code, not an installed copy.
    outer = environ.get("PYTHONPATH")
    environ.update(
        POLYGRAPHY_TEST_DUMP=str(dump),
        # the package under test first: an editable install may point at another checkout
        PYTHONPATH=os.pathsep.join([str(project), str(PACKAGE_ROOT), *([outer] if outer else [])]),
        PYTEST_POLYGRAPHY_CACHE_DIR=str(project / ".cache"),
        **(env or {}),
    )
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "polygraphy_dump", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = completed.stdout + completed.stderr
    reports = json.loads(dump.read_text()) if dump.exists() else []
    return Run(completed.returncode, output, reports)
