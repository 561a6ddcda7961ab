"""End to end with one backend (``--onnxrt``): model files with per-model settings (beside
the model and in the ini) and golden outputs, run plainly and under ``-n 2``.

Each mode runs the project twice: first with ``--polygraphy-update-golden`` (the per-model
settings are checked on that run, which compares as usual), then, after one golden file
is corrupted, one deleted and one output changed, without it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.plugin.golden import GoldenFile
from tests.plugin import harness
from tests.plugin.harness import Run

LOADED = [
    {"x": np.full((2, 3), 100.0, np.float32)},
    {"x": np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)},
]

INI = """[pytest]
polygraphy_model_settings =
    metric*.onnx {"compare_func": "distance_metrics", "compare_args": {"l2_tolerance": 1e-9}}
    models/elsewhere/*.onnx {"seed": 3}
"""

VALUES = """
import os

import numpy as np
import pytest


def test_arange(golden):
    golden.check({"y": np.arange(6, dtype=np.float32).reshape(2, 3)}, backend="numpy")


def test_two_iterations(golden):
    golden.check([{"a": np.ones(2)}, {"a": np.zeros(2)}])


def test_changes(golden):
    golden.check({"v": np.full(3, float(os.environ.get("GOLDEN_VALUE", "1")), np.float32)})


def test_missing(golden):
    golden.check({"v": np.zeros(1)})


def test_corrupt(golden):
    golden.check({"v": np.zeros(1)})


@pytest.mark.precisions("fp16")
def test_named(golden, precision):
    golden.check({"v": np.ones(2)}, name="first")
    assert golden.path("first").name == "test_named[fp16].first.npz"
"""

ARGS = ("models", "tests", "--onnxrt", "--polygraphy-precisions", "fp32", "fp16")
CORRUPT = b"PK\x03\x04 not really a zip"


@dataclass
class Runs:
    mode: str
    project: Path
    update: Run
    check: Run


def write_project(project: Path) -> None:
    from pytest_polygraphy.data import save_inputs

    (project / "pytest.ini").write_text(INI)
    models = project / "models"
    settings = {
        "net": '{"input_shapes": "x:[2,4]"}',
        "nan": '{"validate": true, "precisions": "fp32"}',
        "marked": '{"mark_all": true, "precisions": ["fp16"], "input_shapes": ["x:[2,4]"]}',
        "loaded": '{"load_inputs": "inputs.npz", "precisions": ["fp16"], "atol": 1}',
        "metric": '{"precisions": ["fp16"]}',
        "golden_net": '{"reference": "golden", "input_shapes": ["x:[2,4]"]}',
    }
    builders = {
        "net": harness.exp_sigmoid_model,
        "nan": harness.log_model,
        "marked": harness.exp_sigmoid_model,
        "loaded": harness.scale_model,
        "metric": harness.scale_model,
        "golden_net": harness.exp_sigmoid_model,
    }
    for name, build in builders.items():
        harness.save(build(), models / f"{name}.onnx")
        (models / f"{name}.polygraphy.json").write_text(settings[name])
    save_inputs(models / "inputs.npz", LOADED)
    (project / "tests").mkdir()
    (project / "tests" / "test_values.py").write_text(VALUES)


@pytest.fixture(scope="module", params=list(harness.MODES))
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    mode = harness.MODES[request.param]
    project = tmp_path_factory.mktemp(f"models-{request.param}")
    write_project(project)
    update = harness.run_pytest(project, *ARGS, "--polygraphy-update-golden", *mode)
    folder = project / "tests" / "golden" / "test_values"
    (folder / "test_corrupt.npz").write_bytes(CORRUPT)
    (folder / "test_missing.npz").unlink()
    check = harness.run_pytest(project, *ARGS, *mode, env={"GOLDEN_VALUE": "1.5"})
    return Runs(request.param, project, update, check)


# ----------------------------------------------------------------------------- one backend


def test_one_backend_at_fp32_compares_nothing_and_fails(runs: Runs) -> None:
    nodeid = "models/net.onnx::accuracy[fp32-x=2x4]"
    assert runs.update.outcome(nodeid) == "failed"
    assert "nothing was compared: onnxrt is the only backend" in runs.update.message(nodeid)
    assert runs.update.records(nodeid) == []


def test_one_backend_at_reduced_precision_is_compared_with_itself_at_fp32(runs: Runs) -> None:
    records = runs.update.records("models/net.onnx::accuracy[fp16-x=2x4]")
    assert {(r["actual"], r["reference"]) for r in records} == {("onnxrt[fp16]", "onnxrt")}
    assert {r["output"] for r in records} == {"y", "z"}
    assert all(r["passed"] and r["max_absdiff"] > 0 for r in records)


# ----------------------------------------------------------------------------- per-model settings


def test_validate_reports_where_the_first_nan_is(runs: Runs) -> None:
    from pytest_polygraphy.data import DataLoader
    from pytest_polygraphy.metadata import TensorMetadata

    nodeid = "models/nan.onnx::accuracy[fp32]"
    assert runs.update.outcome(nodeid) == "failed"
    [feed] = DataLoader().bind(TensorMetadata().add("x", np.float32, (2, 3)))
    with np.errstate(invalid="ignore"):
        nans = np.isnan(np.log(feed["x"].astype(np.float64) - 0.5))
    assert nans.any() and not nans.all()
    first = [int(i) for i in np.argwhere(nans)[0]]
    assert (
        f"output 'y' of onnxrt (iteration 0) holds {int(nans.sum())} NaN and 0 Inf of 6 "
        f"values; the first (NaN) is at index {first}"
    ) in runs.update.message(nodeid)


def test_mark_all_compares_intermediate_tensors(runs: Runs) -> None:
    records = runs.update.records("models/marked.onnx::accuracy[fp16-x=2x4]")
    assert {r["output"] for r in records} == {"m", "y", "z"}


def test_loaded_inputs_replace_generated_ones(runs: Runs) -> None:
    nodeid = "models/loaded.onnx::accuracy[fp16]"
    assert runs.update.outcome(nodeid) == "passed", runs.update.message(nodeid)
    records = runs.update.records(nodeid)
    assert [r["iteration"] for r in records] == [0, 1]
    # x = 100 in the first feed: float16 has no 1.1, so the product is off by ~0.04
    fp16_error = abs(float(np.float16(1.1)) - 1.1) * 100
    assert records[0]["max_absdiff"] == pytest.approx(fp16_error, rel=0.7)
    assert records[1]["max_absdiff"] < 0.01


def test_ini_model_settings_choose_the_compare_function(runs: Runs) -> None:
    nodeid = "models/metric.onnx::accuracy[fp16]"
    assert runs.update.outcome(nodeid) == "failed"
    assert "l2" in runs.update.message(nodeid).lower()
    [record] = runs.update.records(nodeid)
    assert (record["rule"], record["rtol"], record["atol"]) == ("distance_metrics", None, None)


# ----------------------------------------------------------------------------- golden outputs

T = "tests/test_values.py::"
GOLDEN_ITEMS = (
    "models/golden_net.onnx::accuracy[fp32-x=2x4]",
    "models/golden_net.onnx::accuracy[fp16-x=2x4]",
)


def test_update_writes_one_file_per_test_with_a_sidecar(runs: Runs) -> None:
    folder = runs.project / "tests" / "golden" / "test_values"
    saved = GoldenFile(folder / "test_arange.npz").read()
    assert len(saved) == 1
    np.testing.assert_array_equal(saved[0]["y"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert saved[0]["y"].dtype == np.float32
    sidecar = json.loads((folder / "test_arange.json").read_text())
    assert sidecar["backend"] == "numpy" and sidecar["precision"] == "fp32"
    assert sidecar["seed"] == 1 and sidecar["outputs"] == ["y"]
    assert sidecar["test"] == f"{T}test_arange"
    assert sidecar["versions"]["numpy"] == np.__version__
    two = GoldenFile(folder / "test_two_iterations.npz").read()
    assert [list(it["a"]) for it in two] == [[1.0, 1.0], [0.0, 0.0]]
    named = GoldenFile(folder / "test_named[fp16].first.npz").read()
    assert named[0]["v"].tolist() == [1.0, 1.0]
    for nodeid in (f"{T}test_arange", *GOLDEN_ITEMS):
        assert runs.update.outcome(nodeid) == "passed", runs.update.message(nodeid)


def test_model_file_golden_holds_the_fp32_reference(runs: Runs) -> None:
    """The golden file of a model test holds the first selected backend at fp32; checked
    against numpy on the same generated inputs."""
    from pytest_polygraphy.data import DataLoader
    from pytest_polygraphy.metadata import TensorMetadata

    metadata = TensorMetadata().add("x", np.float32, ("batch", 4))
    for nodeid in GOLDEN_ITEMS:
        path = runs.project / "models" / "golden" / "golden_net" / f"{nodeid.split('::')[1]}.npz"
        saved = GoldenFile(path).read()
        feeds = DataLoader(input_shapes={"x": [2, 4]}).bind(metadata)
        for outputs, feed in zip(saved, feeds, strict=True):
            for output, expected in harness.exp_sigmoid(feed["x"]).items():
                np.testing.assert_allclose(outputs[output], expected, rtol=1e-6)
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert (sidecar["backend"], sidecar["precision"]) == ("onnxrt", "fp32")


def test_normal_runs_compare_with_golden_and_record(runs: Runs) -> None:
    for nodeid in (f"{T}test_arange", f"{T}test_two_iterations", f"{T}test_named[fp16]"):
        assert runs.check.outcome(nodeid) == "passed", runs.check.message(nodeid)
    records = runs.check.records(f"{T}test_arange")
    assert [(r["actual"], r["reference"], r["passed"]) for r in records] == [
        ("numpy", "golden", True)
    ]
    assert [r["iteration"] for r in runs.check.records(f"{T}test_two_iterations")] == [0, 1]
    for nodeid, actual in zip(GOLDEN_ITEMS, ("onnxrt", "onnxrt[fp16]"), strict=True):
        assert runs.check.outcome(nodeid) == "passed", runs.check.message(nodeid)
        pairs = {(r["actual"], r["reference"]) for r in runs.check.records(nodeid)}
        assert pairs == {(actual, "golden")}


def test_a_changed_output_fails_and_the_file_is_kept(runs: Runs) -> None:
    nodeid = f"{T}test_changes"
    assert runs.check.outcome(nodeid) == "failed"
    message = runs.check.message(nodeid)
    assert "outputs vs golden, iteration 0" in message and "Output 'v' FAILED" in message
    assert "Traceback" not in message
    [record] = runs.check.records(nodeid)
    assert record["max_absdiff"] == pytest.approx(0.5) and not record["passed"]
    kept = GoldenFile(runs.project / "tests/golden/test_values/test_changes.npz").read()
    assert kept[0]["v"].tolist() == [1.0, 1.0, 1.0]


def test_missing_golden_fails_with_the_command_that_creates_it(runs: Runs) -> None:
    nodeid = f"{T}test_missing"
    assert runs.check.outcome(nodeid) == "failed"
    message = runs.check.message(nodeid)
    assert "test_missing.npz does not exist; create it with:" in message
    command = message.split("create it with:")[1].strip().splitlines()[0]
    assert command == (
        f"pytest {T}test_missing --onnxrt --polygraphy-precisions fp32 fp16 "
        "--polygraphy-update-golden"
    )
    assert not (runs.project / "tests/golden/test_values/test_missing.npz").exists()


def test_the_printed_command_creates_the_missing_file(runs: Runs) -> None:
    if runs.mode != "serial":
        pytest.skip("the command does not depend on the mode; it runs once")
    message = runs.check.message(f"{T}test_missing")
    command = shlex.split(message.split("create it with:")[1].strip().splitlines()[0])
    assert command[0] == "pytest"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *command[1:]],
        cwd=runs.project,
        check=True,
        capture_output=True,
    )
    created = GoldenFile(runs.project / "tests/golden/test_values/test_missing.npz").read()
    assert created[0]["v"].tolist() == [0.0]


def test_a_corrupt_golden_file_fails_clearly_and_is_not_touched(runs: Runs) -> None:
    nodeid = f"{T}test_corrupt"
    assert runs.check.outcome(nodeid) == "failed"
    message = runs.check.message(nodeid)
    assert "test_corrupt.npz is corrupt" in message and "recreate it with:" in message
    path = runs.project / "tests/golden/test_values/test_corrupt.npz"
    assert path.read_bytes() == CORRUPT
