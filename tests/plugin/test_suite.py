"""End to end: a project with hand-written tests (fixtures, markers) and model files as
tests, run once plainly and once under ``-n 2`` with ``--onnxrt --onnxref``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy import default_tolerances
from tests.plugin import harness
from tests.plugin.harness import Run

HAND_WRITTEN = """
import numpy as np
import pytest
from pytest_polygraphy.runners.run import compare, run

pytestmark = pytest.mark.model("../models/net.onnx")
SCALE = np.array([1.1, 0.9, 1.3, 0.7])


def numpy_net(x):
    m = x.astype(np.float64) * SCALE
    return {"y": np.exp(m), "z": 1 / (1 + np.exp(-m))}


@pytest.mark.shapes("x:[2,4]", {"x": [5, 4]})
def test_shapes_and_loader(input_shapes, data_loader, onnxrt_runner, precision):
    feeds = list(data_loader.bind(onnxrt_runner.input_metadata))
    assert len(feeds) == 2  # --polygraphy-iterations 2
    assert feeds[0]["x"].shape == input_shapes["x"]
    assert feeds[0]["x"].min() >= -1 and feeds[0]["x"].max() <= 1  # --polygraphy-val-range
    assert feeds[0]["x"].min() < 0
    outputs = onnxrt_runner.infer(feeds[0])
    rtol = 1e-5 if precision == "fp32" else 2e-3
    np.testing.assert_allclose(outputs["y"], numpy_net(feeds[0]["x"])["y"], rtol=rtol)


@pytest.mark.precisions("fp16")
def test_runners_reference_first(runners, onnxrt_runner):
    assert [r.name for r in runners] == ["onnxref", "onnxrt[fp16]"]
    assert all(r.is_active for r in runners)
    assert runners[1] is onnxrt_runner  # one cached runner per (model, backend, precision)


def test_run_and_compare(runners, data_loader, compare_func):
    comparison = compare(run(runners, data_loader), compare_func)
    assert comparison, comparison.report()


def test_accuracy_passes(accuracy):
    accuracy.check()


@pytest.mark.precisions("fp16")
@pytest.mark.tolerance(rtol=0, atol={"": 0, "z": 1})
def test_accuracy_fails_on_y(accuracy):
    accuracy.check()


@pytest.mark.precisions("fp16", "int8")
@pytest.mark.tolerance(rtol={"": 1e-3, "y": 2e-2}, check_error_stat="max")
def test_settings(polygraphy_settings, precision):
    from pytest_polygraphy import default_tolerances

    atol = default_tolerances(precision)["atol"]
    assert polygraphy_settings.tolerance("y") == (2e-2, atol)
    assert polygraphy_settings.tolerance("z") == (0.5, atol)  # models/net.polygraphy.json
    assert polygraphy_settings.tolerance("other") == (1e-3, atol)
    assert polygraphy_settings.check_error_stat == {"": "max"}
    assert polygraphy_settings.seed == 5


def test_reference_runner(reference_runner, precision):
    assert reference_runner.name == "onnxref"


def test_trt_runner(trt_runner):
    raise AssertionError("trt is not selected: this test must skip")


@pytest.mark.parametrize("precision", ["bf16"])
def test_user_parametrized_precision(precision, onnxrt_runner):
    raise AssertionError("ONNX Runtime has no bf16: this test must skip")
"""

NO_MODEL = """
def test_without_model(model):
    pass


import pytest


@pytest.mark.model("missing.onnx")
def test_missing_model(model):
    pass
"""

BAD_MARKER = """
import pytest


@pytest.mark.precisions("fp64")
def test_bad_precision(precision):
    pass
"""


@pytest.fixture(scope="module", params=list(harness.MODES))
def suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    project = tmp_path_factory.mktemp(f"suite-{request.param}")
    (project / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    harness.save(harness.exp_sigmoid_model(), project / "models" / "net.onnx")
    (project / "models" / "net.polygraphy.json").write_text(
        json.dumps({"input_shapes": ["x:[3,4]"], "rtol": {"z": 0.5}})
    )
    harness.save(harness.scale_model(), project / "models" / "static.onnx")
    (project / "models" / "static.polygraphy.json").write_text(
        json.dumps({"precisions": ["fp16"], "rtol": 0, "atol": 0})
    )
    harness.save(harness.scale_model(), project / "models" / "skipped.onnx")
    (project / "models" / "skipped.polygraphy.json").write_text('{"skip": "needs a GPU farm"}')
    harness.save(harness.scale_model(), project / "models" / "broken.onnx")
    (project / "models" / "broken.polygraphy.json").write_text('{"tolerance": 1}')
    (project / "tests").mkdir()
    (project / "tests" / "test_hand.py").write_text(HAND_WRITTEN)
    (project / "tests" / "test_no_model.py").write_text(NO_MODEL)
    (project / "tests" / "test_bad_marker.py").write_text(BAD_MARKER)
    return harness.run_pytest(
        project,
        "models",
        "tests",
        "--onnxrt",
        "--onnxref",
        "--polygraphy-precisions",
        "fp32",
        "fp16",
        "--polygraphy-iterations",
        "2",
        "--polygraphy-seed",
        "5",
        "--polygraphy-val-range",
        "[-1,1]",
        *harness.MODES[request.param],
    )


H = "tests/test_hand.py::"


def test_model_files_are_parametrized_by_precision_and_their_shape_sets(suite: Run) -> None:
    ids = {n for n in suite.nodeids() if n.startswith("models/net.onnx")}
    assert ids == {
        "models/net.onnx::accuracy[fp32-x=3x4]",
        "models/net.onnx::accuracy[fp16-x=3x4]",
    }
    assert suite.outcome("models/net.onnx::accuracy[fp16-x=3x4]") == "passed"


def test_model_files_record_every_output_and_iteration(suite: Run) -> None:
    records = suite.records("models/net.onnx::accuracy[fp16-x=3x4]")
    seen = {(r["output"], r["iteration"]) for r in records}
    assert seen == {("y", 0), ("y", 1), ("z", 0), ("z", 1)}
    for record in records:
        assert (record["actual"], record["reference"], record["precision"]) == (
            "onnxrt[fp16]",
            "onnxref",
            "fp16",
        )
        assert record["total"] == 12 and record["passed"] and record["mismatch_count"] == 0
        # per-model rtol for z; the precision's default (fp16) elsewhere
        fp16 = default_tolerances("fp16")
        assert record["rtol"] == (0.5 if record["output"] == "z" else fp16["rtol"])
        assert record["atol"] == fp16["atol"]
        assert 0 < record["max_absdiff"] < 1e-2  # fp16 really differs, within bounds
    fp32 = suite.records("models/net.onnx::accuracy[fp32-x=3x4]")
    assert {r["actual"] for r in fp32} == {"onnxrt"}
    assert all(r["atol"] == 1e-5 and r["max_absdiff"] < 1e-5 for r in fp32)


def test_a_failing_model_shows_the_comparison_report_not_a_traceback(suite: Run) -> None:
    nodeid = "models/static.onnx::accuracy[fp16]"
    assert suite.outcome(nodeid) == "failed"
    message = suite.message(nodeid)
    assert "onnxrt[fp16] vs onnxref, iteration 0" in message
    assert "Output 'y' FAILED" in message
    assert "Traceback" not in message and "pytest_polygraphy/plugin" not in message
    records = suite.records(nodeid)
    assert {r["passed"] for r in records} == {False}
    assert all(r["mismatch_count"] > 0 and r["rtol"] == 0 for r in records)


def test_per_model_skip_and_bad_settings(suite: Run) -> None:
    assert suite.outcome("models/skipped.onnx::accuracy[fp32]") == "skipped"
    assert "needs a GPU farm" in suite.message("models/skipped.onnx::accuracy[fp32]")
    # A bad sidecar fails that model's one item; it does not interrupt the session.
    assert suite.outcome("models/broken.onnx::accuracy") == "failed"
    message = suite.message("models/broken.onnx::accuracy")
    assert "broken.polygraphy.json" in message and "unknown key 'tolerance'" in message
    assert "accepted keys: precisions, reference, input_shapes" in message
    assert "Traceback" not in message
    assert "Interrupted" not in suite.output and suite.returncode == 1


def test_shapes_marker_loader_and_runner_fixtures(suite: Run) -> None:
    for ident in ("fp32-x=2x4", "fp32-x=5x4", "fp16-x=2x4", "fp16-x=5x4"):
        nodeid = f"{H}test_shapes_and_loader[{ident}]"
        assert suite.outcome(nodeid) == "passed", suite.message(nodeid)


def test_runners_and_the_runner_cache(suite: Run) -> None:
    nodeid = f"{H}test_runners_reference_first[fp16-x=3x4]"
    assert suite.outcome(nodeid) == "passed", suite.message(nodeid)


def test_run_compare_with_the_test_compare_func(suite: Run) -> None:
    for precision in ("fp32", "fp16"):
        nodeid = f"{H}test_run_and_compare[{precision}-x=3x4]"
        assert suite.outcome(nodeid) == "passed", suite.message(nodeid)


def test_accuracy_fixture_records_and_fails_with_the_report(suite: Run) -> None:
    passed = f"{H}test_accuracy_passes[fp16-x=3x4]"
    assert suite.outcome(passed) == "passed"
    assert {(r["output"], r["iteration"]) for r in suite.records(passed)} == {
        ("y", 0),
        ("y", 1),
        ("z", 0),
        ("z", 1),
    }
    failed = f"{H}test_accuracy_fails_on_y[fp16-x=3x4]"
    assert suite.outcome(failed) == "failed"
    message = suite.message(failed)
    assert "Output 'y' FAILED" in message and "Output 'z' passed" in message
    assert "Traceback" not in message
    verdicts = {r["output"]: r["passed"] for r in suite.records(failed)}
    assert verdicts == {"y": False, "z": True}


def test_tolerance_marker_over_precision_defaults(suite: Run) -> None:
    for precision in ("fp16", "int8"):
        nodeid = f"{H}test_settings[{precision}]"
        assert suite.outcome(nodeid) == "passed", suite.message(nodeid)


def test_reference_runner_and_unselected_or_absent_backends_skip(suite: Run) -> None:
    assert suite.outcome(f"{H}test_reference_runner[fp16-x=3x4]") == "passed"
    trt = f"{H}test_trt_runner[fp32-x=3x4]"
    assert suite.outcome(trt) == "skipped"
    assert "trt is not selected (pass --trt)" in suite.message(trt)
    bf16 = f"{H}test_user_parametrized_precision[bf16-x=3x4]"
    assert suite.outcome(bf16) == "skipped"
    assert "bf16" in suite.message(bf16)


def test_model_fixture_errors_name_the_fix(suite: Run) -> None:
    nodeid = "tests/test_no_model.py::test_without_model"
    assert suite.outcome(nodeid) == "error"
    assert "@pytest.mark.model('net.onnx')" in suite.message(nodeid)
    assert "polygraphy_model" in suite.message(nodeid)
    missing = "tests/test_no_model.py::test_missing_model"
    assert suite.outcome(missing) == "error"
    assert "missing.onnx" in suite.message(missing) and "does not exist" in suite.message(missing)
    bad_marker = "tests/test_bad_marker.py::test_bad_precision"
    assert suite.outcome(bad_marker) == "error"  # at setup; the other tests still run
    message = suite.message(bad_marker)
    assert f"{bad_marker}: @pytest.mark.precisions: unknown precision 'fp64'" in message


def test_summary_table_lists_the_records(suite: Run) -> None:
    assert "polygraphy accuracy" in suite.output
    assert "onnxrt[fp16] vs onnxref" in suite.output


def test_model_file_outputs_match_numpy(tmp_path: Path) -> None:
    """The records above compare backends with each other; this checks one of them against
    an independent numpy formula, on the same generated inputs."""
    from pytest_polygraphy.data import DataLoader
    from pytest_polygraphy.runners.onnxref import OnnxrefRunner

    model = harness.save(harness.exp_sigmoid_model(), tmp_path / "net.onnx")
    with OnnxrefRunner(model) as runner:
        for feed in DataLoader(
            seed=5, iterations=2, val_range=(-1, 1), input_shapes={"x": [3, 4]}
        ).bind(runner.input_metadata):
            outputs = runner.infer(feed)
            for name, expected in harness.exp_sigmoid(feed["x"]).items():
                np.testing.assert_allclose(outputs[name], expected, rtol=1e-6)


BUILD_COUNTER = """
import json

import pytest_polygraphy.plugin.backends as backends

built = []
_build = backends.build_runner


def counting_build_runner(backend, model, precision, *args, **kwargs):
    built.append([backend, precision])
    return _build(backend, model, precision, *args, **kwargs)


backends.build_runner = counting_build_runner


def pytest_sessionfinish(session):
    with open("built.json", "w") as handle:
        json.dump(built, handle)
"""


def test_one_model_with_five_shape_sets_and_two_precisions_builds_three_runners(
    pytester: pytest.Pytester,
) -> None:
    """ONNX Runtime sessions and reference evaluators do not depend on the input shapes:
    10 tests need onnxref at fp32 and onnxrt at fp32 and fp16, each built once."""
    harness.save(harness.exp_sigmoid_model(), pytester.path / "net.onnx")
    shapes = [f"x:[{n},4]" for n in (1, 2, 3, 5, 8)]
    (pytester.path / "net.polygraphy.json").write_text(
        json.dumps({"input_shapes": shapes, "precisions": ["fp32", "fp16"]})
    )
    pytester.makeconftest(BUILD_COUNTER)
    result = pytester.runpytest_subprocess("net.onnx", "--onnxrt", "--onnxref", "-p", "no:xdist")
    result.assert_outcomes(passed=10)
    built = sorted(map(tuple, json.loads((pytester.path / "built.json").read_text())))
    assert built == [("onnxref", "fp32"), ("onnxrt", "fp16"), ("onnxrt", "fp32")]
