"""Marking outputs with Polygraphy's rules, checked by running the marked models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import MARK_ALL, mark_outputs, output_metadata
from tests.models import builders
from tests.models.helpers import intermediates, run_ort


def test_mark_all_is_every_non_constant_node_output_in_node_order() -> None:
    model = builders.conv_chain()
    marked = mark_outputs(model, MARK_ALL)
    # "bias" comes from a Constant node; "input" is a graph input: neither is marked.
    assert [value.name for value in marked.graph.output] == [
        "conv1",
        "relu1",
        "conv2",
        "biased",
        "pooled",
        "output",
    ]


def test_mark_all_values_match_the_reference_evaluator() -> None:
    model = builders.mixed_chain()
    feed = builders.random_feed(model)
    outputs = run_ort(mark_outputs(model, MARK_ALL), feed)
    expected = intermediates(model, feed)
    assert list(outputs) == ["c", "r", "flat", "m", "n", "scores"]
    for name, values in outputs.items():
        np.testing.assert_allclose(values, expected[name], rtol=1e-4, atol=1e-5, err_msg=name)


def test_marked_outputs_keep_inferred_dtype_and_shape() -> None:
    marked = mark_outputs(builders.int64_bool_model(), MARK_ALL)
    meta = output_metadata(marked)
    assert meta["mask3"].dtype == np.bool_ and meta["mask3"].shape == (2, 3, 1)
    assert meta["mask_int"].dtype == np.int64
    assert meta["rows"].dtype == np.float32 and meta["rows"].shape == (2, 3, 4)
    dynamic = output_metadata(mark_outputs(builders.dynamic_batch_model(), MARK_ALL))
    assert dynamic["mm"].shape == ("batch", 4)
    onnx.checker.check_model(marked, full_check=True)


def test_mark_all_drops_outputs_that_are_graph_inputs() -> None:
    model = builders.multi_output_model()
    model.graph.output.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5]))
    names = [value.name for value in mark_outputs(model, MARK_ALL).graph.output]
    assert names == ["relu", "sig", "sum"]


def test_a_list_replaces_the_outputs_and_may_name_graph_inputs() -> None:
    model = builders.multi_output_model()
    marked = mark_outputs(model, ["relu", "x", "relu"])
    assert [value.name for value in marked.graph.output] == ["relu", "x"]
    feed = builders.random_feed(model)
    outputs = run_ort(marked, feed)
    np.testing.assert_array_equal(outputs["relu"], np.maximum(feed["x"], 0))
    np.testing.assert_array_equal(outputs["x"], feed["x"])


def test_exclude_removes_outputs() -> None:
    marked = mark_outputs(builders.conv_chain(), MARK_ALL, exclude=["conv1", "pooled"])
    assert [v.name for v in marked.graph.output] == ["relu1", "conv2", "biased", "output"]


def test_unknown_names_list_the_available_tensors() -> None:
    model = builders.conv_chain()
    with pytest.raises(ModelError, match=r"\['nope'\].*'conv1'"):
        mark_outputs(model, ["nope"])
    with pytest.raises(ModelError, match=r"\['bias'\]"):
        mark_outputs(model, ["bias"])  # a Constant's output
    with pytest.raises(ModelError, match=r"exclude \['ghost'\]"):
        mark_outputs(model, MARK_ALL, exclude=["ghost"])
    with pytest.raises(ModelError, match=r"no outputs left"):
        mark_outputs(model, ["conv1"], exclude=["conv1"])
    with pytest.raises(TypeError, match=r"MARK_ALL or a sequence"):
        mark_outputs(model, "conv1")


def test_tensors_of_unknown_dtype_are_marked_untyped_with_a_warning() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Mystery", ["r"], ["m"], name="mystery", domain="custom.ops"),
        helper.make_node("Relu", ["m"], ["out"], name="relu_out"),
    ]
    model = builders.make_model(
        nodes,
        [builders.float_input("x", [2])],
        [builders.float_input("out", [2])],
        check=False,
    )
    model.opset_import.append(helper.make_opsetid("custom.ops", 1))
    with pytest.warns(UserWarning, match=r"no dtype for \['m'\]"):
        marked = mark_outputs(model, ["r", "m"])
    assert marked.graph.output[1].type.WhichOneof("value") is None
    with pytest.raises(ModelError, match=r"'m'.*no type"):
        output_metadata(marked)


def test_the_argument_and_the_file_are_unchanged(tmp_path: Path) -> None:
    model = builders.conv_chain()
    before = model.SerializeToString()
    mark_outputs(model, MARK_ALL)
    assert model.SerializeToString() == before
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    file_bytes = path.read_bytes()
    marked = mark_outputs(path, ["relu1"])
    assert path.read_bytes() == file_bytes
    assert [value.name for value in marked.graph.output] == ["relu1"]
