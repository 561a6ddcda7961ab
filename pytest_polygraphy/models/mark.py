"""Choosing which tensors a model outputs: mark every intermediate tensor, or a list."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Final

import onnx

from pytest_polygraphy.errors import ModelError
from pytest_polygraphy.models import io
from pytest_polygraphy.models.shapes import inferred_value_infos

#: Pass as ``outputs`` to mark every tensor (the same value as Polygraphy's constant).
MARK_ALL: Final = "mark-all"


def markable_tensors(model: onnx.ModelProto, *, include_inputs: bool = True) -> list[str]:
    """Names ``mark_outputs`` accepts, in graph order: the outputs of every top-level node
    except Constant nodes (their values are known without running anything), then the
    graph inputs. Omitted optional outputs (empty names) are not tensors."""
    names = [
        name
        for node in model.graph.node
        if not (node.op_type == "Constant" and node.domain in ("", "ai.onnx"))
        for name in node.output
        if name
    ]
    if include_inputs:
        names += [value.name for value in model.graph.input]
    return list(dict.fromkeys(names))


def _describe(names: Sequence[str], limit: int = 30) -> str:
    shown = ", ".join(repr(name) for name in names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return f"[{shown}{more}]"


def _check_known(names: Sequence[str], available: Sequence[str], what: str) -> None:
    known = set(available)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ModelError(
            f"{what} {_describe(unknown)} not found in the model; "
            f"tensors that can be marked: {_describe(available)}"
        )


def mark_outputs(
    model: onnx.ModelProto | str | os.PathLike[str],
    outputs: str | Sequence[str],
    exclude: Sequence[str] = (),
) -> onnx.ModelProto:
    """A new model whose outputs are ``outputs`` minus ``exclude``, following Polygraphy.

    - ``outputs=MARK_ALL`` replaces the model's outputs with the output of every top-level
      node except Constant nodes, in node order. Existing outputs produced by such nodes
      are therefore still outputs (at their node's position); an existing output that is a
      graph input or a Constant's output is no longer one. Nodes inside subgraphs (If,
      Loop, Scan bodies) are not visited.
    - A list replaces the existing outputs with exactly those tensors (duplicates dropped);
      each must be a non-Constant node output or a graph input.
    - ``exclude`` then removes tensors; each must be a tensor of the model.

    Unknown names raise ``ModelError`` listing the tensors that can be marked.

    Each output keeps the dtype and shape that shape inference (or the model's own
    value_info) knows. Where its dtype is unknown (for example behind a custom-domain
    node) the output is written without type information, as Polygraphy does: ONNX Runtime
    and TensorRT determine the type when they load the model, a ``UserWarning`` names the
    tensors, and ``output_metadata`` of the new model refuses them.
    """
    if isinstance(outputs, str) and outputs != MARK_ALL:
        raise TypeError(
            f"outputs must be MARK_ALL or a sequence of tensor names, not the string {outputs!r}"
        )
    source = io.load_model(model)
    proto = onnx.ModelProto()
    proto.CopyFrom(source)
    available = markable_tensors(proto)

    if outputs == MARK_ALL:
        names = markable_tensors(proto, include_inputs=False)
    else:
        names = list(dict.fromkeys(outputs))
        _check_known(names, available, "outputs to mark")

    excluded = list(dict.fromkeys(exclude))
    current = [value.name for value in proto.graph.output]
    _check_known(excluded, list(dict.fromkeys([*available, *current])), "outputs to exclude")
    names = [name for name in names if name not in set(excluded)]
    if not names:
        raise ModelError("no outputs left to mark: every candidate tensor is excluded")

    known = inferred_value_infos(proto)
    for value in proto.graph.output:
        known.setdefault(value.name, value)
    new_outputs: list[onnx.ValueInfoProto] = []
    untyped: list[str] = []
    for name in names:
        value = onnx.ValueInfoProto()
        if name in known:
            value.CopyFrom(known[name])
        else:
            value.name = name
            untyped.append(name)
        new_outputs.append(value)
    if untyped:
        warnings.warn(
            f"shape inference found no dtype for {_describe(untyped)}; they are marked as "
            "outputs without type information",
            UserWarning,
            stacklevel=2,
        )

    marked = set(names)
    kept_value_info = [value for value in proto.graph.value_info if value.name not in marked]
    del proto.graph.value_info[:]
    proto.graph.value_info.extend(kept_value_info)
    del proto.graph.output[:]
    proto.graph.output.extend(new_outputs)
    return proto
