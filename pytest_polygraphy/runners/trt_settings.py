"""What identifies a TensorRT engine, and how engines are looked up in the artifact cache.

``EngineSettings`` holds every builder knob that changes an engine; ``engine_key_parts``
adds the model's content hash, the TensorRT flavour and version and the GPU (name and
compute capability) to make the cache key. ``obtain_engine`` is the cache protocol:
build once per key across processes, and rebuild an entry the runtime rejects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import BackendUnavailableError, InputError

if TYPE_CHECKING:
    from pytest_polygraphy.cache import ArtifactCache
    from pytest_polygraphy.runners.trt_module import TensorRT

#: Bumped when what this module puts into an engine changes (invalidates old entries).
#: 2: several optimization profiles (``profiles``) in place of one (``shapes``).
#: 3: the calibrator and a named timing cache file.
BUILD_SCHEMA = 3

TRT_PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
#: Precision names -> ``trt.DataType`` attribute names, for per-layer precisions.
LAYER_DTYPES = {
    "fp32": "float32",
    "fp16": "float16",
    "bf16": "bfloat16",
    "int8": "int8",
    "fp8": "fp8",
}

ShapeTriple = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

#: Memory pool names (as Polygraphy's ``--pool-limit``) -> ``trt.MemoryPoolType`` members.
MEMORY_POOLS = {
    "workspace": "WORKSPACE",
    "dla_managed_sram": "DLA_MANAGED_SRAM",
    "dla_local_dram": "DLA_LOCAL_DRAM",
    "dla_global_dram": "DLA_GLOBAL_DRAM",
    "tactic_dram": "TACTIC_DRAM",
    "tactic_shared_memory": "TACTIC_SHARED_MEMORY",
}
#: Tactic source names (as Polygraphy's ``--tactic-sources``) -> ``trt.TacticSource`` members.
TACTIC_SOURCES = {
    "cublas": "CUBLAS",
    "cublas_lt": "CUBLAS_LT",
    "cudnn": "CUDNN",
    "edge_mask_convolutions": "EDGE_MASK_CONVOLUTIONS",
    "jit_convolutions": "JIT_CONVOLUTIONS",
}
#: Calibrator names (as Polygraphy's ``--calibration-base-class``) -> TensorRT classes.
CALIBRATORS = {
    "entropy2": "IInt8EntropyCalibrator2",
    "minmax": "IInt8MinMaxCalibrator",
}


def plugin_entries(paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``(path, sha256)`` of each plugin library: an engine depends on the library's
    content, so a rebuilt plugin gets a new engine. InputError naming a missing file."""
    from pathlib import Path

    entries = []
    for path in paths:
        file = Path(path)
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as err:
            raise InputError(
                f"plugin library {path}: cannot read it: {err.strerror or err}"
            ) from None
        entries.append((str(file), digest))
    return tuple(entries)


def normalize_shapes(
    shapes: Mapping[str, Any] | None,
) -> dict[str, ShapeTriple]:
    """``{input: (min, opt, max)}`` from ``{input: shape}`` or ``{input: (min, opt, max)}``."""
    normalized: dict[str, ShapeTriple] = {}
    for name, value in (shapes or {}).items():
        items = list(value)
        if items and all(isinstance(d, int) for d in items):
            shape = tuple(int(d) for d in items)
            normalized[name] = (shape, shape, shape)
        elif len(items) == 3 and all(not isinstance(s, int | str) for s in items):
            lo, opt, hi = (tuple(int(d) for d in s) for s in items)
            if not len(lo) == len(opt) == len(hi):
                raise InputError(f"shapes for input {name!r} have different ranks: {items}")
            if not all(a <= b <= c for a, b, c in zip(lo, opt, hi, strict=True)):
                raise InputError(
                    f"shapes for input {name!r} must satisfy min <= opt <= max in every "
                    f"dim; got min={lo}, opt={opt}, max={hi}"
                )
            normalized[name] = (lo, opt, hi)
        else:
            raise InputError(
                f"shapes[{name!r}] must be a shape like (1, 3, 224, 224) or a (min, opt, max) "
                f"triple of shapes; got {value!r}"
            )
    return normalized


def normalize_profiles(
    shapes: Mapping[str, Any] | None = None,
    profiles: Sequence[Mapping[str, Any]] | None = None,
) -> tuple[dict[str, ShapeTriple], ...]:
    """The optimization profiles of ``shapes=`` (one profile) or ``profiles=`` (several),
    each normalized by ``normalize_shapes``; InputError when both are given."""
    if shapes and profiles:
        raise InputError("give shapes= (one profile) or profiles= (several), not both")
    if profiles:
        return tuple(normalize_shapes(profile) for profile in profiles)
    return (normalize_shapes(shapes),) if shapes else ()


def check_profiles(profiles: Sequence[Mapping[str, ShapeTriple]]) -> None:
    """InputError unless every profile names the same inputs (TensorRT needs every dynamic
    input in every profile) and no profile is empty."""
    if not profiles:
        return
    first = sorted(profiles[0])
    for index, profile in enumerate(profiles):
        if not profile:
            raise InputError(f"optimization profile {index} names no input")
        if sorted(profile) != first:
            raise InputError(
                f"optimization profile {index} names inputs {sorted(profile)}, profile 0 "
                f"names {first}; every profile must give shapes for the same inputs"
            )


def pick_profile(
    shapes: Mapping[str, Sequence[int]], profiles: Sequence[Mapping[str, ShapeTriple]]
) -> int | None:
    """The index of the first profile whose ranges hold every shape in ``shapes`` (inputs
    a profile does not name are not checked), or None when none does."""
    for index, profile in enumerate(profiles):
        fits = True
        for name, shape in shapes.items():
            if name not in profile:
                continue
            lo, _opt, hi = profile[name]
            if len(shape) != len(lo) or not all(
                a <= d <= b for a, d, b in zip(lo, shape, hi, strict=True)
            ):
                fits = False
                break
        if fits:
            return index
    return None


@dataclass(frozen=True)
class EngineSettings:
    """Every knob that changes the built engine; ``key_parts()`` goes into cache keys."""

    precision: str = "fp32"
    #: Optimization profiles, each ``{input: (min, opt, max)}``, in profile index order.
    profiles: tuple[dict[str, ShapeTriple], ...] = ()
    mark_all: bool = False
    layer_precisions: dict[str, str] = field(default_factory=dict)
    precision_constraints: str | None = None
    #: ONNX node names whose layers are constrained to fp32 (``keep_fp32``).
    keep_fp32: tuple[str, ...] = ()
    #: ONNX node names whose layers are constrained to fp16 (``keep_fp16``).
    keep_fp16: tuple[str, ...] = ()
    strongly_typed: bool = False
    workspace: int | None = None
    optimization_level: int | None = None
    #: Tensors to mark as the network's outputs in place of the model's (None: keep them).
    outputs: tuple[str, ...] | None = None
    #: Tensors unmarked after ``mark_all`` / ``outputs``.
    exclude_outputs: tuple[str, ...] = ()
    #: ``{pool: bytes}`` of ``MEMORY_POOLS`` (``workspace`` is the same as ``workspace=``).
    memory_pool_limits: dict[str, int] = field(default_factory=dict)
    #: ``TACTIC_SOURCES`` names to enable (the others are disabled); None: TensorRT's default.
    tactic_sources: tuple[str, ...] | None = None
    sparse_weights: bool = False
    #: Plugin libraries loaded before parsing, with a digest of each file (for the key).
    plugins: tuple[tuple[str, str], ...] = ()
    #: Build for DLA core ``dla_core``; ``allow_gpu_fallback`` lets unsupported layers run
    #: on the GPU.
    use_dla: bool = False
    dla_core: int = 0
    allow_gpu_fallback: bool = False
    #: The user's timing cache file (absolute path), seeded from and merged into on each
    #: build; None: the artifact cache's timing cache. Its path is part of the key, its
    #: content is not (see ``key_parts``).
    timing_cache_file: str | None = None
    #: ``CALIBRATORS`` name: int8 calibrated inside TensorRT (implicit quantization);
    #: None: int8 from a QDQ model (explicit quantization).
    calibrator: str | None = None

    def __post_init__(self) -> None:
        check_profiles(self.profiles)
        unknown_pools = sorted(set(self.memory_pool_limits) - set(MEMORY_POOLS))
        if unknown_pools:
            raise InputError(
                f"unknown memory pools {unknown_pools}; expected some of {list(MEMORY_POOLS)}"
            )
        unknown_sources = sorted(set(self.tactic_sources or ()) - set(TACTIC_SOURCES))
        if unknown_sources:
            raise InputError(
                f"unknown tactic sources {unknown_sources}; expected some of {list(TACTIC_SOURCES)}"
            )
        if self.calibrator is not None:
            if self.calibrator not in CALIBRATORS:
                raise InputError(
                    f"unknown calibrator {self.calibrator!r}; expected one of {list(CALIBRATORS)}"
                )
            if self.precision != "int8":
                raise InputError(
                    f"calibrator {self.calibrator!r} applies to precision 'int8' only, not "
                    f"{self.precision!r}"
                )
        if self.allow_gpu_fallback and not self.use_dla:
            raise InputError("allow_gpu_fallback applies to DLA builds: add use_dla=True")
        if self.mark_all and self.outputs is not None:
            raise InputError(
                f"mark_all and outputs {list(self.outputs)} are both given; give one of them"
            )
        if self.precision not in TRT_PRECISIONS:
            raise InputError(
                f"unknown precision {self.precision!r} for TensorRT; expected one of "
                f"{TRT_PRECISIONS}"
            )
        if self.precision_constraints not in (None, "obey", "prefer"):
            raise InputError(
                "precision_constraints must be 'obey', 'prefer' or None; got "
                f"{self.precision_constraints!r}"
            )
        both = sorted(set(self.keep_fp32) & set(self.keep_fp16))
        if both:
            raise InputError(f"nodes {both} are in both keep_fp32 and keep_fp16; keep each in one")
        bad = {k: v for k, v in self.layer_precisions.items() if v not in LAYER_DTYPES}
        if bad:
            raise InputError(
                f"layer_precisions {bad} use unknown precisions; expected {list(LAYER_DTYPES)}"
            )
        if self.strongly_typed and (
            self.precision not in ("fp32", "tf32")
            or self.layer_precisions
            or self.keep_fp32
            or self.keep_fp16
        ):
            raise InputError(
                "a strongly typed network takes its precisions from the model's tensor types; "
                "use precision='fp32' (or 'tf32') and no layer_precisions with strongly_typed=True"
            )

    @property
    def shapes(self) -> dict[str, ShapeTriple]:
        """The first profile (the one an execution context starts with); empty if none."""
        return self.profiles[0] if self.profiles else {}

    def key_parts(self) -> dict[str, Any]:
        """What identifies the engine. ``timing_cache_file`` enters by path: a timing cache
        changes which tactics TensorRT picks, so an engine built while seeding from and
        filling the user's file is not the engine built without it (and the first run that
        names a file must build, or the file would never be filled). Its content does not
        enter: every build merges new timings into it, so a content key would miss after
        each build, and what it holds is only valid for the TensorRT version and GPU the
        key already names. The calibration data and cache enter through ``extra`` of
        ``engine_key_parts`` (``TrtRunner``)."""
        return {
            "precision": self.precision,
            "profiles": [
                {k: [list(s) for s in v] for k, v in sorted(profile.items())}
                for profile in self.profiles
            ],
            "mark_all": self.mark_all,
            "layer_precisions": dict(sorted(self.layer_precisions.items())),
            "keep_fp32": sorted(self.keep_fp32),
            "keep_fp16": sorted(self.keep_fp16),
            "precision_constraints": self.effective_constraints(),
            "strongly_typed": self.strongly_typed,
            "workspace": self.workspace,
            "optimization_level": self.optimization_level,
            "outputs": None if self.outputs is None else list(self.outputs),
            "exclude_outputs": sorted(self.exclude_outputs),
            "memory_pool_limits": dict(sorted(self.memory_pool_limits.items())),
            "tactic_sources": None if self.tactic_sources is None else sorted(self.tactic_sources),
            "sparse_weights": self.sparse_weights,
            "plugins": [list(plugin) for plugin in self.plugins],
            "dla": {
                "use_dla": self.use_dla,
                "core": self.dla_core,
                "allow_gpu_fallback": self.allow_gpu_fallback,
            },
            "timing_cache_file": self.timing_cache_file,
            "calibrator": self.calibrator,
        }

    def effective_constraints(self) -> str | None:
        """Layer precisions only take effect with constraints on: default to ``obey``."""
        if self.precision_constraints is None and (
            self.layer_precisions or self.keep_fp32 or self.keep_fp16
        ):
            return "obey"
        return self.precision_constraints


def engine_key_parts(
    model_hash: str,
    settings: EngineSettings,
    trt: TensorRT,
    gpu: Mapping[str, str],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The cache key of an engine: model content, settings, TensorRT build, GPU."""
    return {
        "kind": "trt-engine",
        "schema": BUILD_SCHEMA,
        "model": model_hash,
        "settings": settings.key_parts(),
        "tensorrt": {"flavour": trt.flavour, "version": trt.version},
        "gpu": dict(gpu),
        **(dict(extra) if extra else {}),
    }


def supports_timing_cache(trt: TensorRT) -> bool:
    """TensorRT-RTX picks kernels at run time: its timing cache calls are deprecated no-ops."""
    return not trt.is_rtx


def timing_cache_key_parts(trt: TensorRT, gpu: Mapping[str, str]) -> dict[str, Any]:
    return {
        "kind": "trt-timing-cache",
        "tensorrt": {"flavour": trt.flavour, "version": trt.version},
        "gpu": dict(gpu),
    }


def calibration_cache_key_parts(
    model_hash: str, feeds_fingerprint: str, calibrator: str, trt: TensorRT
) -> dict[str, Any]:
    """The artifact cache key of a TensorRT calibration cache: the scales TensorRT derived
    for this model from these feeds with this calibrator, in this TensorRT's format (the
    GPU does not change them)."""
    return {
        "kind": "trt-calibration-cache",
        "model": model_hash,
        "feeds": feeds_fingerprint,
        "calibrator": calibrator,
        "tensorrt": {"flavour": trt.flavour, "version": trt.version},
    }


# -- cache orchestration ---------------------------------------------------------------
def obtain_engine(
    cache: ArtifactCache,
    key_parts: Mapping[str, Any],
    build: Callable[[], bytes],
    load: Callable[[bytes], Any],
) -> tuple[Any, bool]:
    """Engine bytes from the cache (building them if absent) and ``load``-ed.

    ``load`` returns None when the backend rejects the bytes (a corrupt or incompatible
    entry that passed the checksum, e.g. written by a TensorRT build with the same
    version string): the entry is dropped and rebuilt once. Returns ``(engine, built)``.
    """
    entry = cache.get_or_create(key_parts, build, namespace="trt-engine")
    engine = load(entry.data)
    if engine is not None:
        return engine, entry.built
    if entry.built:
        raise BackendUnavailableError("TensorRT could not deserialize the engine it just built")
    cache.invalidate(key_parts, namespace="trt-engine")
    entry = cache.get_or_create(key_parts, build, namespace="trt-engine")
    engine = load(entry.data)
    if engine is None:
        raise BackendUnavailableError(
            "TensorRT could not deserialize a freshly rebuilt engine (the cached one was "
            "rejected too)"
        )
    return engine, True


def default_name(precision: str, mark_all: bool, extra: Sequence[str] = ()) -> str:
    """Stable runner names: ``trt``, ``trt[fp16]``, ``trt[fp16,mark-all]``."""
    tags = [] if precision == "fp32" else [precision]
    if mark_all:
        tags.append("mark-all")
    tags.extend(extra)
    return "trt" + (f"[{','.join(tags)}]" if tags else "")
