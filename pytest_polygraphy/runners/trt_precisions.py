"""Which requested layer precisions a built TensorRT engine honoured, read back from the
engine inspector.

``keep_fp32``, ``keep_fp16`` and ``layer_precisions`` ask TensorRT for a precision per layer; with
precision constraints set to obey it should build them so, but a fused kernel, a layer
without a kernel in that precision, or a plugin can still run otherwise. What ran is
only known from the engine: built with ``ProfilingVerbosity.DETAILED``, its inspector
(``engine.create_engine_inspector().get_layer_information(i, LayerInformationFormat.JSON)``,
TensorRT's documented 10.x API) describes each engine layer as a JSON object::

    {"Name": "Conv_0 + Relu_1", "LayerType": "CaskConvolution",
     "Inputs": [{"Name": "...", "Format/Datatype": "Row major linear FP32", ...}],
     "Outputs": [{"Name": "...", "Format/Datatype": "Channel major FP16 format ..."}],
     "Metadata": "[ONNX Layer: Conv_0]...", ...}

An engine layer is often several network layers fused: its name joins theirs with
``" + "`` (pointwise fusions wrap them in ``PWN(...)``), and each network layer carries
the name of the ONNX node it came from (``[ONNX Layer: <node>]`` in its metadata with
TensorRT 10's parser, and as its name). This module is pure: it parses that JSON, maps each
engine layer back to every node and layer fused into it, and compares what ran with
what was asked (``check_precisions``). Stdlib only; no TensorRT needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: ``Format/Datatype`` words -> precision names (TensorRT writes both styles: "Row major
#: linear FP32", "Channel major FP16 format where channel % 8 == 0", or "Float", "Half").
_DATATYPE_WORDS = (
    ("bfloat16", "bf16"),
    ("bf16", "bf16"),
    ("fp32", "fp32"),
    ("float", "fp32"),
    ("fp16", "fp16"),
    ("half", "fp16"),
    ("fp8", "fp8"),
    ("fp4", "fp4"),
    ("int8", "int8"),
    ("int4", "int4"),
    ("int32", "int32"),
    ("int64", "int64"),
    ("uint8", "uint8"),
    ("bool", "bool"),
)
#: Precisions a layer computes in; integer index and boolean tensors are not precisions.
COMPUTE_PRECISIONS = frozenset({"fp32", "fp16", "bf16", "fp8", "fp4", "int8", "int4"})
_ONNX_LAYER = re.compile(r"\[ONNX Layer: (.*?)\]")
#: Engine layers TensorRT inserts to convert formats between layers: not a layer asked for.
_REFORMAT_PREFIXES = ("Reformatting CopyNode for ", "Reformatted ")


def datatype_of(format_text: str) -> str | None:
    """The precision named in a ``Format/Datatype`` string (``fp16``...), else None."""
    words = re.findall(r"[a-z0-9]+", format_text.lower())
    for word in words:
        for key, name in _DATATYPE_WORDS:
            if word == key:
                return name
    return None


def fused_parts(name: str) -> tuple[str, ...]:
    """The network layer names fused into an engine layer's name: split at top-level
    ``" + "``, with ``PWN(a, b)`` unwrapped into its parts (recursively)."""
    parts: list[str] = []
    for piece in _split_top_level(name, (" + ",)):
        piece = piece.strip()
        if piece.startswith("PWN(") and piece.endswith(")") and _balanced(piece[4:-1]):
            for inner in _split_top_level(piece[4:-1], (" + ", ", ")):
                parts.extend(fused_parts(inner))
        elif piece:
            parts.append(piece)
    return tuple(parts)


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _split_top_level(text: str, separators: Sequence[str]) -> list[str]:
    pieces, depth, start, i = [], 0, 0, 0
    while i < len(text):
        char = text[i]
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        elif depth == 0:
            separator = next((s for s in separators if text.startswith(s, i)), None)
            if separator is not None:
                pieces.append(text[start:i])
                i += len(separator)
                start = i
                continue
        i += 1
    pieces.append(text[start:])
    return pieces


@dataclass(frozen=True)
class EngineLayer:
    """One layer of a built engine, as the inspector describes it."""

    name: str
    layer_type: str = ""
    #: ONNX nodes named by the layer's metadata (``[ONNX Layer: <node>]``), if any.
    nodes: tuple[str, ...] = ()
    #: The precision of each input / output tensor (None: not said).
    inputs: tuple[str | None, ...] = ()
    outputs: tuple[str | None, ...] = ()
    #: False when the inspector gave the name only (no ``ProfilingVerbosity.DETAILED``).
    detailed: bool = True

    @property
    def parts(self) -> tuple[str, ...]:
        """The network layers fused into it, by name."""
        return fused_parts(self.name)

    @property
    def is_reformat(self) -> bool:
        return self.name.startswith(_REFORMAT_PREFIXES)

    @property
    def is_foreign(self) -> bool:
        """A Myelin region (``{ForeignNode[first...last]}``): its layers are not listed."""
        return self.name.startswith("{ForeignNode[")

    def origins(self) -> tuple[str, ...]:
        """Every ONNX node (or, without metadata, network layer) this layer came from."""
        return tuple(dict.fromkeys((*self.nodes, *self.parts))) if self.nodes else self.parts

    def compute_precisions(self) -> tuple[str, ...]:
        """The precisions of its float / quantized inputs and outputs, sorted."""
        found = {p for p in (*self.inputs, *self.outputs) if p in COMPUTE_PRECISIONS}
        return tuple(sorted(found))

    def describe_run(self) -> str:
        """``inputs fp16, outputs fp32``: what the layer ran with."""

        def listed(values: tuple[str | None, ...]) -> str:
            shown = [v for v in values if v is not None]
            return "/".join(dict.fromkeys(shown)) or "?"

        return f"inputs {listed(self.inputs)}, outputs {listed(self.outputs)}"


def parse_layer_information(text: str) -> EngineLayer:
    """One layer from ``get_layer_information(i, LayerInformationFormat.JSON)``: a JSON
    object (DETAILED), or just the layer's name (LAYER_NAMES_ONLY)."""
    try:
        value: Any = json.loads(text)
    except json.JSONDecodeError:
        value = text.strip()
    return _layer(value)


def parse_engine_information(text: str) -> list[EngineLayer]:
    """Every layer from ``get_engine_information(LayerInformationFormat.JSON)``
    (``{"Layers": [...], "Bindings": [...]}``)."""
    value = json.loads(text)
    return [_layer(layer) for layer in value.get("Layers", [])]


def _layer(value: Any) -> EngineLayer:
    if isinstance(value, str):
        return EngineLayer(value, detailed=False)
    if not isinstance(value, Mapping):
        return EngineLayer(str(value), detailed=False)
    nodes = tuple(dict.fromkeys(_ONNX_LAYER.findall(str(value.get("Metadata", "") or ""))))

    def precisions(key: str) -> tuple[str | None, ...]:
        tensors = value.get(key) or []
        return tuple(
            datatype_of(str(t.get("Format/Datatype", ""))) if isinstance(t, Mapping) else None
            for t in tensors
        )

    inputs, outputs = precisions("Inputs"), precisions("Outputs")
    detailed = any(p is not None for p in (*inputs, *outputs))
    return EngineLayer(
        str(value.get("Name", "")),
        str(value.get("LayerType", "")),
        nodes,
        inputs,
        outputs,
        detailed,
    )


@dataclass(frozen=True)
class IgnoredPrecision:
    """A requested precision TensorRT did not build."""

    #: ``keep_fp32 node 'norm0'`` or ``layer_precisions layer 'conv1'``.
    request: str
    asked: str
    layer: EngineLayer

    def line(self) -> str:
        origins = ", ".join(self.layer.origins())
        return (
            f"{self.request}: asked for {self.asked}, engine layer {self.layer.name!r} "
            f"(from {origins}) ran with {self.layer.describe_run()}"
        )


@dataclass
class PrecisionReadback:
    """What the engine says of every requested precision."""

    ignored: list[IgnoredPrecision] = field(default_factory=list)
    #: Requests whose precision could not be read back, each with why.
    unverified: list[str] = field(default_factory=list)
    #: Requests found honoured in every engine layer they became.
    honoured: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every request was honoured and read back."""
        return not self.ignored and not self.unverified

    def lines(self) -> list[str]:
        """The report: every ignored or unverified request, one line each."""
        lines = [f"TensorRT ignored {i.line()}" for i in self.ignored]
        lines += [f"not read back: {why}" for why in self.unverified]
        if self.honoured and not lines:
            lines.append(
                f"TensorRT built every requested precision ({len(self.honoured)} "
                "requests, read back from the engine inspector)"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "ignored": [i.line() for i in self.ignored],
            "unverified": list(self.unverified),
            "honoured": list(self.honoured),
        }


def check_precisions(
    layers: Iterable[EngineLayer],
    keep_fp32: Sequence[str] = (),
    layer_precisions: Mapping[str, str] | None = None,
    keep_fp16: Sequence[str] = (),
) -> PrecisionReadback:
    """Compare each request with the engine layers it became.

    A ``keep_fp32`` (or ``keep_fp16``) node is found in an engine layer through the
    layer's metadata, or,
    where the inspector gives none, as one of the network layers fused into it (the
    parser names layers after their node); a ``layer_precisions`` layer by its name
    among the fused ones. A request is ignored when an engine layer it became computes
    in another precision (its float or quantized inputs and outputs); it is unverified
    when no engine layer names it (folded away, or inside a Myelin region) or the
    inspector gave no datatypes."""
    engine = [layer for layer in layers if not layer.is_reformat]
    requests = [(f"keep_fp32 node {n!r}", n, "fp32", True) for n in keep_fp32]
    requests += [(f"keep_fp16 node {n!r}", n, "fp16", True) for n in keep_fp16]
    requests += [
        (f"layer_precisions layer {name!r}", name, precision, False)
        for name, precision in (layer_precisions or {}).items()
    ]
    readback = PrecisionReadback()
    foreign = [layer.name for layer in engine if layer.is_foreign]
    for request, name, asked, is_node in requests:
        found = [layer for layer in engine if _names(layer, name, is_node)]
        if not found:
            where = (
                f"; it may be inside {', '.join(foreign[:3])}, whose layers the inspector "
                "does not list"
                if foreign
                else ""
            )
            readback.unverified.append(f"{request}: no engine layer names it{where}")
            continue
        settled = False
        for layer in found:
            if not layer.detailed:
                readback.unverified.append(
                    f"{request}: the inspector gave no datatypes for engine layer "
                    f"{layer.name!r} (built without ProfilingVerbosity.DETAILED, or its "
                    "shapes were not set)"
                )
                settled = True
                continue
            ran = layer.compute_precisions()
            if ran and ran != (asked,):
                readback.ignored.append(IgnoredPrecision(request, asked, layer))
                settled = True
        if not settled:
            readback.honoured.append(request)
    return readback


def _names(layer: EngineLayer, name: str, is_node: bool) -> bool:
    """Whether ``layer`` came from ONNX node (or network layer) ``name``: by its metadata
    where it has some, else by the names fused into it."""
    if is_node and layer.nodes:
        return name in layer.nodes
    return name in layer.parts
