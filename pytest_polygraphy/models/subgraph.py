"""Cutting a model down to the part that computes chosen tensors from chosen tensors."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence

import onnx

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models.shapes import infer_shapes, value_infos


def outer_scope_names(graph: onnx.GraphProto) -> set[str]:
    """Names a subgraph reads from enclosing graphs: those its nodes (and nested subgraphs)
    consume but that it neither declares as input or initializer nor produces."""
    defined = {value.name for value in graph.input}
    defined |= {init.name for init in graph.initializer}
    defined |= {sparse.values.name for sparse in graph.sparse_initializer}
    used: set[str] = set()
    for node in graph.node:
        used.update(name for name in node.input if name)
        defined.update(node.output)
        for subgraph in node_subgraphs(node):
            used |= outer_scope_names(subgraph)
    return used - defined


def node_subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    """The graphs held in a node's attributes (If branches, Loop and Scan bodies)."""
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def node_reads(node: onnx.NodeProto) -> list[str]:
    """Every tensor a node reads: its inputs, then what its subgraphs read from outside."""
    names = [name for name in node.input if name]
    for subgraph in node_subgraphs(node):
        names.extend(sorted(outer_scope_names(subgraph)))
    return names


def _unknown(names: Sequence[str], available: Sequence[str], what: str) -> ModelError:
    shown = ", ".join(repr(name) for name in available[:30])
    more = f", ... ({len(available) - 30} more)" if len(available) > 30 else ""
    return ModelError(
        f"{what} {list(names)} not found in the model; its tensors are: [{shown}{more}]"
    )


def extract_subgraph(
    model: onnx.ModelProto | str | os.PathLike[str],
    inputs: Sequence[str],
    outputs: Sequence[str],
) -> onnx.ModelProto:
    """A new model computing ``outputs`` from ``inputs``, with only the nodes needed.

    ``inputs`` become the new graph inputs, in the order given, typed from shape
    inference; an input that was an initializer or a Constant's output becomes a real
    input, and an input nothing needs is still declared. The walk back from ``outputs``
    follows tensors read from inside If/Loop/Scan bodies too. Initializers the kept nodes
    read come along. If the outputs also depend on an original graph input that is not in
    ``inputs``, ``ModelError`` names it (nothing is added silently). Unknown names, and
    inputs whose dtype inference cannot find, raise ``ModelError``; outputs of unknown
    dtype are declared without type information, with a warning.
    """
    inputs, outputs = list(dict.fromkeys(inputs)), list(dict.fromkeys(outputs))
    if not outputs:
        raise ModelError("extract_subgraph needs at least one output")
    inferred = infer_shapes(model)
    graph = inferred.graph
    producer = {name: node for node in graph.node for name in node.output if name}
    initializers = {init.name: init for init in graph.initializer}
    sparse = {item.values.name: item for item in graph.sparse_initializer}
    graph_inputs = [value.name for value in graph.input]
    available = list(dict.fromkeys([*graph_inputs, *initializers, *sparse, *producer]))
    for names, what in ((inputs, "inputs"), (outputs, "outputs")):
        unknown = [name for name in names if name not in set(available)]
        if unknown:
            raise _unknown(unknown, available, f"subgraph {what}")

    boundary = set(inputs)
    kept_nodes: set[int] = set()
    kept_inits: list[str] = []
    missing: list[str] = []
    seen: set[str] = set()
    stack = list(reversed(outputs))
    while stack:
        name = stack.pop()
        if name in seen or name in boundary:
            continue
        seen.add(name)
        if name in producer:
            node = producer[name]
            if id(node) not in kept_nodes:
                kept_nodes.add(id(node))
                stack.extend(reversed(node_reads(node)))
        elif name in initializers or name in sparse:
            kept_inits.append(name)
        elif name in graph_inputs:
            missing.append(name)
        else:
            raise ModelError(f"tensor {name!r} is read by the subgraph but defined nowhere")
    if missing:
        raise ModelError(
            f"outputs {outputs} also depend on graph inputs {missing}, which are not among "
            f"the subgraph inputs {inputs}; add them to inputs"
        )

    known = value_infos(inferred)
    untyped_inputs = [name for name in inputs if name not in known]
    if untyped_inputs:
        raise ModelError(
            f"shape inference found no dtype for subgraph inputs {untyped_inputs}; "
            "choose inputs whose types are known"
        )
    nodes = _nodes_without_input_producers(
        [node for node in graph.node if id(node) in kept_nodes], boundary
    )

    result = onnx.ModelProto()
    for field in ("ir_version", "producer_name", "producer_version", "domain", "model_version"):
        setattr(result, field, getattr(inferred, field))
    result.opset_import.extend(inferred.opset_import)
    result.functions.extend(inferred.functions)
    new_graph = result.graph
    new_graph.name = f"{graph.name}_subgraph" if graph.name else "subgraph"
    new_graph.node.extend(nodes)
    new_graph.initializer.extend(initializers[name] for name in kept_inits if name in initializers)
    new_graph.sparse_initializer.extend(sparse[name] for name in kept_inits if name in sparse)
    new_graph.input.extend(known[name] for name in inputs)

    untyped_outputs = [name for name in outputs if name not in known]
    if untyped_outputs:
        warnings.warn(
            f"shape inference found no dtype for subgraph outputs {untyped_outputs}; "
            "they are declared without type information",
            UserWarning,
            stacklevel=2,
        )
    new_graph.output.extend(
        known[name] if name in known else onnx.helper.make_empty_tensor_value_info(name)
        for name in outputs
    )
    inside = {name for node in nodes for name in node.output} - set(outputs)
    new_graph.value_info.extend(value for value in graph.value_info if value.name in inside)
    return result


def _nodes_without_input_producers(
    nodes: list[onnx.NodeProto], boundary: set[str]
) -> list[onnx.NodeProto]:
    """Copies of ``nodes`` where an output that is also a subgraph input (a kept node that
    produces it besides a needed tensor) is renamed, so that each tensor has one source."""
    used = {name for node in nodes for name in node.output} | boundary
    result = []
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for index, name in enumerate(copy.output):
            if name in boundary:
                suffix = 0
                while f"{name}__unused{suffix}" in used:
                    suffix += 1
                copy.output[index] = f"{name}__unused{suffix}"
                used.add(copy.output[index])
        result.append(copy)
    return result
