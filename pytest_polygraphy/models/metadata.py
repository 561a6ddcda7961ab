"""Input and output metadata of an ONNX model, and the ONNX <-> numpy dtype mapping.

Dtypes follow onnx's own mapping: ``bfloat16`` and the float8/int4 types map to the
``ml_dtypes`` numpy types (``ml_dtypes`` is installed with onnx), ``string`` to ``object``.
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING

import numpy as np
import onnx

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.metadata import Dim, TensorMetadata

if TYPE_CHECKING:
    from collections.abc import Iterable


def onnx_to_np_dtype(elem_type: int, *, tensor: str = "?") -> np.dtype:
    """The numpy dtype of an ONNX ``TensorProto.DataType``; ``tensor`` names it in errors."""
    if elem_type == onnx.TensorProto.UNDEFINED:
        raise ModelError(f"tensor {tensor!r} has no element type (UNDEFINED)")
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(
            f"tensor {tensor!r} has ONNX element type {elem_type}, which has no numpy dtype"
        ) from err


def np_to_onnx_dtype(dtype: object) -> int:
    """The ONNX ``TensorProto.DataType`` of a numpy dtype (``ml_dtypes.bfloat16`` included)."""
    try:
        return int(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)))
    except (KeyError, ValueError, TypeError) as err:
        raise ModelError(f"numpy dtype {dtype!r} has no ONNX element type") from err


def dims_of(value_info: onnx.ValueInfoProto) -> tuple[Dim, ...] | None:
    """The dims of a tensor value: int, symbolic name, or None; None when the rank is unknown."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for dim in tensor_type.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return tuple(dims)


def _metadata_of(values: Iterable[onnx.ValueInfoProto], kind: str, source: str) -> TensorMetadata:
    metadata = TensorMetadata()
    for value in values:
        which = value.type.WhichOneof("value")
        if which is None:
            raise ModelError(
                f"{kind} {value.name!r} of {source} has no type information; "
                "shape inference could not find its dtype"
            )
        if which != "tensor_type":
            raise ModelError(
                f"{kind} {value.name!r} of {source} is a {which.replace('_type', '')}, "
                "not a tensor; only tensor inputs and outputs are supported"
            )
        dtype = onnx_to_np_dtype(value.type.tensor_type.elem_type, tensor=value.name)
        metadata.add(value.name, dtype, dims_of(value))
    return metadata


def _graph_of(model: onnx.ModelProto | str | os.PathLike[str]) -> tuple[onnx.GraphProto, str]:
    if isinstance(model, onnx.ModelProto):
        if not model.HasField("graph"):
            raise ModelError("the in-memory ONNX model has no graph")
        return model.graph, "the model"
    from pytest_polygraphy.files import file_version
    from pytest_polygraphy.models.io import load_model

    path = os.fspath(model)
    version = file_version(path)
    if version is None:  # raises the ModelError naming the file
        return load_model(path, load_external_data=False).graph, path
    return _file_structure(os.path.abspath(path), version), path


@functools.lru_cache(maxsize=64)
def _file_structure(path: str, version: tuple[int, int, int, int]) -> onnx.GraphProto:
    """The inputs, outputs and initializer names of the model file at ``path``, as it was
    at that ``version`` (device, inode, size, modification time): all the metadata
    functions read. Kept per file, so that a test's runners, settings and feeds do not
    each parse the file again (a model test asked for its metadata five times); a
    rewritten or replaced file is read again. The weights are never read, embedded ones
    not kept."""
    from pytest_polygraphy.models.io import load_model

    graph = load_model(path, load_external_data=False).graph
    structure = onnx.GraphProto()
    structure.input.extend(graph.input)
    structure.output.extend(graph.output)
    for initializer in graph.initializer:
        structure.initializer.add().name = initializer.name
    return structure


def input_metadata(model: onnx.ModelProto | str | os.PathLike[str]) -> TensorMetadata:
    """Names, dtypes and dims of the model's inputs, in graph order.

    Initializers that are also listed as graph inputs (overridable weights in old models)
    are not inputs, as in ONNX Runtime and Polygraphy. A path is read without its
    external data.
    """
    graph, source = _graph_of(model)
    initializers = {init.name for init in graph.initializer}
    return _metadata_of(
        (value for value in graph.input if value.name not in initializers), "input", source
    )


def output_names(model: onnx.ModelProto | str | os.PathLike[str]) -> list[str]:
    """The names of the model's outputs, in graph order, typed or not."""
    graph, _ = _graph_of(model)
    return [value.name for value in graph.output]


def output_metadata(model: onnx.ModelProto | str | os.PathLike[str]) -> TensorMetadata:
    """Names, dtypes and dims of the model's outputs, in graph order.

    An output without type information (as ``mark_outputs`` writes for a tensor whose dtype
    shape inference cannot find) raises ``ModelError`` naming it.
    """
    graph, source = _graph_of(model)
    return _metadata_of(graph.output, "output", source)
