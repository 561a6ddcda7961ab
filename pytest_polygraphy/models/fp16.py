"""float32 -> float16 conversion of an ONNX model, with a block list kept in float32.

The model's interface does not change: graph inputs and outputs stay float32 under their
own names, with Cast nodes at the boundary. Inside, every node runs in float16 where its
operator schema allows float16 at that position; the rest stays float32:

- nodes named in ``block_list``, together with the float32 constants and initializers
  they read (a constant also read by a float16 node gets a float16 copy for that node);
- nodes of custom domains (no schema to say what they accept), nodes holding subgraphs
  (If/Loop/Scan: they and their bodies are left as they are, minimal support), and
  nodes touching sequences or other non-tensor values;
- single positions an operator fixes to float32, e.g. Resize's ``scales`` or
  LayerNormalization's ``Mean`` output at opset 17.

Integer and bool tensors are never touched. Attributes that choose a float32 output type
follow the node (``Cast(to=FLOAT)``, ``dtype=FLOAT``, ConstantOfShape's ``value``).
Constant values outside float16's range are reported (see ``Fp16RangeWarning``).

Types come from onnx's shape inference. Where it finds none (it has no schema for the
custom-domain nodes an ONNX Runtime-optimized model holds, such as
``com.microsoft::FusedConv``), they come from ONNX Runtime, when it is installed and
knows those ops: it types every output of a model it loads (``_runtime_types``).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import onnx
from onnx import numpy_helper

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import io
from pytest_polygraphy.models.io import copy_fields
from pytest_polygraphy.models.nodes import check_node_names, node_id, with_stable_names
from pytest_polygraphy.models.shapes import elem_type_of, inferred_value_infos
from pytest_polygraphy.models.subgraph import node_subgraphs, outer_scope_names

FLOAT = onnx.TensorProto.FLOAT
FLOAT16 = onnx.TensorProto.FLOAT16
FP16_MAX = float(np.finfo(np.float16).max)  # 65504
_SUFFIX = {FLOAT: "fp32", FLOAT16: "fp16"}
_DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Fp16RangeIssue:
    """A float32 constant whose values do not all fit in float16.

    ``overflow``: finite values with magnitude above 65504, stored as +-65504 (as
    TensorRT clamps weights). ``underflow``: non-zero values that become zero.
    """

    tensor: str
    overflow: int
    underflow: int
    max_abs: float
    size: int
    #: The nodes that read the constant (names, or stable ids of unnamed nodes).
    readers: tuple[str, ...] = ()

    def __str__(self) -> str:
        read_by = f", read by {', '.join(repr(r) for r in self.readers)}" if self.readers else ""
        return (
            f"{self.tensor!r}: {self.overflow} of {self.size} values above {FP16_MAX:g} "
            f"(max |x| = {self.max_abs:g}, clamped), {self.underflow} non-zero values "
            f"flushed to zero{read_by}"
        )


class Fp16RangeWarning(UserWarning):
    """Emitted by ``convert_to_fp16`` when constants do not fit in float16; ``issues``
    lists them so that callers (the precision debugger) can act on them."""

    def __init__(self, message: str, issues: Sequence[Fp16RangeIssue]) -> None:
        super().__init__(message)
        self.issues = tuple(issues)


def to_fp16_array(values: np.ndarray, name: str) -> tuple[np.ndarray, Fp16RangeIssue | None]:
    """``values`` as float16, out-of-range magnitudes clamped to 65504, and what did not fit."""
    if np.abs(values).max(initial=0.0) <= FP16_MAX:  # false with NaN
        # every value fits: a plain conversion, unless some non-zero values became zero
        converted = values.astype(np.float16)
        if np.count_nonzero(converted) == np.count_nonzero(values):
            return converted, None
    finite = np.isfinite(values)
    too_large = finite & (np.abs(values) > FP16_MAX)
    converted = np.clip(values, -FP16_MAX, FP16_MAX, where=finite, out=values.copy())
    converted = converted.astype(np.float16)
    flushed = (values != 0) & (converted == 0)
    overflow, underflow = int(too_large.sum()), int(flushed.sum())
    if not overflow and not underflow:
        return converted, None
    max_abs = float(np.abs(values[finite]).max()) if finite.any() else 0.0
    return converted, Fp16RangeIssue(name, overflow, underflow, max_abs, int(values.size))


def _allowed_types(schema: onnx.defs.OpSchema, formal: Sequence, index: int) -> set[str]:
    """Type strings (``"tensor(float16)"``) the schema accepts at one input/output index."""
    if index < len(formal):
        param = formal[index]
    elif formal and formal[-1].option == onnx.defs.OpSchema.FormalParameterOption.Variadic:
        param = formal[-1]
    else:
        return set()
    constraints = {c.type_param_str: c.allowed_type_strs for c in schema.type_constraints}
    return set(constraints.get(param.type_str, [param.type_str]))


@functools.cache
def _fp16_positions(
    op_type: str, opset: int, domain: str, count: tuple[int, int]
) -> tuple[frozenset[int], frozenset[int]] | None:
    """The input and output positions (of ``count`` = (inputs, outputs)) where the
    operator's schema accepts float16, or None when there is no schema. Cached: a model
    asks the same few questions for hundreds of nodes, in every conversion."""
    try:
        schema = onnx.defs.get_schema(op_type, opset, domain)
    except onnx.defs.SchemaError:
        return None
    return tuple(  # type: ignore[return-value]
        frozenset(
            index
            for index in range(n)
            if "tensor(float16)" in _allowed_types(schema, formal, index)
        )
        for formal, n in ((schema.inputs, count[0]), (schema.outputs, count[1]))
    )


@dataclass
class _NodePlan:
    """Wanted element type per float32 input position and produced type per output."""

    inputs: dict[int, int]
    outputs: dict[int, int]

    @property
    def runs_fp16(self) -> bool:
        return FLOAT16 in self.inputs.values() or FLOAT16 in self.outputs.values()


class _Converter:
    def __init__(
        self, model: onnx.ModelProto, block_list: Sequence[str], only: Sequence[str] | None
    ) -> None:
        self.model = model
        self.graph = model.graph
        self.block = set(block_list)
        self.only = None if only is None else set(only)
        self.opset = next(
            (op.version for op in model.opset_import if op.domain in _DEFAULT_DOMAINS), 1
        )
        self.known = inferred_value_infos(model)
        used: dict[str, None] = {}  # every tensor name the nodes read or write, in order
        for node in self.graph.node:
            used.update(dict.fromkeys(node.input))
            used.update(dict.fromkeys(node.output))
        untyped = [name for name in used if name and name not in self.known]
        if untyped:
            self.known.update(_runtime_types(model, untyped))
        #: element type by tensor name (None: not a tensor, or no element type)
        self.types = {name: elem_type_of(value) for name, value in self.known.items()}
        self.issues: list[Fp16RangeIssue] = []
        self.extra_initializers: list[onnx.TensorProto] = []
        # (original name, element type) -> name of the tensor holding that version
        self.versions: dict[tuple[str, int], str] = {}
        self.names = set(used) | set(self.known)
        inputs = {value.name for value in self.graph.input}
        # float32 constants, which get float16 copies instead of Casts
        self.initializers = {
            init.name: init
            for init in self.graph.initializer
            if init.name not in inputs and init.data_type == FLOAT
        }
        self.constant_nodes = {
            node.output[0]: node
            for node in self.graph.node
            if node.op_type == "Constant"
            and node.domain in _DEFAULT_DOMAINS
            and len(node.attribute) == 1
            and node.attribute[0].name in ("value", "value_float", "value_floats")
            and self.types.get(node.output[0]) == FLOAT
        }
        # tensors whose own name must stay float32: outputs, and names subgraphs read
        self.keep_name = {value.name for value in self.graph.output}
        for node in self.graph.node:
            for subgraph in node_subgraphs(node):
                self.keep_name |= outer_scope_names(subgraph)

    def elem_type(self, name: str, node: onnx.NodeProto) -> int | None:
        try:
            return self.types[name]
        except KeyError:
            raise ModelError(
                f"cannot convert to fp16: shape inference found no type for tensor {name!r} "
                f"(read or written by node {node.name!r}, op {node.op_type})"
            ) from None

    def float_positions(
        self, names: Sequence[str], node: onnx.NodeProto
    ) -> tuple[dict[int, int], bool]:
        """The positions of ``names`` that hold float32 tensors (as ``{index: FLOAT}``),
        and whether any named one is not a tensor."""
        floats: dict[int, int] = {}
        untyped = False
        for index, name in enumerate(names):
            if name:
                elem_type = self.elem_type(name, node)
                if elem_type == FLOAT:
                    floats[index] = FLOAT
                elif elem_type is None:
                    untyped = True
        return floats, untyped

    def plan(self, node: onnx.NodeProto) -> _NodePlan:
        inputs, untyped_input = self.float_positions(node.input, node)
        outputs, untyped_output = self.float_positions(node.output, node)
        plan = _NodePlan(inputs, outputs)
        if (
            node.name in self.block
            or (self.only is not None and node.name not in self.only)
            or node.domain not in _DEFAULT_DOMAINS
            or node.op_type == "Constant"
            or any(True for _ in node_subgraphs(node))
            or untyped_input
            or untyped_output
        ):
            return plan
        positions = _fp16_positions(
            node.op_type, self.opset, node.domain, (len(node.input), len(node.output))
        )
        if positions is None:
            return plan
        for index in plan.inputs:
            if index in positions[0]:
                plan.inputs[index] = FLOAT16
        for index in plan.outputs:
            if index in positions[1]:
                plan.outputs[index] = FLOAT16
        return plan

    def convert(self) -> onnx.ModelProto:
        plans = [self.plan(node) for node in self.graph.node]
        constant_wants: dict[str, set[int]] = {}
        for node, plan in zip(self.graph.node, plans, strict=True):
            for index, want in plan.inputs.items():
                constant_wants.setdefault(node.input[index], set()).add(want)
        blocked_constants = {
            name for name, node in self.constant_nodes.items() if node.name in self.block
        }
        for value in self.graph.input:
            if elem_type_of(value) == FLOAT:
                self.versions[(value.name, FLOAT)] = value.name
        in_place: set[str] = set()
        for name in [*self.initializers, *self.constant_nodes]:
            if (
                constant_wants.get(name) == {FLOAT16}
                and name not in self.keep_name
                and name not in blocked_constants
            ):
                in_place.add(name)
                self.versions[(name, FLOAT16)] = name
            else:
                self.versions[(name, FLOAT)] = name

        # the new model's nodes are written in place: a node appended is a node copied
        result = onnx.ModelProto()
        copy_fields(result, self.model, ("graph",))
        copy_fields(result.graph, self.graph, ("node", "initializer", "value_info"))
        new_nodes = result.graph.node
        for node, plan in zip(self.graph.node, plans, strict=True):
            if node.op_type == "Constant" and node.output[0] in in_place:
                new_nodes.append(self.constant_node(node.output[0], node.output[0]))
                continue
            # the Casts and copies a node reads go before it
            inputs = {
                index: self.version(node.input[index], want, new_nodes)
                for index, want in plan.inputs.items()
            }
            converted = new_nodes.add()
            converted.CopyFrom(node)
            for index, name in inputs.items():
                converted.input[index] = name
            late_casts = []
            for index, produced in plan.outputs.items():
                name = node.output[index]
                if produced == FLOAT16 and name in self.keep_name:
                    inner = self.fresh_name(name, FLOAT16)
                    converted.output[index] = inner
                    late_casts.append(self.cast(inner, name, FLOAT))
                    self.versions[(name, FLOAT)] = name
                self.versions[(name, produced)] = converted.output[index]
            if plan.runs_fp16:
                self.retarget_attributes(converted, plan)
            new_nodes.extend(late_casts)

        initializers = []
        for init in self.graph.initializer:
            if init.name in in_place:
                initializers.append(self.fp16_initializer(init, init.name))
            else:
                initializers.append(init)
        initializers.extend(self.extra_initializers)
        return self.assemble(result, initializers)

    def version(self, name: str, want: int, new_nodes: Any) -> str:
        """The tensor holding ``name`` as ``want``, making it (copy or Cast) on first use."""
        if (name, want) in self.versions:
            return self.versions[(name, want)]
        target = self.fresh_name(name, want)
        if name in self.initializers and want == FLOAT16:
            self.extra_initializers.append(self.fp16_initializer(self.initializers[name], target))
        elif name in self.constant_nodes and want == FLOAT16:
            new_nodes.append(self.constant_node(name, target))
        else:
            other = FLOAT if want == FLOAT16 else FLOAT16
            source = self.versions.get((name, other), name)
            new_nodes.append(self.cast(source, target, want))
        self.versions[(name, want)] = target
        return target

    def fresh_name(self, name: str, elem_type: int) -> str:
        candidate, suffix = f"{name}__{_SUFFIX[elem_type]}", 0
        while candidate in self.names:
            suffix += 1
            candidate = f"{name}__{_SUFFIX[elem_type]}{suffix}"
        self.names.add(candidate)
        return candidate

    def cast(self, source: str, target: str, to: int) -> onnx.NodeProto:
        return onnx.helper.make_node("Cast", [source], [target], name=f"{target}_cast", to=to)

    def fp16_values(self, values: np.ndarray, name: str) -> np.ndarray:
        converted, issue = to_fp16_array(values, name)
        if issue is not None:
            self.issues.append(issue)
        return converted

    def fp16_initializer(self, init: onnx.TensorProto, target: str) -> onnx.TensorProto:
        values = numpy_helper.to_array(init)
        return numpy_helper.from_array(self.fp16_values(values, init.name), target)

    def constant_node(self, name: str, target: str) -> onnx.NodeProto:
        """A Constant node producing ``target``: the float16 version of Constant ``name``."""
        node = self.constant_nodes[name]
        result = onnx.NodeProto(op_type="Constant", output=[target])
        if node.name:
            result.name = node.name if target == node.output[0] else f"{node.name}_fp16"
        value = result.attribute.add(name="value", type=onnx.AttributeProto.TENSOR)
        if node.ByteSize() > _CACHED_CONSTANT_BYTES:
            tensor, issue = _fp16_value(node)
            value.t.CopyFrom(tensor)
        else:
            data, issue = _CONSTANTS.converted(node)
            value.t.ParseFromString(data)
        value.t.name = target
        self.issues.extend([issue] if issue is not None else [])
        return result

    def retarget_attributes(self, node: onnx.NodeProto, plan: _NodePlan) -> None:
        """Make attributes that choose a float32 output type choose float16."""
        if FLOAT16 not in plan.outputs.values():
            return
        names = {attr.name for attr in node.attribute}
        for attr in node.attribute:
            if attr.name in ("to", "dtype") and attr.i == FLOAT:
                attr.i = FLOAT16
            elif (
                attr.name == "value"
                and node.op_type == "ConstantOfShape"
                and attr.t.data_type == FLOAT
            ):
                fp16 = self.fp16_values(numpy_helper.to_array(attr.t), node.output[0])
                attr.t.CopyFrom(numpy_helper.from_array(fp16))
        if node.op_type in ("RandomNormal", "RandomUniform") and "dtype" not in names:
            node.attribute.append(onnx.helper.make_attribute("dtype", FLOAT16))
        if node.op_type == "ConstantOfShape" and "value" not in names:
            zero = numpy_helper.from_array(np.zeros([1], np.float16))
            node.attribute.append(onnx.helper.make_attribute("value", zero))

    def assemble(
        self, result: onnx.ModelProto, initializers: list[onnx.TensorProto]
    ) -> onnx.ModelProto:
        """``result`` (the model, its new nodes written) with ``initializers`` and the
        value_info of every intermediate tensor: its (possibly new) type and its inferred
        shape."""
        graph = result.graph
        graph.initializer.extend(initializers)
        holders = {holder: key for key, holder in self.versions.items()}
        skip = {value.name for value in [*graph.input, *graph.output]}
        skip |= {init.name for init in initializers}
        for name in dict.fromkeys(out for node in graph.node for out in node.output if out):
            original, elem_type = holders.get(name, (name, None))
            if name in skip or original not in self.known:
                continue
            value = graph.value_info.add()
            value.CopyFrom(self.known[original])
            value.name = name
            if elem_type is not None:
                value.type.tensor_type.elem_type = elem_type
        return result


#: ONNX Runtime's type strings (``tensor(float)``) as ONNX element types.
_RUNTIME_TYPES = {
    f"tensor({name.lower()})": value for name, value in onnx.TensorProto.DataType.items()
}


def _runtime_types(model: onnx.ModelProto, names: list[str]) -> dict[str, onnx.ValueInfoProto]:
    """The element types ONNX Runtime gives ``names`` (tensors of ``model`` that shape
    inference left untyped) when it loads the model with them marked as outputs, nothing
    run; empty without ONNX Runtime or when it cannot load the model either."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {}
    from pytest_polygraphy.models.mark import mark_outputs

    inputs = {value.name for value in model.graph.input}
    marked_names = [name for name in names if name not in inputs]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            marked = mark_outputs(model, marked_names)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.log_severity_level = 4
        session = ort.InferenceSession(
            marked.SerializeToString(), options, providers=["CPUExecutionProvider"]
        )
    except Exception:  # a model ONNX Runtime cannot load: the types stay unknown
        return {}
    return {
        output.name: onnx.helper.make_tensor_value_info(
            output.name, _RUNTIME_TYPES[output.type], None
        )
        for output in session.get_outputs()
        if output.type in _RUNTIME_TYPES
    }


#: Constant nodes up to this size (serialized) have their float16 version cached: a debug
#: session converts every variant of one model, and models such as paddle2onnx exports
#: hold hundreds of small Constants (300 to 400 in PaddleOCR's, 0.6 to 0.75 MB in all)
#: that each variant converts again.
_CACHED_CONSTANT_BYTES = 1 << 16


def _fp16_value(node: onnx.NodeProto) -> tuple[onnx.TensorProto, Fp16RangeIssue | None]:
    """Constant ``node``'s float32 value as an unnamed float16 tensor, and the range issue
    of that conversion (naming the node's output), if any."""
    attr = node.attribute[0]
    values = numpy_helper.to_array(
        onnx.helper.get_attribute_value(attr)
        if attr.name == "value"
        else numpy_helper.from_array(np.asarray(onnx.helper.get_attribute_value(attr), np.float32))
    )
    converted, issue = to_fp16_array(values, node.output[0])
    return numpy_helper.from_array(converted), issue


class _ConstantCache:
    """Converted Constant values by the Constant node's output name and serialized
    attribute, least recently used first out, bounded by the bytes held (keys and values)
    rather than by a count, so that a model of many small constants never evicts its own.
    The node's own name and the name of the float16 tensor are no part of the key: a
    debug session's cut names the whole model's unnamed nodes, and a variant may name the
    copy differently (``c`` where every reader runs in float16, ``c__fp16`` where some stay
    float32). Thread-safe: a test may convert models from several threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.entries: OrderedDict[tuple[str, bytes], tuple[bytes, Fp16RangeIssue | None]]
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def converted(self, node: onnx.NodeProto) -> tuple[bytes, Fp16RangeIssue | None]:
        """``_fp16_value`` of the Constant ``node``, serialized."""
        key = (node.output[0], node.attribute[0].SerializeToString(deterministic=True))
        with self.lock:
            found = self.entries.get(key)
            if found is not None:
                self.entries.move_to_end(key)
                return found
        tensor, issue = _fp16_value(node)
        found = (tensor.SerializeToString(deterministic=True), issue)
        with self.lock:
            if key not in self.entries:
                self.entries[key] = found
                self.held += len(key[0]) + len(key[1]) + len(found[0])
            while self.held > self.limit:
                (name, source), (value, _) = self.entries.popitem(last=False)
                self.held -= len(name) + len(source) + len(value)
        return found


_CONSTANTS = _ConstantCache(32 << 20)


def _with_readers(issues: Sequence[Fp16RangeIssue], model: onnx.ModelProto) -> list[Fp16RangeIssue]:
    """The issues, each with the nodes that read its constant, directly or through a
    Constant named after it, in node order: one pass over the nodes for all of them."""
    nodes = model.graph.node
    aliases: dict[str, set[str]] = {issue.tensor: {issue.tensor} for issue in issues}
    for node in nodes:
        if node.op_type == "Constant" and node.output and node.name in aliases:
            aliases[node.name].add(node.output[0])
    owners: dict[str, set[str]] = {}
    for tensor, names in aliases.items():
        for name in names:
            owners.setdefault(name, set()).add(tensor)
    readers: dict[str, list[str]] = {tensor: [] for tensor in aliases}
    for i, node in enumerate(nodes):
        if node.op_type == "Constant":
            continue
        read = set().union(*(owners.get(name, ()) for name in node.input))
        for tensor in read:
            readers[tensor].append(node_id(i, node))
    return [dataclasses.replace(issue, readers=tuple(readers[issue.tensor])) for issue in issues]


def convert_to_fp16(
    model: onnx.ModelProto | str | os.PathLike[str],
    block_list: Sequence[str] = (),
    *,
    only: Sequence[str] | None = None,
    on_out_of_range: Literal["warn", "error"] = "warn",
) -> onnx.ModelProto:
    """A new model computing in float16 except for the nodes named in ``block_list``.

    ``only``, when given, converts those nodes alone and leaves every other node as it is,
    with Casts at their borders: how an int8 model runs the nodes it keeps in float16
    (``keep_fp16``). See the module docstring for what stays float32. Constants with values outside
    float16's range (magnitude above 65504, clamped to it like TensorRT does; non-zero
    values that become zero) are reported: ``on_out_of_range="warn"`` emits one
    ``Fp16RangeWarning`` naming each tensor and its counts, ``"error"`` raises ``ModelError``.
    Unknown node names in ``block_list`` and tensors whose dtype shape inference cannot
    find raise ``ModelError``.
    """
    if on_out_of_range not in ("warn", "error"):
        raise ValueError(f"on_out_of_range must be 'warn' or 'error', not {on_out_of_range!r}")
    source = io.load_model(model)
    for what, names in (("block_list", block_list), ("only", only or ())):
        if names:
            check_node_names(source, names, what)
            source = with_stable_names(source)
    converter = _Converter(source, block_list, only)
    result = converter.convert()
    converter.issues = _with_readers(converter.issues, source)
    if converter.issues:
        listing = "\n  ".join(str(issue) for issue in converter.issues)
        message = f"float16 conversion: constants outside the float16 range:\n  {listing}"
        if on_out_of_range == "error":
            raise ModelError(message)
        warnings.warn(Fp16RangeWarning(message, converter.issues), stacklevel=2)
    return result
