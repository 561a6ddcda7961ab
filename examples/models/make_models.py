"""Build the example ONNX models in this folder (deterministic; re-run to regenerate).

    python examples/models/make_models.py

Each model is small enough to run in milliseconds on a CPU, yet made of the layers that
real accuracy bugs live in (convolution, matmul, softmax, layer normalization), with a
dynamic batch dimension.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
OPSET = 17
IR_VERSION = 9


def _init(name: str, array: np.ndarray) -> TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytest-polygraphy"
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def tiny_cnn() -> onnx.ModelProto:
    """image [batch,3,16,16] -> Conv -> Relu -> GlobalAveragePool -> Gemm -> Softmax -> probs."""
    rng = np.random.RandomState(0)
    nodes = [
        helper.make_node(
            "Conv", ["image", "conv_w", "conv_b"], ["conv"], name="conv", pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["relu"], name="relu"),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"], name="pool"),
        helper.make_node("Flatten", ["pool"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 16, 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        [
            _init("conv_w", rng.randn(8, 3, 3, 3) * 0.5),
            _init("conv_b", rng.randn(8) * 0.1),
            _init("fc_w", rng.randn(10, 8) * 2.0),
            _init("fc_b", rng.randn(10) * 0.1),
        ],
    )
    return _model(graph)


def detector_head() -> onnx.ModelProto:
    """features [batch,32] -> two heads: boxes [batch,4] (Sigmoid * 100) and scores [batch,5]."""
    rng = np.random.RandomState(1)
    nodes = [
        helper.make_node("MatMul", ["features", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="fc1_bias"),
        helper.make_node("Tanh", ["hb"], ["act"], name="act"),
        helper.make_node("MatMul", ["act", "w_box"], ["box_raw"], name="box_fc"),
        helper.make_node("Sigmoid", ["box_raw"], ["box_unit"], name="box_sigmoid"),
        helper.make_node("Mul", ["box_unit", "img_size"], ["boxes"], name="box_scale"),
        helper.make_node("MatMul", ["act", "w_cls"], ["cls"], name="cls_fc"),
        helper.make_node("Softmax", ["cls"], ["scores"], name="cls_softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "detector_head",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 32])],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 5]),
        ],
        [
            _init("w1", rng.randn(32, 64) * 0.3),
            _init("b1", rng.randn(64) * 0.1),
            _init("w_box", rng.randn(64, 4) * 0.5),
            _init("img_size", np.array([100.0], dtype=np.float32)),
            _init("w_cls", rng.randn(64, 5)),
        ],
    )
    return _model(graph)


def layernorm_mlp() -> onnx.ModelProto:
    """tokens [batch,seq,32] -> LayerNormalization -> MatMul -> Relu -> MatMul -> hidden."""
    rng = np.random.RandomState(2)
    nodes = [
        helper.make_node(
            "LayerNormalization",
            ["tokens", "ln_scale", "ln_bias"],
            ["ln"],
            name="ln",
            axis=-1,
            epsilon=1e-5,
        ),
        helper.make_node("MatMul", ["ln", "w_up"], ["up"], name="up_proj"),
        helper.make_node("Relu", ["up"], ["up_act"], name="up_act"),
        helper.make_node("MatMul", ["up_act", "w_down"], ["hidden"], name="down_proj"),
    ]
    graph = helper.make_graph(
        nodes,
        "layernorm_mlp",
        [helper.make_tensor_value_info("tokens", TensorProto.FLOAT, ["batch", "seq", 32])],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", 32])],
        [
            _init("ln_scale", 1.0 + rng.randn(32) * 0.1),
            _init("ln_bias", rng.randn(32) * 0.1),
            _init("w_up", rng.randn(32, 128) * 0.2),
            _init("w_down", rng.randn(128, 32) * 0.2),
        ],
    )
    return _model(graph)


MODELS = {"tiny_cnn": tiny_cnn, "detector_head": detector_head, "layernorm_mlp": layernorm_mlp}


def main() -> None:
    for name, build in MODELS.items():
        path = HERE / f"{name}.onnx"
        onnx.save(build(), path)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
