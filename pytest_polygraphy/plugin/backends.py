"""Runners for the selected backends, built once per worker and reused by every test.

``RunnerCache`` keys an activated runner by (model, backend, precision, shape set and the
settings a backend reads), so a suite creates each ONNX Runtime session or TensorRT engine
once per xdist worker; TensorRT engines are also cached on disk (``--polygraphy-cache-dir``)
across workers and runs by the runner itself. At most ``max_active`` runners stay active;
the least recently used one is deactivated when another is needed, which bounds memory
when a folder of models is tested.

Heavy modules are imported only when a runner is built.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from pytest_polygraphy.errors import BackendUnavailableError
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.plugin.settings import AccuracySettings

FULL_PRECISION = "fp32"


def runner_name(backend: str, precision: str) -> str:
    """``onnxref`` for fp32, else e.g. ``trt[fp16]`` (ONNX Runtime names its own runners)."""
    return backend if precision == FULL_PRECISION else f"{backend}[{precision}]"


def model_key(model: Any) -> Hashable:
    """What identifies a model for caching: path, size and modification time of a file
    (cheap, and changes when the file is rewritten), else the content hash of a proto."""
    if isinstance(model, str | os.PathLike):
        path = Path(model).resolve()
        try:
            stat = path.stat()
        except OSError:
            return (str(path), None, None)
        return (str(path), stat.st_size, stat.st_mtime_ns)
    from pytest_polygraphy.models import model_hash

    return ("proto", model_hash(model))


def _shapes_key(settings: AccuracySettings) -> Hashable:
    shapes = settings.input_shapes or {}
    return tuple(sorted(shapes.items()))


class RunnerCache:
    """Activated runners by key; see the module docstring. ``close()`` releases them all."""

    def __init__(self, options: PolygraphyOptions, max_active: int = 8) -> None:
        self.options = options
        self.max_active = max_active
        self._runners: OrderedDict[Hashable, Any] = OrderedDict()
        self._unavailable: dict[Hashable, BackendUnavailableError] = {}
        self._marked_models: dict[Hashable, Any] = {}

    def get(self, backend: str, model: Any, precision: str, settings: AccuracySettings) -> Any:
        """The activated runner of ``backend`` for ``model`` at ``precision``.

        Raises BackendUnavailableError (remembered per key, so a missing backend is asked
        once) when the backend cannot run here."""
        key = self._key(backend, model, precision, settings)
        if key in self._unavailable:
            raise self._unavailable[key]
        runner = self._runners.get(key)
        if runner is not None:
            self._runners.move_to_end(key)
            if not runner.is_active:  # a test left a `with runner:` block
                runner.activate()
            return runner
        try:
            marked = None if backend == "trt" else self._marked(model, settings)
            runner = build_runner(backend, model, precision, settings, self.options, marked)
            self._make_room()
            runner.activate()
        except BackendUnavailableError as err:
            self._unavailable[key] = err
            raise
        self._runners[key] = runner
        return runner

    def close(self) -> None:
        """Deactivate every runner (at the end of the session)."""
        while self._runners:
            _, runner = self._runners.popitem(last=False)
            runner.deactivate()
        self._marked_models.clear()

    def _make_room(self) -> None:
        while len(self._runners) >= self.max_active:
            _, oldest = self._runners.popitem(last=False)
            oldest.deactivate()

    def _key(
        self, backend: str, model: Any, precision: str, settings: AccuracySettings
    ) -> Hashable:
        key: tuple[Hashable, ...] = (
            model_key(model),
            backend,
            precision,
            _shapes_key(settings),
            settings.mark_all,
        )
        if backend == "onnxrt":
            key += (self.options.providers,)
        if precision == "int8":  # calibrated with the test's inputs
            key += (settings.seed, settings.iterations, tuple(sorted(settings.val_range.items())))
        return key

    def _marked(self, model: Any, settings: AccuracySettings) -> Any:
        """The model with every tensor marked as an output, when ``mark_all`` is on."""
        if not settings.mark_all:
            return None
        key = model_key(model)
        if key not in self._marked_models:
            from pytest_polygraphy.models import MARK_ALL, load_model, mark_outputs

            self._marked_models[key] = mark_outputs(load_model(model), MARK_ALL)
        return self._marked_models[key]


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
    original, model = model, marked if marked is not None else model
    if backend == "onnxrt":
        from pytest_polygraphy.runners.onnxrt import OnnxrtRunner

        calibration = settings.data_loader() if precision == "int8" else None
        return OnnxrtRunner(
            model, providers=options.providers, precision=precision, calibration_data=calibration
        )
    if backend == "onnxref":
        from pytest_polygraphy.runners.onnxref import OnnxrefRunner

        if precision == FULL_PRECISION:
            return OnnxrefRunner(model, name=name)
        if precision == "fp16":
            from pytest_polygraphy.models import convert_to_fp16

            return OnnxrefRunner(convert_to_fp16(model), name=name)
        raise BackendUnavailableError(
            f"onnx's reference evaluator runs fp32 and fp16 only, not {precision}; "
            "select --onnxrt or --trt for it"
        )
    if backend == "trt":
        from pytest_polygraphy.runners.trt import TrtRunner

        return TrtRunner(
            original,
            precision=precision,
            shapes=dict(settings.input_shapes) if settings.input_shapes else None,
            cache_dir=options.cache_dir,
            mark_all=settings.mark_all,
            calibration_data=settings.data_loader() if precision == "int8" else None,
        )
    raise ValueError(f"unknown backend {backend!r}")
