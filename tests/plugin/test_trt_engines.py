"""Prebuilt TensorRT engines as tests, optimization profiles and --polygraphy-save-engine,
end to end through pytest.

TensorRT cannot be installed on these machines. Where a test needs a TensorRT runner to
run, the project's conftest replaces ``TrtRunner`` and ``TrtEngineRunner`` with
``FakeTrtRunnerForOrchestration`` / ``FakeTrtEngineRunnerForOrchestration``: they run
ONNX Runtime and log what the plugin asked of them (which file, which profiles, how many
builds). These tests check the plugin's orchestration only and say nothing about
TensorRT's results; the real runners' tests skip here (tests/runners/test_trt.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_polygraphy.runners.trt_module import tensorrt_unavailable_reason
from tests.plugin.harness import exp_sigmoid_model, run_pytest, save, scale_model

FAKE_CONFTEST = '''
"""FakeTrtRunnerForOrchestration / FakeTrtEngineRunnerForOrchestration: stand-ins for the
TensorRT runners (TensorRT is not installable here) that run ONNX Runtime and log what the
plugin asked of them. Orchestration only: nothing here is a TensorRT result."""
import json
import os
from pathlib import Path

import pytest_polygraphy.runners.trt as trt
from pytest_polygraphy.files import write_bytes_atomically
from pytest_polygraphy.runners.onnxrt import OnnxrtRunner

LOG = Path(os.environ.get("FAKE_TRT_LOG", "fake_trt.jsonl"))


def log(**entry):
    with LOG.open("a") as handle:
        handle.write(json.dumps(entry) + "\\n")


class FakeTrtRunnerForOrchestration(OnnxrtRunner):
    def __init__(self, model, precision="fp32", profiles=None, **kwargs):
        super().__init__(model, name="trt" if precision == "fp32" else f"trt[{precision}]")
        self.model_file = Path(model)
        log(kind="build", model=self.model_file.name, precision=precision, profiles=profiles)

    def save_engine(self, path):
        return write_bytes_atomically(path, f"fake engine of {self.model_file.name}".encode())


class FakeTrtEngineRunnerForOrchestration(OnnxrtRunner):
    """Its 'engine file' is JSON naming the ONNX model ONNX Runtime runs in its place."""

    def __init__(self, engine, *, name=None):
        fake = json.loads(trt.read_engine_file(engine))
        super().__init__(str(Path(engine).parent / fake["runs"]), name=name or "trt[engine]")
        log(kind="engine", engine=Path(engine).name)


trt.TrtRunner = FakeTrtRunnerForOrchestration
trt.TrtEngineRunner = FakeTrtEngineRunnerForOrchestration
'''

FAKE = ["--polygraphy-skip-unavailable"]  # --trt is a usage error here without it


def fake_engine(path: Path, runs: str) -> Path:
    """A fake 'engine' for FakeTrtEngineRunnerForOrchestration: JSON naming the ONNX model
    it runs in place of an engine."""
    path.write_text(json.dumps({"runs": runs}))
    return path


def project(tmp_path: Path, *, fakes: bool = True) -> Path:
    save(scale_model(), tmp_path / "det.onnx")
    save(exp_sigmoid_model(), tmp_path / "dyn.onnx")
    if fakes:
        (tmp_path / "conftest.py").write_text(FAKE_CONFTEST)
    return tmp_path


def run(root: Path, *args: str) -> tuple:
    log = root / "fake_trt.jsonl"
    log.unlink(missing_ok=True)
    result = run_pytest(root, *args, env={"FAKE_TRT_LOG": str(log)})
    entries = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, entries


def test_engine_files_are_collected_like_model_files(tmp_path: Path) -> None:
    root = project(tmp_path, fakes=False)
    fake_engine(root / "det.plan", "det.onnx")
    fake_engine(root / "other.engine", "det.onnx")
    result = run_pytest(root, "--co", "-q", "--trt", "--onnxref", "--polygraphy-precisions",
                        "fp32", "fp16")  # fmt: skip
    for name in ("det.plan", "other.engine"):
        assert f"{name}::accuracy[fp32]" in result.output
        assert f"{name}::accuracy[fp16]" in result.output
    left_out = run_pytest(root, "--co", "-q")
    assert "det.plan" not in left_out.output  # no backend switch: left alone, like models


def test_an_engine_is_compared_with_its_onnx_model_on_the_reference(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake_engine(root / "det.plan", "det.onnx")
    (root / "det.polygraphy.json").write_text(json.dumps({"model": "det.onnx"}))
    fake_engine(root / "wrong.plan", "dyn.onnx")  # not the model it claims to come from
    (root / "wrong.polygraphy.json").write_text(json.dumps({"model": "det.onnx"}))
    result, log = run(root, "det.plan", "wrong.plan", "--trt", "--onnxref", *FAKE)
    assert result.outcome("det.plan::accuracy[fp32]") == "passed", result.output
    records = result.records("det.plan::accuracy[fp32]")
    assert {(r["reference"], r["actual"]) for r in records} == {("onnxref", "trt[engine]")}
    assert result.outcome("wrong.plan::accuracy[fp32]") == "failed"  # it really compares
    assert {e["engine"] for e in log if e["kind"] == "engine"} == {"det.plan", "wrong.plan"}
    assert not [e for e in log if e["kind"] == "build"]  # nothing built for an engine file


def test_an_engine_runs_once_for_every_shape_set_and_precision(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake_engine(root / "dyn.engine", "dyn.onnx")
    (root / "dyn.polygraphy.json").write_text(
        json.dumps({"model": "dyn.onnx", "input_shapes": ["x:[1,4]", "x:[3,4]"]})
    )
    result, log = run(root, "dyn.engine", *FAKE, "--trt", "--onnxref",
                      "--polygraphy-precisions", "fp32", "fp16")  # fmt: skip
    ids = [f"dyn.engine::accuracy[{p}-x={b}x4]" for p in ("fp32", "fp16") for b in (1, 3)]
    assert [result.outcome(i) for i in ids] == ["passed"] * 4, result.output
    assert [e["kind"] for e in log] == ["engine"]


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        (None, 'det.plan: an engine file is tested against the ONNX model it was built from, '
               'and none is named: add "model": "det.onnx"'),
        ({"model": "gone.onnx"}, "det.plan: its ONNX model .*gone.onnx \\(named in "
                                 "det.polygraphy.json\\) does not exist"),
        ({"model": "broken.onnx"}, "det.plan: its ONNX model .*broken.onnx \\(named in "
                                   "det.polygraphy.json\\) cannot be read"),
    ],
)  # fmt: skip
def test_a_missing_or_unreadable_reference_fails_that_test_naming_the_file(
    tmp_path: Path, sidecar: dict | None, message: str
) -> None:
    import re

    root = project(tmp_path)
    fake_engine(root / "det.plan", "det.onnx")
    (root / "broken.onnx").write_bytes(b"not a model")
    sidecar_file = root / "det.polygraphy.json"
    if sidecar is None:
        sidecar_file.unlink(missing_ok=True)  # det.onnx and det.plan would share it
    else:
        sidecar_file.write_text(json.dumps(sidecar))
    result, log = run(root, "det.plan", *FAKE, "--trt", "--onnxref")
    assert result.outcome("det.plan::accuracy[fp32]") == "failed"
    assert re.search(message, result.message("det.plan::accuracy[fp32]")), result.output
    assert not log  # failed before any runner was made


@pytest.mark.skipif(
    tensorrt_unavailable_reason() is None, reason="TensorRT (or TensorRT-RTX) is installed here"
)
def test_without_tensorrt_an_engine_test_skips_with_the_install_hint(tmp_path: Path) -> None:
    root = project(tmp_path, fakes=False)
    fake_engine(root / "det.plan", "det.onnx")
    (root / "det.polygraphy.json").write_text(json.dumps({"model": "det.onnx"}))
    result = run_pytest(root, "det.plan", "--trt", "--onnxref", *FAKE)
    assert result.outcome("det.plan::accuracy[fp32]") == "skipped"
    assert "pip install 'pytest-polygraphy[trt]'" in result.message("det.plan::accuracy[fp32]")
    usage = run_pytest(root, "det.plan", "--trt", "--onnxref")
    assert usage.returncode == 4 and "cannot run here" in usage.output


def test_an_engine_needs_another_reference_and_keeps_its_outputs(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake_engine(root / "det.plan", "det.onnx")
    (root / "det.polygraphy.json").write_text(json.dumps({"model": "det.onnx"}))
    alone, _ = run(root, "det.plan", *FAKE, "--trt")
    assert alone.outcome("det.plan::accuracy[fp32]") == "failed"
    assert "TensorRT cannot be its own reference" in alone.message("det.plan::accuracy[fp32]")
    marked, _ = run(root, "det.plan", *FAKE, "--trt", "--onnxref", "--polygraphy-mark-all")
    assert marked.outcome("det.plan::accuracy[fp32]") == "failed"
    assert "its outputs were fixed when it was built, so mark all cannot apply" in (
        marked.message("det.plan::accuracy[fp32]")
    )
    unselected, _ = run(root, "det.plan", "--onnxref")
    assert unselected.outcome("det.plan::accuracy[fp32]") == "skipped"
    assert "select --trt" in unselected.message("det.plan::accuracy[fp32]")


HAND_WRITTEN = """
import pytest

@pytest.mark.model("det.onnx")
@pytest.mark.engine("det.plan")
def test_shipped_engine(accuracy):
    accuracy.check()

@pytest.mark.model("det.onnx")
@pytest.mark.engine("det.plan")
def test_runner(trt_runner):
    assert trt_runner.name == "trt[engine]"

@pytest.mark.model("det.onnx")
@pytest.mark.engine("gone.plan")
def test_missing(accuracy):
    accuracy.check()
"""


def test_hand_written_tests_name_their_engine_with_a_marker(tmp_path: Path) -> None:
    root = project(tmp_path)
    fake_engine(root / "det.plan", "det.onnx")
    (root / "test_engine.py").write_text(HAND_WRITTEN)
    result, log = run(root, "test_engine.py", *FAKE, "--trt", "--onnxref")
    shipped = "test_engine.py::test_shipped_engine[fp32]"
    assert result.outcome(shipped) == "passed", result.output
    assert {r["actual"] for r in result.records(shipped)} == {"trt[engine]"}
    assert result.outcome("test_engine.py::test_runner[fp32]") == "passed"
    missing = "test_engine.py::test_missing[fp32]"
    assert result.outcome(missing) == "failed"
    assert "@pytest.mark.engine: engine file" in result.message(missing)
    assert "gone.plan does not exist" in result.message(missing)
    assert [e["kind"] for e in log] == ["engine"]
    markers = run_pytest(root, "--markers")
    assert "@pytest.mark.engine(path):" in markers.output


def test_one_profile_covers_every_shape_set_and_the_engine_is_built_once(tmp_path: Path) -> None:
    root = project(tmp_path)
    result, log = run(root, "dyn.onnx", *FAKE, "--trt", "--onnxref", "--polygraphy-input-shapes",
                      "x:[2,4]", "--polygraphy-input-shapes", "x:[1,4]",
                      "--polygraphy-input-shapes", "x:[5,4]")  # fmt: skip
    assert result.returncode == 0, result.output
    assert log == [
        {
            "kind": "build",
            "model": "dyn.onnx",
            "precision": "fp32",
            "profiles": [{"x": [[1, 4], [2, 4], [5, 4]]}],  # min, opt = first set, max
        }
    ]


def test_explicit_profiles_are_built_as_given_and_bad_ones_fail_clearly(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "dyn.polygraphy.json").write_text(
        json.dumps(
            {
                "input_shapes": ["x:[2,4]", "x:[12,4]"],
                "trt_min_shapes": ["x:[1,4]", "x:[9,4]"],
                "trt_opt_shapes": ["x:[4,4]", "x:[12,4]"],
                "trt_max_shapes": ["x:[8,4]", "x:[16,4]"],
            }
        )
    )
    result, log = run(root, "dyn.onnx", *FAKE, "--trt", "--onnxref")
    assert result.returncode == 0, result.output
    assert [e["profiles"] for e in log] == [
        [{"x": [[1, 4], [4, 4], [8, 4]]}, {"x": [[9, 4], [12, 4], [16, 4]]}]
    ]
    bad, log = run(root, "dyn.onnx", *FAKE, "--trt", "--onnxref", "--polygraphy-trt-min-shapes",
                   "x:[6,4]", "--polygraphy-trt-opt-shapes", "x:[4,4]",
                   "--polygraphy-trt-max-shapes", "x:[8,4]")  # fmt: skip
    message = bad.message("dyn.onnx::accuracy[fp32-x=2x4]")
    assert "TensorRT profile 0, input 'x': min <= opt <= max must hold in every dim" in message
    assert not log


def test_save_engine_keeps_one_engine_per_test_named_by_its_id(tmp_path: Path) -> None:
    root = project(tmp_path)
    result, _ = run(root, "dyn.onnx", *FAKE, "--trt", "--onnxref", "--polygraphy-save-engine",
                    "kept", "--polygraphy-input-shapes", "x:[1,4]", "--polygraphy-input-shapes",
                    "x:[2,4]")  # fmt: skip
    assert result.returncode == 0, result.output
    kept = sorted(p.name for p in (root / "kept").iterdir() if not p.name.startswith("."))
    assert kept == ["dyn.onnx.accuracy[fp32-x=1x4].engine", "dyn.onnx.accuracy[fp32-x=2x4].engine"]
    assert (root / "kept" / kept[0]).read_text() == "fake engine of dyn.onnx"
    # a TensorRT reference's engine is kept too, beside the one under test
    both, _ = run(root, "det.onnx", *FAKE, "--trt", "--polygraphy-precisions", "fp16",
                  "--polygraphy-save-engine", "both")  # fmt: skip
    assert both.returncode == 0, both.output
    assert sorted(p.name for p in (root / "both").iterdir() if not p.name.startswith(".")) == [
        "det.onnx.accuracy[fp16].engine",
        "det.onnx.accuracy[fp16].reference.engine",
    ]


def test_save_engine_keeps_the_engines_of_hand_written_tests(tmp_path: Path) -> None:
    root = project(tmp_path)
    (root / "test_saved.py").write_text(
        "import pytest\n\n"
        "@pytest.mark.model('dyn.onnx')\n"
        "def test_runners(runners):\n"
        "    assert [r.name for r in runners] == ['onnxref', 'trt']\n\n"
        "@pytest.mark.model('dyn.onnx')\n"
        "def test_trt(trt_runner):\n"
        "    assert trt_runner.name == 'trt'\n"
    )
    result, log = run(root, "test_saved.py", *FAKE, "--trt", "--onnxref",
                      "--polygraphy-save-engine", "kept")  # fmt: skip
    assert result.returncode == 0, result.output
    kept = sorted(p.name for p in (root / "kept").iterdir() if not p.name.startswith("."))
    assert kept == [
        "test_saved.py.test_runners[fp32].engine",
        "test_saved.py.test_trt[fp32].engine",
    ]
    assert [e["kind"] for e in log] == ["build"]  # one runner, cached across both tests


def test_debug_sessions_refuse_an_engine_test_saying_why(tmp_path: Path) -> None:
    """A variant of the ONNX reference cannot change a prebuilt engine: reduce and precision
    say so instead of answering about a model the engine does not run (fakes, as above)."""
    root = project(tmp_path)
    fake_engine(root / "wrong.plan", "dyn.onnx")
    (root / "wrong.polygraphy.json").write_text(json.dumps({"model": "det.onnx"}))
    args = ("--polygraphy-reduce", "--polygraphy-precision")
    result, _ = run(root, "wrong.plan", "--trt", "--onnxref", *FAKE, *args)
    assert result.outcome("wrong.plan::accuracy[fp32]") == "failed"
    sessions = [
        value
        for report in result.reports
        if report["nodeid"] == "wrong.plan::accuracy[fp32]" and report["when"] == "call"
        for name, value in report["props"]
        if name == "polygraphy_debug"
    ]
    assert {s["session"] for s in sessions} == {"reduce", "precision"}
    for found in sessions:
        assert found["status"].startswith("cannot"), found
        assert "prebuilt engine" in found["summary"] and "det.onnx" in found["summary"]
