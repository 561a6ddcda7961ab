"""Subgraph extraction, checked against the full model's intermediate values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import extract_subgraph, input_metadata, output_metadata
from tests.models import builders
from tests.models.helpers import intermediates, run_ort


def test_middle_of_a_chain_reproduces_the_full_models_values() -> None:
    model = builders.mixed_chain()
    feed = builders.random_feed(model)
    values = intermediates(model, feed)
    sub = extract_subgraph(model, ["r"], ["m", "n"])
    onnx.checker.check_model(sub, full_check=True)
    assert [node.name for node in sub.graph.node] == ["reshape", "matmul", "layernorm"]
    assert {init.name for init in sub.graph.initializer} == {"shape", "W", "gamma", "beta"}
    meta = input_metadata(sub)
    assert list(meta) == ["r"] and meta["r"].shape == (1, 4, 6, 6)
    assert output_metadata(sub)["n"].shape == (1, 4, 16)
    outputs = run_ort(sub, {"r": values["r"]})
    for name in ("m", "n"):
        np.testing.assert_allclose(outputs[name], values[name], rtol=1e-5, atol=1e-6)


def test_boundary_types_follow_inference_with_dynamic_dims() -> None:
    sub = extract_subgraph(builders.dynamic_batch_model(), ["mm"], ["y"])
    assert input_metadata(sub)["mm"].shape == ("batch", 4)
    feed = {"mm": np.random.RandomState(0).normal(size=(3, 4)).astype(np.float32)}
    np.testing.assert_array_equal(run_ort(sub, feed)["y"], np.maximum(feed["mm"], 0))


def test_an_initializer_can_become_an_input() -> None:
    model = builders.matmul_softmax()
    sub = extract_subgraph(model, ["x", "W"], ["logits_raw"])
    assert list(input_metadata(sub)) == ["x", "W"]
    assert not sub.graph.initializer
    rng = np.random.RandomState(1)
    feed = {"x": rng.rand(2, 16).astype(np.float32), "W": rng.rand(16, 8).astype(np.float32)}
    np.testing.assert_allclose(run_ort(sub, feed)["logits_raw"], feed["x"] @ feed["W"], rtol=1e-5)


def test_a_dependency_on_an_unlisted_graph_input_is_named() -> None:
    model = builders.int64_bool_model()
    with pytest.raises(ModelError, match=r"graph inputs \['mask'\]"):
        extract_subgraph(model, ["rows"], ["pooled"])
    sub = extract_subgraph(model, ["rows", "mask"], ["pooled"])
    feed = builders.random_feed(model)
    values = intermediates(model, feed)
    outputs = run_ort(sub, {"rows": values["rows"], "mask": feed["mask"]})
    np.testing.assert_allclose(outputs["pooled"], values["pooled"], rtol=1e-6)


def test_unknown_names_are_model_errors() -> None:
    model = builders.conv_chain()
    with pytest.raises(ModelError, match=r"inputs \['nope'\].*'relu1'"):
        extract_subgraph(model, ["nope"], ["conv2"])
    with pytest.raises(ModelError, match=r"outputs \['nope'\]"):
        extract_subgraph(model, ["relu1"], ["nope"])


def test_a_sibling_output_of_an_input_producer_is_renamed() -> None:
    nodes = [
        helper.make_node("Split", ["x", "sizes"], ["a", "b"], name="split", axis=0),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    model = builders.make_model(
        nodes,
        [builders.float_input("x", [4])],
        [builders.float_input("y", [2])],
        [onnx.numpy_helper.from_array(np.array([2, 2], np.int64), "sizes")],
    )
    sub = extract_subgraph(model, ["x", "a"], ["y"])  # Split is needed for "b" only
    onnx.checker.check_model(sub, full_check=True)
    feed = {"x": np.arange(4, dtype=np.float32), "a": np.full(2, 10, np.float32)}
    np.testing.assert_array_equal(run_ort(sub, feed)["y"], [12.0, 13.0])


def test_tensors_read_inside_if_branches_are_followed() -> None:
    model = builders.if_model()
    sub = extract_subgraph(model, ["x"], ["y"])
    assert {init.name for init in sub.graph.initializer} == {"two", "one", "zero"}
    for x in ([1.0, 2.0, 3.0], [-1.0, -2.0, 0.5]):
        feed = {"x": np.array(x, np.float32)}
        np.testing.assert_array_equal(run_ort(sub, feed)["y"], run_ort(model, feed)["y"])
    with pytest.raises(ModelError, match=r"graph inputs \['x'\]"):
        extract_subgraph(model, ["positive"], ["y"])  # the branches read "scaled" = f(x)


def test_the_file_is_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(builders.conv_chain(), path)
    before = path.read_bytes()
    extract_subgraph(path, ["relu1"], ["output"])
    assert path.read_bytes() == before
