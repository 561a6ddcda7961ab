"""Shape inference, in memory and through files (the path taken past protobuf's limit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from onnx import TensorProto, helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import infer_shapes, io
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
