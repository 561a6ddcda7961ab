"""ONNX model loading, hashing and transforms.

Every transform takes a ``ModelProto`` or a path and returns a new ``ModelProto``; none
changes its argument or writes over a file. ``save_model`` writes atomically.
"""

from __future__ import annotations

from pytest_polygraphy.models.fp16 import Fp16RangeIssue, Fp16RangeWarning, convert_to_fp16
from pytest_polygraphy.models.int8 import quantize_int8
from pytest_polygraphy.models.io import load_model, model_hash, save_model
from pytest_polygraphy.models.mark import MARK_ALL, mark_outputs, markable_tensors
from pytest_polygraphy.models.metadata import (
    input_metadata,
    np_to_onnx_dtype,
    onnx_to_np_dtype,
    output_metadata,
    output_names,
)
from pytest_polygraphy.models.shapes import infer_shapes
from pytest_polygraphy.models.subgraph import extract_subgraph

__all__ = [
    "MARK_ALL",
    "Fp16RangeIssue",
    "Fp16RangeWarning",
    "convert_to_fp16",
    "extract_subgraph",
    "infer_shapes",
    "input_metadata",
    "load_model",
    "mark_outputs",
    "markable_tensors",
    "model_hash",
    "np_to_onnx_dtype",
    "onnx_to_np_dtype",
    "output_metadata",
    "output_names",
    "quantize_int8",
    "save_model",
]
