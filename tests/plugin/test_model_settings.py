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
