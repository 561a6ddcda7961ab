"""Fixtures for hand-written accuracy tests (``pytest --fixtures`` shows these docs).

A typical test::

    import pytest

    @pytest.mark.model("models/classifier.onnx")
    @pytest.mark.precisions("fp32", "fp16")
    @pytest.mark.tolerance(atol={"": 1e-3, "logits": 1e-2})
    def test_classifier(accuracy):
        accuracy.check()   # every selected backend against the reference, every output

run with ``pytest --onnxrt --onnxref``. Runners come from a per-worker cache, already
activated; a backend that cannot run here skips the test with the reason.
This module is registered on every pytest start, so it imports only what the entry point
already has; the rest (settings, checks, runners) is imported inside the fixtures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.errors import BackendUnavailableError, PolygraphyError
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.vocabulary import FULL_PRECISION, OptionValueError, ShapeSet

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.checks import Accuracy, Golden
    from pytest_polygraphy.plugin.options import PolygraphyOptions
    from pytest_polygraphy.plugin.settings import AccuracySettings


def _options(config: pytest.Config) -> PolygraphyOptions:
    """The run's options, parsed on first use (this module loads at every start)."""
    from pytest_polygraphy.plugin.options import get_options

    return get_options(config)


def _model_from_markers(request: pytest.FixtureRequest) -> Path | None:
    from pytest_polygraphy.plugin import markers

    try:
        path = markers.model_path(request.node)
    except OptionValueError as err:
        fail(str(err))
    return path if path is not None else _options(request.config).model


@pytest.fixture
def model(request: pytest.FixtureRequest) -> Path:
    """The ONNX model file of the test: from ``@pytest.mark.model(path)`` (relative to the
    test file), else the ini option ``polygraphy_model``. Override it like any fixture
    (e.g. to return an ``onnx.ModelProto`` built in the test)::

        @pytest.mark.model("models/net.onnx")
        def test_inputs(model):
            assert model.name == "net.onnx"
    """
    from pytest_polygraphy.plugin import debug

    variant = debug.active_variant(request.node)
    if variant is not None and variant.model is not None:
        return variant.model
    path = _model_from_markers(request)
    if path is None:
        fail(
            f"{request.node.nodeid} has no model: mark it with @pytest.mark.model('net.onnx'), "
            "set polygraphy_model in the ini file, or override the model fixture"
        )
    if not path.exists():
        fail(f"model file {path} (of {request.node.nodeid}) does not exist")
    debug.remember(request.node, model=path)
    return path


@pytest.fixture
def precision(request: pytest.FixtureRequest) -> str:
    """The precision the backends under test run at (the reference runs at fp32).

    Tests using it (directly or through ``runners``, ``accuracy``, ...) are parametrized
    by ``@pytest.mark.precisions(...)``, else ``--polygraphy-precisions`` (default fp32)::

        @pytest.mark.precisions("fp32", "fp16")
        def test_precision(precision):
            assert precision in ("fp32", "fp16")
    """
    return str(getattr(request, "param", _options(request.config).precisions[0]))


@pytest.fixture
def input_shapes(request: pytest.FixtureRequest) -> ShapeSet | None:
    """The test's input shape set ``{input name: shape}``, or None when none is given.

    Tests using it are parametrized by ``@pytest.mark.shapes(...)``, else by each
    ``--polygraphy-input-shapes`` given::

        @pytest.mark.shapes("x:[1,3]", {"x": [8, 3]})
        def test_batches(input_shapes):
            assert input_shapes["x"][1] == 3
    """
    return getattr(request, "param", None)


@pytest.fixture
def polygraphy_settings(request: pytest.FixtureRequest) -> AccuracySettings:
    """The test's resolved settings (``AccuracySettings``): inputs (seed, iterations,
    value ranges, loaded files), tolerances per output, compare function. Precedence,
    lowest first: defaults (the precision's tolerances) < ini options < the model's
    per-model settings (ini lines, ``.polygraphy.json``) < command-line options < the
    test's markers. ``sources`` says where each value came from (``pytest -v`` lists it).

    The precision and shape set are the test's when it is parametrized by them (it uses
    ``precision``, ``input_shapes`` or a fixture that does: runners, ``data_loader``,
    ``accuracy``); otherwise fp32 and none, so a test using only ``golden`` or
    ``compare_func`` is not multiplied by the precisions::

        @pytest.mark.tolerance(rtol={"": 1e-3, "boxes": 1e-2})
        def test_tolerance(polygraphy_settings):
            assert polygraphy_settings.tolerance("boxes")[0] == 1e-2
            assert polygraphy_settings.sources["rtol[boxes]"] == "@pytest.mark.tolerance"
    """
    from pytest_polygraphy.plugin import markers

    parametrized = "precision" in request.fixturenames
    precision = request.getfixturevalue("precision") if parametrized else FULL_PRECISION
    input_shapes = (
        request.getfixturevalue("input_shapes") if "input_shapes" in request.fixturenames else None
    )
    from pytest_polygraphy.plugin import debug
    from pytest_polygraphy.plugin.modelsettings import model_layers
    from pytest_polygraphy.plugin.records import SOURCES_PROPERTY
    from pytest_polygraphy.plugin.settings import resolve

    options = _options(request.config)
    model_path = (
        request.getfixturevalue("model")
        if "model" in request.fixturenames
        else _model_from_markers(request)
    )
    try:
        layers = []
        if isinstance(model_path, str | Path):
            layers = model_layers(Path(model_path), options.model_settings, request.config.rootpath)
        settings = resolve(
            options,
            precision=precision,
            input_shapes=input_shapes,
            layers=layers,
            markers=markers.layers(request.node),
        )
    except OptionValueError as err:
        fail(f"{request.node.nodeid}: {err}")
    if not parametrized:
        settings.sources.pop("precision", None)
    request.node.user_properties.append((SOURCES_PROPERTY, settings.sources))
    debug.remember(request.node, settings=settings)
    return debug.variant_settings(request.node, settings, options)


@pytest.fixture
def data_loader(input_shapes: ShapeSet | None, polygraphy_settings: AccuracySettings) -> Any:
    """The test's inputs: a ``DataLoader`` (seed, iterations, value ranges, input shapes
    from the options and markers), or the feeds loaded by ``--polygraphy-load-inputs``
    (``data.LoadedFeeds``, a list). Both have ``bind(runner.input_metadata)`` and both
    work with ``runners.run``::

        from pytest_polygraphy.runners.run import compare, run

        @pytest.mark.model("models/net.onnx")
        def test_net(runners, data_loader, compare_func):
            assert compare(run(runners, data_loader), compare_func)
    """
    return polygraphy_settings.data_loader()


@pytest.fixture
def compare_func(polygraphy_settings: AccuracySettings) -> Any:
    """The test's compare function (``CompareFunc.simple`` with the test's per-output
    tolerances by default), for ``assert_outputs_close(..., compare=compare_func)``::

        def test_close(compare_func):
            import numpy as np
            assert compare_func({"y": np.ones(3)}, {"y": np.ones(3)})
    """
    try:
        return polygraphy_settings.make_compare_func()
    except OptionValueError as err:
        fail(str(err))


def _runner(
    request: pytest.FixtureRequest,
    backend: str,
    model: Any,
    precision: str,
    settings: AccuracySettings,
) -> Any:
    from pytest_polygraphy.plugin.backends import runner_cache

    options = _options(request.config)
    if options.backends and backend not in options.backends and backend != settings.reference:
        pytest.skip(f"{backend} is not selected (pass --{backend})")
    if backend == "trt":
        model = _engine_or(request, model)
    try:
        runner = runner_cache(request.config).get(backend, model, precision, settings)
        if settings.save_engine is not None:
            from pytest_polygraphy.plugin.accuracy import save_engines

            is_reference = backend == settings.reference and precision == FULL_PRECISION
            save_engines(
                settings.save_engine,
                request.node.nodeid,
                runner if is_reference else None,
                [] if is_reference else [runner],
            )
        return runner
    except BackendUnavailableError as err:
        pytest.skip(str(err))
    except PolygraphyError as err:
        fail(f"{type(err).__name__}: {err}")


def _engine_or(request: pytest.FixtureRequest, model: Any) -> Any:
    """The test's ``@pytest.mark.engine`` file, else ``model``."""
    from pytest_polygraphy.plugin import markers

    try:
        engine = markers.engine_path(request.node)
    except OptionValueError as err:
        fail(f"{request.node.nodeid}: {err}")
    return model if engine is None else engine


@pytest.fixture
def onnxrt_runner(
    request: pytest.FixtureRequest,
    model: Any,
    precision: str,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> Any:
    """An activated ``OnnxrtRunner`` for ``model`` at ``precision`` (providers from
    ``--polygraphy-providers``), built once per worker. Skips when ONNX Runtime or a
    provider is unavailable, or when backend switches are given without ``--onnxrt``::

        @pytest.mark.model("models/net.onnx")
        def test_runs(onnxrt_runner, data_loader):
            for feed in data_loader.bind(onnxrt_runner.input_metadata):
                assert onnxrt_runner.infer(feed)
    """
    return _runner(request, "onnxrt", model, precision, polygraphy_settings)


@pytest.fixture
def onnxref_runner(
    request: pytest.FixtureRequest,
    model: Any,
    precision: str,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> Any:
    """An activated ``OnnxrefRunner`` (onnx's reference evaluator) for ``model`` at
    ``precision`` (fp32, or fp16 through ``convert_to_fp16``); see ``onnxrt_runner``::

        @pytest.mark.model("models/net.onnx")
        def test_ref(onnxref_runner):
            assert onnxref_runner.name == "onnxref"
    """
    return _runner(request, "onnxref", model, precision, polygraphy_settings)


@pytest.fixture
def trt_runner(
    request: pytest.FixtureRequest,
    model: Any,
    precision: str,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> Any:
    """An activated ``TrtRunner`` for ``model`` at ``precision`` (engine cached on disk in
    ``--polygraphy-cache-dir``); skips where TensorRT is not installed::

        @pytest.mark.model("models/net.onnx")
        def test_trt(trt_runner, onnxref_runner, data_loader, compare_func):
            from pytest_polygraphy.runners.run import compare, run
            assert compare(run([onnxref_runner, trt_runner], data_loader), compare_func)
    """
    return _runner(request, "trt", model, precision, polygraphy_settings)


@pytest.fixture
def runners(
    request: pytest.FixtureRequest,
    model: Any,
    precision: str,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> list[Any]:
    """Every selected backend's runner, activated: the reference first (at fp32), then
    the backends under test at ``precision``. With one backend and a reduced precision,
    that backend at fp32 is the reference; with reference ``golden``, only the backends
    under test are listed. Skips when no backend is selected or one is unavailable::

        from pytest_polygraphy.runners.run import compare, run

        @pytest.mark.model("models/net.onnx")
        def test_all(runners, data_loader, compare_func):
            comparison = compare(run(runners, data_loader), compare_func)
            assert comparison, comparison.report()
    """
    from pytest_polygraphy.plugin.accuracy import NO_BACKEND, plan

    options = _options(request.config)
    reference = polygraphy_settings.reference
    if not options.backends or reference is None:
        pytest.skip(NO_BACKEND)
    reference_spec, under_test = plan(options.backends, reference, precision)
    specs = ([reference_spec] if reference_spec is not None else []) + under_test
    from pytest_polygraphy.plugin.backends import runner_cache

    cache = runner_cache(request.config)
    engine = _engine_or(request, None)
    if engine is not None and reference == "trt":
        fail(
            f"{request.node.nodeid}: its engine is compared with its ONNX model on a "
            "reference backend, and TensorRT cannot be its own reference: select --onnxref "
            "or --onnxrt too"
        )
    try:
        found = [
            cache.get(
                b, engine if b == "trt" and engine is not None else model, p, polygraphy_settings
            )
            for b, p in specs
        ]
        if polygraphy_settings.save_engine is not None:
            from pytest_polygraphy.plugin.accuracy import save_engines

            has_reference = reference_spec is not None
            save_engines(
                polygraphy_settings.save_engine,
                request.node.nodeid,
                found[0] if has_reference else None,
                found[1:] if has_reference else found,
            )
        return found
    except BackendUnavailableError as err:
        pytest.skip(str(err))
    except PolygraphyError as err:
        fail(f"{type(err).__name__}: {err}")


@pytest.fixture
def accuracy(
    request: pytest.FixtureRequest,
    precision: str,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> Accuracy:
    """Compares the selected backends on the test's model, as a model-file test does::

        @pytest.mark.model("models/net.onnx")
        @pytest.mark.precisions("fp32", "fp16")
        def test_net(accuracy):
            accuracy.check()

    ``pytest --onnxrt --onnxref`` runs ONNX Runtime (fp32, then fp16) against the reference
    evaluator (fp32); ``--polygraphy-reference golden`` compares with golden files instead.
    """
    from pytest_polygraphy.plugin.checks import Accuracy

    return Accuracy(request, polygraphy_settings)


@pytest.fixture
def golden(request: pytest.FixtureRequest, polygraphy_settings: AccuracySettings) -> Golden:
    """Golden outputs: ``golden.check(outputs)`` compares with the test's ``.npz`` file
    (``golden/<test file>/<test name>.npz`` beside the test, or ``--polygraphy-golden-dir``)
    using the test's tolerances. A missing file fails with the command that creates it;
    ``--polygraphy-update-golden`` (re)writes it, atomically, with a JSON sidecar::

        import numpy as np

        def test_golden(golden):
            golden.check({"y": np.arange(4, dtype=np.float32)})
    """
    from pytest_polygraphy.plugin.checks import Golden

    return Golden(request, polygraphy_settings)


@pytest.fixture
def reference_runner(
    request: pytest.FixtureRequest,
    model: Any,
    input_shapes: ShapeSet | None,
    polygraphy_settings: AccuracySettings,
) -> Any:
    """The reference backend's runner at fp32, activated (``--polygraphy-reference``, else
    the first selected of onnxref, onnxrt, trt). Skips when none is selected or the
    reference is ``golden`` (use the ``golden`` fixture then)::

        @pytest.mark.model("models/net.onnx")
        def test_vs_reference(reference_runner, onnxrt_runner, data_loader, compare_func):
            from pytest_polygraphy.runners.run import compare, run
            assert compare(run([reference_runner, onnxrt_runner], data_loader), compare_func)
    """
    from pytest_polygraphy.plugin.accuracy import NO_BACKEND

    reference = polygraphy_settings.reference
    if reference is None:
        pytest.skip(NO_BACKEND)
    if reference == "golden":
        pytest.skip("the reference is golden: use the golden fixture")
    return _runner(request, reference, model, FULL_PRECISION, polygraphy_settings)


__all__: Sequence[str] = (
    "Accuracy",
    "Golden",
    "accuracy",
    "compare_func",
    "data_loader",
    "golden",
    "input_shapes",
    "model",
    "onnxref_runner",
    "onnxrt_runner",
    "polygraphy_settings",
    "precision",
    "reference_runner",
    "runners",
    "trt_runner",
)
