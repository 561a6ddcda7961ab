"""Models with planted faults for the debug sessions' tests.

Every op except the planted ones is exact in fp16 for inputs in [0, 1] (Neg, Abs, Relu,
Mul by a power of two), so that at fp16 only the planted node can fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tests.models.builders import IR_VERSION, OPSET

EXACT_OPS = ("Neg", "Abs", "Relu", "Neg", "Abs")


def _save(model: onnx.ModelProto, path: Path | None) -> onnx.ModelProto:
    onnx.checker.check_model(model)
    if path is not None:
        onnx.save(model, str(path))
    return model


def _model(nodes, inputs, outputs, inits=(), name="planted") -> onnx.ModelProto:
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    return model


def _overflow(prefix: str, source: str, out: str) -> tuple[list, list]:
    """``Exp(source * 20)``: overflows fp16 (max 65504) for inputs above ~0.55."""
    scale = numpy_helper.from_array(np.array(20.0, np.float32), f"{prefix}_scale")
    nodes = [
        helper.make_node("Mul", [source, scale.name], [f"{prefix}_scaled"], name=f"{prefix}_mul"),
        helper.make_node("Exp", [f"{prefix}_scaled"], [out], name=f"{prefix}_exp"),
    ]
    return nodes, [scale]


def chain(length: int = 40, culprit: int = 23, path: Path | None = None) -> onnx.ModelProto:
    """``x[1,16]`` through ``length`` exact ops; op ``culprit`` is ``Exp(20x)``, followed
    by ``Log`` (so the fp32 reference stays finite). Exact nodes are named ``n<i>``."""
    nodes, inits = [], []
    previous = "x"
    for i in range(length):
        out = f"t{i}"
        if i == culprit:
            planted, weights = _overflow("planted", previous, out)
            nodes += planted
            inits += weights
        elif i == culprit + 1:
            nodes.append(helper.make_node("Log", [previous], [out], name=f"log{i}"))
        else:
            op = EXACT_OPS[i % len(EXACT_OPS)]
            source = previous
            if op == "Neg" and i > 0:  # keep values in [0, 1] after a Neg
                nodes.append(helper.make_node("Neg", [previous], [f"{out}_n"], name=f"n{i}"))
                nodes.append(helper.make_node("Abs", [f"{out}_n"], [out], name=f"a{i}"))
                previous = out
                continue
            nodes.append(helper.make_node(op, [source], [out], name=f"n{i}"))
        previous = out
    nodes.append(helper.make_node("Identity", [previous], ["y"], name="output"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    return _save(_model(nodes, [x], [y], inits), path)


def clamped(path: Path | None = None) -> onnx.ModelProto:
    """``x[1,16]`` through exact ops, then ``Min(Exp(20x), 1)``, then exact ops: the Exp
    overflows fp16, but the Min gives 1 at both precisions, so every output passes and
    only the Exp's own output (and the Min's input) diverges."""
    run_in, source = _exact_run("a", "x", 6)
    planted, weights = _overflow("planted", source, "planted_e")
    one = numpy_helper.from_array(np.array(1.0, np.float32), "one")
    clamp = helper.make_node("Min", ["planted_e", one.name], ["clamped"], name="clamp")
    run_out, last = _exact_run("b", "clamped", 6)
    output = helper.make_node("Identity", [last], ["y"], name="output")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    nodes = [*run_in, *planted, clamp, *run_out, output]
    return _save(_model(nodes, [x], [y], [*weights, one]), path)


def _exact_run(prefix: str, source: str, count: int) -> tuple[list, str]:
    nodes = []
    for i in range(count):
        op = ("Relu", "Abs")[i % 2]
        out = f"{prefix}{i}"
        nodes.append(helper.make_node(op, [source], [out], name=out))
        source = out
    return nodes, source


def branchy(path: Path | None = None) -> onnx.ModelProto:
    """Two branches from ``x``, joined by Add. Branch ``b`` holds the planted overflow;
    the unfolded bias of branch ``a`` is a Reshape of a constant (as paddle2onnx writes),
    and a Shape -> Reshape path restores the shape at the end."""
    a, a_end = _exact_run("a", "x", 12)
    b, b_end = _exact_run("b", "x", 5)
    planted, inits = _overflow("planted", b_end, "b_over")
    bias = numpy_helper.from_array(np.full([16], 0.5, np.float32), "bias_flat")
    shape = numpy_helper.from_array(np.array([1, 16], np.int64), "bias_shape")
    nodes = [
        *a,
        helper.make_node("Reshape", ["bias_flat", "bias_shape"], ["bias"], name="bias_reshape"),
        helper.make_node("Add", [a_end, "bias"], ["a_biased"], name="a_bias"),
        *b,
        *planted,
        helper.make_node("Log", ["b_over"], ["b_log"], name="b_log"),
        helper.make_node("Add", ["a_biased", "b_log"], ["joined"], name="join"),
        helper.make_node("Shape", ["x"], ["x_shape"], name="x_shape"),
        helper.make_node("Reshape", ["joined", "x_shape"], ["y"], name="restore"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    return _save(_model(nodes, [x], [y], [*inits, bias, shape]), path)


def with_if(path: Path | None = None) -> onnx.ModelProto:
    """An If whose then-branch reads the outer-scope tensor ``pre3`` and overflows."""
    pre, pre_end = _exact_run("pre", "x", 4)
    scale = numpy_helper.from_array(np.array(20.0, np.float32), "if_scale")
    then_graph = helper.make_graph(
        [
            helper.make_node("Mul", [pre_end, "if_scale"], ["then_scaled"], name="then_mul"),
            helper.make_node("Exp", ["then_scaled"], ["then_out"], name="then_exp"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("then_out", TensorProto.FLOAT, [1, 16])],
    )
    else_graph = helper.make_graph(
        [helper.make_node("Identity", [pre_end], ["else_out"], name="else_id")],
        "else",
        [],
        [helper.make_tensor_value_info("else_out", TensorProto.FLOAT, [1, 16])],
    )
    post, post_end = _exact_run("post", "branch_log", 4)
    nodes = [
        *pre,
        helper.make_node("ReduceSum", ["x"], ["total"], name="total", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["cond"], name="cond"),
        helper.make_node(
            "If", ["cond"], ["branch"], name="if", then_branch=then_graph, else_branch=else_graph
        ),
        helper.make_node("Log", ["branch"], ["branch_log"], name="branch_log"),
        *post,
        helper.make_node("Identity", [post_end], ["y"], name="output"),
    ]
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    return _save(_model(nodes, [x], [y], [scale, zero]), path)


def with_optional(path: Path | None = None) -> onnx.ModelProto:
    """``Clip(x, "", max)``, an omitted optional input, before the planted overflow; the
    clip's output is also a graph output read inside the model."""
    pre, pre_end = _exact_run("pre", "x", 6)
    planted, inits = _overflow("planted", "clipped", "over")
    post, post_end = _exact_run("post", "over_log", 6)
    top = numpy_helper.from_array(np.array(0.9, np.float32), "clip_max")
    nodes = [
        *pre,
        helper.make_node("Clip", [pre_end, "", "clip_max"], ["clipped"], name="clip"),
        *planted,
        helper.make_node("Log", ["over"], ["over_log"], name="log"),
        *post,
        helper.make_node("Identity", [post_end], ["y"], name="output"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    outputs = [
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16]),
        helper.make_tensor_value_info("clipped", TensorProto.FLOAT, [1, 16]),
    ]
    return _save(_model(nodes, [x], outputs, [*inits, top]), path)


def accumulating(length: int = 40, path: Path | None = None) -> onnx.ModelProto:
    """``length`` nodes ``Add(x, 0.0007)``: each rounds by about 0.0002 in fp16 (passes
    alone at fp16's default tolerance 2e-3), together they drift past it."""
    step = numpy_helper.from_array(np.array(0.0007, np.float32), "step")
    nodes = []
    previous = "x"
    for i in range(length):
        nodes.append(helper.make_node("Add", [previous, "step"], [f"s{i}"], name=f"add{i}"))
        previous = f"s{i}"
    nodes.append(helper.make_node("Identity", [previous], ["y"], name="output"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])
    return _save(_model(nodes, [x], [y], [step]), path)


def normalizing(culprits: int = 1, path: Path | None = None) -> onnx.ModelProto:
    """Exact ops, then ``culprits`` times: ``Div(s, ReduceL2(s))`` with ``s = t * 300``.
    ReduceL2 squares values near 300 (90000, past fp16's 65504), so in fp16 the norm is
    inf; in fp32 it is about 1200, which fp16 holds: keeping each ``norm<i>`` node in fp32
    is exactly what makes the model pass at fp16."""
    nodes, source = _exact_run("pre", "x", 6)
    inits = []
    for i in range(culprits):
        scale = numpy_helper.from_array(np.array(300.0 if i == 0 else 1200.0, np.float32), f"k{i}")
        inits.append(scale)
        nodes += [
            helper.make_node("Mul", [source, scale.name], [f"s{i}"], name=f"scale{i}"),
            helper.make_node("ReduceL2", [f"s{i}"], [f"l2_{i}"], name=f"norm{i}", axes=[1]),
            helper.make_node("Div", [f"s{i}", f"l2_{i}"], [f"d{i}"], name=f"divide{i}"),
        ]
        more, source = _exact_run(f"mid{i}_", f"d{i}", 3)
        nodes += more
    nodes.append(helper.make_node("Identity", [source], ["y"], name="output"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    return _save(_model(nodes, [x], [y], inits), path)


def int8_outlier(path: Path | None = None) -> onnx.ModelProto:
    """``x[1,16]`` -> ``Relu`` -> ``+0.5`` -> ``planted_mul`` (times a weight of ones with
    one 1000) -> ``Relu`` -> ``y``. Quantized to int8, the planted node's output range is
    set by the 1000, so its step (about 6) wipes out every other value: the test fails at
    int8. Kept out of quantization, in fp16 (step 1 near 1000, far finer near 1) or fp32,
    it passes int8's tolerance; every other node quantizes well."""
    weight = np.ones([1, 16], np.float32)
    weight[0, 0] = 1000.0
    inits = [
        numpy_helper.from_array(np.full([1, 16], 0.5, np.float32), "half"),
        numpy_helper.from_array(weight, "outlier"),
    ]
    nodes = [
        helper.make_node("Relu", ["x"], ["t0"], name="n0"),
        helper.make_node("Add", ["t0", "half"], ["t1"], name="shift"),
        helper.make_node("Mul", ["t1", "outlier"], ["t2"], name="planted_mul"),
        helper.make_node("Relu", ["t2"], ["y"], name="n3"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    return _save(_model(nodes, [x], [y], inits), path)


def nan_making(path: Path | None = None) -> onnx.ModelProto:
    """``x - 2`` then ``Sqrt`` (node ``nan_maker``): NaN for any ``x`` below 2, in the
    reference too; then ``Abs``, ``Neg`` (node ``late``) and ``Abs`` carry the NaN on."""
    nodes = [
        helper.make_node("Sub", ["x", "two"], ["d"], name="shift"),
        helper.make_node("Sqrt", ["d"], ["r"], name="nan_maker"),
        helper.make_node("Abs", ["r"], ["a"], name="carry"),
        helper.make_node("Neg", ["a"], ["n"], name="late"),
        helper.make_node("Abs", ["n"], ["y"], name="out"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
    return _save(_model(nodes, [x], [y], [two], name="nan"), path)


def with_custom_op(path: Path | None = None) -> onnx.ModelProto:
    """``Abs``, then ONNX Runtime's ``com.microsoft::Gelu`` (node ``gelu``), then ``Abs``
    (``n2``), ``Neg``, ``Abs``. onnx's shape inference has no schema for ``Gelu``, so its
    output has no known dtype and the fp16 conversion of any model holding ``gelu`` with
    a reader of its output fails, before any input is fed."""
    nodes = [
        helper.make_node("Abs", ["x"], ["a"], name="n0"),
        helper.make_node("Gelu", ["a"], ["g"], name="gelu", domain="com.microsoft"),
        helper.make_node("Abs", ["g"], ["b"], name="n2"),
        helper.make_node("Neg", ["b"], ["c"], name="n3"),
        helper.make_node("Abs", ["c"], ["y"], name="out"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    model = _model(nodes, [x], [y], name="custom")
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return _save(model, path)


def with_sequence(path: Path | None = None) -> onnx.ModelProto:
    """``x[1,16]`` through exact ops, split into a sequence of uneven parts (4 and 12
    columns), its first part taken out (``SequenceAt``), then the planted overflow
    ``Exp(20 * part)`` and ``Log``. The sequence ``seq`` is not a tensor: no cut can be
    fed with it or compare it."""
    nodes = [
        helper.make_node("Abs", ["x"], ["a0"], name="n0"),
        helper.make_node("Neg", ["a0"], ["a1"], name="n1"),
        helper.make_node("Abs", ["a1"], ["a2"], name="n2"),
        helper.make_node("SplitToSequence", ["a2", "sizes"], ["seq"], name="split", axis=1),
        helper.make_node("SequenceAt", ["seq", "zero"], ["part"], name="at"),
    ]
    planted, weights = _overflow("planted", "part", "e")
    nodes += planted
    nodes.append(helper.make_node("Log", ["e"], ["y"], name="log"))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [
        *weights,
        numpy_helper.from_array(np.array([4, 12], np.int64), "sizes"),
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
    ]
    return _save(_model(nodes, [x], [y], inits, name="sequence"), path)
