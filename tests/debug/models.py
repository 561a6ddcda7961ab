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
