"""Loading, saving and hashing ONNX models, external data included.

A model larger than protobuf's 2 GiB limit keeps its weights in external data files next
to it; everything here reads those relative to the model's folder, and ``model_hash``
covers their contents so that a cache keyed by it notices edited weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper
from onnx.serialization import registry

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.files import write_bytes_atomically

#: Above this serialized size a model is saved with external data and shape inference goes
#: through files. Protobuf refuses 2 GiB; keep a margin for the graph itself.
PROTOBUF_LIMIT = 2**31 - 2**26

_HASH_VERSION = b"pytest-polygraphy model hash v1\n"
#: How a serialized external tensor names its file: an ``external_data`` entry (a
#: StringStringEntryProto) whose key, field 1, is ``"location"``, which onnx requires of every
#: tensor stored outside the protobuf. Protobuf writers put fields in number order, so the
#: bytes of a model with external tensors hold this run of 10 bytes, and weights almost
#: never do by chance (the 2-byte ``data_location = EXTERNAL`` field does, in every model
#: of a few megabytes). Loading and saving skip the walk over every tensor without it:
#: that walk costs more than parsing a model of many small constants.
_EXTERNAL_DATA_KEY = b"\x0a\x08location"
_READ_CHUNK = 1 << 24


def iter_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every TensorProto a model holds, in a fixed order: initializers (sparse ones too) and
    tensor attributes, of the main graph, of every subgraph and of every local function."""

    def of_attribute(attr: onnx.AttributeProto) -> Iterator[onnx.TensorProto]:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        for sparse in [attr.sparse_tensor] if attr.HasField("sparse_tensor") else []:
            yield sparse.values
            yield sparse.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices
        if attr.HasField("g"):
            yield from of_graph(attr.g)
        for graph in attr.graphs:
            yield from of_graph(graph)

    def of_nodes(nodes: Iterator[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
        for node in nodes:
            for attr in node.attribute:
                yield from of_attribute(attr)

    def of_graph(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        yield from of_nodes(iter(graph.node))

    yield from of_graph(model.graph)
    for function in model.functions:
        yield from of_nodes(iter(function.node))


def _external_file(tensor: onnx.TensorProto, base_dir: str, model_path: str) -> str:
    location = external_data_helper.ExternalDataInfo(tensor).location
    path = os.path.join(base_dir, location)
    if not os.path.isfile(path):
        raise ModelError(
            f"external data file {path!r} of tensor {tensor.name!r} "
            f"(needed by model {model_path!r}) does not exist"
        )
    return path


def copy_fields(target: Any, source: Any, skip: tuple[str, ...]) -> None:
    """Copy every set field of the message ``source`` into ``target`` except those named in
    ``skip``: how a model is copied without the parts a caller rebuilds (its weights, its
    nodes), which a whole ``CopyFrom`` would copy first for nothing."""
    for field, value in source.ListFields():
        if field.name in skip:
            continue
        current = getattr(target, field.name)
        if hasattr(current, "extend"):  # a repeated field
            current.extend(value)
        elif hasattr(current, "CopyFrom"):  # a message
            current.CopyFrom(value)
        else:
            setattr(target, field.name, value)


def load_model(
    model: onnx.ModelProto | str | os.PathLike[str], *, load_external_data: bool = True
) -> onnx.ModelProto:
    """The model at a path, with its external data read from the model's folder.

    A ``ModelProto`` is returned as is (transforms copy before they change anything).
    A missing file, a file that is not an ONNX protobuf, and missing or truncated external
    data raise ``ModelError`` naming the file.
    """
    if isinstance(model, onnx.ModelProto):
        return model
    path = os.fspath(model)
    if not os.path.exists(path):
        raise ModelError(f"model file {path!r} does not exist")
    if not os.path.isfile(path):
        raise ModelError(f"model path {path!r} is not a file")
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except OSError as err:
        raise ModelError(f"cannot read model file {path!r}: {err}") from err
    file_format = registry.get_format_from_file_extension(os.path.splitext(path)[1]) or "protobuf"
    try:
        proto = onnx.load_model_from_string(data, format=file_format)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise ModelError(f"model file {path!r} is not a valid ONNX protobuf: {err}") from err
    if not proto.HasField("graph"):
        if proto.ir_version == 0:
            raise ModelError(f"model file {path!r} holds no ONNX model (empty or not a ModelProto)")
        raise ModelError(
            f"model file {path!r} has no graph: it parses as an ONNX ModelProto (ir_version "
            f"{proto.ir_version}) without one, as a truncated download or copy does; export or "
            "download the model again"
        )
    if load_external_data and (file_format != "protobuf" or _EXTERNAL_DATA_KEY in data):
        base_dir = os.path.dirname(os.path.abspath(path))
        for tensor in iter_tensors(proto):
            if external_data_helper.uses_external_data(tensor):
                _external_file(tensor, base_dir, path)
        try:
            external_data_helper.load_external_data_for_model(proto, base_dir)
        except (OSError, ValueError, onnx.checker.ValidationError) as err:
            raise ModelError(f"cannot read external data of model {path!r}: {err}") from err
    return proto


def _unloaded_external_tensors(model: onnx.ModelProto) -> list[str]:
    return [t.name for t in iter_tensors(model) if external_data_helper.uses_external_data(t)]


def save_model(
    model: onnx.ModelProto,
    path: str | os.PathLike[str],
    *,
    external_data: bool | None = None,
    durable: bool = True,
) -> None:
    """Write a model atomically (temporary file in the same folder, then rename).

    ``external_data=None`` stores the weights in ``<file name>.data`` next to the model only
    when the model is too large for one protobuf; ``True`` or ``False`` force the choice.
    Tensors under 1 KiB stay in the protobuf (as onnx does by default), so that shape
    inference still sees small constants such as Reshape targets. The model passed in is
    not changed. ``durable=False``: not synced to disk (``files.write_atomically``).
    """
    if external_data is None:
        external_data = model.ByteSize() > PROTOBUF_LIMIT
    data = None if external_data else model.SerializeToString()
    missing = (
        _unloaded_external_tensors(model) if data is None or _EXTERNAL_DATA_KEY in data else []
    )
    if missing:
        raise ModelError(
            f"cannot save to {os.fspath(path)!r}: tensors {missing[:5]} refer to external data "
            "that was never loaded; load the model with load_model(path) first"
        )
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    if data is not None:
        write_bytes_atomically(path, data, durable=durable)
        return
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # onnx.save_model converts tensors to external data in place
    location = f"{name}.data"
    with tempfile.TemporaryDirectory(dir=folder, prefix=f".{name}.") as tmp:
        onnx.save_model(
            copy,
            os.path.join(tmp, name),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=location,
            size_threshold=1024,
        )
        if os.path.exists(os.path.join(tmp, location)):
            os.replace(os.path.join(tmp, location), os.path.join(folder, location))
        os.replace(os.path.join(tmp, name), path)


def model_hash(model: onnx.ModelProto | str | os.PathLike[str]) -> str:
    """A stable sha256 hex digest of a model's graph and all its weights.

    The digest covers the deterministic serialization of the model without tensor bytes,
    then the bytes of every tensor in a fixed order, whether they live in the protobuf or
    in external data files. So a path and the model loaded from it hash equal, the same
    model saved in two folders (or with differently named data files) hashes equal, and
    editing a ``.data`` file changes the hash. For a ``ModelProto`` the tensor bytes are
    detached while the graph is serialized and put back before returning.
    """
    data_hash = hashlib.sha256()
    if isinstance(model, onnx.ModelProto):
        # (tensor, raw bytes, data_location or None when unset) to put back afterwards
        detached: list[tuple[onnx.TensorProto, bytes, int | None]] = []
        missing: list[str] = []  # tensors whose external data was never loaded
        try:
            for tensor in iter_tensors(model):
                location = tensor.data_location if tensor.HasField("data_location") else None
                if location == onnx.TensorProto.EXTERNAL:
                    missing.append(tensor.name)
                _update_with_bytes(data_hash, tensor.raw_data)
                detached.append((tensor, tensor.raw_data, location))
                tensor.ClearField("raw_data")
                tensor.ClearField("data_location")
            structure = b"" if missing else model.SerializeToString(deterministic=True)
        finally:
            for tensor, raw, location in detached:
                if raw:
                    tensor.raw_data = raw
                if location is not None:
                    tensor.data_location = location
        if missing:
            raise ModelError(
                f"cannot hash the model: tensors {missing[:5]} refer to external data that was "
                "never loaded; pass the model's path or load it with load_model(path)"
            )
    else:
        path = os.fspath(model)
        proto = load_model(path, load_external_data=False)
        base_dir = os.path.dirname(os.path.abspath(path))
        with contextlib.ExitStack() as stack:
            files: dict[str, BinaryIO] = {}
            for tensor in iter_tensors(proto):
                if external_data_helper.uses_external_data(tensor):
                    data_path = _external_file(tensor, base_dir, path)
                    if data_path not in files:
                        files[data_path] = stack.enter_context(open(data_path, "rb"))
                    _update_with_segment(data_hash, files[data_path], tensor, path)
                    del tensor.external_data[:]
                    tensor.ClearField("data_location")
                else:
                    _update_with_bytes(data_hash, tensor.raw_data)
                    tensor.ClearField("raw_data")
                    tensor.ClearField("data_location")
        structure = proto.SerializeToString(deterministic=True)
    digest = hashlib.sha256(_HASH_VERSION)
    digest.update(hashlib.sha256(structure).digest())
    digest.update(data_hash.digest())
    return digest.hexdigest()


def _update_with_bytes(digest: hashlib._Hash, data: bytes) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)


def _update_with_segment(
    digest: hashlib._Hash, file: BinaryIO, tensor: onnx.TensorProto, model_path: str
) -> None:
    info = external_data_helper.ExternalDataInfo(tensor)
    offset = int(info.offset or 0)
    file.seek(0, os.SEEK_END)
    size = file.tell()
    length = int(info.length) if info.length else size - offset
    if offset + length > size:
        raise ModelError(
            f"external data of tensor {tensor.name!r} (model {model_path!r}) needs bytes "
            f"{offset}..{offset + length} of {file.name!r}, which holds only {size}"
        )
    digest.update(length.to_bytes(8, "little"))
    file.seek(offset)
    remaining = length
    while remaining:
        chunk = file.read(min(remaining, _READ_CHUNK))
        digest.update(chunk)
        remaining -= len(chunk)
