"""OnnxrtRunner and OnnxrefRunner on real models: ONNX Runtime's CPU provider against
onnx's reference evaluator, precision variants, provider handling and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.runners import (
    OnnxrefRunner,
    OnnxrtRunner,
    RunnerNotActiveError,
    cuda_available,
    resolve_provider,
)
from tests.models.builders import (
    conv_chain,
    dynamic_batch_model,
    external_data_model,
    int64_bool_model,
    layernorm_model,
    matmul_softmax,
    mixed_chain,
    multi_output_model,
    random_feed,
)

BUILDERS = {
    "conv_chain": conv_chain,
    "matmul_softmax": matmul_softmax,
    "layernorm": layernorm_model,
    "mixed_chain": mixed_chain,
    "multi_output": multi_output_model,
    "int64_bool": int64_bool_model,
}


def _both(model: object, feed: dict[str, np.ndarray]) -> tuple[dict, dict]:
    with OnnxrtRunner(model) as ort_runner, OnnxrefRunner(model) as ref_runner:
        return ort_runner.infer(feed), ref_runner.infer(feed)


@pytest.mark.parametrize("builder", BUILDERS.values(), ids=BUILDERS.keys())
def test_onnxruntime_cpu_matches_the_reference_evaluator(builder) -> None:
    model = builder()
    feed = random_feed(model, seed=3)
    actual, expected = _both(model, feed)
    assert list(actual) == [o.name for o in model.graph.output] == list(expected)
    for name in expected:
        assert actual[name].dtype == expected[name].dtype
        assert actual[name].shape == expected[name].shape
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-5)


def test_matmul_softmax_against_a_numpy_formula() -> None:
    model = matmul_softmax()
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    feed = random_feed(model, seed=1)
    logits = feed["x"] @ weights["W"] + weights["b"]
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    with OnnxrtRunner(model) as runner:
        probs = runner.infer(feed)["probs"]
    np.testing.assert_allclose(probs, exp / exp.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_int64_and_bool_inputs_give_exact_integer_outputs() -> None:
    model = int64_bool_model()
    feed = random_feed(model, seed=5)
    actual, expected = _both(model, feed)
    assert actual["count"].dtype == np.int64
    np.testing.assert_array_equal(actual["count"], feed["mask"].sum(axis=1))
    np.testing.assert_array_equal(actual["count"], expected["count"])


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_dynamic_batch_runs_at_any_batch_size(batch: int) -> None:
    model = dynamic_batch_model()
    feed = random_feed(model, seed=batch, batch=batch)
    with OnnxrtRunner(model) as runner:
        assert runner.input_metadata["x"].is_dynamic
        first = runner.infer(feed)
        assert first["y"].shape == (batch, 4)
        # a second call with a different batch on the same session
        other = random_feed(model, seed=99, batch=batch + 1)
        assert runner.infer(other)["y"].shape == (batch + 1, 4)
    _, expected = _both(model, feed)
    np.testing.assert_allclose(first["y"], expected["y"], rtol=1e-5, atol=1e-6)


def test_model_with_external_data_runs_from_its_path(tmp_path: Path) -> None:
    path = external_data_model(tmp_path)
    assert (tmp_path / "model.data").is_file()
    feed = random_feed(matmul_softmax(), seed=2)
    actual, expected = _both(path, feed)
    _, from_proto = _both(matmul_softmax(), feed)
    np.testing.assert_allclose(actual["probs"], expected["probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(actual["probs"], from_proto["probs"], rtol=1e-6, atol=1e-7)


def test_fp16_variant_differs_from_fp32_by_a_bounded_amount() -> None:
    model = mixed_chain()
    feed = random_feed(model, seed=7)
    with OnnxrtRunner(model) as fp32, OnnxrtRunner(model, precision="fp16") as fp16:
        exact = fp32.infer(feed)["scores"]
        half = fp16.infer(feed)["scores"]
    assert fp16.name == "onnxrt[fp16]"
    assert half.dtype == np.float32  # graph outputs stay float32
    diff = np.abs(half - exact)
    assert diff.max() > 0  # fp16 arithmetic really happened
    assert diff.max() < 5e-3  # softmax outputs in [0, 1]: fp16 error stays small
    assert np.allclose(half, exact, rtol=1e-2, atol=1e-3)


def test_int8_variant_differs_from_fp32_by_a_bounded_amount() -> None:
    from pytest_polygraphy.data import DataLoader

    model = conv_chain()
    feed = random_feed(model, seed=8)
    loader = DataLoader(iterations=8, val_range=(-2.0, 2.0))
    with (
        OnnxrtRunner(model) as fp32,
        OnnxrtRunner(model, precision="int8", calibration_data=loader) as int8,
    ):
        exact = fp32.infer(feed)["output"]
        quant = int8.infer(feed)["output"]
    assert int8.name == "onnxrt[int8]"
    diff = np.abs(quant - exact)
    assert diff.max() > 1e-4  # quantization error is visible
    assert diff.max() < 0.1 * np.abs(exact).max() + 0.05  # but bounded


def test_int8_calibrates_with_a_default_data_loader() -> None:
    model = matmul_softmax()
    feed = random_feed(model, seed=4)
    with OnnxrtRunner(model, precision="int8") as runner:
        probs = runner.infer(feed)["probs"]
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, atol=1e-2)


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_precisions_onnxruntime_lacks_are_backend_unavailable(precision: str) -> None:
    with pytest.raises(BackendUnavailableError, match=f"no {precision} mode"):
        OnnxrtRunner(matmul_softmax(), precision=precision)


def test_tf32_needs_the_cuda_provider() -> None:
    with pytest.raises(BackendUnavailableError, match=r"tf32.*CUDA"):
        OnnxrtRunner(matmul_softmax(), precision="tf32")


def test_fp32_contradicting_a_tf32_provider_option_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"use_tf32=1.*precision='tf32'"):
        OnnxrtRunner(
            matmul_softmax(), providers=["cuda"], provider_options={"cuda": {"use_tf32": 1}}
        )


def test_fp32_on_cuda_turns_tf32_off_explicitly() -> None:
    runner = OnnxrtRunner(matmul_softmax(), providers=["cuda"])
    assert runner.provider_options["CUDAExecutionProvider"]["use_tf32"] == "0"
    tf32 = OnnxrtRunner(matmul_softmax(), providers=["cuda"], precision="tf32")
    assert tf32.provider_options["CUDAExecutionProvider"]["use_tf32"] == "1"
    assert (runner.name, tf32.name) == ("onnxrt[cuda]", "onnxrt[cuda,tf32]")


def _cuda_offered() -> bool:
    """onnxruntime-gpu offers CUDA even without a GPU; the CPU-only onnxruntime does not."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU: CUDA would start")
@pytest.mark.skipif(not _cuda_offered(), reason="CPU-only onnxruntime: CUDA is not offered")
def test_cuda_without_a_gpu_raises_instead_of_falling_back_to_cpu() -> None:
    runner = OnnxrtRunner(matmul_softmax(), providers=["cuda"])
    with pytest.raises(BackendUnavailableError) as info:
        runner.activate()
    message = str(info.value)
    assert "['cuda']" in message and "refusing to fall back" in message
    assert "ONNX Runtime said" in message  # its own log text explains why
    assert not runner.is_active


@pytest.mark.skipif(_cuda_offered(), reason="this onnxruntime offers CUDA")
def test_cuda_on_cpu_only_onnxruntime_says_to_replace_it() -> None:
    runner = OnnxrtRunner(matmul_softmax(), providers=["cuda"])
    with pytest.raises(BackendUnavailableError) as info:
        runner.activate()
    message = str(info.value)
    assert "not ['CUDAExecutionProvider']" in message
    assert 'pip uninstall onnxruntime, then pip install "pytest-polygraphy[gpu]"' in message
    assert not runner.is_active


def test_providers_by_short_or_full_name() -> None:
    assert resolve_provider("cpu") == "CPUExecutionProvider"
    assert resolve_provider("CUDA") == "CUDAExecutionProvider"
    assert resolve_provider("trt") == resolve_provider("tensorrt") == "TensorrtExecutionProvider"
    assert resolve_provider("cudaexecutionprovider") == "CUDAExecutionProvider"
    assert resolve_provider("FooExecutionProvider") == "FooExecutionProvider"
    with pytest.raises(InputError, match="unknown ONNX Runtime execution provider 'gpu'"):
        resolve_provider("gpu")


def test_a_provider_onnxruntime_does_not_offer_is_backend_unavailable() -> None:
    runner = OnnxrtRunner(matmul_softmax(), providers=["openvino"])
    with pytest.raises(BackendUnavailableError, match="OpenVINOExecutionProvider"):
        runner.activate()


def test_provider_options_must_name_requested_providers() -> None:
    with pytest.raises(InputError, match="not among the requested providers"):
        OnnxrtRunner(matmul_softmax(), provider_options={"cuda": {"device_id": 0}})


def test_session_options_from_a_dict() -> None:
    import onnxruntime as ort

    runner = OnnxrtRunner(matmul_softmax(), session_options={"intra_op_num_threads": 1})
    with runner:
        feed = random_feed(matmul_softmax())
        assert runner.infer(feed)["probs"].shape == (2, 8)
    assert isinstance(runner._make_session_options(), ort.SessionOptions)
    with pytest.raises(InputError, match="no attribute 'threads'"):
        OnnxrtRunner(matmul_softmax(), session_options={"threads": 1}).activate()


def test_session_config_entries_from_a_dict() -> None:
    entries = {"session.intra_op.allow_spinning": "0", "session.inter_op.allow_spinning": 0}
    runner = OnnxrtRunner(matmul_softmax(), session_options=entries)
    options = runner._make_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    with runner:
        assert runner.infer(random_feed(matmul_softmax()))["probs"].shape == (2, 8)


def test_infer_outside_activation_is_a_clear_error() -> None:
    runner = OnnxrtRunner(matmul_softmax())
    with pytest.raises(RunnerNotActiveError, match="not active"):
        runner.infer(random_feed(matmul_softmax()))
    with runner:
        assert runner.is_active
    assert not runner.is_active
    with pytest.raises(RunnerNotActiveError):
        runner.infer(random_feed(matmul_softmax()))


def test_bad_feeds_are_input_errors_naming_the_input() -> None:
    model = matmul_softmax()
    with OnnxrtRunner(model) as runner:
        with pytest.raises(InputError, match="missing input"):
            runner.infer({})
        with pytest.raises(InputError, match="'x'"):
            runner.infer({"x": np.zeros((2, 15), np.float32)})


def test_last_inference_time_is_recorded() -> None:
    with OnnxrtRunner(matmul_softmax()) as runner:
        assert runner.last_inference_time() is None
        runner.infer(random_feed(matmul_softmax()))
        assert runner.last_inference_time() > 0


def test_metadata_without_activation() -> None:
    runner = OnnxrtRunner(multi_output_model())
    assert list(runner.input_metadata) == ["x"]
    assert list(runner.output_metadata) == ["sum", "sig"]
    assert runner.output_metadata["sum"].dtype == np.float32


def test_missing_model_file_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        OnnxrtRunner(tmp_path / "nope.onnx").activate()


def test_model_onnxruntime_cannot_load_is_a_model_error() -> None:
    model = matmul_softmax()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        OnnxrtRunner(model).activate()


def test_reference_runner_refuses_unknown_ops_clearly() -> None:
    model = matmul_softmax()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ModelError, match="reference evaluator cannot load"):
        OnnxrefRunner(model).activate()


def test_user_model_file_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(mixed_chain(), path)
    before = path.read_bytes()
    with OnnxrtRunner(path, precision="fp16") as runner:
        runner.infer(random_feed(mixed_chain()))
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


@pytest.mark.parametrize("opset", [9, 11, 13, 15])
def test_reference_batch_normalization_uses_running_statistics(opset: int) -> None:
    """onnx's evaluator takes a ``momentum`` attribute (paddle2onnx writes it) as training
    mode for opsets 9-13; ours follows the specification, as ONNX Runtime does: checked
    against numpy and against ONNX Runtime."""
    from onnx import TensorProto, helper, numpy_helper

    from pytest_polygraphy.runners.onnxref import OnnxrefRunner
    from pytest_polygraphy.runners.onnxrt import OnnxrtRunner

    rng = np.random.default_rng(0)
    stats = {
        "scale": rng.random(4, dtype=np.float32) + 0.5,
        "bias": rng.random(4, dtype=np.float32),
        "mean": rng.random(4, dtype=np.float32),
        "var": rng.random(4, dtype=np.float32) + 0.2,
    }
    node = helper.make_node(
        "BatchNormalization", ["x", *stats], ["y"], name="bn", epsilon=1e-5, momentum=0.9
    )
    graph = helper.make_graph(
        [node],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4, 3, 3])],
        [numpy_helper.from_array(v, k) for k, v in stats.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    x = rng.normal(3.0, 2.0, size=(2, 4, 3, 3)).astype(np.float32)
    shape = (1, -1, 1, 1)
    expected = (x - stats["mean"].reshape(shape)) / np.sqrt(
        stats["var"].reshape(shape) + 1e-5
    ) * stats["scale"].reshape(shape) + stats["bias"].reshape(shape)
    with OnnxrefRunner(model) as ref, OnnxrtRunner(model) as ort_runner:
        got = ref.infer({"x": x})["y"]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got, ort_runner.infer({"x": x})["y"], rtol=1e-5, atol=1e-5)
