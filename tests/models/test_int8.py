"""Static int8 QDQ quantization, run on ONNX Runtime's CPU provider."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from pytest_polygraphy.errors import InputError, ModelError
from pytest_polygraphy.models import quantize_int8
from tests.models import builders
from tests.models.helpers import activation_scales, run_ort


def _feeds(model: onnx.ModelProto, count: int = 8) -> list[dict[str, np.ndarray]]:
    return [builders.random_feed(model, seed=seed) for seed in range(count)]


def _quantized_weights(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes whose weight (input 1) comes out of a DequantizeLinear: in QDQ
    format these are the nodes that run in int8."""
    dq_outputs = {
        out
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
        for out in node.output
    }
    return {
        node.name
        for node in model.graph.node
        if len(node.input) > 1 and node.input[1] in dq_outputs
    }


@pytest.fixture(scope="module")
def mixed_chain_int8() -> tuple[onnx.ModelProto, onnx.ModelProto]:
    model = builders.mixed_chain()
    return model, quantize_int8(model, _feeds(model, 32))


def test_quantized_model_differs_from_fp32_within_bounds(mixed_chain_int8) -> None:
    model, int8 = mixed_chain_int8
    ops = {node.op_type for node in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert {"conv", "matmul", "layernorm"} <= _quantized_weights(int8)
    for seed in (100, 101):  # feeds not seen during calibration
        feed = builders.random_feed(model, seed=seed)
        expected, actual = run_ort(model, feed)["scores"], run_ort(int8, feed)["scores"]
        diff = np.abs(actual - expected)
        assert diff.max() > 1e-4  # really quantized
        # int8 with min/max calibration on 32 feeds: errors of a few percent
        assert diff.mean() < 0.05 * float(np.abs(expected).mean())
        assert diff.max() < 0.1 * float(np.abs(expected).max())
        assert np.corrcoef(actual.ravel(), expected.ravel())[0, 1] > 0.99


def test_excluded_nodes_are_not_quantized() -> None:
    model = builders.mixed_chain()
    partial = quantize_int8(model, _feeds(model), exclude=["matmul"])
    assert "matmul" not in _quantized_weights(partial)
    assert "conv" in _quantized_weights(partial)
    everything = quantize_int8(model, _feeds(model, 2), exclude=[n.name for n in model.graph.node])
    assert not _quantized_weights(everything)
    feed = builders.random_feed(model, seed=7)
    np.testing.assert_array_equal(
        run_ort(everything, feed)["scores"], run_ort(model, feed)["scores"]
    )


def test_feeds_must_match_the_inputs() -> None:
    model = builders.matmul_softmax()
    with pytest.raises(InputError, match=r"missing \['x'\], unknown \['y'\]"):
        quantize_int8(model, [{"y": np.zeros((2, 16), np.float32)}])
    with pytest.raises(InputError, match=r"at least one calibration feed"):
        quantize_int8(model, [])
    with pytest.raises(ModelError, match=r"exclude names nodes the model does not have: 'nope'"):
        quantize_int8(model, _feeds(model, 1), exclude=["nope"])


def test_the_file_is_unchanged(tmp_path: Path) -> None:
    path = builders.external_data_model(tmp_path)
    before = {name: (tmp_path / name).read_bytes() for name in ("model.onnx", "model.data")}
    int8 = quantize_int8(path, _feeds(builders.matmul_softmax(), 2))
    assert any(node.op_type == "QuantizeLinear" for node in int8.graph.node)
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.data", "model.onnx"]


def _layernorm_named(output: str, scale: str) -> onnx.ModelProto:
    nodes = [
        helper.make_node("LayerNormalization", ["x", scale, "bias"], [output], name="ln"),
        helper.make_node("MatMul", [output, "W"], ["y"], name="matmul"),
    ]
    return builders.make_model(
        nodes,
        [builders.float_input("x", [2, 8])],
        [builders.float_input("y", [2, 4])],
        [
            builders.weights(scale, [8], 1, scale=1.0),
            builders.weights("bias", [8], 2),
            builders.weights("W", [8, 4], 3),
        ],
    )


def test_initializers_named_like_quantization_parameters_are_renamed() -> None:
    # onnxruntime.quantization would name the scale of tensor "ln" "ln_scale", and take the
    # LayerNorm weight of that name for it: the quantized model would fail to run.
    model = _layernorm_named("ln", "ln_scale")
    int8 = quantize_int8(model, _feeds(model, 16))
    feed = builders.random_feed(model, seed=50)
    expected, actual = run_ort(model, feed)["y"], run_ort(int8, feed)["y"]
    assert 0 < np.abs(actual - expected).max() < 0.1 * np.abs(expected).max()
    assert "ln_scale" in {init.name for init in model.graph.initializer}  # argument unchanged


def test_activations_named_like_quantization_parameters_are_refused() -> None:
    model = _layernorm_named("x_scale", "gamma")  # "x_scale" would be the scale of input "x"
    with pytest.raises(ModelError, match=r"\['x_scale'\].*\['x'\]"):
        quantize_int8(model, _feeds(model, 1))


def test_tensorrt_style_quantization_is_symmetric_with_float_bias() -> None:
    """symmetric=True, quantize_bias=False: every zero point is 0 and no DequantizeLinear
    reads an int32 tensor (TensorRT's parser refuses one); the model still runs close to
    fp32 on ONNX Runtime."""
    model = builders.mixed_chain()
    int8 = quantize_int8(
        model, _feeds(model, 16), per_channel=True, symmetric=True, quantize_bias=False
    )
    inits = {init.name: onnx.numpy_helper.to_array(init) for init in int8.graph.initializer}
    dequantized = [n for n in int8.graph.node if n.op_type == "DequantizeLinear"]
    assert dequantized
    for node in dequantized:
        assert inits.get(node.input[0], np.zeros(1, np.int8)).dtype != np.int32, node.name
        if len(node.input) > 2:
            assert not np.any(inits[node.input[2]]), f"{node.name}: non-zero zero point"
    default = quantize_int8(model, _feeds(model, 16))
    default_inits = {i.name: onnx.numpy_helper.to_array(i) for i in default.graph.initializer}
    assert any(a.dtype == np.int32 for a in default_inits.values())  # bias quantized by default
    feed = builders.random_feed(model, seed=100)
    expected, actual = run_ort(model, feed)["scores"], run_ort(int8, feed)["scores"]
    assert 0 < np.abs(actual - expected).max() < 0.1 * float(np.abs(expected).max())


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    known = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    known |= {v.name: v.type.tensor_type.elem_type for v in inferred.graph.output}
    return known | {init.name: init.data_type for init in model.graph.initializer}


def test_keep_fp16_nodes_are_not_quantized_and_compute_in_float16() -> None:
    from tests.debug import models

    model = models.int8_outlier()
    feeds = _feeds(model, 4)
    mixed = quantize_int8(model, feeds, keep_fp16=["planted_mul"])
    types = _elem_types(mixed)
    planted = next(node for node in mixed.graph.node if node.name == "planted_mul")
    assert {types[name] for name in [*planted.input, *planted.output]} == {onnx.TensorProto.FLOAT16}
    assert "shift" in {n.name for n in mixed.graph.node}
    assert {n.op_type for n in mixed.graph.node} >= {"QuantizeLinear", "Cast"}
    # the rest is still int8: the Add reads dequantized values
    producers = {out: node.op_type for node in mixed.graph.node for out in node.output}
    shift = next(node for node in mixed.graph.node if node.name == "shift")
    assert producers[shift.input[0]] == "DequantizeLinear"
    with pytest.raises(ModelError, match=r"\['planted_mul'\] are named both"):
        quantize_int8(model, feeds, exclude=["planted_mul"], keep_fp16=["planted_mul"])
    with pytest.raises(ModelError, match=r"keep_fp16 names nodes .* 'planted'"):
        quantize_int8(model, feeds, keep_fp16=["planted"])


def test_onnx_runtime_cpu_runs_a_float16_mul_in_float32() -> None:
    """What ONNX Runtime's CPU provider really does with a float16 node it has no kernel
    for: it casts around it (its inserted Casts show in the session's model), so a
    ``keep_fp16`` node there computes in float32. The runner warns about it."""
    from pytest_polygraphy.runners.onnxrt import cpu_fp32_fallbacks
    from tests.debug import models

    model = models.int8_outlier()
    mixed = quantize_int8(model, _feeds(model, 2), keep_fp16=["planted_mul"])
    assert cpu_fp32_fallbacks(mixed.SerializeToString(), ["planted_mul"]) == ["planted_mul"]
    assert cpu_fp32_fallbacks(mixed.SerializeToString(), ["shift"]) == []  # not fp16 at all


def test_entropy_and_minmax_calibration_give_different_scales_that_both_run() -> None:
    """The calibrator choice (--polygraphy-trt-calibrator on the Q/DQ path) reaches ONNX
    Runtime's calibration: entropy clips the long tail MinMax keeps, so some activation
    scale differs, and both quantized models run close to fp32 on ONNX Runtime."""
    model = builders.mixed_chain()
    feeds = _feeds(model, 16)
    minmax = quantize_int8(model, feeds, calibration_method="minmax")
    entropy = quantize_int8(model, feeds, calibration_method="entropy")
    minmax_scales, entropy_scales = activation_scales(minmax), activation_scales(entropy)
    assert minmax_scales.keys() == entropy_scales.keys() and minmax_scales
    assert any(
        not np.isclose(minmax_scales[name], entropy_scales[name]) for name in minmax_scales
    ), (minmax_scales, entropy_scales)
    assert activation_scales(quantize_int8(model, feeds)) == minmax_scales  # the default
    feed = builders.random_feed(model, seed=100)
    expected = run_ort(model, feed)["scores"]
    for quantized in (minmax, entropy):
        actual = run_ort(quantized, feed)["scores"]
        assert np.all(np.isfinite(actual))
        assert np.abs(actual - expected).max() < 0.5 * float(np.abs(expected).max())
    with pytest.raises(InputError, match="unknown calibration_method 'percentile'"):
        quantize_int8(model, feeds, calibration_method="percentile")


def test_entropy_thresholds_are_onnx_runtimes_own() -> None:
    """``models.entropy.entropy_threshold`` replaces ONNX Runtime's per-bin Python loops
    with numpy: on histograms of several shapes (wide tails, one-sided, many empty bins,
    all in one bin) it picks exactly the range ONNX Runtime's own function picks."""
    from onnxruntime.quantization.calibrate import HistogramCollector

    from pytest_polygraphy.models.entropy import entropy_threshold

    theirs = HistogramCollector("entropy", False, 2048, 128, 99.99, "same")
    rng = np.random.default_rng(0)
    cases = []
    for scale in (1.0, 3.0):
        tail = rng.standard_normal(50) * 40
        cases.append(np.concatenate([rng.standard_normal(20000) * scale, tail]))
    cases.append(np.abs(cases[0]))
    cases.append(np.round(cases[1]))
    cases.append(np.full(100, 2.5))
    for bins, data in [(2048, d) for d in cases] + [(512, cases[1])]:
        data = data.astype(np.float32)
        bound = float(np.abs(data).max())
        hist, edges = np.histogram(data, bins, range=(-bound, bound))
        histogram = (hist, edges.astype(np.float32), data.min(), data.max())
        assert entropy_threshold(histogram, 128) == theirs.get_entropy_threshold(histogram, 128)
