"""pytest-polygraphy: model accuracy testing for ONNX models as an ordinary pytest suite.

The public API is re-exported here lazily (PEP 562), so that importing the package,
which pytest does for the plugin entry point, loads neither numpy nor onnxruntime.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_polygraphy.lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    "OnnxrtRunner": "pytest_polygraphy.runners",
    "OnnxrefRunner": "pytest_polygraphy.runners",
    "TrtRunner": "pytest_polygraphy.runners",
    "TrtEngineRunner": "pytest_polygraphy.runners",
    "GoldenRunner": "pytest_polygraphy.runners",
    "BaseRunner": "pytest_polygraphy.runners",
    "Runner": "pytest_polygraphy.runners",
    "RunStream": "pytest_polygraphy.runners",
    "RunComparison": "pytest_polygraphy.runners",
    "RunnerNotActiveError": "pytest_polygraphy.runners",
    "cuda_available": "pytest_polygraphy.runners",
    "tensorrt_available": "pytest_polygraphy.runners",
    "ArtifactCache": "pytest_polygraphy.cache",
    "CompareFunc": "pytest_polygraphy.compare",
    "CompareResult": "pytest_polygraphy.compare",
    "OutputCompareResult": "pytest_polygraphy.compare",
    "OutputResult": "pytest_polygraphy.compare",
    "IndicesResult": "pytest_polygraphy.compare",
    "DistanceResult": "pytest_polygraphy.compare",
    "QualityResult": "pytest_polygraphy.compare",
    "PRECISION_TOLERANCES": "pytest_polygraphy.compare",
    "Tolerance": "pytest_polygraphy.compare",
    "default_tolerances": "pytest_polygraphy.compare",
    "assert_outputs_close": "pytest_polygraphy.assertions",
    "PolygraphyError": "pytest_polygraphy.errors",
    "InputError": "pytest_polygraphy.errors",
    "ModelError": "pytest_polygraphy.errors",
    "BackendUnavailableError": "pytest_polygraphy.errors",
    "OutputMismatchError": "pytest_polygraphy.errors",
    "TensorMeta": "pytest_polygraphy.metadata",
    "TensorMetadata": "pytest_polygraphy.metadata",
    "DataLoader": "pytest_polygraphy.data",
    "RunResults": "pytest_polygraphy.data",
    "IterationResult": "pytest_polygraphy.data",
    "load_inputs": "pytest_polygraphy.data",
    "save_inputs": "pytest_polygraphy.data",
    "load_run_results": "pytest_polygraphy.data",
    "save_run_results": "pytest_polygraphy.data",
    "load_script_loader": "pytest_polygraphy.data",
    "validate_feed": "pytest_polygraphy.data",
    "load_model": "pytest_polygraphy.models",
    "save_model": "pytest_polygraphy.models",
    "model_hash": "pytest_polygraphy.models",
    "infer_shapes": "pytest_polygraphy.models",
    "input_metadata": "pytest_polygraphy.models",
    "output_metadata": "pytest_polygraphy.models",
    "MARK_ALL": "pytest_polygraphy.models",
    "mark_outputs": "pytest_polygraphy.models",
    "convert_to_fp16": "pytest_polygraphy.models",
    "quantize_int8": "pytest_polygraphy.models",
    "extract_subgraph": "pytest_polygraphy.models",
}

__all__ = ["__version__", *_EXPORTS]


__getattr__ = lazy_getattr(__name__, _EXPORTS)


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:
    from pytest_polygraphy.assertions import assert_outputs_close
    from pytest_polygraphy.cache import ArtifactCache
    from pytest_polygraphy.compare import (
        PRECISION_TOLERANCES,
        CompareFunc,
        CompareResult,
        DistanceResult,
        IndicesResult,
        OutputCompareResult,
        OutputResult,
        QualityResult,
        Tolerance,
        default_tolerances,
    )
    from pytest_polygraphy.data import (
        DataLoader,
        IterationResult,
        RunResults,
        load_inputs,
        load_run_results,
        load_script_loader,
        save_inputs,
        save_run_results,
        validate_feed,
    )
    from pytest_polygraphy.errors import (
        BackendUnavailableError,
        InputError,
        ModelError,
        OutputMismatchError,
        PolygraphyError,
    )
    from pytest_polygraphy.metadata import TensorMeta, TensorMetadata
    from pytest_polygraphy.models import (
        MARK_ALL,
        convert_to_fp16,
        extract_subgraph,
        infer_shapes,
        input_metadata,
        load_model,
        mark_outputs,
        model_hash,
        output_metadata,
        quantize_int8,
        save_model,
    )
    from pytest_polygraphy.runners import (
        BaseRunner,
        GoldenRunner,
        OnnxrefRunner,
        OnnxrtRunner,
        RunComparison,
        Runner,
        RunnerNotActiveError,
        RunStream,
        TrtEngineRunner,
        TrtRunner,
        cuda_available,
        tensorrt_available,
    )
