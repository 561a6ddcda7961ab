"""``--polygraphy-reduce`` end to end: models with planted faults, run as a user would,
serially and under ``-n 2``; the answers are checked against the planted node and the
written test case against onnx's reference evaluator."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx.reference import ReferenceEvaluator

from pytest_polygraphy.data import save_inputs
from pytest_polygraphy.debug.artifacts import read_test_case
from pytest_polygraphy.models import convert_to_fp16
from tests.debug import models
from tests.plugin.harness import KILL_CONFTEST, MODES, Run, run_pytest

ARGS = ["--onnxref", "--polygraphy-precisions", "fp16", "--polygraphy-reduce"]
PLANTED = [["planted_exp", "Exp"]]

HAND_WRITTEN = """
import numpy as np
import pytest


@pytest.mark.model("models/chain.onnx")
def test_accuracy(accuracy):
    accuracy.check()


@pytest.mark.model("models/chain.onnx")
def test_own_inputs(onnxref_runner, reference_runner, compare_func):
    from pytest_polygraphy.runners.run import compare, run
    feed = {"x": np.full((1, 16), 0.9, np.float32)}
    assert compare(run([reference_runner, onnxref_runner], [feed]), compare_func)


@pytest.mark.model("models/chain.onnx")
def test_assert_close(onnxref_runner, reference_runner, data_loader):
    from pytest_polygraphy import assert_outputs_close
    for feed in data_loader.bind(onnxref_runner.input_metadata):
        expected = reference_runner.infer(feed)
        assert_outputs_close(onnxref_runner.infer(feed), expected, rtol=2e-3, atol=2e-3)


@pytest.mark.model("models/chain.onnx")
def test_names_first(onnxref_runner, reference_runner, data_loader):
    from pytest_polygraphy import assert_outputs_close
    for feed in data_loader.bind(onnxref_runner.input_metadata):
        actual, expected = onnxref_runner.infer(feed), reference_runner.infer(feed)
        assert set(actual) == {"y"}, "not the model's own output"
        assert_outputs_close(actual, expected, rtol=2e-3, atol=2e-3)


COUNT = {"runs": 0}


@pytest.mark.model("models/chain.onnx")
def test_flaky(accuracy):
    COUNT["runs"] += 1
    if COUNT["runs"] % 2 == 0:
        return  # a flaky backend: every other run passes
    accuracy.check()
"""


def build(project: Path) -> None:
    folder = project / "models"
    folder.mkdir(parents=True, exist_ok=True)
    models.chain(path=folder / "chain.onnx")
    models.branchy(path=folder / "branchy.onnx")
    models.with_if(path=folder / "with_if.onnx")
    models.with_optional(path=folder / "with_optional.onnx")
    models.accumulating(path=folder / "accumulating.onnx")
    two = project / "samples"
    two.mkdir(exist_ok=True)
    models.chain(path=two / "two_samples.onnx")
    save_inputs(
        two / "two.npz",
        [{"x": np.zeros((1, 16), np.float32)}, {"x": np.full((1, 16), 0.9, np.float32)}],
    )
    (two / "two_samples.polygraphy.json").write_text(json.dumps({"load_inputs": ["two.npz"]}))
    (project / "test_hand.py").write_text(HAND_WRITTEN)


def digests(project: Path) -> dict[str, str]:
    return {
        str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(project.rglob("*"))
        if p.suffix in (".onnx", ".npz", ".json")
        and not {"polygraphy-debug", "report_artifacts"} & set(p.parts)
        and p.name not in ("reports.json", "report.json")
    }


@pytest.fixture(scope="module", params=list(MODES))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    project = tmp_path_factory.mktemp(f"reduce_{request.param}")
    build(project)
    before = digests(project)
    run = run_pytest(
        project,
        "models",
        "samples",
        "test_hand.py",
        *ARGS,
        "-v",
        "--polygraphy-report",
        "report.html",
        *MODES[request.param],
    )
    return project, run, before


def session(run: Run, nodeid: str) -> dict[str, Any]:
    return run.debug_session(nodeid, "reduce")


def candidates(model: onnx.ModelProto) -> int:
    from pytest_polygraphy.debug.blocks import GraphIndex

    return len(GraphIndex(model).candidates)


@pytest.mark.parametrize(
    ("nodeid", "build_model"),
    [
        ("models/chain.onnx::accuracy[fp16]", models.chain),
        ("models/branchy.onnx::accuracy[fp16]", models.branchy),
        ("models/with_optional.onnx::accuracy[fp16]", models.with_optional),
    ],
)
def test_the_planted_node_is_found_in_log2_n_plus_3_checks(case, nodeid, build_model) -> None:
    _, run, _ = case
    assert run.outcome(nodeid) == "failed"  # the test's own outcome stays
    result = session(run, nodeid)
    assert result["status"] == "reduced", result["summary"]
    assert result["nodes"] == PLANTED
    n = candidates(build_model())
    assert result["checks"] <= math.ceil(math.log2(n)) + 3, result["summary"]
    assert f"{result['checks']} checks" in result["summary"]
    assert result["reproduces"] is True


def test_an_if_node_is_atomic(case) -> None:
    """The fp16 conversion leaves If bodies in fp32, so the first node to fail is the Log
    that reads the If's out-of-range output; every variant holding the If ran (none was
    invalid), its outer-scope input fed."""
    project, run, _ = case
    result = session(run, "models/with_if.onnx::accuracy[fp16]")
    assert result["nodes"] == [["branch_log", "Log"]], result["summary"]
    progress = next((project / "polygraphy-debug").glob("models_with_if*/reduce/progress.log"))
    assert "invalid" not in progress.read_text()


def test_both_samples_feed_the_cuts(case) -> None:
    """Only sample 1 overflows: a session that fed sample 0 only would find nothing."""
    _, run, _ = case
    result = session(run, "samples/two_samples.onnx::accuracy[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]


def test_accumulated_error_is_said(case) -> None:
    _, run, _ = case
    result = session(run, "models/accumulating.onnx::accuracy[fp16]")
    assert result["status"] == "reduced" and result["accumulated"], result["summary"]
    assert 1 < len(result["nodes"]) < 40
    assert "accumulated over nodes add" in result["summary"]


def test_a_hand_written_accuracy_test_is_reduced(case) -> None:
    _, run, _ = case
    result = session(run, "test_hand.py::test_accuracy[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]


def test_assert_outputs_close_is_an_accuracy_failure_with_its_outputs(case) -> None:
    """A hand-written test failing in assert_outputs_close is reduced like an accuracy
    test: the summary names the failing outputs and their errors, and a variant failing
    another assertion is another failure. The second test asserts its output names
    first, which only cuts ending at the model's output pass; it used to be "reduced" to
    the model's first node, whose cut failed that other assertion."""
    _, run, _ = case
    result = session(run, "test_hand.py::test_assert_close[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]
    assert "failing outputs: t23 (max abs inf" in result["summary"], result["summary"]
    result = session(run, "test_hand.py::test_names_first[fp16]")
    names = [name for name, _ in result["nodes"]]
    assert names[-1] == "output" and "n0" not in names, result["summary"]
    assert "failing outputs: y (max abs inf" in result["summary"], result["summary"]


def test_mark_all_reduces_to_where_an_intermediate_first_fails(tmp_path: Path) -> None:
    """Under --polygraphy-mark-all a failing intermediate fails the test while every
    output passes (Min(Exp(20x), 1) is 1 at both precisions; the Exp overflows fp16).
    A cut holding the Exp as its output and one holding it inside fail the same way: the
    search ends at the Exp (it used to call the first kind a different failure)."""
    models.clamped(path=tmp_path / "clamped.onnx")
    run = run_pytest(tmp_path, "clamped.onnx", *ARGS, "--polygraphy-mark-all")
    assert "every model output passed, but" in run.output, run.output
    result = session(run, "clamped.onnx::accuracy[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]
    assert "failing outputs: planted_e (max abs inf" in result["summary"], result["summary"]


def test_a_cut_keeps_in_fp32_what_the_test_keeps_of_its_nodes(tmp_path: Path) -> None:
    """keep_fp32 in the model's settings names a node late in the chain: a cut without it
    used to be invalid (the list named a node it lacks), and the answer took that node in
    with the planted one."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "chain.polygraphy.json").write_text(json.dumps({"keep_fp32": ["n35"]}))
    run = run_pytest(tmp_path, "chain.onnx", *ARGS)
    result = session(run, "chain.onnx::accuracy[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]
    log = next((tmp_path / "polygraphy-debug").glob("*/reduce/progress.log")).read_text()
    assert "keep_fp32 names nodes the model does not have" not in log


def test_a_test_making_its_own_inputs_cannot_be_reduced(case) -> None:
    _, run, _ = case
    result = session(run, "test_hand.py::test_own_inputs[fp16]")
    assert result["status"] == "failure lost when cut", result["summary"]
    assert "makes its own inputs" in result["summary"]


def test_a_flaky_test_is_reported_nondeterministic(case) -> None:
    _, run, _ = case
    result = session(run, "test_hand.py::test_flaky[fp16]")
    assert result["status"] == "nondeterministic"
    assert "nondeterministic (2 of 3 failed)" in result["summary"]


def test_the_minimal_test_case_reproduces_on_its_own(case) -> None:
    """Checked independently: onnx's reference evaluator at fp32 gives the stored outputs,
    and the fp16 conversion of the stored model fails them."""
    project, _, _ = case
    folders = list((project / "polygraphy-debug").glob("models_chain.onnx*"))
    assert len(folders) == 1
    model, inputs, outputs = read_test_case(folders[0] / "reduce" / "minimal_failing")
    assert [n.name for n in model.graph.node] == ["planted_exp"]
    assert len(inputs) == 1 and set(inputs[0]) == {"planted_scaled"}
    fp32 = ReferenceEvaluator(model)
    fp16 = ReferenceEvaluator(convert_to_fp16(model))
    names = [o.name for o in model.graph.output]
    for feed, expected in zip(inputs, outputs, strict=True):
        got = dict(zip(names, fp32.run(None, feed), strict=True))
        for name in names:
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-6)
        with np.errstate(over="ignore"):
            low = dict(zip(names, fp16.run(None, feed), strict=True))
        assert not np.allclose(low[names[0]], expected[names[0]], rtol=2e-3, atol=2e-3)
    assert (folders[0] / "reduce" / "min_good.onnx").exists()


def test_the_reports_hold_each_session(case) -> None:
    project, _, _ = case
    data = json.loads((project / "report.json").read_text())
    tests = {s["test"]: s for s in data["debug_sessions"]}
    assert tests["models/chain.onnx::accuracy[fp16]"]["nodes"] == PLANTED
    assert "Debug sessions" in (project / "report.html").read_text()


def test_the_users_files_are_untouched(case) -> None:
    project, _, before = case
    assert digests(project) == before


def test_the_sessions_re_runs_save_no_report_arrays(case) -> None:
    """Only the tests' own failures are drawn: one array file per failing output."""
    project, _, _ = case
    failing = sum(
        not r["passed"] for r in json.loads((project / "report.json").read_text())["records"]
    )
    assert len(list((project / "report_artifacts").glob("*.npz"))) == failing


def test_the_terminal_summary_lists_each_session(case) -> None:
    _, run, _ = case
    assert "polygraphy reduce" in run.output
    assert "models/chain.onnx::accuracy[fp16]: reduced" in run.output


def test_resume_after_sigkill_repeats_no_check(tmp_path: Path) -> None:
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "conftest.py").write_text(KILL_CONFTEST)
    killed = run_pytest(tmp_path, "chain.onnx", *ARGS, env={"KILL_AT_RUN": "5"})
    assert (
        killed.returncode < 0 or killed.returncode == 137 or "chain.onnx" not in str(killed.reports)
    ), killed.output
    journal = next((tmp_path / "polygraphy-debug").glob("*/reduce/journal.jsonl"))
    first = [json.loads(line) for line in journal.read_text().splitlines()]
    assert sum(e["event"] == "end" for e in first) == 3  # run 1 is the test; runs 2-4 checks
    resumed = run_pytest(tmp_path, "chain.onnx", *ARGS)
    result = session(resumed, "chain.onnx::accuracy[fp16]")
    assert result["replayed"] == 4, result["summary"]  # 3 finished + 1 crashed, none re-run
    assert result["status"] == "reduced" and result["reproduces"] is True
    assert "crashed the process in an earlier run" in (journal.parent / "progress.log").read_text()
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    begun = [e["key"] for e in events if e["event"] == "begin"]
    assert len(begun) == len(set(begun)), "a check ran twice"
    again = session(run_pytest(tmp_path, "chain.onnx", *ARGS), "chain.onnx::accuracy[fp16]")
    assert again["checks"] == 0 and again["replayed"] > 4
    assert again["nodes"] == result["nodes"]
    replay = ["--polygraphy-debug-dir", "elsewhere", "--polygraphy-load-replay", str(journal)]
    replayed = run_pytest(tmp_path, "chain.onnx", *ARGS, *replay)
    elsewhere = session(replayed, "chain.onnx::accuracy[fp16]")
    assert elsewhere["checks"] == 0 and elsewhere["nodes"] == result["nodes"]
    assert (tmp_path / "elsewhere").is_dir()


def test_a_kill_during_the_confirming_rerun_is_resumed_too(tmp_path: Path) -> None:
    """Killed while re-running the unchanged test (run 2): resumed, the session runs the
    test once more in its place and reduces, instead of calling the failure
    nondeterministic because of the killed run."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "conftest.py").write_text(KILL_CONFTEST)
    run_pytest(tmp_path, "chain.onnx", *ARGS, env={"KILL_AT_RUN": "2"})
    result = session(run_pytest(tmp_path, "chain.onnx", *ARGS), "chain.onnx::accuracy[fp16]")
    assert result["status"] == "reduced" and result["nodes"] == PLANTED, result["summary"]
    assert result["replayed"] == 1, result["summary"]


def test_variants_do_not_overwrite_the_tests_saved_inputs_and_outputs(tmp_path: Path) -> None:
    """--polygraphy-save-inputs/-outputs hold what the test ran, not the last variant's
    cut (the files are named after the test, and a re-run used to overwrite them)."""
    models.chain(path=tmp_path / "chain.onnx")
    saves = ["--polygraphy-save-inputs", "inputs", "--polygraphy-save-outputs", "outputs"]
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, *saves)
    assert session(run, "chain.onnx::accuracy[fp16]")["nodes"] == PLANTED
    (inputs,) = (tmp_path / "inputs").glob("*.npz")
    (outputs,) = (tmp_path / "outputs").glob("*.npz")
    with np.load(inputs) as saved:
        assert {key.split("/")[-1] for key in saved.files} - {"__pytest_polygraphy__"} == {"x"}
    with np.load(outputs) as saved:
        assert {key.split("/")[-1] for key in saved.files} - {"__pytest_polygraphy__"} == {"y"}


RUNNER_CONFTEST = """
import json
import os

from pytest_polygraphy.runners.onnxref import OnnxrefRunner

_activate = OnnxrefRunner._activate


def _recording(self):
    with open("activations.jsonl", "a") as out:
        out.write(json.dumps([self.name, isinstance(self.model, (str, os.PathLike))]) + "\\n")
    _activate(self)


OnnxrefRunner._activate = _recording
"""


def test_the_reference_values_come_from_the_tests_own_reference_runner(tmp_path: Path) -> None:
    """onnx's evaluator returns any tensor by name: the session asks the fp32 runner the
    test ran (still active) for the cut points' values, builds no runner on a marked copy
    of the model, and still finds the planted node."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "conftest.py").write_text(RUNNER_CONFTEST)
    run = run_pytest(tmp_path, "chain.onnx", *ARGS)
    assert session(run, "chain.onnx::accuracy[fp16]")["nodes"] == PLANTED
    lines = (tmp_path / "activations.jsonl").read_text().splitlines()
    activations = [json.loads(line) for line in lines]
    fp32 = [from_file for name, from_file in activations if name == "onnxref"]
    assert fp32 and all(fp32), activations  # the test's model, then each variant's file


def test_a_passing_test_runs_once_and_nothing_is_written(tmp_path: Path) -> None:
    models.chain(path=tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", "--onnxref", "--onnxrt", "--polygraphy-reduce")
    assert run.outcome("chain.onnx::accuracy[fp32]") == "passed"
    assert not (tmp_path / "polygraphy-debug").exists()


def test_linear_mode_keeping_the_outputs(tmp_path: Path) -> None:
    """Linear mode with --polygraphy-no-reduce-outputs cuts from the input side only: the
    answer ends at the model's output and starts where the overflow is first read."""
    models.chain(path=tmp_path / "chain.onnx")
    args = ["--polygraphy-reduce-mode", "linear", "--polygraphy-no-reduce-outputs"]
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, *args)
    result = session(run, "chain.onnx::accuracy[fp16]")
    names = [name for name, _ in result["nodes"]]
    assert names[-1] == "output" and names[0] in ("planted_exp", "log24"), result["summary"]
    assert result["reproduces"] is True and not result["accumulated"]
    # past the Exp, what fails is the Log fed exp(20 x), beyond float16's range: said
    ranged = "beyond fp16's range" in result["summary"]
    assert ranged is (names[0] == "log24"), result["summary"]
    assert not ranged or "made by node planted_exp (Exp)" in result["summary"]


def test_fail_on_narrows_what_counts_as_the_failure(tmp_path: Path) -> None:
    models.chain(path=tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, "--polygraphy-fail-on", "NaN at index")
    result = session(run, "chain.onnx::accuracy[fp16]")
    assert result["status"] == "not reproduced"
    assert "does not match --polygraphy-fail-on" in result["summary"]
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, "--polygraphy-fail-on", "Inf")
    assert session(run, "chain.onnx::accuracy[fp16]")["nodes"] == PLANTED


def test_a_dynamic_dim_is_warned_about_once(tmp_path: Path) -> None:
    """The session binds the test's inputs to the model again; the warning about the
    dynamic dim it had to choose is the test's, given once, not once more by the session."""
    model = models.chain()
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = "batch"
    onnx.save(model, tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS)
    assert session(run, "chain.onnx::accuracy[fp16]")["nodes"] == PLANTED
    assert run.output.count("input 'x' has dynamic shape [batch,16]") == 1, run.output


FAILING_BUILD_CONFTEST = '''
"""A stand-in for TensorRT's runner (TensorRT is not installable here): ONNX Runtime,
except that a model holding an Exp fails to build, as a layer TensorRT has no
implementation for would. Orchestration only: nothing here is a TensorRT result."""
import pytest_polygraphy.runners.trt as trt
from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import load_model
from pytest_polygraphy.runners.onnxrt import OnnxrtRunner


class FakeTrtRunnerForOrchestration(OnnxrtRunner):
    def __init__(self, model, precision="fp32", profiles=None, **kwargs):
        super().__init__(model, name="trt" if precision == "fp32" else f"trt[{precision}]")

    def _activate(self):
        exps = [n.name for n in load_model(self.model).graph.node if n.op_type == "Exp"]
        if exps:
            raise ModelError(f"could not build an engine: no implementation for {exps[0]} (Exp)")
        super()._activate()


trt.TrtRunner = FakeTrtRunnerForOrchestration
'''


def test_a_failing_engine_build_is_reduced_to_its_layer(tmp_path: Path) -> None:
    """Polygraphy's other use of ``debug reduce``: a model TensorRT cannot build. The
    runner fails while it builds, before any input; the session ends at the layer."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "conftest.py").write_text(FAILING_BUILD_CONFTEST)
    args = ["--trt", "--onnxref", "--polygraphy-skip-unavailable", "--polygraphy-reduce"]
    run = run_pytest(tmp_path, "chain.onnx", *args)
    nodeid = "chain.onnx::accuracy[fp32]"
    assert run.outcome(nodeid) == "failed", run.output
    result = session(run, nodeid)
    assert result["status"] == "reduced", result["summary"]
    assert result["nodes"] == PLANTED, result["summary"]
    assert "could not build an engine: no implementation for planted_exp" in result["summary"]
    assert result["checks"] <= math.ceil(math.log2(candidates(models.chain()))) + 3


GOLDEN_TEST = """
import pytest


@pytest.mark.model("chain.onnx")
def test_golden(onnxref_runner, data_loader, golden):
    feeds = data_loader.bind(onnxref_runner.input_metadata)
    golden.check([onnxref_runner.infer(feed) for feed in feeds])
"""


def test_a_hand_written_golden_test_compares_each_variant_with_the_reference(
    tmp_path: Path,
) -> None:
    """The golden file holds the whole model's outputs only: a variant's outputs are
    compared with the reference backend at fp32 on the variant instead, so the session
    finds the planted node (comparing a cut with the golden file would blame whatever
    node writes the output ``y``)."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "test_golden.py").write_text(GOLDEN_TEST)
    args = ["--onnxref", "--polygraphy-precisions", "fp16"]
    small = ["--polygraphy-val-range", "x:[0,0.1]"]  # no overflow when the file is written
    written = run_pytest(tmp_path, "test_golden.py", *args, *small, "--polygraphy-update-golden")
    assert written.outcome("test_golden.py::test_golden[fp16]") == "passed", written.output
    run = run_pytest(tmp_path, "test_golden.py", *args, "--polygraphy-reduce")
    nodeid = "test_golden.py::test_golden[fp16]"
    assert "vs golden file" in run.message(nodeid)
    result = session(run, nodeid)
    assert result["status"] == "reduced" and result["nodes"] == PLANTED, result["summary"]
    assert result["reproduces"] is True


def test_loaded_outputs_give_way_to_the_reference_in_a_variant(tmp_path: Path) -> None:
    """``--polygraphy-load-outputs`` holds the whole model's outputs for the whole model's
    inputs: a variant is compared with the first selected backend at fp32 instead, so the
    session finds the planted node, not the node that writes ``y``."""
    models.chain(path=tmp_path / "chain.onnx")
    saved = run_pytest(
        tmp_path, "chain.onnx", "--onnxref", "--onnxrt",
        "--polygraphy-val-range", "x:[0,0.1]", "--polygraphy-save-outputs", "out",
    )  # fmt: skip
    assert saved.outcome("chain.onnx::accuracy[fp32]") == "passed", saved.output
    outputs = str(tmp_path / "out" / "chain.onnx.accuracy[fp32].outputs.npz")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, "--polygraphy-load-outputs", outputs)
    nodeid = "chain.onnx::accuracy[fp16]"
    assert run.outcome(nodeid) == "failed", run.output
    result = session(run, nodeid)
    assert result["status"] == "reduced" and result["nodes"] == PLANTED, result["summary"]


@pytest.mark.parametrize(
    "selection",
    [
        ["--polygraphy-outputs", "y"],
        ["--polygraphy-mark-all", "--polygraphy-exclude-outputs", "t5"],
    ],
    ids=["outputs", "exclude"],
)
def test_an_output_selection_leaves_a_cut_its_own_outputs(
    tmp_path: Path, selection: list[str]
) -> None:
    """Output names select among the whole model's tensors: a cut without them compares
    its own outputs (exclusions still hold where it has the tensor), instead of every cut
    without ``y`` or ``t5`` being invalid and the answer being the run of nodes up to
    ``y``."""
    models.chain(path=tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, *selection)
    result = session(run, "chain.onnx::accuracy[fp16]")
    assert result["status"] == "reduced" and result["nodes"] == PLANTED, result["summary"]
    n = candidates(models.chain())
    assert result["checks"] <= math.ceil(math.log2(n)) + 3, result["summary"]


BROKEN_SESSION_CONFTEST = """
import pytest_polygraphy.debug.reduce as reduce


def broken(self):
    raise RuntimeError("a fault in the session")


reduce.ReduceSession._run = broken
"""


def test_a_session_that_raises_fails_alone(tmp_path: Path) -> None:
    """A bad setting that the session meets again says why; a fault of the session itself
    is reported with its traceback saved. Neither stops the run: each test still gets its
    own outcome and its session's result."""
    models.chain(path=tmp_path / "chain.onnx")
    models.branchy(path=tmp_path / "branchy.onnx")

    def each_failed_saying(run: Run, param: str, said: str) -> None:
        assert "INTERNALERROR" not in run.output
        for name in ("chain", "branchy"):
            nodeid = f"{name}.onnx::accuracy[{param}]"
            assert run.outcome(nodeid) == "failed"
            result = session(run, nodeid)
            assert result["status"] == "error" and said in result["summary"], result["summary"]

    shapes = ["--polygraphy-input-shapes", "x:[1,16]", "nope:[1]"]
    run = run_pytest(tmp_path, "chain.onnx", "branchy.onnx", *ARGS, *shapes)
    each_failed_saying(
        run, "fp16-x=1x16,nope=1", "cannot reduce: InputError: input_shapes names 'nope'"
    )
    (tmp_path / "conftest.py").write_text(BROKEN_SESSION_CONFTEST)
    run = run_pytest(tmp_path, "chain.onnx", "branchy.onnx", *ARGS)
    each_failed_saying(
        run, "fp16", "the reduce session failed: RuntimeError: a fault in the session"
    )
    errors = list((tmp_path / "polygraphy-debug").glob("*/reduce/error.txt"))
    assert len(errors) == 2 and "RuntimeError" in errors[0].read_text()


ASSERTING_TEST = """
import pytest
from pytest_polygraphy.runners.run import compare, run


@pytest.mark.model("chain.onnx")
def test_runners(runners, data_loader, compare_func):
    assert compare(run(runners, data_loader), compare_func)
"""


def test_a_plain_assert_is_summarized_by_its_own_line(tmp_path: Path) -> None:
    """A plain ``assert`` fails with a report that starts with the test's arguments; the
    summary's ``failure:`` line is the assertion's own line, naming what failed."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "test_assert.py").write_text(ASSERTING_TEST)
    run = run_pytest(tmp_path, "test_assert.py", *ARGS)
    result = session(run, "test_assert.py::test_runners[fp16]")
    assert result["nodes"] == PLANTED, result["summary"]
    assert (
        "failure: AssertionError: assert <RunComparison onnxref[fp16] vs onnxref: "
        "1 iteration(s), failed: onnxref[fp16] 't23' (iteration 0)>"
    ) in result["summary"]


def test_a_sequence_is_never_a_cut_point(tmp_path: Path) -> None:
    """The reference run keeps tensors only (a sequence of uneven parts made it fail), and
    cuts through the sequence are invalid without being run; the planted node, fed with
    a tensor, is found."""
    models.with_sequence(path=tmp_path / "sequence.onnx")
    args = [*ARGS, "--polygraphy-val-range", "x:[0.8,1]"]
    run = run_pytest(tmp_path, "sequence.onnx", *args)
    result = session(run, "sequence.onnx::accuracy[fp16]")
    assert result["status"] == "reduced" and result["nodes"] == PLANTED, result["summary"]
    progress = next((tmp_path / "polygraphy-debug").glob("*/reduce/progress.log")).read_text()
    assert "not run: the cut goes through 'seq'" in progress


@pytest.mark.parametrize("keep", ["inputs", "outputs"])
def test_keeping_the_inputs_or_outputs_bisects_one_end(tmp_path: Path, keep: str) -> None:
    """The answer is the smallest block holding the model's inputs (or outputs), found by
    bisecting its other end: about log2 N checks, none spent on removing single nodes
    from a block that is not meant to be 1-minimal."""
    models.chain(path=tmp_path / "chain.onnx")
    run = run_pytest(tmp_path, "chain.onnx", *ARGS, f"--polygraphy-no-reduce-{keep}")
    result = session(run, "chain.onnx::accuracy[fp16]")
    names = [name for name, _ in result["nodes"]]
    if keep == "inputs":
        assert names[0] == "n0" and names[-1] == "planted_exp", result["summary"]
    else:
        assert names[-1] == "output" and names[0] in ("planted_exp", "log24"), result["summary"]
    n = candidates(models.chain())
    assert result["checks"] <= math.ceil(math.log2(n)) + 3, result["summary"]


def test_a_golden_failure_the_reference_does_not_show_says_why(tmp_path: Path) -> None:
    """On ONNX Runtime's CPU provider the planted Exp runs in fp32: the test fails against
    its golden file (written from other inputs), but no cut fails against onnxrt at
    fp32, and the summary says that cutting cannot narrow a difference from the file.
    Without the golden file there is nothing to reduce, and the session says so."""
    models.chain(path=tmp_path / "chain.onnx")
    (tmp_path / "test_golden.py").write_text(GOLDEN_TEST.replace("onnxref_runner", "onnxrt_runner"))
    args = ["--onnxrt", "--polygraphy-precisions", "fp16"]
    nodeid = "test_golden.py::test_golden[fp16]"
    missing = run_pytest(tmp_path, "test_golden.py", *args, "--polygraphy-reduce")
    result = session(missing, nodeid)
    assert result["status"] == "cannot reduce", result["summary"]
    assert "its golden file is missing" in result["summary"]
    small = ["--polygraphy-val-range", "x:[0,0.1]", "--polygraphy-update-golden"]
    assert run_pytest(tmp_path, "test_golden.py", *args, *small).outcome(nodeid) == "passed"
    run = run_pytest(tmp_path, "test_golden.py", *args, "--polygraphy-reduce")
    assert run.outcome(nodeid) == "failed"
    result = session(run, nodeid)
    assert result["status"] == "failure lost when cut", result["summary"]
    assert (
        "compares with its golden file, which holds only the whole model's outputs"
        in (result["summary"])
    )
