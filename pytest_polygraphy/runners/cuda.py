"""Small CUDA helpers on cuda-python: device buffers, pinned host buffers, one stream.

Buffers grow and never shrink, so a runner that is called again and again with the same
(or smaller) shapes allocates nothing after the first call. Everything is imported
lazily; ``cuda_available()`` and ``gpu_identity()`` talk to the CUDA driver through
ctypes and need no cuda-python at all (they answer False / raise on machines without a
GPU or driver).

cuda-python moved its runtime module: ``cuda.bindings.runtime`` (cuda-python >= 12.6,
13.x) and ``cuda.cudart`` before that; both are tried.
"""

from __future__ import annotations

import ctypes
import functools
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import BackendUnavailableError, PolygraphyError

if TYPE_CHECKING:
    import numpy as np


class CudaError(PolygraphyError, RuntimeError):
    """A CUDA runtime call failed (out of memory, invalid value, lost device...)."""


@functools.lru_cache(maxsize=1)
def cudart() -> Any:
    """The cuda-python runtime module; ``BackendUnavailableError`` when not installed."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.6
        except ImportError as err:
            raise BackendUnavailableError(
                "cuda-python is not installed: pip install 'pytest-polygraphy[trt]' "
                "(or pip install cuda-python)"
            ) from err
    return runtime


def check(result: Any, what: str) -> Any:
    """Unpack a cuda-python ``(error, *values)`` result, raising ``CudaError`` on failure."""
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        _, text = rt.cudaGetErrorString(err)
        message = text.decode() if isinstance(text, bytes) else str(text)
        raise CudaError(f"{what} failed: {err!r}: {message}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


# -- driver queries through ctypes (no cuda-python needed) --------------------------------
@functools.lru_cache(maxsize=1)
def _driver() -> Any:
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        if lib.cuInit(0) == 0:
            return lib
        return None
    return None


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when a CUDA driver is loaded and sees at least one GPU."""
    lib = _driver()
    if lib is None:
        return False
    count = ctypes.c_int(0)
    return lib.cuDeviceGetCount(ctypes.byref(count)) == 0 and count.value > 0


def cuda_unavailable_reason() -> str | None:
    """Why CUDA cannot be used here (for skip reasons), or None when it can."""
    if _driver() is None:
        return "no CUDA driver (libcuda) on this machine"
    if not cuda_available():
        return "the CUDA driver sees no GPU"
    return None


@functools.lru_cache(maxsize=8)
def gpu_identity(device: int = 0) -> dict[str, str]:
    """``{"name": "NVIDIA H200", "compute_capability": "9.0"}`` for a device; part of
    engine cache keys (an engine only runs on the GPU family it was built for)."""
    lib = _driver()
    if lib is None:
        raise BackendUnavailableError(cuda_unavailable_reason() or "CUDA is unavailable")
    handle = ctypes.c_int(0)
    if lib.cuDeviceGet(ctypes.byref(handle), device) != 0:
        raise BackendUnavailableError(f"CUDA device {device} does not exist")
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, handle)
    major, minor = ctypes.c_int(0), ctypes.c_int(0)
    # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR
    lib.cuDeviceGetAttribute(ctypes.byref(major), 75, handle)
    lib.cuDeviceGetAttribute(ctypes.byref(minor), 76, handle)
    return {"name": name.value.decode(), "compute_capability": f"{major.value}.{minor.value}"}


# -- memory ----------------------------------------------------------------------------
class Stream:
    """A CUDA stream owned by a runner."""

    def __init__(self) -> None:
        self._stream = check(cudart().cudaStreamCreate(), "cudaStreamCreate")

    @property
    def handle(self) -> int:
        """The ``cudaStream_t`` as an int (what TensorRT's ``execute_async_v3`` takes)."""
        return int(self._stream)

    @property
    def raw(self) -> Any:
        return self._stream

    def synchronize(self) -> None:
        check(cudart().cudaStreamSynchronize(self._stream), "cudaStreamSynchronize")

    def free(self) -> None:
        if self._stream is not None:
            check(cudart().cudaStreamDestroy(self._stream), "cudaStreamDestroy")
            self._stream = None


class DeviceBuffer:
    """Device memory that grows on demand (``ensure(nbytes)``) and is reused."""

    def __init__(self, nbytes: int = 0) -> None:
        self.ptr = 0
        self.capacity = 0
        self.ensure(nbytes)

    def ensure(self, nbytes: int) -> int:
        """Make room for ``nbytes`` (contents are not kept on growth); returns ``ptr``."""
        if nbytes > self.capacity:
            self.free()
            self.ptr = int(check(cudart().cudaMalloc(max(nbytes, 1)), f"cudaMalloc({nbytes})"))
            self.capacity = nbytes
        return self.ptr

    def copy_from_host(self, host: HostBuffer, nbytes: int, stream: Stream) -> None:
        rt = cudart()
        check(
            rt.cudaMemcpyAsync(
                self.ptr,
                host.ptr,
                nbytes,
                rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
                stream.raw,
            ),
            "cudaMemcpyAsync (host to device)",
        )

    def free(self) -> None:
        if self.ptr:
            check(cudart().cudaFree(self.ptr), "cudaFree")
        self.ptr = 0
        self.capacity = 0


class HostBuffer:
    """Pinned (page-locked) host memory that grows on demand; ``view(dtype, shape)`` is a
    numpy array over it (valid until the next ``ensure`` or ``free``)."""

    def __init__(self, nbytes: int = 0) -> None:
        self.ptr = 0
        self.capacity = 0
        self.ensure(nbytes)

    def ensure(self, nbytes: int) -> int:
        if nbytes > self.capacity:
            self.free()
            self.ptr = int(
                check(cudart().cudaMallocHost(max(nbytes, 1)), f"cudaMallocHost({nbytes})")
            )
            self.capacity = nbytes
        return self.ptr

    def view(self, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        import numpy as np

        dtype = np.dtype(dtype)
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        nbytes = count * dtype.itemsize
        if nbytes > self.capacity:
            raise ValueError(f"view of {nbytes} bytes over a {self.capacity}-byte buffer")
        if nbytes == 0:
            return np.empty(shape, dtype=dtype)
        raw = (ctypes.c_byte * nbytes).from_address(self.ptr)
        return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)

    def copy_from_device(self, device_ptr: int, nbytes: int, stream: Stream) -> None:
        rt = cudart()
        check(
            rt.cudaMemcpyAsync(
                self.ptr,
                device_ptr,
                nbytes,
                rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                stream.raw,
            ),
            "cudaMemcpyAsync (device to host)",
        )

    def free(self) -> None:
        if self.ptr:
            check(cudart().cudaFreeHost(self.ptr), "cudaFreeHost")
        self.ptr = 0
        self.capacity = 0


class FeedUploader:
    """Copies feeds to the GPU, one growable device buffer per input name (through a
    pinned host buffer and one stream), for callers that hand TensorRT device pointers:
    the int8 calibrator's ``get_batch``. ``upload`` returns the device pointer;
    ``synchronize`` waits for the copies; ``free`` releases everything."""

    def __init__(self) -> None:
        self._stream: Stream | None = None
        self._host: dict[str, HostBuffer] = {}
        self._device: dict[str, DeviceBuffer] = {}

    def upload(self, name: str, array: np.ndarray) -> int:
        import numpy as np

        if self._stream is None:
            self._stream = Stream()
        array = np.ascontiguousarray(array)
        host = self._host.setdefault(name, HostBuffer())
        host.ensure(array.nbytes)
        np.copyto(host.view(array.dtype, array.shape), array)
        device = self._device.setdefault(name, DeviceBuffer())
        ptr = device.ensure(array.nbytes)
        device.copy_from_host(host, array.nbytes, self._stream)
        return ptr

    def synchronize(self) -> None:
        if self._stream is not None:
            self._stream.synchronize()

    def free(self) -> None:
        for buffers in (self._device, self._host):
            for buffer in buffers.values():
                buffer.free()
            buffers.clear()
        if self._stream is not None:
            self._stream.free()
            self._stream = None
