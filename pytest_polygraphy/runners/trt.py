"""TensorRT runners: ONNX -> engine (cached on disk) -> inference through cuda-python
(``TrtRunner``), and a prebuilt engine file -> inference (``TrtEngineRunner``).

Both share ``_EngineExecution``: activation loads a serialized engine (``TrtRunner``
builds it, or loads it from the engine cache, see ``trt_build``; ``TrtEngineRunner`` reads
the ``.engine``/``.plan`` file) and deserializes it with TensorRT 10's documented runtime
API, ``trt.Runtime(logger).deserialize_cuda_engine(data)``, then creates an execution
context, one CUDA stream, and an output allocator. Inference copies each input into a
pinned host buffer, then to a device buffer (both reused across calls and grown only
when a larger input comes), runs ``execute_async_v3`` on the stream, and copies outputs
back through pinned host buffers. Outputs are allocated by an ``IOutputAllocator`` so
data-dependent output shapes (NonZero, NMS...) work: TensorRT reports each output's real
shape to it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.runners import trt_build, trt_precisions, trt_settings
from pytest_polygraphy.runners.base import BaseRunner, model_display_name
from pytest_polygraphy.runners.trt_module import import_tensorrt

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from pytest_polygraphy.cache import ArtifactCache
    from pytest_polygraphy.metadata import TensorMetadata
    from pytest_polygraphy.runners.trt_module import TensorRT


def _make_output_allocator(trt: TensorRT) -> Any:
    """An ``IOutputAllocator`` over growable device buffers, recording reported shapes."""
    from pytest_polygraphy.runners.cuda import DeviceBuffer

    class OutputAllocator(trt.module.IOutputAllocator):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.module.IOutputAllocator.__init__(self)
            self.buffers: dict[str, DeviceBuffer] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(self, tensor_name: str, memory: Any, size: int, alignment: int):
            buffer = self.buffers.setdefault(tensor_name, DeviceBuffer())
            return buffer.ensure(int(size))

        def reallocate_output_async(
            self, tensor_name: str, memory: Any, size: int, alignment: int, stream: Any
        ):
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

        def free(self) -> None:
            for buffer in self.buffers.values():
                buffer.free()
            self.buffers.clear()

    return OutputAllocator()


def numpy_dtype(trt: TensorRT, trt_dtype: Any) -> np.dtype:
    """The numpy dtype of a ``trt.DataType``; bfloat16 and fp8 map to ``ml_dtypes`` types
    (installed with onnx), which TensorRT's own ``nptype`` does not know."""
    import numpy as np

    module = trt.module
    try:
        return np.dtype(module.nptype(trt_dtype))
    except TypeError:
        import ml_dtypes

        extra = {"bfloat16": ml_dtypes.bfloat16, "fp8": ml_dtypes.float8_e4m3fn}
        for attr, dtype in extra.items():
            if hasattr(module, attr) and trt_dtype == getattr(module, attr):
                return np.dtype(dtype)
        raise


#: What TensorRT's explicit (Q/DQ) quantization needs from ``models.quantize_int8``:
#: per-channel weights, symmetric (zero-point 0) scales, and float bias (its parser refuses
#: an int32 DequantizeLinear, as found on TensorRT-RTX).
TENSORRT_QUANTIZATION = {"per_channel": True, "symmetric": True, "quantize_bias": False}


class _EngineExecution(BaseRunner):
    """What every TensorRT runner shares: an execution context over a deserialized engine,
    its CUDA stream, buffers and output allocator, and inference. Subclasses provide
    ``_load_engine`` (returning a deserialized ``ICudaEngine``, or None with the reason
    logged to ``self._logger``) and ``input_metadata``."""

    trt: TensorRT

    def _reset_state(self) -> None:
        self.engine: Any = None
        self.context: Any = None
        self._stream: Any = None
        self._allocator: Any = None
        self._device_inputs: dict[str, Any] = {}
        self._host_inputs: dict[str, Any] = {}
        self._host_outputs: dict[str, Any] = {}
        self._input_names: list[str] = []
        self._output_names: list[str] = []
        self._logger: Any = None
        self._runtime: Any = None
        #: The engine's optimization profiles, ``{input: (min, opt, max)}`` each.
        self._profiles: list[dict[str, trt_settings.ShapeTriple]] = []
        self._profile_index = 0

    def _load_engine(self) -> Any:
        raise NotImplementedError

    def _deserialize(self, data: bytes) -> Any:
        """``trt.Runtime(logger).deserialize_cuda_engine(data)``; None (the reason in the
        logger) when TensorRT rejects the bytes."""
        try:
            if self._runtime is None:
                self._runtime = self.trt.module.Runtime(self._logger)
            return self._runtime.deserialize_cuda_engine(data)
        except Exception as err:  # some builds raise instead of returning None
            self._logger.messages.append(("ERROR", f"deserialize_cuda_engine: {err}"))
            return None

    def _engine_outputs_metadata(self) -> TensorMetadata:
        from pytest_polygraphy.metadata import TensorMetadata

        metadata = TensorMetadata()
        for name in self._output_names:
            dtype = numpy_dtype(self.trt, self.engine.get_tensor_dtype(name))
            metadata.add(name, dtype, tuple(self.engine.get_tensor_shape(name)))
        return metadata

    def _engine_inputs_metadata(self) -> TensorMetadata:
        """The engine's inputs (dynamic dims as None), each with its first profile's
        ``(min, opt, max)`` as ``shape_range``."""
        from pytest_polygraphy.metadata import TensorMeta, TensorMetadata

        metas = []
        first = self._profiles[0] if self._profiles else {}
        for name in self._input_names:
            dtype = numpy_dtype(self.trt, self.engine.get_tensor_dtype(name))
            shape = tuple(
                None if int(d) < 0 else int(d) for d in self.engine.get_tensor_shape(name)
            )
            metas.append(TensorMeta(name, dtype, shape, first.get(name)))
        return TensorMetadata.of(metas)

    def _read_profiles(self) -> list[dict[str, trt_settings.ShapeTriple]]:
        """Every optimization profile of the engine, for its dynamic (non-shape) inputs."""
        engine = self.engine
        profiles = []
        for index in range(int(getattr(engine, "num_optimization_profiles", 0) or 0)):
            profile = {}
            for name in self._input_names:
                if engine.is_shape_inference_io(name):
                    continue
                if all(int(d) >= 0 for d in engine.get_tensor_shape(name)):
                    continue
                lo, opt, hi = engine.get_tensor_profile_shape(name, index)
                profile[name] = (tuple(lo), tuple(opt), tuple(hi))
            profiles.append(profile)
        return profiles

    # -- lifecycle ---------------------------------------------------------------------
    def _activate(self) -> None:
        from pytest_polygraphy.runners.cuda import Stream, cuda_unavailable_reason, cudart

        reason = cuda_unavailable_reason()
        if reason:
            raise BackendUnavailableError(f"TensorRT needs a CUDA GPU: {reason}")
        cudart()  # BackendUnavailableError when cuda-python is missing
        self._logger = trt_build.make_logger(self.trt)
        try:
            engine = self._load_engine()
            if engine is None:
                raise BackendUnavailableError(
                    f"{self.trt.describe()} could not load the engine:\n{self._logger.errors()}"
                )
            context = engine.create_execution_context()
            if context is None:
                raise BackendUnavailableError(
                    f"{self.trt.describe()} could not create an execution context:\n"
                    f"{self._logger.errors()}"
                )
            self.engine, self.context = engine, context
            mode = self.trt.module.TensorIOMode
            names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
            self._input_names = [n for n in names if engine.get_tensor_mode(n) == mode.INPUT]
            self._output_names = [n for n in names if engine.get_tensor_mode(n) == mode.OUTPUT]
            self._profiles = self._read_profiles()
            self._stream = Stream()
            self._allocator = _make_output_allocator(self.trt)
            for name in self._output_names:
                if not context.set_output_allocator(name, self._allocator):
                    raise BackendUnavailableError(f"could not set the output allocator of {name!r}")
        except BaseException:
            self._deactivate()
            raise

    def _deactivate(self) -> None:
        for buffers in (self._device_inputs, self._host_inputs, self._host_outputs):
            for buffer in buffers.values():
                buffer.free()
        if self._allocator is not None:
            self._allocator.free()
        if self._stream is not None:
            self._stream.free()
        self._reset_state()

    # -- inference ---------------------------------------------------------------------
    def _select_profile(self, feed: Mapping[str, Any]) -> None:
        """With several optimization profiles, switch the context to the first one whose
        ranges hold the feed's shapes (``set_optimization_profile_async``)."""
        if len(self._profiles) < 2:
            return
        shapes = {name: tuple(feed[name].shape) for name in self._input_names if name in feed}
        current = self._profiles[self._profile_index]
        if trt_settings.pick_profile(shapes, [current]) == 0:
            return
        index = trt_settings.pick_profile(shapes, self._profiles)
        if index is None:
            listing = "; ".join(
                f"profile {i}: {self._describe_profile(p)}" for i, p in enumerate(self._profiles)
            )
            raise InputError(
                f"no optimization profile of runner {self.name!r} holds the input shapes "
                f"{shapes}; the engine's profiles are {listing}"
            )
        if not self.context.set_optimization_profile_async(index, self._stream.handle):
            raise InputError(
                f"TensorRT refused to switch runner {self.name!r} to optimization profile "
                f"{index}:\n{self._logger.errors()}"
            )
        self._profile_index = index

    @staticmethod
    def _describe_profile(profile: Mapping[str, trt_settings.ShapeTriple]) -> str:
        return ", ".join(
            f"{name} min={list(lo)} opt={list(opt)} max={list(hi)}"
            for name, (lo, opt, hi) in profile.items()
        )

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import numpy as np

        from pytest_polygraphy.runners.cuda import CudaError, DeviceBuffer, HostBuffer

        engine, context, stream = self.engine, self.context, self._stream
        trt = self.trt
        keep_alive = []
        self._select_profile(feed)
        for name in self._input_names:
            dtype = numpy_dtype(trt, engine.get_tensor_dtype(name))
            array = np.ascontiguousarray(feed[name], dtype=dtype)
            shape_changed = tuple(context.get_tensor_shape(name)) != array.shape
            if shape_changed and not context.set_input_shape(name, array.shape):
                raise InputError(
                    f"TensorRT refused shape {array.shape} for input {name!r}; the "
                    f"engine's profile allows {self._profile_text(name)}"
                )
            if engine.is_shape_inference_io(name):  # shape tensors live in host memory
                keep_alive.append(array)
                ptr = array.ctypes.data
            else:
                host = self._host_inputs.setdefault(name, HostBuffer())
                host.ensure(array.nbytes)
                np.copyto(host.view(array.dtype, array.shape), array)
                device = self._device_inputs.setdefault(name, DeviceBuffer())
                ptr = device.ensure(array.nbytes)
                device.copy_from_host(host, array.nbytes, stream)
            context.set_tensor_address(name, ptr)

        if not context.execute_async_v3(stream.handle):
            raise CudaError(
                f"TensorRT execute_async_v3 failed for runner {self.name!r}:\n"
                f"{self._logger.errors()}"
            )
        views = {}
        for name in self._output_names:
            shape = self._allocator.shapes.get(name, tuple(context.get_tensor_shape(name)))
            dtype = numpy_dtype(trt, engine.get_tensor_dtype(name))
            nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
            host = self._host_outputs.setdefault(name, HostBuffer())
            host.ensure(nbytes)
            if nbytes:
                host.copy_from_device(self._allocator.buffers[name].ptr, nbytes, stream)
            views[name] = (host, dtype, shape)
        stream.synchronize()
        del keep_alive
        return {name: np.array(h.view(d, s)) for name, (h, d, s) in views.items()}

    def _profile_text(self, name: str) -> str:
        try:
            lo, opt, hi = self.engine.get_tensor_profile_shape(name, self._profile_index)
        except Exception:
            return "(no profile information)"
        return f"min={tuple(lo)}, opt={tuple(opt)}, max={tuple(hi)}"


class TrtRunner(_EngineExecution):
    """Builds and runs a TensorRT engine for an ONNX model.

    Args:
        model: ``.onnx`` path (external data found next to it) or ``onnx.ModelProto``.
        precision: ``fp32`` (TF32 off), ``tf32``, ``fp16``, ``bf16``, ``int8``, ``fp8``:
            the builder flag allowing that precision. For ``int8`` a model without Q/DQ
            nodes is first quantized with ``models.quantize_int8`` (calibrated with
            ``calibration_data``, default ``DataLoader()``): explicit quantization, as
            TensorRT 10 recommends.
        shapes: ``{input: shape}`` or ``{input: (min, opt, max)}`` for the optimization
            profile; dynamic inputs not named are built for dims of 1 (with a warning).
        profiles: several optimization profiles, each like ``shapes`` (give one of
            ``shapes`` and ``profiles``); inference switches to the first profile that
            holds the feed's shapes.
        cache_dir: engine cache folder (default: ``cache.default_cache_dir()``); pass
            ``use_cache=False`` to always build, from a fresh tactic timing cache (the
            build's own is kept in ``timing_cache``, see ``save_timing_cache``).
        mark_all: mark every layer output as a network output (Polygraphy's rules).
        layer_precisions: ``{TensorRT layer name: precision}``; enables
            ``precision_constraints="obey"`` unless given.
        precision_constraints: ``"obey"``, ``"prefer"`` or None.
        keep_fp32: ONNX node names (or stable ids of unnamed nodes, ``models.nodes``)
            whose layers are constrained to fp32; enables ``precision_constraints="obey"``
            unless given. After activation ``precision_readback`` says which requested
            precisions (these, ``keep_fp16`` and ``layer_precisions``) the engine did not
            run in, read from its inspector, and ``network_layers`` lists the layers of
            each node.
        keep_fp16: ONNX node names whose layers are constrained to fp16 (for bf16 and int8
            engines; in int8 they are also left out of the quantization); enables
            ``precision_constraints="obey"`` unless given. A node in both is an error.
        strongly_typed: build a strongly typed network (precisions from the model).
        workspace: workspace memory pool limit in bytes.
        optimization_level: builder optimization level (0-5).
        outputs: tensor names marked as the network's outputs in place of the model's.
        exclude_outputs: tensors unmarked after ``mark_all`` / ``outputs``.
        memory_pool_limits: ``{pool: bytes}``, pools as in ``trt_settings.MEMORY_POOLS``.
        tactic_sources: the tactic sources to enable (``trt_settings.TACTIC_SOURCES``).
        sparse_weights: allow sparse-weight tactics (``BuilderFlag.SPARSE_WEIGHTS``).
        plugins: plugin libraries loaded into the plugin registry before parsing.
        use_dla, dla_core, allow_gpu_fallback: build for a DLA core, optionally letting
            layers DLA cannot run fall back to the GPU.
        timing_cache: a timing cache file (Polygraphy's ``--timing-cache``): each build
            is seeded from it when it exists and merges its timings back into it
            (atomically, under a lock next to it, after a successful build only), so
            workers and runs share it. Default: the artifact cache's timing cache.
            TensorRT-RTX has no timing cache and refuses it.
        calibrator: ``"entropy2"`` or ``"minmax"`` (``IInt8EntropyCalibrator2`` /
            ``IInt8MinMaxCalibrator``): at ``int8``, calibrate inside TensorRT with
            ``calibration_data`` in place of quantizing to Q/DQ first (ignored at other
            precisions, and for models already holding Q/DQ nodes). TensorRT-RTX refuses it.
        calibration_cache: with ``calibrator``, a calibration cache file read when it
            exists (TensorRT then skips calibrating) and written after calibrating. The
            artifact cache keeps one per model, feeds, calibrator and TensorRT version too.
        name: runner name; default ``trt``, ``trt[fp16]``, ``trt[int8,mark-all]``...

    Constructing the runner imports TensorRT (``BackendUnavailableError`` with install
    instructions if absent); building, CUDA and the GPU are needed only by ``activate()``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | onnx.ModelProto,
        precision: str = "fp32",
        shapes: Mapping[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        *,
        mark_all: bool = False,
        layer_precisions: Mapping[str, str] | None = None,
        precision_constraints: str | None = None,
        keep_fp32: Sequence[str] = (),
        keep_fp16: Sequence[str] = (),
        strongly_typed: bool = False,
        workspace: int | None = None,
        optimization_level: int | None = None,
        outputs: Sequence[str] | None = None,
        exclude_outputs: Sequence[str] = (),
        memory_pool_limits: Mapping[str, int] | None = None,
        tactic_sources: Sequence[str] | None = None,
        sparse_weights: bool = False,
        plugins: Sequence[str | os.PathLike[str]] = (),
        use_dla: bool = False,
        dla_core: int = 0,
        allow_gpu_fallback: bool = False,
        calibration_data: Iterable[Mapping[str, Any]] | Any = None,
        use_cache: bool = True,
        name: str | None = None,
        profiles: Sequence[Mapping[str, Any]] | None = None,
        timing_cache: str | os.PathLike[str] | None = None,
        calibrator: str | None = None,
        calibration_cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.trt = import_tensorrt()
        if calibrator is not None and calibrator not in trt_settings.CALIBRATORS:
            raise InputError(
                f"unknown calibrator {calibrator!r}; expected one of "
                f"{list(trt_settings.CALIBRATORS)}"
            )
        self.settings = trt_settings.EngineSettings(
            precision=precision,
            profiles=trt_settings.normalize_profiles(shapes, profiles),
            mark_all=mark_all,
            layer_precisions=dict(layer_precisions or {}),
            precision_constraints=precision_constraints,
            keep_fp32=tuple(keep_fp32),
            keep_fp16=tuple(keep_fp16),
            strongly_typed=strongly_typed,
            workspace=workspace,
            optimization_level=optimization_level,
            outputs=None if outputs is None else tuple(outputs),
            exclude_outputs=tuple(exclude_outputs),
            memory_pool_limits=dict(memory_pool_limits or {}),
            tactic_sources=None if tactic_sources is None else tuple(tactic_sources),
            sparse_weights=sparse_weights,
            plugins=trt_settings.plugin_entries(os.fspath(p) for p in plugins),
            use_dla=use_dla,
            dla_core=dla_core,
            allow_gpu_fallback=allow_gpu_fallback,
            timing_cache_file=None if timing_cache is None else str(Path(timing_cache).absolute()),
            calibrator=calibrator if precision == "int8" else None,
        )
        super().__init__(name or trt_settings.default_name(precision, mark_all))
        self.calibration_cache = None if calibration_cache is None else Path(calibration_cache)
        self.model = model
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.calibration_data = calibration_data
        #: True when the last activation built the engine, False when it came from cache.
        self.engine_was_built: bool | None = None
        #: Where the last activation's serialized engine is: the engine cache entry's file,
        #: or (built without the cache) None and the bytes in ``_built_engine``.
        self.engine_file: Path | None = None
        self._built_engine: bytes | None = None
        #: The calibrator of the last build that calibrated inside TensorRT (its
        #: ``batches`` and ``cache_hit`` say what happened), else None.
        self.calibrator: Any = None
        #: The tactic timing cache of the last activation's build, serialized, when it
        #: built without the engine cache (``use_cache=False``: each build times its own
        #: tactics); None otherwise, and on TensorRT-RTX, which has none.
        self.timing_cache: bytes | None = None
        #: What the engine inspector says of each requested precision (``keep_fp32``,
        #: ``keep_fp16``, ``layer_precisions``) after activation; None when none was asked.
        self.precision_readback: trt_precisions.PrecisionReadback | None = None
        self._network_layers: dict[str, list[str]] = {}
        self._input_metadata: TensorMetadata | None = None
        self._reset_state()

    # -- metadata ----------------------------------------------------------------------
    @property
    def input_metadata(self) -> TensorMetadata:
        """The ONNX model's inputs, with ``shape_range`` set from ``shapes`` so a
        ``DataLoader`` draws feeds of the profile's opt shape."""
        if self._input_metadata is None:
            from pytest_polygraphy.metadata import TensorMetadata
            from pytest_polygraphy.models import input_metadata

            metas = []
            for meta in input_metadata(self.model).values():
                triple = self.settings.shapes.get(meta.name)
                metas.append(dataclasses.replace(meta, shape_range=triple) if triple else meta)
            self._input_metadata = TensorMetadata.of(metas)
        return self._input_metadata

    @property
    def output_metadata(self) -> TensorMetadata:
        """The engine's outputs while active (all marked tensors with ``mark_all``), else
        the ONNX model's outputs."""
        if self.engine is None:
            from pytest_polygraphy.models import output_metadata

            return output_metadata(self.model)
        return self._engine_outputs_metadata()

    def save_engine(self, path: str | os.PathLike[str]) -> Path:
        """Write the serialized engine of the current activation to ``path``, atomically
        (copied from the engine cache, or the bytes built without it)."""
        from pytest_polygraphy.files import write_atomically, write_bytes_atomically

        if self._built_engine is not None:
            return write_bytes_atomically(path, self._built_engine)
        if self.engine_file is None:
            raise InputError(f"runner {self.name!r} has no engine to save: activate it first")
        source = self.engine_file

        def copy(out: Any) -> None:
            with open(source, "rb") as data:
                shutil.copyfileobj(data, out)

        try:
            return write_atomically(path, copy)
        except FileNotFoundError:
            raise InputError(
                f"the engine of runner {self.name!r} is no longer in the engine cache "
                f"({source}); run again to rebuild it"
            ) from None

    def save_timing_cache(self, path: str | os.PathLike[str]) -> Path | None:
        """Write the timing cache of the last activation's build to ``path``, atomically;
        None (nothing written) when it has none (see ``timing_cache``)."""
        from pytest_polygraphy.files import write_bytes_atomically

        if self.timing_cache is None:
            return None
        return write_bytes_atomically(path, self.timing_cache)

    def network_layers(self, nodes: Sequence[str]) -> dict[str, list[str]]:
        """The TensorRT layer names each ONNX node in ``nodes`` becomes in the network this
        runner builds (``trt_build.layers_of_nodes``); ``[]`` for a node that becomes no
        layer (the parser folded it away, e.g. into a constant).

        The model is parsed (int8: its Q/DQ variant) with this runner's output
        selection, without its precision requests and without building; the answer is
        remembered per node."""
        wanted = [name for name in nodes if name not in self._network_layers]
        if wanted:
            trt = self.trt
            logger = trt_build.make_logger(trt, echo_level="ERROR")
            source, _, _ = self._build_inputs_and_extra_key()
            settings = dataclasses.replace(
                self.settings, keep_fp32=(), keep_fp16=(), layer_precisions={}
            )
            trt_build.load_plugins(trt, settings)
            builder = trt.module.Builder(logger)
            network, _parser = trt_build.make_network(trt, builder, source, settings, logger)
            for name, layers in trt_build.layers_of_nodes(network, wanted).items():
                self._network_layers[name] = [str(layer.name) for layer in layers]
        return {name: list(self._network_layers[name]) for name in nodes}

    # -- engine ------------------------------------------------------------------------
    def _activate(self) -> None:
        super()._activate()
        self.precision_readback = self._read_back_precisions()

    def _read_back_precisions(self) -> trt_precisions.PrecisionReadback | None:
        """Compare the requested layer precisions with those of the built engine, read
        from its inspector (``get_layer_information(i, LayerInformationFormat.JSON)``;
        the engine was built with ``ProfilingVerbosity.DETAILED`` for this). Dynamic
        inputs are set to their first profile's opt shapes first: without shapes the
        inspector leaves formats out."""
        settings = self.settings
        if not settings.keep_fp32 and not settings.keep_fp16 and not settings.layer_precisions:
            return None
        try:
            for name, (_lo, opt, _hi) in (self._profiles[0] if self._profiles else {}).items():
                self.context.set_input_shape(name, opt)
            inspector = self.engine.create_engine_inspector()
            inspector.execution_context = self.context
            json_format = self.trt.module.LayerInformationFormat.JSON
            layers = [
                trt_precisions.parse_layer_information(
                    inspector.get_layer_information(index, json_format)
                )
                for index in range(int(self.engine.num_layers))
            ]
        except Exception as err:  # the inspector is a diagnosis: report, do not fail
            return trt_precisions.PrecisionReadback(
                unverified=[f"{self.trt.describe()}'s engine inspector failed: {err}"]
            )
        return trt_precisions.check_precisions(
            layers, settings.keep_fp32, settings.layer_precisions, settings.keep_fp16
        )

    def _artifact_cache(self) -> ArtifactCache:
        from pytest_polygraphy.cache import ArtifactCache

        return ArtifactCache(self.cache_dir)

    def _build_inputs_and_extra_key(
        self,
    ) -> tuple[trt_build.BuildInputs, dict[str, Any], list[dict[str, Any]] | None]:
        """What to build from, what it adds to the engine key, and the feeds a calibrator
        gives TensorRT (None: no calibration inside TensorRT).

        int8 without a calibrator quantizes the model to Q/DQ with the calibration data
        first (explicit quantization); with one, the float model is built and TensorRT
        calibrates it. Either way the feeds' fingerprint is in the key; with a calibrator
        also the named calibration cache file's content (its scales decide the engine)."""
        description = model_display_name(self.model)
        plain = trt_build.model_build_inputs(self.model, description)
        if self.settings.precision != "int8":
            return plain, {}, None
        from pytest_polygraphy import models
        from pytest_polygraphy.data.formats import feeds_fingerprint

        proto = models.load_model(self.model)
        if trt_build.has_qdq(proto):
            return plain, {}, None
        feeds = [dict(feed) for feed in self._calibration_feeds()]
        fingerprint = feeds_fingerprint(feeds)
        if self.settings.calibrator is not None:
            from pytest_polygraphy.runners import trt_calibration

            extra = {
                "int8_calibration": {
                    "feeds": fingerprint,
                    "calibration_cache_file": trt_calibration.file_digest(self.calibration_cache),
                }
            }
            return plain, extra, feeds
        kept = (*self.settings.keep_fp32, *self.settings.keep_fp16)  # their layers say how
        quantized = models.quantize_int8(proto, feeds, exclude=kept, **TENSORRT_QUANTIZATION)
        extra = {"int8_calibration": fingerprint}
        return trt_build.model_build_inputs(self.model, description, quantized), extra, None

    def _calibration_feeds(self) -> Iterable[Mapping[str, Any]]:
        data = self.calibration_data
        if data is None:
            from pytest_polygraphy.data import DataLoader

            data = DataLoader()
        return data.bind(self.input_metadata) if hasattr(data, "bind") else data

    def _timing_cache_store(
        self, cache: ArtifactCache | None, gpu: Mapping[str, str] | None
    ) -> tuple[bytes | None, Any, str]:
        """``(seed bytes, save(merge) or None, description)`` of the timing cache a build
        uses: the named file, else the artifact cache's entry (None without the cache)."""
        from pytest_polygraphy.cache import update_user_file

        named = self.settings.timing_cache_file
        if named is None:
            if cache is None or gpu is None:
                return None, None, "no timing cache"
            key = trt_settings.timing_cache_key_parts(self.trt, gpu)
            return (
                cache.get(key, namespace="trt-timing-cache"),
                lambda merge: cache.update(key, merge, namespace="trt-timing-cache"),
                "the artifact cache's timing cache",
            )
        if not trt_settings.supports_timing_cache(self.trt):
            raise BackendUnavailableError(
                f"{self.trt.describe()} has no timing cache (it picks kernels at run time), so "
                f"timing cache file {named} cannot be used: drop --polygraphy-trt-timing-cache "
                "for it"
            )
        path = Path(named)
        try:
            seed = path.read_bytes() if path.is_file() else None
        except OSError as err:
            raise InputError(
                f"timing cache file {path}: cannot read it: {err.strerror or err}"
            ) from None

        def save(merge: Any) -> Any:
            try:
                return update_user_file(path, merge)
            except OSError as err:
                raise InputError(
                    f"timing cache file {path}: cannot write it: {err.strerror or err}"
                ) from None

        return seed or None, save, f"timing cache file {path}"

    def _build(
        self,
        source: trt_build.BuildInputs,
        feeds: list[dict[str, Any]] | None,
        cache: ArtifactCache | None,
        gpu: Mapping[str, str] | None,
        *,
        own_timing_cache: bool = False,
    ) -> bytes:
        """One engine build: timing cache seeded and merged back, and with a calibrator,
        TensorRT's calibration fed the test's data (its cache read and written).

        ``own_timing_cache`` (a build without the engine cache, e.g. each iteration of
        ``--polygraphy-build``): the build's own timing cache is kept in
        ``timing_cache``; it seeds from and merges into a named timing cache file only
        when one is given (without one there is no shared cache to time tactics from)."""
        seed, save, description = self._timing_cache_store(cache, gpu)
        if own_timing_cache:
            shared = save

            def keep(merge: Any) -> Any:
                self.timing_cache = merge(None)  # this build's own cache, merged with nothing
                return None if shared is None else shared(merge)

            if shared is None:
                description = "this build's own timing cache"
            save = keep
        kwargs: dict[str, Any] = {
            "logger": self._logger,
            "timing_cache": seed,
            "save_timing_cache": save,
            "timing_cache_description": description,
        }
        if feeds is None:
            return trt_build.build_serialized_engine(self.trt, source, self.settings, **kwargs)
        from pytest_polygraphy.data.formats import feeds_fingerprint
        from pytest_polygraphy.models import model_hash
        from pytest_polygraphy.runners import trt_calibration

        kind = str(self.settings.calibrator)
        store = trt_calibration.CalibrationCache(
            file=self.calibration_cache,
            artifact_cache=cache,
            key_parts=trt_settings.calibration_cache_key_parts(
                model_hash(self.model), feeds_fingerprint(feeds), kind, self.trt
            ),
        )
        with trt_calibration.calibrating(self.trt, kind, feeds, store) as calibrator:
            self.calibrator = calibrator
            return trt_build.build_serialized_engine(
                self.trt, source, self.settings, calibrator=calibrator, **kwargs
            )

    def _load_engine(self) -> Any:
        from pytest_polygraphy.models import model_hash
        from pytest_polygraphy.runners.cuda import gpu_identity

        trt = self.trt
        logger = self._logger
        if self.settings.calibrator is not None:
            from pytest_polygraphy.runners.trt_calibration import check_calibration_support

            check_calibration_support(trt, self.settings.calibrator)
        source, extra, feeds = self._build_inputs_and_extra_key()
        self.engine_file, self._built_engine = None, None
        self.timing_cache = None
        if not self.use_cache:  # no cache key, so no need to know the GPU
            data = self._build(source, feeds, None, None, own_timing_cache=True)
            self._built_engine = data
            self.engine_was_built = True
            return self._deserialize(data)

        cache = self._artifact_cache()
        gpu = gpu_identity()

        def build() -> bytes:
            return self._build(source, feeds, cache, gpu)

        key = trt_settings.engine_key_parts(model_hash(self.model), self.settings, trt, gpu, extra)
        try:
            engine, built = trt_settings.obtain_engine(cache, key, build, self._deserialize)
        except BackendUnavailableError as err:
            raise BackendUnavailableError(
                f"{err} ({trt.describe()}, GPU {gpu['name']} with compute capability "
                f"{gpu['compute_capability']}):\n{logger.errors()}"
            ) from None
        self.engine_was_built = built
        self.engine_file = cache.paths(key, namespace="trt-engine")[0]
        return engine


class TrtEngineRunner(_EngineExecution):
    """Runs a prebuilt, serialized TensorRT engine file (``.engine`` / ``.plan``): the
    engine a project ships, not one built here.

    Args:
        engine: path of the serialized engine.
        name: runner name; default ``trt[engine]``.

    The engine is read and deserialized by ``activate()`` with
    ``trt.Runtime(logger).deserialize_cuda_engine``; an unreadable file is an
    ``InputError``, and bytes TensorRT rejects (another TensorRT version, another GPU, not
    an engine) a ``ModelError``, each naming the file. Its inputs and outputs are the
    engine's (``input_metadata`` needs the runner active); with several optimization
    profiles, inference switches to the first one that holds the feed's shapes.
    """

    def __init__(self, engine: str | os.PathLike[str], *, name: str | None = None) -> None:
        self.trt = import_tensorrt()
        super().__init__(name or "trt[engine]")
        self.engine_path = Path(engine)
        #: Engine files are never built here (``TrtRunner`` has the same attribute).
        self.engine_was_built: bool | None = False
        self._reset_state()

    @property
    def input_metadata(self) -> TensorMetadata:
        if self.engine is None:
            raise InputError(
                f"runner {self.name!r}: the inputs of engine {self.engine_path} are known once "
                "it is loaded: activate the runner first"
            )
        return self._engine_inputs_metadata()

    @property
    def output_metadata(self) -> TensorMetadata:
        if self.engine is None:
            raise InputError(
                f"runner {self.name!r}: the outputs of engine {self.engine_path} are known "
                "once it is loaded: activate the runner first"
            )
        return self._engine_outputs_metadata()

    def _load_engine(self) -> Any:
        data = read_engine_file(self.engine_path)
        engine = self._deserialize(data)
        if engine is None:
            raise ModelError(
                f"engine file {self.engine_path}: {self.trt.describe()} cannot deserialize it "
                "(an engine runs only on the TensorRT version and GPU it was built with; "
                f"rebuild it here, or test its ONNX model instead):\n"
                f"{self._logger.errors() or '(no error was logged)'}"
            )
        return engine


def read_engine_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a serialized engine file; InputError naming it when it cannot be read
    or is empty."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise InputError(f"engine file {path}: cannot read it: {err.strerror or err}") from None
    if not data:
        raise InputError(f"engine file {path} is empty: it holds no serialized engine")
    return data
