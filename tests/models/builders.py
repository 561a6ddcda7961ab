"""Small ONNX models built with ``onnx.helper`` for tests: each function returns a new
``onnx.ModelProto`` (opset 17, IR version 9, which onnxruntime 1.18+ loads) with
deterministic weights and a name on every node."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
IR_VERSION = 9


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    initializers: Sequence[onnx.TensorProto] = (),
    name: str = "test",
    opset: int = OPSET,
    check: bool = True,
) -> onnx.ModelProto:
    """Wrap nodes into a model with the project's test opset and IR version, checked by
    ``onnx.checker`` unless ``check`` is false (for deliberately unusual models)."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = IR_VERSION
    if check:
        onnx.checker.check_model(model)
    return model


def weights(name: str, shape: Sequence[int], seed: int, scale: float = 0.5) -> onnx.TensorProto:
    """A float32 initializer with normal values (std ``scale``) from ``RandomState(seed)``."""
    values = np.random.RandomState(seed).normal(0.0, scale, size=shape).astype(np.float32)
    return numpy_helper.from_array(values, name)


def float_input(name: str, shape: Sequence[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def conv_chain() -> onnx.ModelProto:
    """``input[1,3,8,8]`` -> Conv(3->4, 3x3, pad 1) -> Relu -> Conv(4->4) -> Add(Constant
    bias) -> GlobalAveragePool -> Flatten -> ``output[1,4]``. Has one Constant node."""
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["conv1"], name="conv1", pads=[1] * 4),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "w2"], ["conv2"], name="conv2", pads=[1] * 4),
        helper.make_node(
            "Constant",
            [],
            ["bias"],
            name="bias",
            value=numpy_helper.from_array(np.full([1, 4, 1, 1], 0.25, np.float32)),
        ),
        helper.make_node("Add", ["conv2", "bias"], ["biased"], name="add_bias"),
        helper.make_node("GlobalAveragePool", ["biased"], ["pooled"], name="pool"),
        helper.make_node("Flatten", ["pooled"], ["output"], name="flatten"),
    ]
    return make_model(
        nodes,
        [float_input("input", [1, 3, 8, 8])],
        [float_input("output", [1, 4])],
        [weights("w1", [4, 3, 3, 3], 1), weights("b1", [4], 2), weights("w2", [4, 4, 3, 3], 3)],
        name="conv_chain",
    )


def matmul_softmax() -> onnx.ModelProto:
    """``x[2,16]`` -> MatMul(W[16,8]) -> Add(b) -> Softmax -> ``probs[2,8]``."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["logits_raw"], name="matmul"),
        helper.make_node("Add", ["logits_raw", "b"], ["logits"], name="add"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return make_model(
        nodes,
        [float_input("x", [2, 16])],
        [float_input("probs", [2, 8])],
        [weights("W", [16, 8], 4), weights("b", [8], 5)],
        name="matmul_softmax",
    )


def layernorm_model() -> onnx.ModelProto:
    """``x[2,4,8]`` -> LayerNormalization(scale, bias) -> MatMul(W[8,8]) -> Relu -> ``y``."""
    nodes = [
        helper.make_node(
            "LayerNormalization", ["x", "gamma", "beta"], ["normed"], name="layernorm", axis=-1
        ),
        helper.make_node("MatMul", ["normed", "W"], ["projected"], name="matmul"),
        helper.make_node("Relu", ["projected"], ["y"], name="relu"),
    ]
    return make_model(
        nodes,
        [float_input("x", [2, 4, 8])],
        [float_input("y", [2, 4, 8])],
        [weights("gamma", [8], 6), weights("beta", [8], 7), weights("W", [8, 8], 8)],
        name="layernorm",
    )


def mixed_chain() -> onnx.ModelProto:
    """Conv, MatMul, LayerNormalization and Softmax in one chain (the fp16/int8 workhorse):
    ``image[1,2,6,6]`` -> Conv(2->4) -> Relu -> Reshape[1,4,36] -> MatMul(W[36,16])
    -> LayerNormalization -> Softmax -> ``scores[1,4,16]``. The Reshape target is an
    int64 initializer, which must stay int64."""
    nodes = [
        helper.make_node("Conv", ["image", "cw", "cb"], ["c"], name="conv", pads=[1] * 4),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["flat"], name="reshape"),
        helper.make_node("MatMul", ["flat", "W"], ["m"], name="matmul"),
        helper.make_node("LayerNormalization", ["m", "gamma", "beta"], ["n"], name="layernorm"),
        helper.make_node("Softmax", ["n"], ["scores"], name="softmax", axis=-1),
    ]
    return make_model(
        nodes,
        [float_input("image", [1, 2, 6, 6])],
        [float_input("scores", [1, 4, 16])],
        [
            weights("cw", [4, 2, 3, 3], 9),
            weights("cb", [4], 10),
            numpy_helper.from_array(np.array([1, 4, 36], np.int64), "shape"),
            weights("W", [36, 16], 11),
            weights("gamma", [16], 12, scale=1.0),
            weights("beta", [16], 13),
        ],
        name="mixed_chain",
    )


def dynamic_batch_model() -> onnx.ModelProto:
    """``x[batch,8]`` -> MatMul(W[8,4]) -> Relu -> ``y[batch,4]`` (symbolic batch dim)."""
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["mm"], name="matmul"),
        helper.make_node("Relu", ["mm"], ["y"], name="relu"),
    ]
    return make_model(
        nodes,
        [float_input("x", ["batch", 8])],
        [float_input("y", ["batch", 4])],
        [weights("W", [8, 4], 14)],
        name="dynamic_batch",
    )


def multi_output_model() -> onnx.ModelProto:
    """``x[3,5]`` -> Relu -> ``relu``; Sigmoid(x) -> ``sig``; Add(relu, sig) -> ``sum``.
    Outputs ``sum`` and ``sig``; ``sig`` is also read by a node."""
    nodes = [
        helper.make_node("Relu", ["x"], ["relu"], name="relu"),
        helper.make_node("Sigmoid", ["x"], ["sig"], name="sigmoid"),
        helper.make_node("Add", ["relu", "sig"], ["sum"], name="add"),
    ]
    return make_model(
        nodes,
        [float_input("x", [3, 5])],
        [float_input("sum", [3, 5]), float_input("sig", [3, 5])],
        name="multi_output",
    )


def int64_bool_model() -> onnx.ModelProto:
    """``ids[2,3]`` int64 and ``mask[2,3]`` bool: Gather rows of an embedding table
    (float[10,4]) by ``ids``, zero the rows where ``mask`` is false, sum over the sequence
    -> ``pooled[2,4]`` float; also ``count[2]`` int64 (true values per row)."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["rows"], name="gather", axis=0),
        helper.make_node("Unsqueeze", ["mask", "last_axis"], ["mask3"], name="unsqueeze"),
        helper.make_node("Where", ["mask3", "rows", "zero"], ["kept"], name="where"),
        helper.make_node("ReduceSum", ["kept", "seq_axis"], ["pooled"], name="sum", keepdims=0),
        helper.make_node("Cast", ["mask"], ["mask_int"], name="cast", to=TensorProto.INT64),
        helper.make_node(
            "ReduceSum", ["mask_int", "seq_axis"], ["count"], name="count", keepdims=0
        ),
    ]
    return make_model(
        nodes,
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, [2, 3]),
            helper.make_tensor_value_info("mask", TensorProto.BOOL, [2, 3]),
        ],
        [
            float_input("pooled", [2, 4]),
            helper.make_tensor_value_info("count", TensorProto.INT64, [2]),
        ],
        [
            weights("table", [10, 4], 15),
            numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
            numpy_helper.from_array(np.array([1], np.int64), "seq_axis"),
        ],
        name="int64_bool",
    )


def external_data_model(folder: Path, name: str = "model.onnx") -> Path:
    """Save ``matmul_softmax()`` into ``folder`` with every initializer in ``model.data``
    (``onnx.save(..., save_as_external_data=True)``); returns the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    onnx.save(
        matmul_softmax(),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="model.data",
        size_threshold=0,
    )
    return path


def random_feed(model: onnx.ModelProto, seed: int = 0, batch: int = 2) -> dict[str, np.ndarray]:
    """Random values for every float/int/bool input of ``model``; symbolic dims get ``batch``.
    Floats are normal, ints in [0, 10), bools fair coin flips."""
    rng = np.random.RandomState(seed)
    initializers = {init.name for init in model.graph.initializer}
    feed: dict[str, np.ndarray] = {}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        tensor_type = value.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else batch for d in tensor_type.shape.dim]
        dtype = helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)
        if dtype == np.bool_:
            feed[value.name] = rng.rand(*shape) > 0.5
        elif np.issubdtype(dtype, np.integer):
            feed[value.name] = rng.randint(0, 10, size=shape).astype(dtype)
        else:
            feed[value.name] = rng.normal(size=shape).astype(dtype)
    return feed


def if_model() -> onnx.ModelProto:
    """y = x * 2 + 1 where sum(x) > 0, else -(x * 2): an If whose branches read tensors
    ("scaled", the initializer "one") from the outer graph."""
    then_branch = helper.make_graph(
        [helper.make_node("Add", ["scaled", "one"], ["t"], name="then_add")],
        "then",
        [],
        [float_input("t", [3])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["scaled"], ["e"], name="else_neg")],
        "else",
        [],
        [float_input("e", [3])],
    )
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["scaled"], name="scale"),
        helper.make_node("ReduceSum", ["x"], ["total"], name="sum", keepdims=0),
        helper.make_node("Greater", ["total", "zero"], ["positive"], name="greater"),
        helper.make_node(
            "If", ["positive"], ["y"], name="if", then_branch=then_branch, else_branch=else_branch
        ),
    ]
    return make_model(
        nodes,
        [float_input("x", [3])],
        [float_input("y", [3])],
        [
            numpy_helper.from_array(np.array(2.0, np.float32), "two"),
            numpy_helper.from_array(np.array(1.0, np.float32), "one"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        ],
    )
