"""A model's nodes in topological order, which of them steer a search, and any set of them
as a model of its own whose inputs are fed with real values.

Candidates are the nodes that compute on data: a node whose every input is an initializer,
a constant or the output of another such node (Constant, Reshape of a constant weight,
shape arithmetic after ``Shape``) is not a candidate. Such nodes come along with the
candidates that read them, so a block made only of them never steers a search, and an
unfolded exporter graph (paddle2onnx writes each conv bias as a Reshape of a constant)
searches over its real compute nodes only.

A cut of candidates ``S`` holds the nodes of ``S`` plus the non-candidate nodes they
read through non-candidates only. Its inputs are the tensors those nodes read that none
of them produces and that are not initializers: each is a graph input or the output of an
earlier node, fed with its value from the reference run (``intermediates``). Its outputs
are the tensors its candidates produce that a node outside reads, or that are graph
outputs. If/Loop/Scan nodes are atomic: the names their bodies read from the outer scope
are inputs too. Optional inputs left empty (``Clip(x, "", max)``) stay empty. Values that
shape inference types as sequences, maps or optionals are ``non_tensors``: the reference
run does not keep them, and a cut through one cannot be fed or compared.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models.metadata import np_to_onnx_dtype
from pytest_polygraphy.models.nodes import node_id
from pytest_polygraphy.models.subgraph import node_reads

SHAPE_OPS = frozenset({"Shape", "Size"})


def topological_order(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """The graph's nodes in a topological order, keeping the file's order where it can."""
    nodes = list(graph.node)
    return [nodes[i] for i in topological_indices(graph)]


def topological_indices(graph: onnx.GraphProto) -> list[int]:
    """Positions in ``graph.node`` of the nodes in ``topological_order``."""
    nodes = list(graph.node)
    producer = {name: i for i, node in enumerate(nodes) for name in node.output if name}
    waiting = [0] * len(nodes)
    readers: dict[int, list[int]] = {}
    for i, node in enumerate(nodes):
        sources = {producer[name] for name in node_reads(node) if name in producer}
        sources.discard(i)
        waiting[i] = len(sources)
        for source in sources:
            readers.setdefault(source, []).append(i)
    ready = [i for i, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for reader in readers.get(i, ()):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) != len(nodes):
        stuck = [node_id(i, nodes[i]) for i in range(len(nodes)) if i not in set(order)]
        raise ModelError(f"the graph has a cycle through nodes {stuck[:10]}")
    return order


@dataclass(frozen=True)
class Cut:
    """A set of nodes cut out as a model: what to feed, what it computes."""

    #: Indices (into ``GraphIndex.nodes``) of every node, candidates and their constants.
    nodes: tuple[int, ...]
    #: The candidates among them (indices into ``GraphIndex.candidates``).
    candidates: tuple[int, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class GraphIndex:
    """What the searches need to know about a model's main graph."""

    def __init__(self, model: onnx.ModelProto) -> None:
        if not model.HasField("graph"):
            raise ModelError("the model has no graph")
        self.model = model
        graph = model.graph
        positions = topological_indices(graph)
        every = list(graph.node)
        self.nodes = [every[i] for i in positions]
        #: Each node's name, or its stable id (``models.nodes.node_id``) when it has none.
        self.names = [node_id(i, every[i]) for i in positions]
        self.initializers = {init.name: init for init in graph.initializer}
        self.sparse_initializers = {s.values.name: s for s in graph.sparse_initializer}
        self.graph_inputs = [value.name for value in graph.input]
        self.graph_outputs = [value.name for value in graph.output]
        self.reads = [node_reads(node) for node in self.nodes]
        self.producer = {
            name: i for i, node in enumerate(self.nodes) for name in node.output if name
        }
        self.readers: dict[str, list[int]] = {}
        for i, names in enumerate(self.reads):
            for name in dict.fromkeys(names):
                self.readers.setdefault(name, []).append(i)
        constant_names = set(self.initializers) | set(self.sparse_initializers)
        steering: list[int] = []
        self.is_candidate = [False] * len(self.nodes)
        for i, node in enumerate(self.nodes):
            static = node.op_type in SHAPE_OPS or all(
                name in constant_names for name in self.reads[i]
            )
            if static:
                constant_names.update(name for name in node.output if name)
            else:
                steering.append(i)
                self.is_candidate[i] = True
        #: Node indices of the candidates, in topological order.
        self.candidates = steering
        #: Values typed as sequences, maps or optionals (``through_non_tensors``).
        self.non_tensors = _non_tensor_values(model)

    def labels(self, candidates: Iterable[int]) -> list[tuple[str, str]]:
        """``(name or stable id, op type)`` of candidates."""
        return [
            (self.names[self.candidates[c]], self.nodes[self.candidates[c]].op_type)
            for c in candidates
        ]

    def needed_values(self) -> list[str]:
        """Tensors whose reference values a cut may need: graph inputs and every
        candidate's outputs (a cut may fall after any candidate), tensors only."""
        names = list(self.graph_inputs)
        for i in self.candidates:
            names.extend(name for name in self.nodes[i].output if name)
        return [
            name
            for name in dict.fromkeys(names)
            if name not in self.initializers and name not in self.non_tensors
        ]

    def through_non_tensors(self, cut: Cut) -> list[str]:
        """The cut's inputs and outputs that are not tensors: such a cut cannot be run."""
        return [name for name in (*cut.inputs, *cut.outputs) if name in self.non_tensors]

    def cut(self, candidates: Sequence[int]) -> Cut:
        """The cut holding ``candidates`` (see the module docstring)."""
        chosen = sorted(set(candidates))
        members = {self.candidates[c] for c in chosen}
        stack = [name for i in members for name in self.reads[i]]
        while stack:
            name = stack.pop()
            source = self.producer.get(name)
            if source is None or source in members or self.is_candidate[source]:
                continue
            members.add(source)
            stack.extend(self.reads[source])
        nodes = tuple(sorted(members))
        produced = {name for i in nodes for name in self.nodes[i].output if name}
        inputs: list[str] = []
        for i in nodes:
            for name in self.reads[i]:
                if name in produced:
                    continue
                if name in self.initializers or name in self.sparse_initializers:
                    continue
                inputs.append(name)
        outside_readers = set(self.graph_outputs)
        outputs: list[str] = []
        for i in nodes:
            if not self.is_candidate[i]:
                continue
            for name in self.nodes[i].output:
                if not name:
                    continue
                read_outside = any(r not in members for r in self.readers.get(name, ()))
                if read_outside or name in outside_readers:
                    outputs.append(name)
        if not outputs:  # dead ends: every output of the candidates
            outputs = [
                name for i in nodes if self.is_candidate[i] for name in self.nodes[i].output if name
            ]
        return Cut(
            nodes=nodes,
            candidates=tuple(chosen),
            inputs=tuple(dict.fromkeys(inputs)),
            outputs=tuple(dict.fromkeys(outputs)),
        )

    def cut_model(self, cut: Cut, samples: Mapping[str, np.ndarray]) -> onnx.ModelProto:
        """``cut`` as a model; ``samples`` are one sample's values of its inputs and
        outputs, which give every input and output its dtype and shape (no shape
        inference needed). Dims that differ between samples are for the caller to relax
        with ``relax_dims``. A node without a name is named by its stable id in the whole
        model (``models.nodes.node_id``), so that a keep_fp32 list, the summary and
        ``minimal_failing/`` name it as the whole model does (its id in the cut would
        hold another index)."""
        source = self.model
        model = onnx.ModelProto()
        for name in ("ir_version", "producer_name", "producer_version", "domain"):
            setattr(model, name, getattr(source, name))
        model.opset_import.extend(source.opset_import)
        model.functions.extend(source.functions)
        graph = model.graph
        graph.name = f"{source.graph.name or 'graph'}_reduced"
        graph.node.extend(self.nodes[i] for i in cut.nodes)
        for node, i in zip(graph.node, cut.nodes, strict=True):
            if not node.name:  # its stable id in the whole model, which names it everywhere
                node.name = self.names[i]
        read = {name for i in cut.nodes for name in self.reads[i]}
        graph.initializer.extend(init for name, init in self.initializers.items() if name in read)
        graph.sparse_initializer.extend(
            s for name, s in self.sparse_initializers.items() if name in read
        )
        for name in cut.inputs:
            graph.input.append(_value_info(name, samples, "input"))
        for name in cut.outputs:
            graph.output.append(_value_info(name, samples, "output"))
        return model


#: Default-domain ops that make or pass on values other than tensors.
_NON_TENSOR_OPS = frozenset({"SplitToSequence", "If", "Loop", "Scan"})


def _may_hold_non_tensors(model: onnx.ModelProto) -> bool:
    graph = model.graph
    if any(value.type.WhichOneof("value") != "tensor_type" for value in graph.input):
        return True
    return any(
        node.domain not in ("", "ai.onnx")
        or node.op_type in _NON_TENSOR_OPS
        or node.op_type.startswith(("Sequence", "Optional"))
        for node in graph.node
    )


def _non_tensor_values(model: onnx.ModelProto) -> frozenset[str]:
    """The main graph's values that shape inference types as something other than a
    tensor; empty when it cannot infer (the model's own errors show in the test). Shape
    inference runs only where some op could make one (most models have none)."""
    import warnings

    from pytest_polygraphy.models.shapes import inferred_value_infos

    if not _may_hold_non_tensors(model):
        return frozenset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            known = inferred_value_infos(model)
    except ModelError:
        return frozenset()
    return frozenset(
        name
        for name, value in known.items()
        if value.type.WhichOneof("value") not in (None, "tensor_type")
    )


def _value_info(name: str, samples: Mapping[str, np.ndarray], what: str) -> onnx.ValueInfoProto:
    if name not in samples:
        raise ModelError(f"no reference value for {what} {name!r} of the cut")
    value = np.asarray(samples[name])
    return onnx.helper.make_tensor_value_info(name, np_to_onnx_dtype(value.dtype), value.shape)


def relax_dims(model: onnx.ModelProto, shapes: Mapping[str, Sequence[tuple[int, ...]]]) -> None:
    """Make a dim symbolic where the samples of a tensor differ in it (dynamic shapes)."""
    for value in [*model.graph.input, *model.graph.output]:
        seen = shapes.get(value.name)
        if not seen or len(set(seen)) < 2:
            continue
        dims = value.type.tensor_type.shape.dim
        for axis, dim in enumerate(dims):
            if len({shape[axis] for shape in seen if len(shape) == len(dims)}) > 1:
                dim.Clear()
                dim.dim_param = f"{value.name}_dim{axis}"
