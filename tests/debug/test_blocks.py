"""Any node set as a model of its own: run on ONNX Runtime with the real values of its
inputs, it computes exactly what the whole model computed for its outputs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from pytest_polygraphy.debug.blocks import GraphIndex, topological_order
from pytest_polygraphy.models import mark_outputs
from tests.debug import models

BUILDERS = [models.chain, models.branchy, models.with_if, models.with_optional]


def run(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed), strict=True))


def reference(index: GraphIndex, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    marked = mark_outputs(index.model, index.needed_values())
    return {**feed, **run(marked, feed)}


def node_sets(n: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    sets = [tuple(range(n)), (0,), (n - 1,), tuple(range(n // 3, 2 * n // 3 + 1))]
    for _ in range(6):
        lo = int(rng.integers(0, n))
        hi = int(rng.integers(lo + 1, n + 1))
        sets.append(tuple(range(lo, hi)))
        sets.append(tuple(sorted(set(rng.choice(n, size=max(1, n // 4), replace=False)))))
    return sets


@pytest.mark.parametrize("build", BUILDERS, ids=[b.__name__ for b in BUILDERS])
def test_cuts_compute_what_the_whole_model_computed(build) -> None:
    index = GraphIndex(build())
    feed = {"x": np.random.default_rng(0).random((1, 16), dtype=np.float32)}
    values = reference(index, feed)
    for nodes in node_sets(len(index.candidates), np.random.default_rng(1)):
        cut = index.cut(nodes)
        model = index.cut_model(cut, values)
        onnx.checker.check_model(model)
        outputs = run(model, {name: values[name] for name in cut.inputs})
        assert set(outputs) == set(cut.outputs)
        for name, value in outputs.items():
            np.testing.assert_allclose(value, values[name], rtol=1e-6, atol=0, err_msg=name)


def test_constant_and_shape_nodes_never_steer() -> None:
    index = GraphIndex(models.branchy())
    steering = {index.nodes[i].name for i in index.candidates}
    assert "bias_reshape" not in steering and "x_shape" not in steering
    cut = index.cut(
        [index.candidates.index(i) for i in index.candidates if index.nodes[i].name == "a_bias"]
    )
    names = {index.nodes[i].name for i in cut.nodes}
    assert names == {"a_bias", "bias_reshape"}  # the constant comes along with its reader


def test_sequences_are_not_kept_and_no_cut_goes_through_them() -> None:
    index = GraphIndex(models.with_sequence())
    assert index.non_tensors == {"seq"}
    assert "seq" not in index.needed_values() and "part" in index.needed_values()
    position = {index.nodes[i].name: c for c, i in enumerate(index.candidates)}
    assert index.through_non_tensors(index.cut([position["split"]])) == ["seq"]
    assert index.through_non_tensors(index.cut([position["at"]])) == ["seq"]
    assert index.through_non_tensors(index.cut([position["split"], position["at"]])) == []


def test_if_nodes_are_atomic_and_their_outer_scope_names_are_fed() -> None:
    index = GraphIndex(models.with_if())
    position = next(c for c, i in enumerate(index.candidates) if index.nodes[i].op_type == "If")
    cut = index.cut([position])
    assert "pre3" in cut.inputs and "cond" in cut.inputs


def test_omitted_optional_inputs_stay_empty() -> None:
    index = GraphIndex(models.with_optional())
    position = next(c for c, i in enumerate(index.candidates) if index.nodes[i].name == "clip")
    cut = index.cut([position])
    assert "" not in cut.inputs
    assert cut.outputs == ("clipped",)


def test_unnamed_nodes_get_stable_ids_and_order_is_topological() -> None:
    model = models.chain(length=6, culprit=3)
    for node in model.graph.node:
        node.name = ""
    reversed_nodes = list(model.graph.node)[::-1]
    del model.graph.node[:]
    model.graph.node.extend(reversed_nodes)
    order = topological_order(model.graph)
    assert order[0].output[0] == "t0"
    index = GraphIndex(model)
    assert index.names[0] == f"#{len(model.graph.node) - 1}:Neg:t0"  # its place in the file


def test_a_cut_names_unnamed_nodes_by_their_ids_in_the_whole_model() -> None:
    """Their ids in the cut would hold other places (keep_fp32 lists name the whole
    model's); the model itself is not touched."""
    model = models.chain(length=6, culprit=3)
    for node in model.graph.node:
        node.name = ""
    index = GraphIndex(model)
    cut = index.cut((1, 2))
    part = index.cut_model(cut, reference(index, {"x": np.full((1, 16), 0.5, np.float32)}))
    expected = [index.names[index.candidates[c]] for c in (1, 2)]
    assert [node.name for node in part.graph.node] == expected
    assert expected[0].startswith("#") and all(node.name == "" for node in model.graph.node)


def _function_model() -> onnx.ModelProto:
    """A model-local function of a custom domain, a graph input that is also an
    initializer (an overridable weight), and weights big enough for external data."""
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_function(
        "custom.fn",
        "Scale2",
        ["a"],
        ["b"],
        [
            helper.make_node("Constant", [], ["two"], value_float=2.0),
            helper.make_node("Mul", ["a", "two"], ["b"]),
        ],
        [helper.make_opsetid("", 17)],
    )
    weight = numpy_helper.from_array(
        np.linspace(0, 1, 16 * 64, dtype=np.float32).reshape(16, 64), "w"
    )
    shift = numpy_helper.from_array(np.full([64], 0.5, np.float32), "shift")
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Scale2", ["m"], ["s"], name="scale2", domain="custom.fn"),
        helper.make_node("Add", ["s", "shift"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "fn",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16]),
            helper.make_tensor_value_info("shift", TensorProto.FLOAT, [64]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])],
        [weight, shift],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("custom.fn", 1)],
        functions=[body],
    )
    model.ir_version = 9
    return model


def test_functions_custom_domains_external_data_and_initializer_inputs(tmp_path) -> None:
    from pytest_polygraphy.models import load_model

    onnx.save(
        _function_model(),
        str(tmp_path / "m.onnx"),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="m.data",
        size_threshold=0,
    )
    index = GraphIndex(load_model(tmp_path / "m.onnx"))
    assert [index.nodes[i].name for i in index.candidates] == ["matmul", "scale2", "add", "relu"]
    feed = {"x": np.random.default_rng(2).random((3, 16), dtype=np.float32)}
    values = reference(index, feed)
    for nodes in [(1,), (1, 2), (2, 3), (0, 1, 2, 3)]:
        cut = index.cut(nodes)
        assert "shift" not in cut.inputs  # the initializer's value is the default
        model = index.cut_model(cut, values)
        outputs = run(model, {name: values[name] for name in cut.inputs})
        for name, value in outputs.items():
            np.testing.assert_allclose(value, values[name], rtol=1e-6)
