"""Classify numpy dtypes for data generation, validation and storage.

ONNX's reduced-precision types (bfloat16, float8, int4, ...) arrive as ``ml_dtypes`` numpy
types, which numpy itself does not classify (their ``kind`` is ``"V"``) and ``np.save``
cannot describe. Everything here treats them like their built-in cousins.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

DtypeKind = Literal["bool", "int", "float", "other"]


def is_extension(dtype: np.dtype) -> bool:
    """True for dtypes numpy does not know natively (``ml_dtypes``: bfloat16, float8, int4)."""
    return dtype.type.__module__.startswith("ml_dtypes")


def kind(dtype: np.dtype) -> DtypeKind:
    """Whether ``dtype`` holds booleans, integers, floating point numbers or something else."""
    if dtype == np.bool_:
        return "bool"
    if np.issubdtype(dtype, np.integer):
        return "int"
    if np.issubdtype(dtype, np.floating):
        return "float"
    if is_extension(dtype):
        import ml_dtypes

        try:
            ml_dtypes.finfo(dtype)
            return "float"
        except (TypeError, ValueError):
            pass
        try:
            ml_dtypes.iinfo(dtype)
            return "int"
        except (TypeError, ValueError):
            pass
    return "other"


def finite_range(dtype: np.dtype) -> tuple[float, float]:
    """The smallest and largest finite value of an integer or floating point ``dtype``."""
    info: np.finfo | np.iinfo
    if is_extension(dtype):
        import ml_dtypes

        info = ml_dtypes.finfo(dtype) if kind(dtype) == "float" else ml_dtypes.iinfo(dtype)
    else:
        info = np.finfo(dtype) if kind(dtype) == "float" else np.iinfo(dtype)
    low, high = info.min, info.max
    return (float(low), float(high)) if kind(dtype) == "float" else (int(low), int(high))


def name(dtype: np.dtype) -> str:
    """A dtype's name that :func:`from_name` turns back into the same dtype."""
    return dtype.name if not is_extension(dtype) else dtype.type.__name__


def from_name(dtype_name: str) -> np.dtype:
    """The dtype called ``dtype_name``: a numpy name, else an ``ml_dtypes`` type name."""
    try:
        return np.dtype(dtype_name)
    except TypeError:
        import ml_dtypes

        if not hasattr(ml_dtypes, dtype_name):
            raise
        return np.dtype(getattr(ml_dtypes, dtype_name))


def storage_view(array: np.ndarray) -> np.ndarray:
    """``array`` viewed as unsigned integers of the same width when its dtype is an extension
    type, so that ``np.save`` can store it; other arrays are returned unchanged."""
    if not is_extension(array.dtype):
        return array
    return np.ascontiguousarray(array).view(np.dtype(f"u{array.dtype.itemsize}"))
