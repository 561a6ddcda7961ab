"""The ``onnxref`` runner's ``Conv``, ``MaxPool``, ``Constant``, float16 arithmetic and
float16 ``BatchNormalization`` give onnx's own kernels' results byte for byte (infinities and
signed zeros included; NaN where onnx has NaN), in numpy's memory layout, on generated
attributes, both float dtypes, and values with NaN, infinities and zeros of both signs
mixed in; and where they hand over to onnx's kernels, the result is onnx's."""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from pytest_polygraphy.runners.onnxref_ops import (
    _binary,
    batch_normalization,
    conv,
    float16_arithmetic,
    max_pool,
)

DTYPES = {np.float32: onnx.TensorProto.FLOAT, np.float16: onnx.TensorProto.FLOAT16}


def _model(node: onnx.NodeProto, x: np.ndarray, initializers: list[np.ndarray]) -> Any:
    names = node.input[1:]
    graph = helper.make_graph(
        [node],
        "op",
        [helper.make_tensor_value_info("x", DTYPES[x.dtype.type], list(x.shape))],
        [helper.make_tensor_value_info(name, DTYPES[x.dtype.type], None) for name in node.output],
        [numpy_helper.from_array(v, n) for n, v in zip(names, initializers, strict=True) if n],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model


def _both(model: Any, x: np.ndarray, op: type) -> tuple[list[Any], list[Any]]:
    with np.errstate(all="ignore"):
        theirs = ReferenceEvaluator(model).run(None, {"x": x})
        ours = ReferenceEvaluator(model, new_ops=[op]).run(None, {"x": x})
    return theirs, ours


def _assert_same_bytes(theirs: list[Any], ours: list[Any]) -> None:
    """Same dtype, shape and bytes, NaN at the same places; a NaN's sign and payload are
    left out (no ONNX operator reads them, and x86 sets them by operand order)."""
    assert len(theirs) == len(ours)
    for a, b in zip(theirs, ours, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert (a.dtype, a.shape) == (b.dtype, b.shape)
        if a.dtype.kind == "f":
            assert np.array_equal(np.isnan(a), np.isnan(b)), "NaN at other places"
            a, b = np.where(np.isnan(a), 0, a), np.where(np.isnan(b), 0, b)
        assert a.tobytes() == b.tobytes(), f"max abs difference {np.max(np.abs(a - b))}"


def _layout(a: Any) -> tuple[int, ...]:
    """The strides of the axes longer than 1: where the elements lie in memory, which
    decides the order in which a later reduction adds them."""
    a = np.asarray(a)
    return tuple(stride for stride, size in zip(a.strides, a.shape, strict=True) if size > 1)


def _values(draw: Any, shape: tuple[int, ...], dtype: Any, special: bool) -> np.ndarray:
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 2, size=shape).astype(dtype)
    if special:
        flat = values.reshape(-1)
        picks = rng.choice(flat.size, size=max(1, flat.size // 6), replace=False)
        flat[picks] = rng.choice(np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype), picks.size)
    return values


@st.composite
def conv_cases(draw: Any) -> tuple[Any, np.ndarray]:
    spatial = draw(st.integers(1, 3))
    group = draw(st.sampled_from([1, 2, 3]))
    per_group_in = draw(st.integers(1, 3))
    out_channels = group * draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial)]
    dilations = [draw(st.integers(1, 2)) for _ in range(spatial)]
    strides = [draw(st.integers(1, 3)) for _ in range(spatial)]
    auto_pad = draw(st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    pads = [draw(st.integers(0, 2)) for _ in range(2 * spatial)]
    spread = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    sizes = [draw(st.integers(s, s + 5)) for s in spread]
    batch = draw(st.integers(1, 2))
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    special = draw(st.booleans())
    x = _values(draw, (batch, group * per_group_in, *sizes), dtype, special)
    w = _values(draw, (out_channels, per_group_in, *kernel), dtype, special)
    bias = draw(st.sampled_from(["none", "per-channel", "single"]))
    inputs, initializers = ["x", "w"], [w]
    if bias != "none":
        size = out_channels if bias == "per-channel" else 1
        initializers.append(_values(draw, (size,), dtype, special))
        inputs.append("b")
    attributes: dict[str, Any] = {"group": group, "strides": strides, "dilations": dilations}
    if auto_pad == "NOTSET":
        attributes["pads"] = pads
    else:
        attributes["auto_pad"] = auto_pad
    if draw(st.booleans()):
        attributes["kernel_shape"] = kernel
    node = helper.make_node("Conv", inputs, ["y"], **attributes)
    return _model(node, x, initializers), x


@settings(max_examples=300, deadline=None)
@given(conv_cases())
def test_conv_is_onnx_conv_byte_for_byte(case: tuple[Any, np.ndarray]) -> None:
    model, x = case
    _assert_same_bytes(*_both(model, x, conv()))


@st.composite
def max_pool_cases(draw: Any) -> tuple[Any, np.ndarray]:
    spatial = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(spatial)]
    dilations = [draw(st.integers(1, 2)) for _ in range(spatial)]
    strides = [draw(st.integers(1, 3)) for _ in range(spatial)]
    spread = [(k - 1) * d + 1 for k, d in zip(kernel, dilations, strict=True)]
    pads = [draw(st.integers(0, s - 1)) for s in spread] * 2
    sizes = [draw(st.integers(s, s + 6)) for s in spread]
    dtype = draw(st.sampled_from([np.float32, np.float16]))
    x = _values(draw, (draw(st.integers(1, 2)), draw(st.integers(1, 3)), *sizes), dtype, True)
    attributes: dict[str, Any] = {"kernel_shape": kernel, "strides": strides}
    attributes["dilations"] = dilations
    auto_pad = draw(st.sampled_from(["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"]))
    if auto_pad == "NOTSET":
        attributes["pads"] = pads
        attributes["ceil_mode"] = draw(st.integers(0, 1))
    else:
        attributes["auto_pad"] = auto_pad
    outputs = ["y", "i"] if draw(st.integers(0, 4)) == 0 else ["y"]
    node = helper.make_node("MaxPool", ["x"], outputs, **attributes)
    return _model(node, x, []), x


@settings(max_examples=300, deadline=None)
@given(max_pool_cases())
def test_max_pool_is_onnx_max_pool_byte_for_byte(case: tuple[Any, np.ndarray]) -> None:
    model, x = case
    try:
        theirs, ours = _both(model, x, max_pool())
    except Exception as err:  # onnx's own kernel refuses some attribute mixes
        with pytest.raises(type(err)):
            ReferenceEvaluator(model).run(None, {"x": x})
        return
    _assert_same_bytes(theirs, ours)


def test_max_pool_keeps_the_first_nan_and_the_first_of_equal_zeros() -> None:
    """A window starting with NaN stays NaN; a later NaN is passed over; of -0.0 and 0.0
    the first one stays (onnx's loop replaces only on strictly greater)."""
    x = np.array([[[np.nan, 1.0, 2.0, np.nan, -0.0, 0.0, 0.0, -0.0]]], np.float32)
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2], strides=[2])
    theirs, ours = _both(_model(node, x, []), x, max_pool())
    _assert_same_bytes(theirs, ours)
    assert np.signbit(ours[0][0, 0, 2]) and not np.signbit(ours[0][0, 0, 3])
    assert np.isnan(ours[0][0, 0, 0]) and ours[0][0, 0, 1] == 2.0


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_the_runner_uses_them_on_a_small_cnn(dtype: Any) -> None:
    """A model of Conv (grouped, strided, padded) and strided MaxPool, large enough for
    the float16 sums in float32, gives onnx's bytes through ``OnnxrefRunner``; the
    runner's evaluator holds the project's classes."""
    from pytest_polygraphy.runners.onnxref import OnnxrefRunner

    rng = np.random.default_rng(3)
    w1 = rng.normal(size=(8, 3, 3, 3)).astype(dtype)
    w2 = rng.normal(size=(8, 1, 3, 3)).astype(dtype)
    b = rng.normal(size=8).astype(dtype)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Conv", ["c1", "w2"], ["c2"], group=8, pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c2"], ["y"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    graph = helper.make_graph(
        nodes,
        "cnn",
        [helper.make_tensor_value_info("x", DTYPES[dtype], [1, 3, 48, 64])],
        [helper.make_tensor_value_info("y", DTYPES[dtype], None)],
        [numpy_helper.from_array(v, n) for n, v in (("w1", w1), ("w2", w2), ("b", b))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    x = rng.normal(size=(1, 3, 48, 64)).astype(dtype)
    with OnnxrefRunner(model) as runner:
        ours = runner.infer({"x": x})["y"]
        classes = {type(op).__module__ for op in runner._evaluator.rt_nodes_}
    assert "pytest_polygraphy.runners.onnxref_ops" in classes
    (theirs,) = ReferenceEvaluator(model).run(None, {"x": x})
    assert ours.tobytes() == theirs.tobytes()


@pytest.mark.parametrize(
    ("a_shape", "b_shape"),
    [((1, 64, 96), (1, 96, 144)), ((16, 1, 9), (16, 9, 300)), ((1, 8, 300), (3, 300, 200))],
)
@pytest.mark.parametrize("special", [False, True])
def test_float16_matmul_is_numpy_matmul(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], special: bool
) -> None:
    """Conv's float16 matmul, summed over all outputs at once in float32 and rounded to
    float16, gives numpy's bytes, overflow to infinity included (values of about 100 make
    sums past 65504)."""
    from pytest_polygraphy.runners.onnxref_ops import _sums

    rng = np.random.default_rng(7)
    a = (rng.normal(size=a_shape) * 100).astype(np.float16)
    b = (rng.normal(size=b_shape) * 100).astype(np.float16)
    if special:
        for array in (a, b):
            flat = array.reshape(-1)
            picks = rng.choice(flat.size, size=flat.size // 50, replace=False)
            specials = np.array([np.nan, np.inf, -np.inf, -0.0], np.float16)
            flat[picks] = rng.choice(specials, picks.size)
    with np.errstate(all="ignore"):
        expected = a @ b
        ours = _sums(a.astype(np.float32), b.astype(np.float32)).astype(np.float16)
    assert np.isinf(expected).any() or special
    _assert_same_bytes([expected], [ours])


@st.composite
def binary_cases(draw: Any) -> tuple[Any, Any]:
    """Two operands that broadcast together, of float16, float32 or int32, in C order,
    reversed axis order or strided views, NaN, infinities and signed zeros mixed in."""
    rank = draw(st.integers(0, 4))
    shape = [draw(st.integers(1, 5)) for _ in range(rank)]
    operands = []
    for _ in range(2):
        own = [size if draw(st.booleans()) else 1 for size in shape]
        own = own[draw(st.integers(0, rank)) :] if draw(st.booleans()) else own
        dtype = draw(st.sampled_from([np.float16, np.float16, np.float32, np.int32]))
        if dtype == np.int32:
            values: Any = np.arange(int(np.prod(own)), dtype=np.int32).reshape(own) + 1
        else:
            scale = dtype(draw(st.sampled_from([1, 1000, 40000])))
            with np.errstate(over="ignore"):
                values = _values(draw, tuple(own), dtype, draw(st.booleans())) * scale
        layout = draw(st.sampled_from(["C", "reversed", "strided"]))
        if layout == "reversed" and values.ndim > 1:
            values = np.ascontiguousarray(values.T).T
        elif layout == "strided" and values.ndim > 0:
            values = np.repeat(values, 2, axis=-1)[..., ::2]
        operands.append(values)
    return operands[0], operands[1]


@settings(max_examples=400, deadline=None)
@given(binary_cases(), st.sampled_from([np.add, np.subtract, np.multiply, np.divide]))
def test_binary_is_numpy_values_and_layout(case: tuple[Any, Any], ufunc: Any) -> None:
    """``_binary`` gives numpy's dtype, bytes and memory layout for every dtype mix and
    layout (float16 overflow to infinity, and 0/0, included)."""
    a, b = case
    with np.errstate(all="ignore"):
        expected = ufunc(a, b)
        ours = _binary(ufunc, a, b)
    _assert_same_bytes([expected], [ours])
    assert _layout(ours) == _layout(expected)


@st.composite
def float16_arithmetic_cases(draw: Any) -> tuple[Any, np.ndarray]:
    op = draw(st.sampled_from(["Add", "Sub", "Mul", "Div"]))
    shape = [draw(st.integers(1, 4)) for _ in range(draw(st.integers(1, 4)))]
    transposed = shape[::-1]
    other = [size if draw(st.booleans()) else 1 for size in transposed]
    other = other[draw(st.integers(0, len(other) - 1)) :]
    special = draw(st.booleans())
    scale = np.float16(draw(st.sampled_from([1, 300])))
    x = _values(draw, tuple(shape), np.float16, special) * scale
    y = _values(draw, tuple(other), np.float16, special)
    # a Transpose first, so that the operator meets a non-contiguous view, as in real graphs
    operands = ["t", "y"] if draw(st.booleans()) else ["y", "t"]
    graph = helper.make_graph(
        [
            helper.make_node("Transpose", ["x"], ["t"], perm=list(reversed(range(len(shape))))),
            helper.make_node(op, operands, ["z"]),
            helper.make_node("ReduceSum", ["z"], ["s"], keepdims=1),
        ],
        "arithmetic",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, shape)],
        [
            helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT16, None),
            helper.make_tensor_value_info("s", onnx.TensorProto.FLOAT16, None),
        ],
        [numpy_helper.from_array(y, "y")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    return model, x


@settings(max_examples=300, deadline=None)
@given(float16_arithmetic_cases())
def test_float16_arithmetic_is_onnx_byte_for_byte(case: tuple[Any, np.ndarray]) -> None:
    """Add, Sub, Mul and Div in float16, on a transposed view and followed by a reduction
    (which adds in memory order): onnx's bytes, for the operator's output and the sum."""
    model, x = case
    with np.errstate(all="ignore"):
        theirs = ReferenceEvaluator(model).run(None, {"x": x})
        ours = ReferenceEvaluator(model, new_ops=list(float16_arithmetic())).run(None, {"x": x})
    _assert_same_bytes(theirs, ours)


@st.composite
def batch_normalization_cases(draw: Any) -> tuple[Any, np.ndarray]:
    spatial = draw(st.integers(0, 3))
    channels = draw(st.integers(1, 4))
    shape = (draw(st.integers(1, 2)), channels, *[draw(st.integers(1, 5)) for _ in range(spatial)])
    special = draw(st.booleans())
    x = _values(draw, shape, np.float16, special) * np.float16(draw(st.sampled_from([1, 500])))
    scale, bias, mean = (_values(draw, (channels,), np.float16, special) for _ in range(3))
    var = np.abs(_values(draw, (channels,), np.float16, special))
    attributes: dict[str, Any] = {}
    if draw(st.booleans()):
        attributes["epsilon"] = draw(st.sampled_from([1e-5, 1e-3, 0.0]))
    if draw(st.booleans()):
        attributes["momentum"] = 0.9  # paddle2onnx writes it; inference all the same
    opset = draw(st.sampled_from([9, 14, 15]))
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], **attributes)
    graph = helper.make_graph(
        [node],
        "bn",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, list(shape))],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, None)],
        [
            numpy_helper.from_array(v, n)
            for n, v in (("s", scale), ("b", bias), ("m", mean), ("v", var))
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model, x


@settings(max_examples=300, deadline=None)
@given(batch_normalization_cases())
def test_float16_batch_normalization_is_the_specification_byte_for_byte(
    case: tuple[Any, np.ndarray],
) -> None:
    """Inference-mode BatchNormalization in float16 gives the bytes of onnx's inference
    kernel, ``_batchnorm_test_mode``, with the attribute's float32 epsilon (the previous
    implementation's computation, which the project's class corrects onnx to use)."""
    from onnx.reference.ops.op_batch_normalization import _batchnorm_test_mode

    model, x = case
    node = model.graph.node[0]
    epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
    s, b, m, v = (numpy_helper.to_array(t) for t in model.graph.initializer)
    with np.errstate(all="ignore"):
        expected = _batchnorm_test_mode(x, s, b, m, v, epsilon=np.float32(epsilon))
        (ours,) = ReferenceEvaluator(model, new_ops=[batch_normalization()]).run(None, {"x": x})
    _assert_same_bytes([expected], [ours])
    assert _layout(ours) == _layout(expected)


def test_the_runner_runs_float16_arithmetic_and_frees_its_evaluator_at_once() -> None:
    """The runner's evaluator holds the project's float16 ``Add``/``Mul``; and once the
    runner is deactivated, the evaluator is freed without the garbage collector (an
    evaluator and its operators reference each other; left so, every dropped evaluator
    waits for a full collection)."""
    import gc
    import weakref

    from pytest_polygraphy.runners.onnxref import OnnxrefRunner

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "c"], ["a"]),
            helper.make_node("Mul", ["a", "c"], ["y"]),
        ],
        "arithmetic",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT16, [2, 3])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT16, [2, 3])],
        [numpy_helper.from_array(np.full([3], 1.5, np.float16), "c")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    x = np.arange(6, dtype=np.float16).reshape(2, 3)
    runner = OnnxrefRunner(model)
    runner.activate()
    expected = (x + np.float16(1.5)) * np.float16(1.5)
    assert runner.infer({"x": x})["y"].tobytes() == expected.tobytes()
    modules = {type(op).__module__ for op in runner._evaluator.rt_nodes_}
    assert modules == {"pytest_polygraphy.runners.onnxref_ops"}
    evaluator = weakref.ref(runner._evaluator)
    gc.disable()
    try:
        runner.deactivate()
        assert evaluator() is None
    finally:
        gc.enable()


@pytest.mark.parametrize(
    "attribute",
    [
        {"value": numpy_helper.from_array(np.array([[1.5, -0.0], [np.nan, 3.0]], np.float32))},
        {"value": numpy_helper.from_array(np.array([7, 8], np.int64))},
        {"value_float": 2.5},
        {"value_floats": [1.0, 2.0]},
        {"value_int": 3},
        {"value_ints": [4, 5, 6]},
    ],
    ids=lambda attribute: next(iter(attribute)),
)
@pytest.mark.parametrize("opset", [9, 11, 13, 18])
def test_constant_is_onnx_constant_at_every_run(attribute: dict[str, Any], opset: int) -> None:
    """The same values and dtype as onnx's ``Constant`` of the model's opset, at the first
    run and every later one (the same array object each time, as onnx's kernel gives)."""
    if opset < 12 and "value" not in attribute:
        pytest.skip("value_float and the like came with opset 12")
    node = helper.make_node("Constant", [], ["c"], **attribute)
    add = helper.make_node("Identity", ["c"], ["y"])
    graph = helper.make_graph(
        [node, add], "constant", [], [helper.make_tensor_value_info("y", 0, None)]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    from pytest_polygraphy.runners.onnxref_ops import constant

    theirs = ReferenceEvaluator(model)
    ours = ReferenceEvaluator(model, new_ops=[constant()])
    first = ours.run(["c"], {})
    for _ in range(2):
        _assert_same_bytes(theirs.run(None, {}), ours.run(None, {}))
    assert ours.run(["c"], {})[0] is first[0]


def test_a_constant_from_a_function_attribute_takes_each_calls_value() -> None:
    """A Constant whose value is its function's attribute (``ref_attr_name``) gives each
    call's value: one evaluator serves every call of a function."""
    from pytest_polygraphy.runners.onnxref_ops import constant

    inner = helper.make_node("Constant", [], ["k"])
    inner.attribute.append(
        onnx.AttributeProto(
            name="value_float", ref_attr_name="scale", type=onnx.AttributeProto.FLOAT
        )
    )
    mul = helper.make_node("Mul", ["x", "k"], ["y"])
    function = helper.make_function(
        "local", "Scale", ["x"], ["y"], [inner, mul], [helper.make_opsetid("", 18)], ["scale"]
    )
    evaluator = ReferenceEvaluator(function, new_ops=[constant()])
    x = np.array([1.0, -2.0], np.float32)
    for scale in (2.0, 3.0):
        (y,) = evaluator.run(None, {"x": x}, attributes={"scale": scale})
        np.testing.assert_array_equal(y, x * np.float32(scale))


def test_conv_refuses_negative_pads_as_onnx_does() -> None:
    x = np.ones((1, 1, 4, 4), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[-1, 0, 0, 0])
    model = _model(node, x, [np.ones((1, 1, 2, 2), np.float32)])
    for ops in ([], [conv()]):
        with pytest.raises(ValueError, match="negative"):
            ReferenceEvaluator(model, new_ops=ops).run(None, {"x": x})
