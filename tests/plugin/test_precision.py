"""``--polygraphy-precision`` end to end: planted culprits found by name within the check
budget, the printed keep_fp32 line makes the test pass, an early stop still passes,
a failure that is not about precision is said to be so, and a killed session resumes."""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.debug.precision import float_candidates
from tests.debug import models
from tests.plugin.harness import KILL_CONFTEST, MODES, Run, run_pytest

ARGS = ["--onnxref", "--polygraphy-precisions", "fp16", "--polygraphy-precision"]

HAND_WRITTEN = """
import pytest


@pytest.mark.model("models/one.onnx")
def test_not_about_precision(model, accuracy):
    raise AssertionError("this test fails whatever the precision")
"""


def session(run: Run, nodeid: str) -> dict[str, Any]:
    return run.debug_session(nodeid, "precision")


@pytest.fixture(scope="module", params=list(MODES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = tmp_path_factory.mktemp(f"precision_{request.param}")
    folder = project / "models"
    folder.mkdir()
    models.normalizing(1, path=folder / "one.onnx")
    models.normalizing(2, path=folder / "two.onnx")
    models.chain(path=folder / "chain.onnx")
    (project / "test_hand.py").write_text(HAND_WRITTEN)
    return project, run_pytest(project, "models", "test_hand.py", *ARGS, *MODES[request.param])


@pytest.mark.parametrize(
    ("model", "culprits"),
    [("one", ["norm0"]), ("two", ["norm0", "norm1"]), ("chain", ["planted_exp", "log24"])],
)
def test_planted_culprits_are_found_by_name_within_the_budget(case, model, culprits) -> None:
    project, run = case
    nodeid = f"models/{model}.onnx::accuracy[fp16]"
    assert run.outcome(nodeid) == "failed"  # the test's own outcome stays
    result = session(run, nodeid)
    assert result["status"] == "found", result["summary"]
    assert sorted(name for name, _ in result["nodes"]) == sorted(culprits)
    import onnx

    n = len(float_candidates(onnx.load(str(project / "models" / f"{model}.onnx"))))
    k = len(culprits)
    assert result["checks"] <= k * (math.ceil(math.log2(n)) + 1) + 1, result["summary"]
    assert result["reproduces"] is True  # confirmed: the test passes with the answer
    sidecar = next(s for s in result["summary"].splitlines() if s.startswith("sidecar: "))
    kept = json.loads("{" + sidecar.split(":", 1)[1] + "}")["keep_fp32"]
    assert sorted(kept) == sorted(culprits)
    # The progress bound grows by a round per culprit found: every check line carries one.
    folder = next((project / "polygraphy-debug").glob(f"models_{model}.onnx*/precision"))
    for line in (folder / "progress.log").read_text().splitlines():
        if line.startswith("check "):
            number, bound = re.match(r"check (\d+) of <=(\d+),", line).groups()  # type: ignore[union-attr]
            assert (
                int(number)
                <= int(bound)
                <= k * (math.ceil(math.log2(n)) + 1) + 1 + (math.ceil(math.log2(n)) + 1)
            ), line


def test_the_printed_line_makes_the_test_pass(case) -> None:
    project, run = case
    result = session(run, "models/two.onnx::accuracy[fp16]")
    line = next(s for s in result["summary"].splitlines() if s.startswith("command line"))
    args = shlex.split(line.split(":", 1)[1])
    again = run_pytest(
        project, "models/two.onnx", "--onnxref", "--polygraphy-precisions", "fp16", *args
    )
    assert again.outcome("models/two.onnx::accuracy[fp16]") == "passed", again.output
    sidecar = next(s for s in result["summary"].splitlines() if s.startswith("sidecar"))
    settings = json.loads("{" + sidecar.split(":", 1)[1] + "}")
    (project / "models" / "two.polygraphy.json").write_text(json.dumps(settings))
    try:
        by_file = run_pytest(
            project, "models/two.onnx", "--onnxref", "--polygraphy-precisions", "fp16"
        )
        assert by_file.outcome("models/two.onnx::accuracy[fp16]") == "passed", by_file.output
    finally:
        (project / "models" / "two.polygraphy.json").unlink()


def test_a_failure_that_is_not_about_precision_is_said_to_be(case) -> None:
    _, run = case
    result = session(run, "test_hand.py::test_not_about_precision[fp16]")
    assert result["status"] == "not a precision problem", result["summary"]
    assert (
        "still fails (AssertionError: this test fails whatever the precision)"
        in (result["summary"])
    )


def test_the_passing_fp16_model_is_saved(case) -> None:
    project, _ = case
    saved = list(
        (project / "polygraphy-debug").glob("models_one.onnx*/precision/passing_fp16.onnx")
    )
    assert len(saved) == 1


def test_a_stop_at_max_checks_still_returns_a_passing_set(tmp_path: Path) -> None:
    models.chain(path=tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, "--polygraphy-max-checks", "4")
    result = session(run, "chain.onnx::accuracy[fp16]")
    assert result["status"] == "stopped" and result["checks"] <= 5, result["summary"]
    assert result["reproduces"] is True, result["summary"]
    names = {name for name, _ in result["nodes"]}
    assert {"planted_exp", "log24"} <= names


def test_resume_after_a_kill_repeats_no_check(tmp_path: Path) -> None:
    models.normalizing(2, path=tmp_path / "two.onnx")
    (tmp_path / "conftest.py").write_text(KILL_CONFTEST)
    run_pytest(tmp_path, "two.onnx", *ARGS, env={"KILL_AT_RUN": "6"})
    journal = next((tmp_path / "polygraphy-debug").glob("*/precision/journal.jsonl"))
    resumed = session(run_pytest(tmp_path, "two.onnx", *ARGS), "two.onnx::accuracy[fp16]")
    assert resumed["replayed"] == 5, resumed["summary"]  # 4 finished + the one killed
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    begun = [e["key"] for e in events if e["event"] == "begin"]
    assert len(begun) == len(set(begun)), "a check ran twice"
    assert resumed["status"] in ("found", "stopped")


def test_a_kill_during_the_first_check_is_said_on_resume(tmp_path: Path) -> None:
    """Killed during its first check (everything kept in fp32, run 2): the search starts
    from that check, so the resumed session says it never ended and how to start over,
    instead of calling the failure "not a precision problem"."""
    models.normalizing(2, path=tmp_path / "two.onnx")
    (tmp_path / "conftest.py").write_text(KILL_CONFTEST)
    run_pytest(tmp_path, "two.onnx", *ARGS, env={"KILL_AT_RUN": "2"})
    resumed = session(run_pytest(tmp_path, "two.onnx", *ARGS), "two.onnx::accuracy[fp16]")
    assert resumed["status"] == "error", resumed["summary"]
    assert "never ended in an earlier run" in resumed["summary"]
    assert "to start over" in resumed["summary"]
