"""ONNX Runtime's CUDA provider against its CPU provider, and the cuda-python memory
helpers. These need a GPU (and onnxruntime-gpu / cuda-python); elsewhere they skip with
the reason. bench/gpu/run_gpu_checks.sh runs them on the GPU machine."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.runners import OnnxrtRunner, cuda_unavailable_reason
from tests.models.builders import conv_chain, make_model, mixed_chain, random_feed

CUDA_REASON = cuda_unavailable_reason()
needs_cuda = pytest.mark.skipif(CUDA_REASON is not None, reason=str(CUDA_REASON))


def _cuda_python_reason() -> str | None:
    try:
        from pytest_polygraphy.runners.cuda import cudart

        cudart()
    except Exception as err:
        return str(err)
    return CUDA_REASON


needs_cuda_python = pytest.mark.skipif(
    _cuda_python_reason() is not None, reason=str(_cuda_python_reason())
)


def _matmul_heavy():
    """A 1024-deep matmul: TF32's 10-bit mantissa shows up in its outputs."""
    rng = np.random.RandomState(0)
    w = (rng.normal(size=(1024, 512)) / 32).astype(np.float32)
    return make_model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 512])],
        [numpy_helper.from_array(w, "w")],
        name="matmul_heavy",
    )


@needs_cuda
@pytest.mark.parametrize("builder", [conv_chain, mixed_chain])
def test_cuda_fp32_matches_cpu(builder) -> None:
    model = builder()
    feed = random_feed(model, seed=1)
    with OnnxrtRunner(model, providers=["cuda"]) as gpu:
        assert "CUDAExecutionProvider" in gpu.session.get_providers()
        actual = gpu.infer(feed)
    with OnnxrtRunner(model) as cpu:
        expected = cpu.infer(feed)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-4, atol=1e-5)


@needs_cuda
def test_tf32_differs_visibly_from_fp32_on_cuda() -> None:
    model = _matmul_heavy()
    x = np.random.RandomState(3).normal(size=(64, 1024)).astype(np.float32)
    with OnnxrtRunner(model) as cpu:
        exact = cpu.infer({"x": x})["y"]
    with OnnxrtRunner(model, providers=["cuda"], precision="fp32") as fp32:
        strict = fp32.infer({"x": x})["y"]
    with OnnxrtRunner(model, providers=["cuda"], precision="tf32") as tf32:
        loose = tf32.infer({"x": x})["y"]
    fp32_error = np.abs(strict - exact).max()
    tf32_error = np.abs(loose - exact).max()
    scale = np.abs(exact).max()
    assert fp32_error < 1e-4 * scale
    assert tf32_error > 10 * fp32_error  # TF32 rounding is visible...
    assert tf32_error < 1e-2 * scale  # ...and bounded


@needs_cuda
def test_cuda_fp16_is_close_to_cpu_fp32() -> None:
    model = mixed_chain()
    feed = random_feed(model, seed=4)
    with OnnxrtRunner(model, providers=["cuda"], precision="fp16") as gpu:
        half = gpu.infer(feed)["scores"]
    with OnnxrtRunner(model) as cpu:
        exact = cpu.infer(feed)["scores"]
    assert 0 < np.abs(half - exact).max() < 5e-3


@needs_cuda_python
@pytest.mark.parametrize("dtype", [np.float32, np.int64, np.bool_, np.float16])
def test_pinned_and_device_buffers_round_trip(dtype) -> None:
    from pytest_polygraphy.runners.cuda import DeviceBuffer, HostBuffer, Stream

    rng = np.random.RandomState(0)
    data = (rng.rand(3, 257) * 100).astype(dtype)
    stream = Stream()
    up, down, device = HostBuffer(), HostBuffer(), DeviceBuffer()
    try:
        for shape in [(3, 257), (1, 5), (6, 300)]:  # grow, shrink (reuse), grow again
            array = np.resize(data, shape).astype(dtype)
            up.ensure(array.nbytes)
            np.copyto(up.view(array.dtype, array.shape), array)
            device.ensure(array.nbytes)
            device.copy_from_host(up, array.nbytes, stream)
            down.ensure(array.nbytes)
            down.copy_from_device(device.ptr, array.nbytes, stream)
            stream.synchronize()
            np.testing.assert_array_equal(down.view(array.dtype, array.shape), array)
        assert device.capacity == np.resize(data, (6, 300)).astype(dtype).nbytes
    finally:
        for buffer in (up, down, device):
            buffer.free()
        stream.free()


@needs_cuda
def test_gpu_identity_names_the_device() -> None:
    from pytest_polygraphy.runners.cuda import gpu_identity

    identity = gpu_identity()
    assert identity["name"]
    major, minor = identity["compute_capability"].split(".")
    assert int(major) >= 3 and int(minor) >= 0


@pytest.mark.skipif(CUDA_REASON is None, reason="this machine has a GPU")
def test_no_gpu_is_reported_as_unavailable() -> None:
    from pytest_polygraphy.errors import BackendUnavailableError
    from pytest_polygraphy.runners.cuda import cuda_available, gpu_identity

    assert not cuda_available()
    with pytest.raises(BackendUnavailableError):
        gpu_identity()
