"""Input/output metadata and the dtype mapping, checked against ONNX Runtime's view."""

from __future__ import annotations

import os
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import (
    infer_shapes,
    input_metadata,
    np_to_onnx_dtype,
    onnx_to_np_dtype,
    output_metadata,
    output_names,
)
from tests.models import builders

ORT_TYPES = {"tensor(float)": np.float32, "tensor(int64)": np.int64, "tensor(bool)": np.bool_}


@pytest.mark.parametrize(
    "build",
    [builders.conv_chain, builders.dynamic_batch_model, builders.int64_bool_model],
)
def test_metadata_matches_onnxruntime(build) -> None:
    model = build()
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for ours, theirs in (
        (input_metadata(model), session.get_inputs()),
        (output_metadata(model), session.get_outputs()),
    ):
        assert list(ours) == [arg.name for arg in theirs]
        for arg in theirs:
            assert ours[arg.name].dtype == np.dtype(ORT_TYPES[arg.type])
            assert list(ours[arg.name].shape) == arg.shape


def test_symbolic_and_unknown_dims() -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", None, 3])
    x.type.tensor_type.shape.dim[1].Clear()
    no_shape = helper.make_tensor_value_info("no_shape", TensorProto.FLOAT, None)
    model = builders.make_model(
        [helper.make_node("Identity", ["x"], ["y"]), helper.make_node("Relu", ["no_shape"], ["z"])],
        [x, no_shape],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None, 3]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
        ],
        check=False,  # the checker wants a shape on every input
    )
    meta = input_metadata(model)
    assert meta["x"].shape == ("batch", None, 3)
    assert meta["x"].is_dynamic
    assert meta["no_shape"].shape is None
    assert output_metadata(model)["z"].shape is None


def test_initializers_listed_as_inputs_are_not_inputs() -> None:
    model = builders.matmul_softmax()
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, [16, 8]))
    assert list(input_metadata(model)) == ["x"]


def test_bfloat16_maps_to_ml_dtypes() -> None:
    assert onnx_to_np_dtype(TensorProto.BFLOAT16) == np.dtype(ml_dtypes.bfloat16)
    assert np_to_onnx_dtype(ml_dtypes.bfloat16) == TensorProto.BFLOAT16
    model = builders.make_model(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)],
        [helper.make_tensor_value_info("x", TensorProto.BFLOAT16, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    assert input_metadata(model)["x"].dtype == np.dtype(ml_dtypes.bfloat16)


def test_dtype_mapping_round_trips() -> None:
    for elem_type in (
        TensorProto.FLOAT,
        TensorProto.FLOAT16,
        TensorProto.DOUBLE,
        TensorProto.INT8,
        TensorProto.UINT8,
        TensorProto.INT32,
        TensorProto.INT64,
        TensorProto.BOOL,
        TensorProto.BFLOAT16,
        TensorProto.FLOAT8E4M3FN,
    ):
        assert np_to_onnx_dtype(onnx_to_np_dtype(elem_type)) == elem_type
    with pytest.raises(ModelError, match=r"'t'.*UNDEFINED"):
        onnx_to_np_dtype(TensorProto.UNDEFINED, tensor="t")


def test_untyped_and_non_tensor_values_are_refused() -> None:
    model = builders.multi_output_model()
    model.graph.output.append(helper.make_empty_tensor_value_info("relu"))
    with pytest.raises(ModelError, match=r"'relu'.*no type"):
        output_metadata(model)
    seq = helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None)
    model.graph.input.append(seq)
    with pytest.raises(ModelError, match=r"'seq'.*sequence"):
        input_metadata(model)


def test_metadata_from_a_path_without_its_data(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    (tmp_path / "model.data").unlink()
    assert input_metadata(path)["x"].shape == (2, 16)
    assert list(output_metadata(path)) == ["probs"]


def test_symbolic_dims_survive_shape_inference() -> None:
    inferred = infer_shapes(builders.dynamic_batch_model())
    value_info = {value.name: value for value in inferred.graph.value_info}
    dims = value_info["mm"].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 4]
    assert onnx.checker.check_model(inferred) is None


def test_a_model_file_is_parsed_once_for_its_metadata_until_it_changes(
    tmp_path, monkeypatch
) -> None:
    """Asking a file's metadata again does not parse it again; a file rewritten in place
    (other size) or replaced (other inode) is read anew, never answered from the cache."""
    from pytest_polygraphy.models import io as model_io

    loads = []
    real_load = model_io.load_model
    monkeypatch.setattr(
        model_io, "load_model", lambda *a, **k: loads.append(a[0]) or real_load(*a, **k)
    )
    path = tmp_path / "m.onnx"

    def model(name: str, inputs: int) -> onnx.ModelProto:
        xs = [builders.float_input(f"{name}{i}", [2]) for i in range(inputs)]
        node = helper.make_node("Sum", [x.name for x in xs], ["y"], name="sum")
        return builders.make_model([node], xs, [builders.float_input("y", [2])], [])

    onnx.save(model("a", 1), str(path))
    assert list(input_metadata(path)) == ["a0"]
    assert list(input_metadata(str(path))) == ["a0"] and output_names(path) == ["y"]
    assert len(loads) == 1
    onnx.save(model("b", 2), str(path))  # rewritten in place, larger
    assert list(input_metadata(path)) == ["b0", "b1"]
    replacement = tmp_path / "other.onnx"
    onnx.save(model("c", 2), str(replacement))  # the same size as the file it replaces
    os.replace(replacement, path)
    assert list(input_metadata(path)) == ["c0", "c1"]
    assert len(loads) == 3
