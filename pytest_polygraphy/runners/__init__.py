"""Runners: one protocol over ONNX Runtime, onnx's reference evaluator, TensorRT and saved
(golden) outputs, plus ``run()`` and ``compare()`` to drive several of them together.

Importing this package is light: backends (onnxruntime, tensorrt, cuda-python) are
imported when a runner is created or activated.
"""

from __future__ import annotations

from pytest_polygraphy.runners.base import BaseRunner, Runner, RunnerNotActiveError
from pytest_polygraphy.runners.cuda import CudaError, cuda_available, cuda_unavailable_reason
from pytest_polygraphy.runners.golden import GoldenRunner
from pytest_polygraphy.runners.onnxref import OnnxrefRunner
from pytest_polygraphy.runners.onnxrt import PROVIDER_NAMES, OnnxrtRunner, resolve_provider
from pytest_polygraphy.runners.run import (
    IterationComparison,
    IterationOutputs,
    RunComparison,
    RunStream,
    compare,
    run,
)
from pytest_polygraphy.runners.trt import TrtEngineRunner, TrtRunner
from pytest_polygraphy.runners.trt_module import (
    import_tensorrt,
    tensorrt_available,
    tensorrt_unavailable_reason,
)

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
