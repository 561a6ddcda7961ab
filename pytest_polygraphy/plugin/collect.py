"""ONNX model files as tests: ``pytest model.onnx --onnxrt --onnxref``.

A ``*.onnx`` file is collected when a backend switch is on the command line, when the
ini sets ``polygraphy_collect_models = true`` (or ``--polygraphy-collect-models`` is
given), or when the file itself is named on the command line; otherwise a project's
``.onnx`` files (test data of other tests, say) are left alone.

Each model becomes one test per precision and shape set, e.g.
``models/resnet.onnx::accuracy[fp16-x=8x3x224x224]``, that runs the model on every
selected backend and compares every output with the reference (see ``accuracy``).
Per-model settings come from ``resnet.polygraphy.json`` beside the model and the ini
option ``polygraphy_model_settings`` (see ``modelsettings``); a value given on the command
line wins over them. A bad per-model setting becomes one failing item,
``resnet.onnx::accuracy``, with the message: the other models still run.

A prebuilt TensorRT engine (``det.plan`` or ``det.engine``) is collected the same way and
becomes the same tests, e.g. ``models/det.plan::accuracy[fp16]``: the engine runs on
TensorRT (``--trt``) and is compared with the ONNX model it was built from, named by the
``model`` key of its per-model settings (``det.polygraphy.json``: ``{"model": "det.onnx"}``,
or an ini ``polygraphy_model_settings`` line), run on the reference backend. The engine's
precision names its default tolerances (``"precisions": ["fp16"]`` for an fp16 engine).

Imported only when a model or engine file is met: the collection hook that runs on
every pytest start is ``hooks.RunHooks.pytest_collect_file``, which looks at the suffix
first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.errors import PolygraphyError
from pytest_polygraphy.plugin.options import get_options
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.syntax import (
    ENGINE_SUFFIXES,
    OptionValueError,
    ShapeSet,
    shape_set_id,
)

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.modelsettings import Layer

ITEM_NAME = "accuracy"


def collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """The collector of a model or engine file (``hooks.RunHooks.pytest_collect_file``
    calls this for those suffixes only), or None when it is left out (module docstring)."""
    options = get_options(parent.config)
    if not (
        options.backends_on_command_line
        or options.collect_models
        or parent.session.isinitpath(file_path)
    ):
        return None
    if file_path.suffix in ENGINE_SUFFIXES:
        return EngineFile.from_parent(parent, path=file_path)
    return ModelFile.from_parent(parent, path=file_path)


def item_id(precision: str, input_shapes: ShapeSet | None) -> str:
    """``fp16`` or ``fp16-x=8x3x224x224``: stable, the same on every xdist worker."""
    return precision if input_shapes is None else f"{precision}-{shape_set_id(input_shapes)}"


class ModelFile(pytest.File):
    """An ONNX model: one ``ModelItem`` per precision and shape set."""

    item_class: type[ModelItem]

    def collect(self) -> Iterator[pytest.Item]:
        from pytest_polygraphy.plugin.modelsettings import merge, model_layers
        from pytest_polygraphy.plugin.settings import ordered_layers, pick

        options = get_options(self.config)
        try:
            layers = model_layers(self.path, options.model_settings, self.config.rootpath)
        except OptionValueError as err:
            # One bad model must not stop the session: its test fails, the others run.
            yield BadSettingsItem.from_parent(self, name=ITEM_NAME, message=str(err))
            return
        ordered = ordered_layers(options, layers)
        precisions = pick(ordered, "precisions")[0] or options.precisions
        shape_sets: tuple[ShapeSet | None, ...] = pick(ordered, "input_shapes")[0] or (None,)
        merged = merge(*(layer.values for layer in layers))
        skip = merged.get("skip")
        for precision in precisions:
            for shapes in shape_sets:
                item = self.item_class.from_parent(
                    self,
                    name=f"{ITEM_NAME}[{item_id(precision, shapes)}]",
                    precision=precision,
                    input_shapes=shapes,
                    model_layers=layers,
                )
                if skip:
                    item.add_marker(pytest.mark.skip(reason=skip))
                yield item


class BadSettingsItem(pytest.Item):
    """Stands for a model whose per-model settings cannot be read: fails with why."""

    def __init__(self, *, message: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.message = message

    def runtest(self) -> None:
        fail(self.message)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name


class ModelItem(pytest.Item):
    """Runs the model on every selected backend and compares with the reference."""

    def __init__(
        self,
        *,
        precision: str,
        input_shapes: ShapeSet | None,
        model_layers: list[Layer],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.precision = precision
        self.input_shapes = input_shapes
        self.model_layers = model_layers

    def runtest(self) -> None:
        from pytest_polygraphy.plugin import debug
        from pytest_polygraphy.plugin.accuracy import Comparer, check_accuracy
        from pytest_polygraphy.plugin.backends import runner_cache
        from pytest_polygraphy.plugin.golden import golden_file
        from pytest_polygraphy.plugin.records import SOURCES_PROPERTY
        from pytest_polygraphy.plugin.settings import resolve

        options = get_options(self.config)
        try:
            settings = resolve(
                options,
                precision=self.precision,
                input_shapes=self.input_shapes,
                layers=self.model_layers,
            )
        except OptionValueError as err:
            fail(f"{self.path}: {err}")
        self.user_properties.append((SOURCES_PROPERTY, settings.sources))
        model_path = self._model_for_run()
        engine = self._engine_for_run()
        cannot = None
        if engine is not None:
            cannot = (
                f"the test runs the prebuilt engine {engine}, which a variant of its ONNX "
                f"model cannot change; debug {model_path} as a model-file test instead"
            )
        debug.remember(self, model=model_path, settings=settings, cannot=cannot)
        settings = debug.variant_settings(self, settings, options)
        model = debug.variant_model(self, model_path)
        reference = settings.reference
        golden = None
        if reference == "golden":
            golden = golden_file(
                self.path, self.name, self.nodeid, options.golden_dir, self.config.rootpath
            )
        try:
            check_accuracy(
                Comparer(self.config, self.nodeid, self.user_properties, settings),
                model,
                backends=options.backends,
                reference=reference,
                cache=runner_cache(self.config),
                golden=golden,
                update_golden=options.update_golden,
                engine=engine,
            )
        except pytest.skip.Exception as skip:
            skip._use_item_location = True  # report the model file, not the plugin's line
            raise

    def _model_for_run(self) -> Path:
        """The ONNX model the test runs: the model file itself."""
        return self.path

    def _engine_for_run(self) -> Path | None:
        """The prebuilt engine under test (engine files only)."""
        return None

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """A user-caused error is its message (the traceback only with ``-v`` or
        ``--tb=long``), not a traceback into the plugin."""
        if isinstance(excinfo.value, PolygraphyError):
            from pytest_polygraphy.plugin.accuracy import error_report
            from pytest_polygraphy.plugin.settings import AccuracySettings

            settings = AccuracySettings(precision=self.precision, input_shapes=self.input_shapes)
            return error_report(self.config, excinfo.value, settings)
        return super().repr_failure(excinfo, style=style)

    def _traceback_filter(self, excinfo: pytest.ExceptionInfo[BaseException]) -> Any:
        """An unexpected error's traceback starts at ``runtest``, not in pytest's and
        pluggy's frames that called it."""
        traceback = excinfo.traceback
        cut = traceback.cut(path=Path(__file__))
        return (cut if cut is not traceback else traceback).filter(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        # A line is required to report a skip; the headline of a failure names the model.
        return self.path, 0, self.nodeid


class EngineItem(ModelItem):
    """Runs a prebuilt TensorRT engine and compares it with the ONNX model it was built
    from, run on the reference backend (the ``model`` key of its per-model settings)."""

    def reference_model(self) -> Path:
        """The engine's ONNX model; fails the test, naming the file and the fix, when it
        is not named, missing or not a readable ONNX model."""
        from pytest_polygraphy.errors import ModelError
        from pytest_polygraphy.models import input_metadata
        from pytest_polygraphy.plugin.modelsettings import merge_sourced, sidecar_path

        merged, sources = merge_sourced(self.model_layers)
        model = merged.get("model")
        if model is None:
            fail(
                f"{self.path}: an engine file is tested against the ONNX model it was built "
                "from, and none is named: add "
                f'"model": "{self.path.stem}.onnx" (its path) to '
                f"{sidecar_path(self.path)}, or an ini polygraphy_model_settings line "
                f'\'{self.path.name} {{"model": "..."}}\''
            )
        where = sources.get("model", "per-model settings")
        if not Path(model).is_file():
            fail(f"{self.path}: its ONNX model {model} (named in {where}) does not exist")
        try:
            input_metadata(model)
        except ModelError as err:
            fail(f"{self.path}: its ONNX model {model} (named in {where}) cannot be read: {err}")
        return Path(model)

    def _model_for_run(self) -> Path:
        if "trt" not in get_options(self.config).backends:
            pytest.skip("engine files run on TensorRT: select --trt (with --onnxref or --onnxrt)")
        return self.reference_model()

    def _engine_for_run(self) -> Path | None:
        return self.path


ModelFile.item_class = ModelItem


class EngineFile(ModelFile):
    """A prebuilt TensorRT engine: one ``EngineItem`` per precision and shape set."""

    item_class = EngineItem
