"""Building TensorRT engines from ONNX: parse, configure, mark outputs, build.

Written against TensorRT's documented 10.x Python API (``trt.Builder``,
``trt.OnnxParser``, ``IBuilderConfig``, ``IOptimizationProfile``); TensorRT-RTX shares
it for everything used here, but builds strongly typed networks only (it has no
fp16/int8/bf16/fp8 builder flags), so those precisions are refused there with a reason.
The tactic timing cache is seeded from and merged back into the artifact cache, or the
user's named timing cache file (a no-op on TensorRT-RTX, which picks kernels at run time).
int8 calibration inside TensorRT takes a calibrator from ``trt_calibration``. Engines with
precision constraints are built with ``ProfilingVerbosity.DETAILED``, so that their
inspector says what each layer ran in (``trt_precisions``). What identifies an engine,
and the engine cache protocol, live in ``trt_settings``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.runners.trt_settings import (
    LAYER_DTYPES,
    MEMORY_POOLS,
    TACTIC_SOURCES,
    EngineSettings,
    ShapeTriple,
    supports_timing_cache,
)

if TYPE_CHECKING:
    from pytest_polygraphy.runners.trt_module import TensorRT

#: Precision -> the builder flag that enables it (fp32 needs none; TF32 is cleared).
_PRECISION_FLAGS = {"tf32": "TF32", "fp16": "FP16", "bf16": "BF16", "int8": "INT8", "fp8": "FP8"}


# -- mark all --------------------------------------------------------------------------
#: Layers whose outputs are never marked: shape computations and constants (Polygraphy).
_SKIP_LAYER_TYPES = frozenset({"SHAPE", "CONSTANT"})
#: Layer types that open / close a loop or conditional body, inside which nothing can be
#: marked as a network output.
_BODY_START = frozenset({"TRIP_LIMIT", "ITERATOR", "RECURRENCE", "CONDITION", "CONDITIONAL_INPUT"})
_BODY_END = frozenset({"LOOP_OUTPUT", "CONDITIONAL_OUTPUT"})


def layerwise_output_names(layers: Iterable[Any]) -> list[str]:
    """Tensors to mark for ``mark_all``, in layer order, following Polygraphy's rules:
    skip shape and constant layers, and layers inside loop/conditional bodies (the
    network is topologically sorted); then skip tensors that are shape tensors or not
    execution tensors (TensorRT cannot output them as ordinary outputs)."""
    names: list[str] = []
    depth = 0
    for layer in layers:
        type_name = layer.type.name
        if type_name in _BODY_START:
            depth += 1
            continue
        if type_name in _BODY_END:
            depth = max(0, depth - 1)
            continue
        if depth or type_name in _SKIP_LAYER_TYPES:
            continue
        for index in range(layer.num_outputs):
            tensor = layer.get_output(index)
            if tensor is None or getattr(tensor, "is_shape_tensor", False):
                continue
            if not getattr(tensor, "is_execution_tensor", True):
                continue
            if tensor.name not in names:
                names.append(tensor.name)
    return names


# -- building --------------------------------------------------------------------------
def make_logger(trt: TensorRT, echo_level: str = "WARNING") -> Any:
    """A ``trt.ILogger`` that keeps every message (for error reports) and echoes those at
    ``echo_level`` or worse to stderr."""
    module = trt.module
    order = ["INTERNAL_ERROR", "ERROR", "WARNING", "INFO", "VERBOSE"]

    class CapturingLogger(module.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            module.ILogger.__init__(self)
            self.messages: list[tuple[str, str]] = []

        def log(self, severity: Any, msg: str) -> None:
            level = getattr(severity, "name", str(severity)).split(".")[-1].removeprefix("k")
            self.messages.append((level, msg))
            if level in order and order.index(level) <= order.index(echo_level):
                import sys

                sys.stderr.write(f"[TensorRT] {level}: {msg}\n")

        def errors(self) -> str:
            picked = [m for lvl, m in self.messages if lvl in ("INTERNAL_ERROR", "ERROR")]
            return "\n".join(picked[-20:])

    return CapturingLogger()


@dataclass
class BuildInputs:
    """What to parse: a path (``parse_from_file``, external data found next to it) or
    serialized bytes (plus the original path, if any, for external data)."""

    description: str
    path: str | None = None
    data: bytes | None = None


def _parse(trt: TensorRT, builder: Any, logger: Any, source: BuildInputs, strongly_typed: bool):
    module = trt.module
    flags = 0
    if strongly_typed:
        flag = getattr(module.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
        if flag is None:
            raise BackendUnavailableError(f"{trt.describe()} has no strongly typed networks")
        flags |= 1 << int(flag)
    network = builder.create_network(flags)
    parser = module.OnnxParser(network, logger)
    if source.data is not None:
        ok = parser.parse(source.data, source.path) if source.path else parser.parse(source.data)
    else:
        ok = parser.parse_from_file(source.path)
    if parser.num_errors or not ok:
        errors = []
        for index in range(parser.num_errors):
            error = parser.get_error(index)
            node = ""
            if hasattr(error, "node_name"):
                node = f" (node {error.node_name()!r}, op {error.node_operator()!r})"
            errors.append(f"  - {error.desc()}{node}")
        listing = "\n".join(errors) or "  (the parser reported no details)"
        raise ModelError(
            f"TensorRT's ONNX parser ({trt.describe()}) cannot parse {source.description}:\n"
            f"{listing}"
        )
    return network, parser


def _set_flag(trt: TensorRT, config: Any, name: str, why: str) -> None:
    flag = getattr(trt.module.BuilderFlag, name, None)
    if flag is None:
        extra = (
            " (it builds strongly typed networks only: give it a model already in that "
            "precision, e.g. from models.convert_to_fp16 or models.quantize_int8, with "
            "precision='fp32')"
            if trt.is_rtx
            else ""
        )
        raise BackendUnavailableError(
            f"{trt.describe()} has no BuilderFlag.{name}{extra}, needed for {why}"
        )
    config.set_flag(flag)


def _add_profiles(
    trt: TensorRT,
    builder: Any,
    network: Any,
    config: Any,
    profiles: Sequence[Mapping[str, ShapeTriple]],
) -> None:
    """One ``IOptimizationProfile`` per entry of ``profiles`` (profile index = position);
    with none, one profile that fixes each dynamic dim at 1 (with a warning)."""
    for index, shapes in enumerate(profiles or ({},)):
        where = f" of optimization profile {index}" if len(profiles) > 1 else ""
        _add_profile(trt, builder, network, config, shapes, where)


def _add_profile(
    trt: TensorRT,
    builder: Any,
    network: Any,
    config: Any,
    shapes: Mapping[str, ShapeTriple],
    where: str = "",
) -> None:
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    known = {t.name for t in inputs}
    unknown = sorted(set(shapes) - known)
    if unknown:
        raise InputError(
            f"shapes{where} name unknown inputs {unknown}; the network's inputs are {sorted(known)}"
        )
    profile = builder.create_optimization_profile()
    needed = False
    for tensor in inputs:
        dims = tuple(tensor.shape)
        if getattr(tensor, "is_shape_tensor", False):
            if tensor.name not in shapes:
                raise InputError(
                    f"input {tensor.name!r} is a shape tensor: give its (min, opt, max) "
                    f"values in shapes={where}"
                )
            profile.set_shape_input(tensor.name, *shapes[tensor.name])
            needed = True
            continue
        dynamic = any(d < 0 for d in dims)
        if tensor.name in shapes:
            lo, opt, hi = shapes[tensor.name]
            for shape in (lo, opt, hi):
                if len(shape) != len(dims) or any(
                    d >= 0 and d != s for d, s in zip(dims, shape, strict=False)
                ):
                    raise InputError(
                        f"shape {shape}{where} for input {tensor.name!r} does not fit the "
                        f"model's dims {list(dims)} (-1 = dynamic)"
                    )
        elif dynamic:
            fixed = tuple(d if d >= 0 else 1 for d in dims)
            warnings.warn(
                f"input {tensor.name!r} has dynamic dims {list(dims)} and no shapes were "
                f"given{where}; building the engine for {fixed} only",
                stacklevel=5,
            )
            lo = opt = hi = fixed
        else:
            continue
        profile.set_shape(tensor.name, lo, opt, hi)
        needed = True
    if needed:
        config.add_optimization_profile(profile)


def _apply_layer_precisions(trt: TensorRT, network: Any, wanted: Mapping[str, str]) -> None:
    layers = {network.get_layer(i).name: network.get_layer(i) for i in range(network.num_layers)}
    missing = sorted(set(wanted) - set(layers))
    if missing:
        import difflib

        hints = {m: difflib.get_close_matches(m, list(layers), n=3) for m in missing}
        raise InputError(
            f"layer_precisions name layers the network does not have: {hints} "
            "(name -> closest TensorRT layer names)"
        )
    for name, precision in wanted.items():
        layers[name].precision = getattr(trt.module, LAYER_DTYPES[precision])


def layers_of_nodes(network: Any, nodes: Sequence[str]) -> dict[str, list[Any]]:
    """The network's layers that each ONNX node became. TensorRT 10's ONNX parser records
    the node in ``layer.metadata`` (``[ONNX Layer: <node name>]``), which covers a node
    that became several layers; without metadata a layer counts when it has the node's
    exact name (prefixes would confuse ``conv`` with ``conv_1x1``)."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    with_metadata = any(getattr(layer, "metadata", "") for layer in layers)
    found: dict[str, list[Any]] = {name: [] for name in nodes}
    for layer in layers:
        metadata = str(getattr(layer, "metadata", "") or "")
        for name in nodes:
            if f"[ONNX Layer: {name}]" in metadata or (not with_metadata and layer.name == name):
                found[name].append(layer)
    return found


def _kept_layers(network: Any, nodes: Sequence[str], what: str) -> dict[str, list[Any]]:
    found = layers_of_nodes(network, nodes)
    missing = sorted(name for name, layers in found.items() if not layers)
    if missing:
        raise InputError(
            f"{what} names ONNX nodes that became no TensorRT layer: {missing} (they may "
            "have been folded away by the parser)"
        )
    return found


def _keep_fp32(trt: TensorRT, network: Any, nodes: Sequence[str]) -> None:
    found = _kept_layers(network, nodes, "keep_fp32")
    fp32 = trt.module.float32
    for layers in found.values():
        for layer in layers:
            layer.precision = fp32
            for j in range(layer.num_outputs):
                if layer.get_output_type(j) == trt.module.float16:
                    layer.set_output_type(j, fp32)


def _keep_fp16(trt: TensorRT, network: Any, nodes: Sequence[str]) -> None:
    """The layers of ``nodes`` compute in fp16 (``layer.precision``) and produce fp16 where
    they produce a float tensor (fp32 or bf16); integer and bool outputs stay."""
    found = _kept_layers(network, nodes, "keep_fp16")
    fp16 = trt.module.float16
    floats = {trt.module.float32, fp16, getattr(trt.module, "bfloat16", fp16)}
    for layers in found.values():
        for layer in layers:
            layer.precision = fp16
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype in floats:
                    layer.set_output_type(j, fp16)


def make_network(
    trt: TensorRT, builder: Any, source: BuildInputs, settings: EngineSettings, logger: Any
) -> tuple[Any, Any]:
    """Parse ``source`` into a network, mark all outputs and set layer precisions as
    ``settings`` ask. Returns ``(network, parser)``: keep the parser alive while the
    network is used (it owns the weights)."""
    network, parser = _parse(trt, builder, logger, source, settings.strongly_typed)
    if settings.mark_all:
        existing = {network.get_output(i).name for i in range(network.num_outputs)}
        layers = [network.get_layer(i) for i in range(network.num_layers)]
        tensors = {}
        for layer in layers:
            for j in range(layer.num_outputs):
                out = layer.get_output(j)
                if out is not None:
                    tensors[out.name] = out
        for name in layerwise_output_names(layers):
            if name not in existing:
                network.mark_output(tensors[name])
    if settings.outputs is not None or settings.exclude_outputs:
        _select_outputs(network, settings.outputs, settings.exclude_outputs)
    asked = [
        what
        for what, given in (
            ("layer_precisions", settings.layer_precisions),
            ("keep_fp32", settings.keep_fp32),
            ("keep_fp16", settings.keep_fp16),
        )
        if given
    ]
    if asked and network.num_layers and not hasattr(network.get_layer(0), "precision"):
        raise BackendUnavailableError(
            f"{trt.describe()} has no per-layer precision (ILayer.precision): it builds "
            f"strongly typed networks only, so {' and '.join(asked)} cannot be applied; give "
            "it a model already in the precisions wanted (e.g. models.convert_to_fp16 with "
            "its block list), or run these tests on TensorRT"
        )
    if settings.layer_precisions:
        _apply_layer_precisions(trt, network, settings.layer_precisions)
    if settings.keep_fp32:
        _keep_fp32(trt, network, settings.keep_fp32)
    if settings.keep_fp16:
        _keep_fp16(trt, network, settings.keep_fp16)
    return network, parser


def _select_outputs(network: Any, outputs: Sequence[str] | None, exclude: Sequence[str]) -> None:
    """Make ``outputs`` (default: the current outputs) minus ``exclude`` the network's
    outputs: unmark the others, mark the named layer outputs. Unknown names raise
    InputError listing the tensors that can be marked."""
    tensors: dict[str, Any] = {}
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor is not None:
                tensors.setdefault(tensor.name, tensor)
    current = {
        network.get_output(i).name: network.get_output(i) for i in range(network.num_outputs)
    }
    tensors.update(current)
    wanted = list(dict.fromkeys(outputs)) if outputs is not None else list(current)
    unknown = [name for name in [*wanted, *exclude] if name not in tensors]
    if unknown:
        shown = ", ".join(repr(name) for name in list(tensors)[:30])
        raise InputError(
            f"outputs {unknown} are not tensors of the TensorRT network; tensors that can be "
            f"marked: [{shown}{', ...' if len(tensors) > 30 else ''}]"
        )
    keep = [name for name in wanted if name not in set(exclude)]
    if not keep:
        raise InputError("no outputs left to mark: every candidate tensor is excluded")
    for name, tensor in current.items():
        if name not in keep:
            network.unmark_output(tensor)
    for name in keep:
        if name not in current:
            network.mark_output(tensors[name])


def build_serialized_engine(
    trt: TensorRT,
    source: BuildInputs,
    settings: EngineSettings,
    *,
    logger: Any,
    timing_cache: bytes | None = None,
    save_timing_cache: Callable[[Callable[[bytes | None], bytes]], Any] | None = None,
    timing_cache_description: str = "the artifact cache's timing cache",
    calibrator: Any = None,
) -> bytes:
    """Parse ``source`` and build a serialized engine with ``settings``.

    ``timing_cache`` seeds the tactic timing cache; ``save_timing_cache(merge)`` is
    called after a successful build only (a failed build leaves what is stored alone)
    with a function merging the build's timing cache into whatever is stored, run under
    the store's lock. ``timing_cache_description`` names the store in errors.
    ``calibrator`` (``trt_calibration.make_calibrator``, for ``settings.calibrator``)
    becomes ``config.int8_calibrator``, with a calibration profile at its feeds' shapes
    when the network has dynamic inputs; an error it kept is raised after the build.
    """
    module = trt.module
    load_plugins(trt, settings)
    builder = module.Builder(logger)
    network, _parser = make_network(trt, builder, source, settings, logger)

    config = builder.create_builder_config()
    if settings.precision != "tf32" and hasattr(module.BuilderFlag, "TF32"):
        config.clear_flag(module.BuilderFlag.TF32)  # on by default: fp32 means fp32
    if settings.precision in _PRECISION_FLAGS:
        _set_flag(
            trt, config, _PRECISION_FLAGS[settings.precision], f"precision {settings.precision!r}"
        )
    constraints = settings.effective_constraints()
    if constraints is not None:
        flag = (
            "OBEY_PRECISION_CONSTRAINTS"
            if constraints == "obey"
            else "PREFER_PRECISION_CONSTRAINTS"
        )
        _set_flag(trt, config, flag, f"precision_constraints={constraints!r}")
        set_detailed_profiling(trt, config)
    configure_builder(trt, config, settings)
    _add_profiles(trt, builder, network, config, settings.profiles)
    if settings.calibrator is not None:
        if calibrator is None:
            raise ValueError("settings.calibrator is set: pass build_serialized_engine one")
        config.int8_calibrator = calibrator
        _set_calibration_profile(builder, network, config, calibrator.shapes)

    has_timing_cache = supports_timing_cache(trt) and hasattr(config, "create_timing_cache")
    if has_timing_cache:
        cache = config.create_timing_cache(timing_cache or b"")
        if cache is None:
            raise InputError(
                f"{timing_cache_description} is not a timing cache {trt.describe()} can read "
                "(made by another TensorRT version, or not a timing cache): remove it or name "
                f"another file:\n{logger.errors() or '(no error was logged)'}"
            )
        config.set_timing_cache(cache, ignore_mismatch=True)

    serialized = builder.build_serialized_network(network, config)
    if calibrator is not None and calibrator.error is not None:
        raise calibrator.error
    if serialized is None:
        raise ModelError(
            f"{trt.describe()} could not build an engine for {source.description} "
            f"(precision {settings.precision}):\n{logger.errors() or '(no error was logged)'}"
        )
    engine = bytes(memoryview(serialized))

    if has_timing_cache and save_timing_cache is not None:

        def merge(current: bytes | None) -> bytes:
            built = config.get_timing_cache()
            if current:
                built.combine(config.create_timing_cache(current), True)
            return bytes(memoryview(built.serialize()))

        save_timing_cache(merge)
    return engine


def _set_calibration_profile(
    builder: Any, network: Any, config: Any, shapes: Mapping[str, Sequence[int]]
) -> None:
    """TensorRT calibrates a network with dynamic inputs at its calibration profile's
    shapes: fix them at the calibration feeds' shapes (``set_calibration_profile``)."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [t for t in inputs if any(int(d) < 0 for d in tuple(t.shape))]
    if not dynamic:
        return
    missing = [t.name for t in dynamic if t.name not in shapes]
    if missing:
        raise InputError(f"the calibration feeds give no arrays for dynamic inputs {missing}")
    profile = builder.create_optimization_profile()
    for tensor in dynamic:
        shape = tuple(int(d) for d in shapes[tensor.name])
        profile.set_shape(tensor.name, shape, shape, shape)
    config.set_calibration_profile(profile)


def set_detailed_profiling(trt: TensorRT, config: Any) -> None:
    """Build with ``ProfilingVerbosity.DETAILED``, so that the engine inspector can say
    which precision each layer runs in (``trt_precisions``): with the default
    (``LAYER_NAMES_ONLY``) it gives layer names only."""
    verbosity = getattr(trt.module, "ProfilingVerbosity", None)
    if verbosity is not None and hasattr(verbosity, "DETAILED"):
        config.profiling_verbosity = verbosity.DETAILED


def load_plugins(trt: TensorRT, settings: EngineSettings) -> None:
    """Load the plugin libraries into TensorRT's plugin registry (before parsing, so the
    parser finds their ops)."""
    if not settings.plugins:
        return
    registry = trt.module.get_plugin_registry()
    for path, _digest in settings.plugins:
        if registry.load_library(path) is None:
            raise BackendUnavailableError(f"{trt.describe()} could not load plugin library {path}")


def configure_builder(trt: TensorRT, config: Any, settings: EngineSettings) -> None:
    """Apply the memory pool limits, optimization level, tactic sources, sparse weights
    and DLA settings to an ``IBuilderConfig`` (TensorRT 10's documented attributes)."""
    module = trt.module
    pools = dict(settings.memory_pool_limits)
    if settings.workspace is not None:
        pools.setdefault("workspace", int(settings.workspace))
    for pool, limit in pools.items():
        member = getattr(module.MemoryPoolType, MEMORY_POOLS[pool], None)
        if member is None:
            raise BackendUnavailableError(f"{trt.describe()} has no memory pool {pool!r}")
        config.set_memory_pool_limit(member, int(limit))
    if settings.optimization_level is not None:
        config.builder_optimization_level = int(settings.optimization_level)
    if settings.tactic_sources is not None:
        mask = 0
        for name in settings.tactic_sources:
            member = getattr(module.TacticSource, TACTIC_SOURCES[name], None)
            if member is None:
                raise BackendUnavailableError(f"{trt.describe()} has no tactic source {name!r}")
            mask |= 1 << int(member)
        config.set_tactic_sources(mask)
    if settings.sparse_weights:
        _set_flag(trt, config, "SPARSE_WEIGHTS", "sparse_weights")
    if settings.use_dla:
        config.default_device_type = module.DeviceType.DLA
        config.DLA_core = int(settings.dla_core)
        if settings.allow_gpu_fallback:
            _set_flag(trt, config, "GPU_FALLBACK", "allow_gpu_fallback")


def model_build_inputs(
    model: str | os.PathLike[str] | Any, description: str, transformed: Any = None
) -> BuildInputs:
    """``BuildInputs`` for a model path or proto; ``transformed`` (a ModelProto made from
    the model, e.g. int8 QDQ) takes precedence."""
    path = os.fspath(model) if isinstance(model, str | os.PathLike) else None
    proto = transformed if transformed is not None else (None if path else model)
    if proto is None:
        if not os.path.isfile(path or ""):
            raise ModelError(f"model file {path!r} does not exist")
        return BuildInputs(description, path=path)
    try:
        data = proto.SerializeToString()
    except ValueError as err:
        raise ModelError(
            f"{description} is over protobuf's 2 GiB limit in memory; save it with external "
            "data and pass the path instead"
        ) from err
    return BuildInputs(description, path=path, data=data)


def has_qdq(model: Any) -> bool:
    """True when an ONNX model already holds QuantizeLinear/DequantizeLinear nodes."""
    return any(n.op_type in ("QuantizeLinear", "DequantizeLinear") for n in model.graph.node)
