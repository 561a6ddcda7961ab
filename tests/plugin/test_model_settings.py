"""Per-model settings: the file beside the model, the ini lines, and how they merge.
(End to end: ``test_models.py``.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_polygraphy.plugin.modelsettings import (
    load_sidecar,
    merge,
    settings_for_model,
    sidecar_path,
)
from pytest_polygraphy.plugin.syntax import OptionValueError
from tests.plugin import harness


def test_sidecar_files_sit_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "det.v2.onnx"
    assert sidecar_path(model) == tmp_path / "det.v2.polygraphy.json"
    assert load_sidecar(model) == {}
    sidecar_path(model).write_text(
        json.dumps(
            {
                "val_range": {"x": [-1, 1]},
                "rtol": "1e-3 boxes:1e-2",
                "atol": 0.5,
                "check_error_stat": {"boxes": "max"},
                "load_inputs": ["in.npz"],
                "iterations": 2,
            }
        )
    )
    assert load_sidecar(model) == {
        "val_range": {"x": (-1, 1)},
        "rtol": {"": 1e-3, "boxes": 1e-2},
        "atol": {"": 0.5},
        "check_error_stat": {"boxes": "max"},
        "load_inputs": (tmp_path / "in.npz",),
        "iterations": 2,
    }


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        ('{"seed": -1}', "seed: the value must be an integer >= 0"),
        ('{"mark_all": "yes"}', "mark_all: expected true or false"),
        ('{"input_shapes": ["x:[a]"]}', "input_shapes: shape of 'x'"),
    ],
)
def test_bad_sidecars_name_the_file_and_key(tmp_path: Path, content: str, says: str) -> None:
    model = tmp_path / "m.onnx"
    sidecar_path(model).write_text(content)
    with pytest.raises(OptionValueError, match=r"m\.polygraphy\.json") as error:
        load_sidecar(model)
    assert says in str(error.value)


def test_ini_globs_then_the_sidecar_merge_per_output(tmp_path: Path) -> None:
    model = tmp_path / "models" / "det.onnx"
    model.parent.mkdir()
    sidecar_path(model).write_text('{"rtol": {"boxes": 0.1}}')
    ini = (
        ("*.onnx", {"rtol": {"": 1e-3, "boxes": 1e-2}, "seed": 2}),
        ("models/det.onnx", {"seed": 3}),
        ("other/*.onnx", {"seed": 4}),
    )
    assert settings_for_model(model, ini, tmp_path) == {"rtol": {"": 1e-3, "boxes": 0.1}, "seed": 3}
    assert merge({"a": {"": 1}}, {"a": {"x": 2}}, {"b": 1}) == {"a": {"": 1, "x": 2}, "b": 1}


BAD_SIDECARS = {
    "json": ('{"precisions": [', "badjson.polygraphy.json: not valid JSON"),
    "precision": ('{"precisions": ["fp64"]}', "precisions: unknown precision 'fp64'"),
    "nan": ('{"rtol": NaN}', "rtol: rtol must be a non-negative number"),
    "dim": ('{"input_shapes": ["x:[2,4.5]"]}', "every dim must be a non-negative int"),
}

BAD_TESTS = """
import pytest

from tests.plugin import harness

pytestmark = pytest.mark.model("models/good.onnx")


@pytest.mark.precisions("fp64")
def test_bad_marker(accuracy):
    accuracy.check()


@pytest.mark.model("models/badnan.onnx")
def test_bad_model_settings(accuracy):
    accuracy.check()


def test_good(accuracy):
    accuracy.check()
"""


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_one_bad_setting_fails_its_test_and_the_others_run(tmp_path: Path, mode: str) -> None:
    """Each bad per-model setting or marker fails its own test with the message; nothing
    interrupts the session (exit code 1, not 2)."""
    models = tmp_path / "models"
    harness.save(harness.exp_sigmoid_model(), models / "good.onnx")
    for name, (content, _) in BAD_SIDECARS.items():
        harness.save(harness.exp_sigmoid_model(), models / f"bad{name}.onnx")
        (models / f"bad{name}.polygraphy.json").write_text(content)
    (tmp_path / "test_bad.py").write_text(BAD_TESTS)
    result = harness.run_pytest(
        tmp_path, "models", "test_bad.py", "--onnxrt", "--onnxref", *harness.MODES[mode]
    )
    assert result.returncode == 1, result.output
    assert "Interrupted" not in result.output and "error during collection" not in result.output
    for name, (_, says) in BAD_SIDECARS.items():
        nodeid = f"models/bad{name}.onnx::accuracy"
        assert result.outcome(nodeid) == "failed", result.output
        message = result.message(nodeid)
        assert f"bad{name}.polygraphy.json" in message and says in message, message
        assert "Traceback" not in message
    assert result.outcome("models/good.onnx::accuracy[fp32]") == "passed"
    assert result.outcome("test_bad.py::test_good[fp32]") == "passed"
    marker = "test_bad.py::test_bad_marker"
    assert result.outcome(marker) == "error"
    assert f"{marker}: @pytest.mark.precisions: unknown precision 'fp64'" in result.message(marker)
    settings = "test_bad.py::test_bad_model_settings"
    assert result.outcome(settings) == "error"
    assert "badnan.polygraphy.json: rtol" in result.message(settings)
