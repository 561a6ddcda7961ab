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
from pytest_polygraphy.models.io import copy_fields


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
    return _inferred(io.load_model(model), source)


def inferred_value_infos(
    model: onnx.ModelProto | str | os.PathLike[str],
) -> dict[str, onnx.ValueInfoProto]:
    """``value_infos(infer_shapes(model))``, the same entries, without handing shape
    inference the weights: it runs on a copy of the main graph whose large float tensors
    (initializers and Constant values, ``_WEIGHT_ELEMENTS``) keep their type and dims
    only, which is all it reads of them. A model of 10 MB of weights is then not
    serialized, inferred and parsed back whole (PP-OCRv4 rec: 52 ms, then 14)."""
    source = "the model" if isinstance(model, onnx.ModelProto) else repr(os.fspath(model))
    return value_infos(_inferred(_without_weights(io.load_model(model)), source))


#: Float tensors with more elements than this are weights. Shape inference reads the
#: values of only a few inputs (Reshape's shape, Resize's scales, Slice's starts...),
#: and those are integers or a handful of floats.
_WEIGHT_ELEMENTS = 1024
#: Element types of floating-point tensors.
FLOAT_TYPES = frozenset(
    {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.BFLOAT16,
    }
)


def _is_weight(tensor: onnx.TensorProto) -> bool:
    if tensor.data_type not in FLOAT_TYPES:
        return False
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count > _WEIGHT_ELEMENTS


def _bare(tensor: onnx.TensorProto) -> onnx.TensorProto:
    bare = onnx.TensorProto(name=tensor.name, data_type=tensor.data_type)
    bare.dims.extend(tensor.dims)
    return bare


def _without_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """``proto``, or a copy whose main graph's weights are bare (see
    ``inferred_value_infos``); ``proto`` itself is not changed."""
    graph = proto.graph

    def heavy_constant(node: onnx.NodeProto) -> bool:
        return node.op_type == "Constant" and any(
            attr.HasField("t") and _is_weight(attr.t) for attr in node.attribute
        )

    if not any(_is_weight(init) for init in graph.initializer) and not any(
        heavy_constant(node) for node in graph.node
    ):
        return proto
    skeleton = onnx.ModelProto()
    copy_fields(skeleton, proto, ("graph",))
    copy_fields(skeleton.graph, graph, ("initializer", "node"))
    skeleton.graph.initializer.extend(
        _bare(init) if _is_weight(init) else init for init in graph.initializer
    )
    for node in graph.node:
        if not heavy_constant(node):
            skeleton.graph.node.append(node)
            continue
        copy = skeleton.graph.node.add()
        copy_fields(copy, node, ("attribute",))
        for attr in node.attribute:
            kept = copy.attribute.add()
            if attr.HasField("t") and _is_weight(attr.t):
                copy_fields(kept, attr, ("t",))
                kept.t.CopyFrom(_bare(attr.t))
            else:
                kept.CopyFrom(attr)
    return skeleton


def _inferred(proto: onnx.ModelProto, source: str) -> onnx.ModelProto:
    data = _serialized(proto)  # once, for the strict run and the lenient one after it
    try:
        try:
            return _infer(proto, data, strict=True)
        except onnx.shape_inference.InferenceError as err:
            warnings.warn(
                f"shape inference found errors in {source}; the types of the tensors "
                f"concerned stay unknown:\n{err}",
                UserWarning,
                stacklevel=3,
            )
            return _infer(proto, data, strict=False)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as err:
        raise ModelError(f"shape inference failed on {source}: {err}") from err


def _serialized(proto: onnx.ModelProto) -> bytes | None:
    """The model's bytes, or None past protobuf's 2 GiB limit."""
    try:
        data = proto.SerializeToString()
    except ValueError:  # too large for protobuf to write
        return None
    return data if len(data) <= io.PROTOBUF_LIMIT else None


def _infer(proto: onnx.ModelProto, data: bytes | None, *, strict: bool) -> onnx.ModelProto:
    if data is not None:
        return onnx.shape_inference.infer_shapes(data, strict_mode=strict, data_prop=True)
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
