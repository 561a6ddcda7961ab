"""Shape inference, and the dtype/shape knowledge it leaves in a model.

Symbolic dims (``dim_param``, e.g. ``"batch"``) are kept as onnx's inference propagates
them; nothing is fixed to a concrete size here.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import onnx

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import io


def infer_shapes(model: onnx.ModelProto | str | os.PathLike[str]) -> onnx.ModelProto:
    """A new model with ``value_info`` filled in by ``onnx.shape_inference`` (with data
    propagation, so shapes computed by Shape/Gather/Concat chains are known too).

    Models over protobuf's 2 GiB limit go through ``infer_shapes_path`` on a temporary
    copy with external data. Nodes of custom domains are left without value_info. Where
    inference finds the model inconsistent (real exported models often carry stale
    value_info), a ``UserWarning`` quotes onnx's errors and the tensors concerned stay
    untyped, as Polygraphy does; a model that cannot be processed at all raises
    ``ModelError``.
    """
    source = "the model" if isinstance(model, onnx.ModelProto) else repr(os.fspath(model))
    proto = io.load_model(model)
    try:
        try:
            return _infer(proto, strict=True)
        except onnx.shape_inference.InferenceError as err:
            warnings.warn(
                f"shape inference found errors in {source}; the types of the tensors "
                f"concerned stay unknown:\n{err}",
                UserWarning,
                stacklevel=2,
            )
            return _infer(proto, strict=False)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as err:
        raise ModelError(f"shape inference failed on {source}: {err}") from err


def _infer(proto: onnx.ModelProto, *, strict: bool) -> onnx.ModelProto:
    if proto.ByteSize() <= io.PROTOBUF_LIMIT:
        return onnx.shape_inference.infer_shapes(proto, strict_mode=strict, data_prop=True)
    with tempfile.TemporaryDirectory(prefix="pytest_polygraphy_shapes_") as tmp:
        path = os.path.join(tmp, "model.onnx")
        inferred = os.path.join(tmp, "inferred.onnx")
        io.save_model(proto, path, external_data=True)
        onnx.shape_inference.infer_shapes_path(path, inferred, strict_mode=strict, data_prop=True)
        return io.load_model(inferred)


def value_infos(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every top-level tensor whose type the model states, by name: graph inputs and outputs,
    ``value_info`` entries, initializers and Constant node outputs.

    Run ``infer_shapes`` first to know intermediate tensors. Entries without a type are
    skipped; where several sources know a tensor, a typed one with a shape wins.
    """
    graph = model.graph
    known: dict[str, onnx.ValueInfoProto] = {}

    def offer(value: onnx.ValueInfoProto) -> None:
        if value.type.WhichOneof("value") is None:
            return
        previous = known.get(value.name)
        if previous is None or (
            previous.type.WhichOneof("value") == "tensor_type"
            and not previous.type.tensor_type.HasField("shape")
        ):
            known[value.name] = value

    for init in graph.initializer:
        offer(onnx.helper.make_tensor_value_info(init.name, init.data_type, list(init.dims)))
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx") and node.output:
            constant = _constant_value_info(node)
            if constant is not None:
                offer(constant)
    for value in [*graph.input, *graph.output, *graph.value_info]:
        offer(value)
    return known


def _constant_value_info(node: onnx.NodeProto) -> onnx.ValueInfoProto | None:
    name = node.output[0]
    for attr in node.attribute:
        if attr.name == "value":
            return onnx.helper.make_tensor_value_info(name, attr.t.data_type, list(attr.t.dims))
        if attr.name == "value_float":
            return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, [])
        if attr.name == "value_floats":
            return onnx.helper.make_tensor_value_info(
                name, onnx.TensorProto.FLOAT, [len(attr.floats)]
            )
        if attr.name == "value_int":
            return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.INT64, [])
        if attr.name == "value_ints":
            return onnx.helper.make_tensor_value_info(
                name, onnx.TensorProto.INT64, [len(attr.ints)]
            )
    return None


def elem_type_of(value: onnx.ValueInfoProto | None) -> int | None:
    """The tensor element type of a value, None when it is unknown or not a tensor."""
    if value is None or value.type.WhichOneof("value") != "tensor_type":
        return None
    elem_type = value.type.tensor_type.elem_type
    return elem_type or None
