"""ONNX model files as tests: ``pytest model.onnx --onnxrt --onnxref``.

A ``*.onnx`` file is collected when a backend switch is on the command line, when the
ini sets ``polygraphy_collect_models = true`` (or ``--polygraphy-collect-models`` is
given), or when the file itself is named on the command line; otherwise a project's
``.onnx`` files (test data of other tests, say) are left alone.

Each model becomes one test per precision and shape set, e.g.
``models/resnet.onnx::accuracy[fp16-x=8x3x224x224]``, that runs the model on every
selected backend and compares every output with the reference (see ``accuracy``).
Per-model settings come from ``resnet.polygraphy.json`` beside the model and the ini
option ``polygraphy_model_settings`` (see ``modelsettings``).

The collection hook runs on every pytest start: what a model test needs is imported when
a model is collected or run.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_polygraphy.errors import PolygraphyError
from pytest_polygraphy.plugin.hooks import runner_cache
from pytest_polygraphy.plugin.options import get_options
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.syntax import OptionValueError, ShapeSet, shape_set_id

ITEM_NAME = "accuracy"


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """Collect ``*.onnx`` files (see the module docstring for when)."""
    if file_path.suffix != ".onnx":
        return None
    options = get_options(parent.config)
    if not (
        options.backends_on_command_line
        or options.collect_models
        or parent.session.isinitpath(file_path)
    ):
        return None
    return ModelFile.from_parent(parent, path=file_path)


def item_id(precision: str, input_shapes: ShapeSet | None) -> str:
    """``fp16`` or ``fp16-x=8x3x224x224``: stable, the same on every xdist worker."""
    return precision if input_shapes is None else f"{precision}-{shape_set_id(input_shapes)}"


class ModelFile(pytest.File):
    """An ONNX model: one ``ModelItem`` per precision and shape set."""

    def collect(self) -> Iterator[ModelItem]:
        from pytest_polygraphy.plugin.modelsettings import settings_for_model

        options = get_options(self.config)
        try:
            settings = settings_for_model(self.path, options.model_settings, self.config.rootpath)
        except OptionValueError as err:
            raise self.CollectError(f"{self.path}: {err}") from None
        precisions = settings.get("precisions") or options.precisions
        shape_sets: tuple[ShapeSet | None, ...] = (
            settings.get("input_shapes") or options.input_shapes or (None,)
        )
        for precision in precisions:
            for shapes in shape_sets:
                item = ModelItem.from_parent(
                    self,
                    name=f"{ITEM_NAME}[{item_id(precision, shapes)}]",
                    precision=precision,
                    input_shapes=shapes,
                    model_settings=settings,
                )
                if settings.get("skip"):
                    item.add_marker(pytest.mark.skip(reason=settings["skip"]))
                yield item


class ModelItem(pytest.Item):
    """Runs the model on every selected backend and compares with the reference."""

    def __init__(
        self,
        *,
        precision: str,
        input_shapes: ShapeSet | None,
        model_settings: dict[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.precision = precision
        self.input_shapes = input_shapes
        self.model_settings = model_settings

    def runtest(self) -> None:
        from pytest_polygraphy.plugin.accuracy import Comparer, check_accuracy
        from pytest_polygraphy.plugin.golden import GoldenFile, golden_path
        from pytest_polygraphy.plugin.settings import resolve

        options = get_options(self.config)
        try:
            settings = resolve(
                options,
                precision=self.precision,
                input_shapes=self.input_shapes,
                layers=[self.model_settings],
            )
        except OptionValueError as err:
            fail(f"{self.path}: {err}")
        reference = settings.reference
        golden = None
        if reference == "golden":
            path = golden_path(self.path, self.name, options.golden_dir, self.config.rootpath)
            golden = GoldenFile(path)
        try:
            check_accuracy(
                Comparer(self.config, self.nodeid, self.user_properties, settings),
                self.path,
                backends=options.backends,
                reference=reference,
                cache=runner_cache(self.config),
                golden=golden,
                update_golden=options.update_golden,
            )
        except pytest.skip.Exception as skip:
            skip._use_item_location = True  # report the model file, not the plugin's line
            raise

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """A user-caused error is its message, not a traceback into the plugin."""
        if isinstance(excinfo.value, PolygraphyError):
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, self.name  # a line is required to report a skip
