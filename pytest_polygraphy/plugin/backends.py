"""Runners for the selected backends, built once per worker and reused by every test.

``RunnerCache`` builds each runner once per xdist worker for its (model, backend,
precision, build settings), the settings the built session or engine depends on:

* ONNX Runtime sessions and reference evaluators do not depend on the input shapes (the
  feed's shapes are checked per call), so every shape set of a model shares them;
* TensorRT engines depend on their optimization profiles, which by default cover every
  shape set of the test (``plugin.profiles``): an engine is built once per profile set,
  not per shape set (and cached on disk across workers and runs by the runner,
  ``--polygraphy-cache-dir``); a prebuilt engine file (``.engine``/``.plan``) is loaded
  once, whatever the precision and shapes of the tests that run it;
* int8 models are calibrated with the test's inputs (shapes, seed, iterations, value
  ranges, loaded inputs) and ``--polygraphy-trt-calibrator``'s method, so those are part
  of an int8 runner's key;
* ``mark_all`` and, for ONNX Runtime, the execution providers are part of every key.

Memory is bounded by distinct models: the runners of at most ``max_models`` models
(default 8) stay active; when a test needs a model beyond that, every runner of the least
recently used model is deactivated. A model's runners are bounded by its precisions (and
for TensorRT its shape sets), never by how many tests use them. A suite sorted by model
(pytest's default order) builds each runner once.

Heavy modules are imported only when a runner is built.
"""

from __future__ import annotations

import os
from collections import Counter, OrderedDict
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.errors import BackendUnavailableError, ModelError, note_preparing_runner
from pytest_polygraphy.files import file_version
from pytest_polygraphy.plugin.options import PolygraphyOptions, get_options
from pytest_polygraphy.plugin.runsyntax import MARK_ALL
from pytest_polygraphy.plugin.settings import AccuracySettings
from pytest_polygraphy.plugin.syntax import BELOW_FP16, FULL_PRECISION

__all__ = ["FULL_PRECISION", "RunnerCache", "build_runner", "model_key", "runner_name"]


def runner_name(backend: str, precision: str) -> str:
    """``onnxref`` for fp32, else e.g. ``trt[fp16]`` (ONNX Runtime names its own runners)."""
    return backend if precision == FULL_PRECISION else f"{backend}[{precision}]"


def model_key(model: Any) -> Hashable:
    """What identifies a model for caching: path, file identity (device and inode), size
    and modification time of a file (cheap, and changes when the file is rewritten, or
    replaced by another one even with the same size and time), else the content hash of a
    proto."""
    if isinstance(model, str | os.PathLike):
        path = Path(model).resolve()
        return (str(path), file_version(path))
    from pytest_polygraphy.models import model_hash

    return ("proto", model_hash(model))


def _shapes_key(settings: AccuracySettings) -> Hashable:
    shapes = settings.input_shapes or {}
    return tuple(sorted(shapes.items()))


#: How many distinct models keep their runners active (see the module docstring).
MAX_ACTIVE_MODELS = 8

#: How many ONNX Runtime int8 variants (quantized models) are kept, whether or not their
#: model's runners are active: quantizing is what makes an int8 runner slow to build.
MAX_INT8_VARIANTS = 8

#: ONNX Runtime session settings of the plugin's sessions. By default each session's
#: thread pool spins after every run, so sessions kept alive for later tests take CPU
#: from the test running now, and deactivating one that sat idle waited on its threads
#: (tens of ms each on a loaded 2-core machine). A test suite does not need that latency.
IDLE_SESSION_OPTIONS = {
    "session.intra_op.allow_spinning": "0",
    "session.inter_op.allow_spinning": "0",
}


class RunnerCache:
    """Activated runners by model, then by build key; see the module docstring.

    ``built`` counts the runners built so far, by (backend, precision): what a benchmark or
    a test reads to see that nothing was built twice. ``close()`` releases them all."""

    def __init__(self, options: PolygraphyOptions, max_models: int = MAX_ACTIVE_MODELS) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self.options = options
        self.max_models = max_models
        self.built: Counter[tuple[str, str]] = Counter()
        self._models: OrderedDict[Hashable, dict[Hashable, Any]] = OrderedDict()
        self._unavailable: dict[tuple[Hashable, Hashable], BackendUnavailableError] = {}
        self._marked_models: dict[Hashable, dict[Hashable, Any]] = {}
        #: int8 variants by (model, calibration data); see ``int8_model``.
        self._int8_models: OrderedDict[Hashable, Any] = OrderedDict()
        #: How many times each model was quantized for ONNX Runtime's int8.
        self.quantized: Counter[Hashable] = Counter()

    def get(self, backend: str, model: Any, precision: str, settings: AccuracySettings) -> Any:
        """The activated runner of ``backend`` for ``model`` at ``precision``.

        Raises BackendUnavailableError (remembered per key, so a missing backend is asked
        once) when the backend cannot run here."""
        model_id = model_key(model)
        if backend == "trt" and is_engine_file(model):
            key: Hashable = ("trt", "engine file")
        else:
            key = self._key(backend, precision, settings)
        if (model_id, key) in self._unavailable:
            raise self._unavailable[model_id, key]
        runners = self._models.get(model_id)
        if runners is not None:
            self._models.move_to_end(model_id)
            runner = runners.get(key)
            if runner is not None:
                if not runner.is_active:  # a test left a `with runner:` block
                    runner.activate()
                return runner
        try:
            marked = None if backend == "trt" else self._marked(model, model_id, settings)
            if backend == "onnxrt" and precision == "int8":
                marked = self.int8_model(model, model_id, settings)
            runner = build_runner(backend, model, precision, settings, self.options, marked)
            self.built[backend, precision] += 1
            if runners is None:
                self._make_room()
            runner.activate()
        except BackendUnavailableError as err:
            self._unavailable[model_id, key] = err
            raise
        except Exception as err:
            note_preparing_runner(err)
            raise
        self._models.setdefault(model_id, {})[key] = runner
        self._models.move_to_end(model_id)
        return runner

    def active_runners(self) -> list[Any]:
        """Every runner alive now, least recently used model first."""
        return [runner for runners in self._models.values() for runner in runners.values()]

    @property
    def active_models(self) -> int:
        """How many models have runners alive now (at most ``max_models``)."""
        return len(self._models)

    def close(self) -> None:
        """Deactivate every runner (at the end of the session)."""
        while self._models:
            self._evict_oldest()
        self._marked_models.clear()

    def _make_room(self) -> None:
        while len(self._models) >= self.max_models:
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        model_id, runners = self._models.popitem(last=False)
        self._marked_models.pop(model_id, None)
        for runner in runners.values():
            runner.deactivate()

    def _key(self, backend: str, precision: str, settings: AccuracySettings) -> Hashable:
        """What a runner of ``backend`` at ``precision`` is built from, besides the model."""
        key: tuple[Hashable, ...] = (backend, precision, settings.output_selection())
        if settings.keep_fp32 and precision != FULL_PRECISION:
            key += (tuple(sorted(settings.keep_fp32)),)
        if settings.keep_fp16 and precision in BELOW_FP16:
            key += ("fp16", tuple(sorted(settings.keep_fp16)))
        if backend == "onnxrt":
            key += (self.options.providers,)
        if backend == "trt":  # every build option is part of the engine
            key += (repr(sorted(settings.trt_build_kwargs().items())),)
            key += (repr(sorted(_trt_cache_kwargs(settings, precision).items())),)
        if backend == "trt":  # the optimization profiles, not the shape set
            from pytest_polygraphy.plugin.profiles import profile_key

            key += (profile_key(settings),)
        if precision == "int8":  # the calibration data
            key += (_shapes_key(settings),)
        if precision == "int8":
            key += (
                settings.trt_calibrator,
                settings.seed,
                settings.iterations,
                tuple(sorted(settings.val_range.items())),
                settings.input_sources(),
            )
        return key

    def _marked(self, model: Any, model_id: Hashable, settings: AccuracySettings) -> Any:
        """The model with the tensors to compare marked as its outputs (``mark_all``,
        ``outputs``, ``exclude_outputs``), or None when they are the model's outputs."""
        if not settings.selects_outputs:
            return None
        selection = settings.output_selection()
        marked = self._marked_models.setdefault(model_id, {})
        if selection not in marked:
            from pytest_polygraphy.models import load_model, mark_outputs

            proto = load_model(model)
            outputs, exclude = selection
            if outputs is None:
                outputs = [value.name for value in proto.graph.output]
            try:
                marked[selection] = mark_outputs(proto, outputs, exclude)
            except ModelError as err:
                from pytest_polygraphy.runners.base import model_display_name

                raise ModelError(f"{model_display_name(model)}: {err}") from None
        return marked[selection]

    def int8_model(self, model: Any, model_id: Hashable, settings: AccuracySettings) -> Any:
        """The ONNX Runtime int8 (QDQ) variant of ``model``, calibrated with the test's
        inputs by ``--polygraphy-trt-calibrator``'s method: quantized once per model and
        calibration data, kept while the model's runners are (re-activating a runner,
        other providers or a runner rebuilt after its model was evicted and used again
        reuse it). The last ``MAX_INT8_VARIANTS`` are kept. Nodes kept in fp32 are left
        out of the quantization, nodes kept in fp16 also run in float16."""
        key = (
            model_id,
            settings.trt_calibrator,
            tuple(sorted(settings.keep_fp32)),
            tuple(sorted(settings.keep_fp16)),
            settings.output_selection(),
            _shapes_key(settings),
            settings.seed,
            settings.iterations,
            tuple(sorted(settings.val_range.items())),
            settings.input_sources(),
        )
        if key not in self._int8_models:
            from pytest_polygraphy.models import input_metadata, load_model, quantize_int8

            marked = self._marked(model, model_id, settings)
            proto = marked if marked is not None else load_model(model)
            loader = settings.data_loader()
            if hasattr(loader, "bind"):
                loader = loader.bind(input_metadata(proto))
            self._int8_models[key] = quantize_int8(
                proto,
                loader,
                exclude=settings.keep_fp32,
                keep_fp16=settings.keep_fp16,
                calibration_method=ORT_CALIBRATION_METHODS[settings.trt_calibrator],
            )
            self.quantized[model_id] += 1
            while len(self._int8_models) > MAX_INT8_VARIANTS:
                self._int8_models.popitem(last=False)
        self._int8_models.move_to_end(key)
        return self._int8_models[key]


RUNNER_CACHE_KEY = pytest.StashKey["RunnerCache"]()


def runner_cache(config: pytest.Config) -> RunnerCache:
    """This process's runner cache (created on first use, closed when pytest ends)."""
    cache = config.stash.get(RUNNER_CACHE_KEY, None)
    if cache is None:
        cache = RunnerCache(get_options(config))
        config.stash[RUNNER_CACHE_KEY] = cache
        config.add_cleanup(cache.close)
    return cache


def build_runner(
    backend: str,
    model: Any,
    precision: str,
    settings: AccuracySettings,
    options: PolygraphyOptions,
    marked: Any = None,
) -> Any:
    """A new, inactive runner of ``backend`` (``onnxrt``, ``onnxref`` or ``trt``).

    ``marked`` is the model with every tensor marked as an output (``mark_all``), for
    the ONNX backends; TensorRT marks its layers itself (Polygraphy's skip rules)."""
    name = runner_name(backend, precision)
    if backend == "trt" and is_engine_file(model):
        return _engine_runner(model, settings)
    original, model = model, marked if marked is not None else model
    keep, keep16 = settings.keep_fp32, settings.keep_fp16
    if keep or keep16:
        _check_kept(original, keep, keep16)
        if precision == FULL_PRECISION:
            keep = ()
        if precision not in BELOW_FP16:
            keep16 = ()
    if backend == "onnxrt":
        from pytest_polygraphy.runners.onnxrt import OnnxrtRunner

        # RunnerCache hands in the int8 variant, quantized once (its Q/DQ nodes tell the
        # runner not to quantize again); called alone, the runner quantizes it.
        calibration = settings.data_loader() if precision == "int8" and marked is None else None
        return OnnxrtRunner(
            model,
            providers=options.providers,
            precision=precision,
            calibration_data=calibration,
            session_options=dict(IDLE_SESSION_OPTIONS),
            fp16_block_list=keep,
            int8_exclude=keep,
            keep_fp16=keep16,
        )
    if backend == "onnxref":
        from pytest_polygraphy.runners.onnxref import OnnxrefRunner

        if precision == FULL_PRECISION:
            return OnnxrefRunner(model, name=name)
        if precision == "fp16":
            from pytest_polygraphy.models import convert_to_fp16

            return OnnxrefRunner(convert_to_fp16(model, block_list=keep), name=name)
        raise BackendUnavailableError(
            f"onnx's reference evaluator runs fp32 and fp16 only, not {precision}; "
            "select --onnxrt or --trt for it"
        )
    if backend == "trt":
        from pytest_polygraphy.models import input_metadata
        from pytest_polygraphy.plugin.profiles import trt_profiles
        from pytest_polygraphy.runners.trt import TrtRunner

        return TrtRunner(
            original,
            precision=precision,
            profiles=trt_profiles(settings, input_metadata(original)) or None,
            cache_dir=options.cache_dir,
            mark_all=settings.output_selection()[0] == MARK_ALL,
            outputs=_named_outputs(settings),
            exclude_outputs=settings.exclude_outputs,
            keep_fp32=keep,
            keep_fp16=keep16,
            use_cache=options.build is None,
            calibration_data=settings.data_loader() if precision == "int8" else None,
            **settings.trt_build_kwargs(),
            **_trt_cache_kwargs(settings, precision, fresh=options.build is not None),
        )
    raise ValueError(f"unknown backend {backend!r}")


def _check_kept(model: Any, keep_fp32: Sequence[str], keep_fp16: Sequence[str]) -> None:
    """ModelError for a kept name that is not a node of ``model`` (with the closest names)
    or a node kept both in fp32 and in fp16."""
    from pytest_polygraphy.models import load_model
    from pytest_polygraphy.models.nodes import check_node_names

    proto = load_model(model, load_external_data=False)
    check_node_names(proto, keep_fp32, "keep_fp32")
    check_node_names(proto, keep_fp16, "keep_fp16")
    both = [name for name in keep_fp32 if name in set(keep_fp16)]
    if both:
        raise ModelError(
            f"nodes {both} are kept both in fp32 (keep_fp32) and in fp16 (keep_fp16); keep "
            "each node in one precision: remove it from one of the lists"
        )


#: ``--polygraphy-trt-calibrator`` -> ``quantize_int8``'s calibration method for ONNX
#: Runtime's int8 (None: MinMax, the default of the Q/DQ path).
ORT_CALIBRATION_METHODS = {None: "minmax", "minmax": "minmax", "entropy2": "entropy"}


def _trt_cache_kwargs(
    settings: AccuracySettings, precision: str, *, fresh: bool = False
) -> dict[str, Any]:
    """``TrtRunner``'s timing cache file, calibrator and calibration cache file (the
    calibrator and its cache apply to int8 only). ``fresh`` (``--polygraphy-build``:
    every iteration builds from scratch): no timing cache file either, so that each
    build times its own tactics."""
    int8 = precision == "int8"
    return {
        "timing_cache": None if fresh else settings.trt_timing_cache,
        "calibrator": settings.trt_calibrator if int8 else None,
        "calibration_cache": settings.calibration_cache if int8 else None,
    }


def _named_outputs(settings: AccuracySettings) -> tuple[str, ...] | None:
    """The output names TensorRT marks (None: the model's outputs, or mark all)."""
    outputs = settings.output_selection()[0]
    return None if outputs is None or outputs == MARK_ALL else tuple(outputs)


def is_engine_file(model: Any) -> bool:
    """True for the path of a serialized TensorRT engine (``.engine``, ``.plan``)."""
    from pytest_polygraphy.plugin.syntax import ENGINE_SUFFIXES

    return isinstance(model, str | os.PathLike) and Path(model).suffix in ENGINE_SUFFIXES


def _engine_runner(engine: Any, settings: AccuracySettings) -> Any:
    """A ``TrtEngineRunner`` for a prebuilt engine file. Its outputs were fixed when it
    was built, so a test that selects other tensors to compare fails, saying so."""
    if settings.selects_outputs:
        outputs, exclude = settings.output_selection()
        asked = []
        if outputs is not None:
            asked.append("mark all" if outputs == MARK_ALL else f"outputs {list(outputs)}")
        if exclude:
            asked.append(f"exclude_outputs {list(exclude)}")
        raise ModelError(
            f"engine file {engine}: its outputs were fixed when it was built, so "
            f"{' and '.join(asked)} cannot apply to it; test its ONNX model for that, or "
            "build the engine with those outputs marked"
        )
    from pytest_polygraphy.runners.trt import TrtEngineRunner

    return TrtEngineRunner(engine)
