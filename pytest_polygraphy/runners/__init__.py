"""Runners: one protocol over ONNX Runtime, onnx's reference evaluator, TensorRT and saved
(golden) outputs, plus ``run()`` and ``compare()`` to drive several of them together.

Importing this package is light: names are imported from their modules on first use, so
that the reference evaluator's runner does not import TensorRT's (``run`` and ``compare``
at once), and backends (onnxruntime, tensorrt, cuda-python) when a runner is created or
activated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_polygraphy.lazy import lazy_getattr

# eager: the module ``run`` and the function ``run`` share a name, and the function must win
from pytest_polygraphy.runners.run import (
    IterationComparison,
    IterationOutputs,
    RunComparison,
    RunStream,
    compare,
    run,
)

if TYPE_CHECKING:
    from pytest_polygraphy.runners.base import BaseRunner, Runner, RunnerNotActiveError
    from pytest_polygraphy.runners.cuda import (
        CudaError,
        cuda_available,
        cuda_unavailable_reason,
    )
    from pytest_polygraphy.runners.golden import GoldenRunner
    from pytest_polygraphy.runners.onnxref import OnnxrefRunner
    from pytest_polygraphy.runners.onnxrt import PROVIDER_NAMES, OnnxrtRunner, resolve_provider
    from pytest_polygraphy.runners.trt import TrtEngineRunner, TrtRunner
    from pytest_polygraphy.runners.trt_module import (
        import_tensorrt,
        tensorrt_available,
        tensorrt_unavailable_reason,
    )

_EXPORTS = {
    "BaseRunner": ".base",
    "Runner": ".base",
    "RunnerNotActiveError": ".base",
    "CudaError": ".cuda",
    "cuda_available": ".cuda",
    "cuda_unavailable_reason": ".cuda",
    "GoldenRunner": ".golden",
    "OnnxrefRunner": ".onnxref",
    "PROVIDER_NAMES": ".onnxrt",
    "OnnxrtRunner": ".onnxrt",
    "resolve_provider": ".onnxrt",
    "TrtEngineRunner": ".trt",
    "TrtRunner": ".trt",
    "import_tensorrt": ".trt_module",
    "tensorrt_available": ".trt_module",
    "tensorrt_unavailable_reason": ".trt_module",
}

__all__ = [
    "PROVIDER_NAMES",
    "BaseRunner",
    "CudaError",
    "GoldenRunner",
    "IterationComparison",
    "IterationOutputs",
    "OnnxrefRunner",
    "OnnxrtRunner",
    "RunComparison",
    "RunStream",
    "Runner",
    "RunnerNotActiveError",
    "TrtEngineRunner",
    "TrtRunner",
    "compare",
    "cuda_available",
    "cuda_unavailable_reason",
    "import_tensorrt",
    "resolve_provider",
    "run",
    "tensorrt_available",
    "tensorrt_unavailable_reason",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
