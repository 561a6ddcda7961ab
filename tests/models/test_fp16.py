"""float16 conversion: structure, numerics on ONNX Runtime and the reference evaluator."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import (
    Fp16RangeWarning,
    convert_to_fp16,
    input_metadata,
    output_metadata,
)
from pytest_polygraphy.models.fp16 import to_fp16_array
from tests.models import builders
from tests.models.helpers import run_ort, run_reference

FLOAT, FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16


def _strictly_checked(model: onnx.ModelProto) -> onnx.ModelProto:
    """Run onnx's checker with strict, type-checking shape inference: every Cast and
    converted constant must leave each node with the types its schema accepts."""
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)


def _initializer_types(model: onnx.ModelProto) -> dict[str, int]:
    return {init.name: init.data_type for init in model.graph.initializer}


@pytest.mark.parametrize(
    "build",
    [builders.conv_chain, builders.matmul_softmax, builders.layernorm_model, builders.mixed_chain],
)
def test_conversion_is_close_to_fp32_but_not_identical(build) -> None:
    model = build()
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    assert input_metadata(fp16) == input_metadata(model)
    assert output_metadata(fp16) == output_metadata(model)
    assert set(_initializer_types(fp16).values()) <= {FLOAT16, TensorProto.INT64}
    for seed in range(3):
        feed = builders.random_feed(model, seed=seed)
        expected = run_ort(model, feed)
        for run in (run_ort, run_reference):
            actual = run(fp16, feed)
            for name, values in expected.items():
                assert actual[name].dtype == np.float32
                scale = float(np.abs(values).max())
                # float16 keeps ~3 decimal digits: relative error of a few 1e-3 of the range
                np.testing.assert_allclose(actual[name], values, atol=5e-3 * scale, rtol=1e-2)
                assert not np.array_equal(actual[name], values), name


def test_integer_and_bool_tensors_are_untouched() -> None:
    model = builders.int64_bool_model()
    fp16 = convert_to_fp16(_strictly_checked(model))
    _strictly_checked(fp16)
    assert _initializer_types(fp16) == {
        "table": FLOAT16,
        "last_axis": TensorProto.INT64,
        "zero": FLOAT16,
        "seq_axis": TensorProto.INT64,
    }
    feed = builders.random_feed(model)
    expected, actual = run_ort(model, feed), run_ort(fp16, feed)
    np.testing.assert_array_equal(actual["count"], expected["count"])
    np.testing.assert_allclose(actual["pooled"], expected["pooled"], rtol=2e-3, atol=2e-3)


def test_outputs_read_inside_the_graph_keep_their_name_and_dtype() -> None:
    model = builders.multi_output_model()
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    assert [v.name for v in fp16.graph.output] == ["sum", "sig"]
    assert output_metadata(fp16) == output_metadata(model)
    feed = builders.random_feed(model)
    expected = run_reference(model, feed)
    actual = run_reference(fp16, feed)
    for name in ("sum", "sig"):
        np.testing.assert_allclose(actual[name], expected[name], rtol=2e-3, atol=1e-3)
        assert not np.array_equal(actual[name], expected[name])


def test_blocking_every_node_changes_nothing_numerically() -> None:
    model = builders.mixed_chain()
    fp16 = convert_to_fp16(model, block_list=[node.name for node in model.graph.node])
    assert _initializer_types(fp16) == _initializer_types(model)
    assert not [node for node in fp16.graph.node if node.op_type == "Cast"]
    feed = builders.random_feed(model)
    np.testing.assert_array_equal(run_ort(fp16, feed)["scores"], run_ort(model, feed)["scores"])


def test_blocked_nodes_keep_their_constants_and_get_casts() -> None:
    model = builders.mixed_chain()
    fp16 = convert_to_fp16(model, block_list=["matmul"])
    _strictly_checked(fp16)
    types = _initializer_types(fp16)
    assert types["W"] == FLOAT  # read only by the blocked MatMul
    assert types["cw"] == FLOAT16 and types["gamma"] == FLOAT16
    matmul = next(node for node in fp16.graph.node if node.name == "matmul")
    producer = {out: node for node in fp16.graph.node for out in node.output}
    cast_in = producer[matmul.input[0]]
    assert cast_in.op_type == "Cast" and cast_in.attribute[0].i == FLOAT
    consumers = [node for node in fp16.graph.node if matmul.output[0] in node.input]
    assert [node.op_type for node in consumers] == ["Cast"]
    assert consumers[0].attribute[0].i == FLOAT16
    feed = builders.random_feed(model)
    np.testing.assert_allclose(
        run_ort(fp16, feed)["scores"], run_ort(model, feed)["scores"], atol=5e-3
    )


def test_a_constant_shared_with_a_blocked_node_gets_a_float16_copy() -> None:
    nodes = [
        helper.make_node("Mul", ["x", "k"], ["a"], name="mul_blocked"),
        helper.make_node("Add", ["a", "k"], ["b"], name="add"),
        helper.make_node("Constant", [], ["c"], name="const", value_float=0.5),
        helper.make_node("Mul", ["b", "c"], ["y"], name="mul_const"),
    ]
    k = numpy_helper.from_array(np.array([1.5, -2.25, 3.0], np.float32), "k")
    model = builders.make_model(
        nodes, [builders.float_input("x", [3])], [builders.float_input("y", [3])], [k]
    )
    fp16 = convert_to_fp16(model, block_list=["mul_blocked"])
    _strictly_checked(fp16)
    assert _initializer_types(fp16) == {"k": FLOAT, "k__fp16": FLOAT16}
    add = next(node for node in fp16.graph.node if node.name == "add")
    assert add.input[1] == "k__fp16"
    const = next(node for node in fp16.graph.node if node.name == "const")
    assert const.attribute[0].t.data_type == FLOAT16
    feed = {"x": np.array([0.1, 0.2, 0.3], np.float32)}
    expected = (feed["x"] * k_values() + k_values()) * 0.5
    np.testing.assert_allclose(run_ort(fp16, feed)["y"], expected, rtol=2e-3)


def k_values() -> np.ndarray:
    return np.array([1.5, -2.25, 3.0], np.float32)


def test_cast_to_float_and_float_typed_attributes_follow_the_node() -> None:
    nodes = [
        helper.make_node("Cast", ["ids"], ["f"], name="cast", to=FLOAT),
        helper.make_node("Shape", ["ids"], ["shape"], name="shape"),
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["fill"],
            name="fill",
            value=numpy_helper.from_array(np.array([0.125], np.float32)),
        ),
        helper.make_node("Add", ["f", "fill"], ["y"], name="add"),
    ]
    model = builders.make_model(
        nodes,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [4])],
        [builders.float_input("y", [4])],
    )
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    cast = next(node for node in fp16.graph.node if node.name == "cast")
    assert cast.attribute[0].i == FLOAT16
    fill = next(node for node in fp16.graph.node if node.name == "fill")
    assert fill.attribute[0].t.data_type == FLOAT16
    feed = {"ids": np.array([1, 2, 3, 2049], np.int64)}  # 2049 is not a float16 value
    # float16 arithmetic: 2049 -> 2048, and 2048 + 0.125 rounds back to 2048.
    # (ONNX Runtime's CPU provider computes such nodes in float32, so only its dtype and
    # closeness are checked.)
    np.testing.assert_array_equal(run_reference(fp16, feed)["y"], [1.125, 2.125, 3.125, 2048.0])
    y = run_ort(fp16, feed)["y"]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [1.125, 2.125, 3.125, 2049.125], rtol=1e-3)


def test_integer_constant_nodes_keep_their_type() -> None:
    target = numpy_helper.from_array(np.array([2, 3], np.int64))
    nodes = [
        helper.make_node("Constant", [], ["target"], name="target", value=target),
        helper.make_node("Reshape", ["x", "target"], ["y"], name="reshape"),
    ]
    model = builders.make_model(
        nodes, [builders.float_input("x", [6])], [builders.float_input("y", [2, 3])]
    )
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    constant = next(node for node in fp16.graph.node if node.name == "target")
    assert constant.attribute[0].t.data_type == TensorProto.INT64
    feed = {"x": np.arange(6, dtype=np.float32)}
    np.testing.assert_array_equal(run_ort(fp16, feed)["y"], feed["x"].reshape(2, 3))


def test_resize_scales_stay_float32() -> None:
    nodes = [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize", mode="nearest")]
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    model = builders.make_model(
        nodes,
        [builders.float_input("x", [1, 1, 2, 2])],
        [builders.float_input("y", [1, 1, 4, 4])],
        [scales],
    )
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    assert _initializer_types(fp16) == {"scales": FLOAT}
    feed = {"x": np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)}
    np.testing.assert_array_equal(run_ort(fp16, feed)["y"], run_ort(model, feed)["y"])


def test_out_of_range_constants_are_reported_and_clamped() -> None:
    nodes = [helper.make_node("Mul", ["x", "big"], ["y"], name="mul")]
    big = numpy_helper.from_array(np.array([1e5, -7e4, 1.0, 1e-9], np.float32), "big")
    model = builders.make_model(
        nodes, [builders.float_input("x", [4])], [builders.float_input("y", [4])], [big]
    )
    with pytest.warns(Fp16RangeWarning, match=r"'big': 2 of 4 values above 65504") as record:
        fp16 = convert_to_fp16(model)
    (issue,) = record[0].message.issues
    assert (issue.tensor, issue.overflow, issue.underflow, issue.max_abs) == ("big", 2, 1, 1e5)
    values = numpy_helper.to_array(fp16.graph.initializer[0])
    np.testing.assert_array_equal(values, np.array([65504, -65504, 1, 0], np.float16))
    with pytest.raises(ModelError, match=r"'big'"):
        convert_to_fp16(model, on_out_of_range="error")


@pytest.mark.parametrize("size", [4, 40000])
def test_constant_nodes_convert_the_same_every_time(size: int) -> None:
    """Converted Constant nodes are cached (a debug session converts every variant of one
    model): a second conversion gives the same bytes and reports the same range issues, for
    a small Constant and one past the cache's size limit, read by a float16 node and by a
    blocked one (which keeps the float32 original and gets a float16 copy next to it)."""
    values = np.ones(size, np.float32)
    values[:2] = [1e5, 1e-9]
    nodes = [
        helper.make_node(
            "Constant", [], ["big"], name="const", value=numpy_helper.from_array(values)
        ),
        helper.make_node("Mul", ["x", "big"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "big"], ["y"], name="add"),
    ]
    model = builders.make_model(
        nodes, [builders.float_input("x", [size])], [builders.float_input("y", [size])], []
    )
    results = []
    for _ in range(2):
        with pytest.warns(Fp16RangeWarning, match=r"'big': 1 of \d+ values above 65504") as record:
            fp16 = convert_to_fp16(model, block_list=["add"])
        (issue,) = record[0].message.issues
        assert (issue.overflow, issue.underflow, issue.readers) == (1, 1, ("mul", "add"))
        results.append(fp16.SerializeToString())
    assert results[0] == results[1]
    constants = {n.output[0]: n for n in fp16.graph.node if n.op_type == "Constant"}
    assert set(constants) == {"big", "big__fp16"}
    copy = numpy_helper.to_array(constants["big__fp16"].attribute[0].t)
    assert copy.dtype == np.float16 and copy[0] == 65504 and copy[1] == 0
    assert numpy_helper.to_array(constants["big"].attribute[0].t).dtype == np.float32


_EDGES = [0.0, -0.0, 1.0, 65504.0, 65519.0, 65520.0, 1e5, 2.0**-24, 2.0**-25, 2.0**-26, 1e-9]
_EDGES += [np.inf, -np.inf, np.nan, float(np.finfo(np.float32).max)]


@given(
    hnp.arrays(
        np.float32,
        hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=6),
        elements=st.one_of(st.floats(width=32), st.sampled_from(_EDGES).map(np.float32)),
    )
)
def test_to_fp16_array_clamps_and_counts_as_specified(values: np.ndarray) -> None:
    """Finite magnitudes above 65504 become +-65504 and count as overflow; non-zero values
    that become zero count as underflow; everything else is numpy's own conversion
    (NaN and infinities included), whichever path the function takes."""
    finite = np.isfinite(values)
    with np.errstate(all="ignore"):
        expected = np.where(finite, np.clip(values, -65504, 65504), values).astype(np.float16)
    converted, issue = to_fp16_array(values.copy(), "t")
    np.testing.assert_array_equal(converted.view(np.uint16), expected.view(np.uint16))
    assert converted.shape == values.shape and converted.dtype == np.float16
    overflow = int(np.count_nonzero(finite & (np.abs(values) > 65504)))
    underflow = int(np.count_nonzero((values != 0) & (expected == 0)))
    if overflow or underflow:
        assert issue is not None and (issue.overflow, issue.underflow) == (overflow, underflow)
        assert issue.size == values.size
    else:
        assert issue is None


def test_in_range_models_emit_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        convert_to_fp16(builders.mixed_chain())


def test_dynamic_batch_runs_at_any_batch() -> None:
    model = builders.dynamic_batch_model()
    fp16 = convert_to_fp16(model)
    assert input_metadata(fp16)["x"].shape == ("batch", 8)
    feed = builders.random_feed(model, batch=5)
    np.testing.assert_allclose(run_ort(fp16, feed)["y"], run_ort(model, feed)["y"], atol=1e-2)


def test_if_nodes_and_their_outer_tensors_stay_float32() -> None:
    model = builders.if_model()
    fp16 = convert_to_fp16(model)
    _strictly_checked(fp16)
    types = _initializer_types(fp16)
    assert types["two"] == FLOAT16 and types["one"] == FLOAT  # "one" is read in a branch
    for x in ([0.1, 0.2, 0.3], [-1.0, 0.2, 0.3]):
        feed = {"x": np.array(x, np.float32)}
        np.testing.assert_allclose(run_ort(fp16, feed)["y"], run_ort(model, feed)["y"], atol=1e-3)


def test_unknown_block_list_names_are_model_errors() -> None:
    with pytest.raises(ModelError, match=r"'nope' \(closest: none\).*'matmul'"):
        convert_to_fp16(builders.matmul_softmax(), block_list=["nope"])


def test_the_file_and_the_argument_are_unchanged(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("model.onnx", "model.data")}
    fp16 = convert_to_fp16(path)
    assert _initializer_types(fp16) == {"W": FLOAT16, "b": FLOAT16}
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    model = builders.conv_chain()
    serialized = model.SerializeToString()
    convert_to_fp16(model)
    assert model.SerializeToString() == serialized


def test_unnamed_nodes_are_blocked_by_their_stable_id_and_typos_get_the_closest() -> None:
    from pytest_polygraphy.models.nodes import node_ids

    model = builders.matmul_softmax()
    for node in model.graph.node:
        node.name = ""
    ids = node_ids(model)
    assert ids[0].startswith("#0:")
    converted = convert_to_fp16(model, block_list=[ids[0]])
    kept = [n for n in converted.graph.node if n.name == ids[0]]
    assert kept and all(
        v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16
        for v in converted.graph.value_info
        if v.name in kept[0].output
    )
    assert all(not n.name for n in model.graph.node)  # the model passed in is unchanged
    with pytest.raises(ModelError, match=rf"closest: '{re.escape(ids[0])}'"):
        convert_to_fp16(model, block_list=[ids[0][:-1]])


def test_only_converts_the_named_nodes_and_casts_at_their_borders() -> None:
    model = builders.mixed_chain()
    fp16 = convert_to_fp16(model, only=["matmul"])
    _strictly_checked(fp16)
    known = {v.name: v.type.tensor_type.elem_type for v in fp16.graph.value_info}
    known |= _initializer_types(fp16)
    for node in fp16.graph.node:
        types = {known.get(name) for name in [*node.input, *node.output] if name in known}
        if node.name == "matmul":
            assert types == {FLOAT16}, node
        elif node.op_type != "Cast":
            assert FLOAT16 not in types, node  # every other node stays as it was
    with pytest.raises(ModelError, match=r"only names nodes .* 'matmu' \(closest: 'matmul'"):
        convert_to_fp16(model, only=["matmu"])


def test_the_constant_cache_is_bounded_by_bytes() -> None:
    """The cache of converted Constants holds at most its byte limit, dropping the least
    recently used first, and a dropped entry converts again to the same bytes."""
    from pytest_polygraphy.models.fp16 import _ConstantCache

    def source(i: int) -> onnx.NodeProto:
        value = numpy_helper.from_array(np.full(64, i, np.float32))
        return helper.make_node("Constant", [], [f"c{i}"], name=f"n{i}", value=value)

    def key(i: int) -> tuple[str, bytes]:
        return f"c{i}", source(i).attribute[0].SerializeToString(deterministic=True)

    cache = _ConstantCache(limit=1500)
    first = cache.converted(source(0))
    for i in range(1, 6):
        cache.converted(source(i))
        assert cache.held <= 1500
    assert key(0) not in cache.entries and key(5) in cache.entries
    assert cache.converted(source(0)) == first
    converted = onnx.TensorProto()
    converted.ParseFromString(first[0])
    values = numpy_helper.to_array(converted)
    assert values.dtype == np.float16 and values[0] == 0 and first[1] is None


def test_a_constant_converts_once_whatever_its_tensor_is_named(monkeypatch) -> None:
    """A Constant read only by float16 nodes is converted in place (``c``); where a node
    kept in float32 reads it too, the float16 copy is ``c__fp16``. Both conversions (a
    reduce session's whole model and a cut of it) share one cached conversion of the
    value, and each model gets its own name and the right values."""
    from pytest_polygraphy.models import fp16

    value = np.array([1.5, -2.25, 3e-8, 7e4], np.float32)
    nodes = [
        helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(value)),
        helper.make_node("Mul", ["x", "c"], ["m"], name="mul"),
        helper.make_node("Add", ["m", "c"], ["y"], name="add"),
    ]
    model = builders.make_model(
        nodes, [builders.float_input("x", [4])], [builders.float_input("y", [4])], []
    )
    monkeypatch.setattr(fp16, "_CONSTANTS", fp16._ConstantCache(limit=1 << 20))
    calls = []
    convert_value = fp16._fp16_value
    monkeypatch.setattr(fp16, "_fp16_value", lambda node: calls.append(1) or convert_value(node))
    with pytest.warns(fp16.Fp16RangeWarning):
        kept = convert_to_fp16(model, block_list=["add"])
    with pytest.warns(fp16.Fp16RangeWarning):
        whole = convert_to_fp16(model)
    assert len(calls) == 1
    expected = np.clip(value, -65504, 65504).astype(np.float16)  # clamped, as warned
    for converted, name in ((kept, "c__fp16"), (whole, "c")):
        (constant,) = [
            n for n in converted.graph.node if n.op_type == "Constant" and n.output[0] == name
        ]
        tensor = constant.attribute[0].t
        assert tensor.name == name
        np.testing.assert_array_equal(numpy_helper.to_array(tensor), expected)


def test_conversions_from_several_threads_agree(monkeypatch) -> None:
    """Threads converting at once through a cache small enough to evict all the time get
    the same model a lone conversion gives (the cache is shared by the process)."""
    from concurrent.futures import ThreadPoolExecutor

    from pytest_polygraphy.models import fp16

    nodes, previous = [], "x"
    for i in range(40):
        value = numpy_helper.from_array(np.full(8, i + 1, np.float32))
        nodes.append(helper.make_node("Constant", [], [f"c{i}"], name=f"c{i}", value=value))
        nodes.append(helper.make_node("Mul", [previous, f"c{i}"], [f"m{i}"], name=f"m{i}"))
        previous = f"m{i}"
    nodes.append(helper.make_node("Identity", [previous], ["y"], name="out"))
    model = builders.make_model(
        nodes, [builders.float_input("x", [8])], [builders.float_input("y", [8])], []
    )
    expected = convert_to_fp16(model).SerializeToString()
    monkeypatch.setattr(fp16, "_CONSTANTS", fp16._ConstantCache(limit=2000))
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: convert_to_fp16(model).SerializeToString(), range(32)))
    assert all(result == expected for result in results)
    assert fp16._CONSTANTS.held <= 2000


def test_custom_domain_outputs_are_typed_by_onnx_runtime(monkeypatch) -> None:
    """onnx's shape inference cannot type ``com.microsoft::Gelu``'s output; ONNX Runtime
    can, so the model converts: the Gelu stays float32 between Casts, and its fp16 run on
    ONNX Runtime is close to fp32. Without ONNX Runtime the conversion says which tensor
    it could not type."""
    import builtins

    from tests.debug import models

    model = models.with_custom_op()
    converted = convert_to_fp16(model)
    nodes = {node.name: node for node in converted.graph.node}
    producers = {out: node for node in converted.graph.node for out in node.output}
    feeding = producers[nodes["gelu"].input[0]]
    assert feeding.op_type == "Cast" and feeding.attribute[0].i == TensorProto.FLOAT
    reader = nodes["n2"]
    assert producers[reader.input[0]].op_type == "Cast"  # back to float16 for the Abs
    feed = {"x": np.linspace(-2, 2, 16, dtype=np.float32).reshape(1, 16)}
    np.testing.assert_allclose(
        run_ort(converted, feed)["y"], run_ort(model, feed)["y"], rtol=1e-2, atol=1e-2
    )

    real_import = builtins.__import__

    def without_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_onnxruntime)
    with pytest.raises(ModelError, match=r"no type for tensor 'g' \(read or written by node"):
        convert_to_fp16(model)
