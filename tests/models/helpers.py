"""Running test models on the two independent backends the tests compare against, and
reading what a transform wrote into one."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import onnxruntime as ort
from onnx.reference import ReferenceEvaluator


def run_ort(
    model: onnx.ModelProto, feed: Mapping[str, np.ndarray], *, optimize: bool = True
) -> dict[str, np.ndarray]:
    """All outputs of ``model`` on ONNX Runtime's CPU provider, by name.

    ``optimize=False`` turns graph optimizations off: ONNX Runtime otherwise folds a
    float32 -> float16 -> float32 Cast pair into nothing, hiding float16 rounding.
    """
    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, dict(feed)), strict=True))


def run_reference(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All outputs of ``model`` on onnx's ReferenceEvaluator, by name."""
    names = [output.name for output in model.graph.output]
    results = ReferenceEvaluator(model).run(None, dict(feed))
    return dict(zip(names, results, strict=True))


def intermediates(model: onnx.ModelProto, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor ReferenceEvaluator computes for ``feed`` (inputs and weights included)."""
    results = ReferenceEvaluator(model).run(None, dict(feed), intermediate=True)
    return {name: value for name, value in results.items() if name}


def activation_scales(model: onnx.ModelProto) -> dict[str, float]:
    """The scale of each QuantizeLinear of an activation (not of a weight initializer) of a
    Q/DQ model, by the tensor it quantizes."""
    inits = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    return {
        node.input[0]: float(inits[node.input[1]])
        for node in model.graph.node
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits
    }
