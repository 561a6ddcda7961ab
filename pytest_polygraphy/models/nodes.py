"""Naming a model's nodes: every node has a name a user can write, and a wrong one is
answered with the closest names.

A node's name is its ``name``; a node without one is ``#<index>:<OpType>:<first output>``
(its position in the graph's node list, its operator and what it computes), stable as
long as the file is. The debug sessions answer with these names and ``keep_fp32`` takes
them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import onnx

from pytest_polygraphy.errors import ModelError


def node_id(index: int, node: onnx.NodeProto) -> str:
    """The node's name, or its stable id when it has none (module docstring)."""
    if node.name:
        return node.name
    first = next((name for name in node.output if name), "")
    return f"#{index}:{node.op_type}:{first}"


def node_ids(model: onnx.ModelProto) -> list[str]:
    """Every main-graph node's name or stable id, in the graph's order."""
    return [node_id(i, node) for i, node in enumerate(model.graph.node)]


def check_node_names(model: onnx.ModelProto, names: Sequence[str], what: str) -> None:
    """ModelError unless every name is a node's name or stable id; it names the closest."""
    known = node_ids(model)
    unknown = [name for name in dict.fromkeys(names) if name not in set(known)]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hints.append(f"{name!r} (closest: {', '.join(repr(c) for c in close) or 'none'})")
    listing = ", ".join(repr(name) for name in known[:20]) + (", ..." if len(known) > 20 else "")
    raise ModelError(
        f"{what} names nodes the model does not have: {'; '.join(hints)}. The model's "
        f"nodes: [{listing}] (a node without a name is #<index>:<OpType>:<first output>)"
    )


def with_stable_names(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy whose unnamed nodes carry their stable ids as names (the model itself, when
    every node is named), so that tools that select nodes by name reach every node."""
    if all(node.name for node in model.graph.node):
        return model
    named = onnx.ModelProto()
    named.CopyFrom(model)
    for index, node in enumerate(named.graph.node):
        if not node.name:
            node.name = node_id(index, node)
    return named
