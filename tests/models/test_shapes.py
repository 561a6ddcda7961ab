"""Shape inference, in memory and through files (the path taken past protobuf's limit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import infer_shapes, io, shapes
from pytest_polygraphy.models.shapes import value_infos
from tests.models import builders


def _types(model) -> dict[str, tuple[int, list]]:
    return {
        name: (
            value.type.tensor_type.elem_type,
            [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim],
        )
        for name, value in value_infos(model).items()
    }


def test_intermediate_tensors_get_types_and_shapes() -> None:
    model = builders.mixed_chain()
    inferred = infer_shapes(model)
    types = _types(inferred)
    assert types["flat"] == (TensorProto.FLOAT, [1, 4, 36])
    assert types["n"] == (TensorProto.FLOAT, [1, 4, 16])
    assert types["shape"] == (TensorProto.INT64, [3])
    assert not model.graph.value_info  # the argument is not changed


def test_data_propagation_resolves_computed_shapes() -> None:
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Reshape", ["y", "s"], ["z"]),
    ]
    model = builders.make_model(
        nodes,
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [6]),
        ],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        check=False,  # the checker wants a shape on every output
    )
    assert _types(infer_shapes(model))["z"] == (TensorProto.FLOAT, [2, 3])


def test_large_models_go_through_files(monkeypatch, tmp_path: Path) -> None:
    model = builders.mixed_chain()
    in_memory = _types(infer_shapes(model))
    monkeypatch.setattr(io, "PROTOBUF_LIMIT", 0)
    through_files = infer_shapes(model)
    assert _types(through_files) == in_memory
    assert {init.name for init in through_files.graph.initializer} == {
        init.name for init in model.graph.initializer
    }
    assert all(init.raw_data or init.int64_data for init in through_files.graph.initializer)


def test_inconsistent_model_warns_and_leaves_types_unknown() -> None:
    model = builders.matmul_softmax()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 5  # x[2,5] @ W[16,8]
    with pytest.warns(UserWarning, match=r"Incompatible dimensions"):
        inferred = infer_shapes(model)
    assert "logits" not in _types(inferred)


def test_unreadable_model_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"missing.onnx"):
        infer_shapes(tmp_path / "missing.onnx")


def _weighty_model() -> onnx.ModelProto:
    """A MatMul on a 64x64 weight, a Constant holding another, a Resize whose float
    scales shape inference must read, and a Reshape to an int64 shape."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.random((64, 64), dtype=np.float32), "w")
    big = numpy_helper.from_array(rng.random((64, 64), dtype=np.float32))
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    shape = numpy_helper.from_array(np.array([1, 1, 8, 8], np.int64), "shape")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Constant", [], ["c"], value=big),
        helper.make_node("Add", ["m", "c"], ["a"]),
        helper.make_node("Reshape", ["a", "shape"], ["r"], name="to_image"),
        helper.make_node("Resize", ["r", "", "scales"], ["y"], mode="nearest"),
    ]
    return builders.make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [w, scales, shape],
        check=False,
    )


def test_inferred_value_infos_are_those_of_full_inference(monkeypatch) -> None:
    """The same entries as ``value_infos(infer_shapes(model))``, byte for byte, from a
    copy whose weights are bare; the model itself is not changed."""
    model = _weighty_model()
    before = model.SerializeToString()
    full = value_infos(infer_shapes(model))
    assert _types(infer_shapes(model))["y"] == (TensorProto.FLOAT, [1, 1, 16, 16])
    seen: list[onnx.ModelProto] = []
    original = shapes._inferred
    monkeypatch.setattr(
        shapes, "_inferred", lambda proto, source: seen.append(proto) or original(proto, source)
    )
    bare = shapes.inferred_value_infos(model)
    assert list(bare) == list(full)
    assert all(bare[k].SerializeToString() == full[k].SerializeToString() for k in full)
    (inferred,) = seen
    weights = {init.name: init for init in inferred.graph.initializer}
    assert not weights["w"].raw_data and list(weights["w"].dims) == [64, 64]
    assert weights["scales"].raw_data  # small: kept, Resize's shape depends on it
    constant = next(node for node in inferred.graph.node if node.op_type == "Constant")
    assert not constant.attribute[0].t.raw_data
    assert model.SerializeToString() == before


def test_inferred_value_infos_warn_at_the_caller() -> None:
    model = builders.matmul_softmax()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 5
    with pytest.warns(UserWarning, match=r"Incompatible dimensions") as caught:
        shapes.inferred_value_infos(model)
    assert caught[0].filename == __file__
