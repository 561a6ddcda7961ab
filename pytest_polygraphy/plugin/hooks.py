"""Run-wide hooks: configuration (markers, options, the plugin's other modules), which
files become model tests (``collect`` does the rest, imported when a model file is met),
and test parametrization by precision and shape set. (The per-worker runner cache is
``backends.runner_cache``.)

Stdlib and pytest only at import, like every module the entry point loads; options are
parsed at configure only when the run sets any, per-model settings are imported when a
test first needs them. The modules this one registers or calls (``collect``, ``fixtures``)
do not import it back.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin.optionspecs import (
    anything_given,
    needs_gpu_hooks,
    register_markers,
    report_file_asked,
)
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.records import COMPARE_PROPERTY, TRT_PRECISIONS_PROPERTY
from pytest_polygraphy.plugin.vocabulary import ENGINE_SUFFIXES

if TYPE_CHECKING:
    from pathlib import Path

    from pytest_polygraphy.plugin.modelsettings import Layer
    from pytest_polygraphy.plugin.syntax import ShapeSet

#: How many model files (``*.onnx``, engines) this process saw and left out (no backend).
LEFT_OUT_KEY = pytest.StashKey[int]()
#: ``workeroutput`` key carrying a worker's count to the xdist controller.
WORKEROUTPUT_LEFT_OUT = "polygraphy_left_out_models"
MODEL_SUFFIXES = (".onnx", *ENGINE_SUFFIXES)

SELECT_A_BACKEND = (
    "polygraphy: {count} model file(s) (*.onnx) were found but not collected as tests, "
    "because no backend switch was given: select backends with --onnxrt, --onnxref and/or "
    "--trt (or set polygraphy_collect_models = true and polygraphy_backends in the ini file)"
)


def configure(config: pytest.Config) -> None:
    """Register markers, parse the options (a bad one is a UsageError now, not later) and
    register the plugin's hook modules and the reporting plugins.

    A run that sets none of the plugin's options or switches has nothing to parse or
    check: it registers the hooks and fixtures only, and the options are read (defaults)
    when a test first asks for them."""
    register_markers(config)
    unavailable = None
    options = None
    if anything_given(config):
        from pytest_polygraphy.plugin.availability import check_backends, check_output_paths
        from pytest_polygraphy.plugin.options import get_options

        options = get_options(config)
        unavailable = check_backends(config, options)
        check_output_paths(config, options)
    from pytest_polygraphy.plugin import fixtures

    if report_file_asked(config):
        from pytest_polygraphy.plugin.report import ReportPlugin

        report: object = ReportPlugin(config)
    else:
        report = LazyReport(config)
    plugins: list[tuple[str, object]] = [
        ("polygraphy-hooks", RunHooks(unavailable)),
        ("polygraphy-fixtures", fixtures),
        ("polygraphy-report", report),
    ]
    if needs_gpu_hooks(config):
        from pytest_polygraphy.plugin.xdist import XdistPlugin

        plugins.append(("polygraphy-xdist", XdistPlugin(config)))
    manager = config.pluginmanager
    debugging = options is not None and (
        options.reduce or options.precision or options.repeat or options.build
    )
    if debugging and not manager.has_plugin("polygraphy-debug"):
        from pytest_polygraphy.plugin.debug import DebugPlugin

        manager.register(DebugPlugin(config), "polygraphy-debug")
    for name, plugin in plugins:
        if not manager.has_plugin(name):
            manager.register(plugin, name)


class LazyReport:
    """Stands in for ``report.ReportPlugin`` until a test report carries a comparison record.

    Without ``--polygraphy-report`` the report plugin has work only once a test has compared
    something (the terminal table, junitxml properties); a project that never does is spared
    importing the largest module pytest would otherwise load at every start. This stand-in
    remembers the collection order; at the first test report holding a record it creates
    the ``ReportPlugin``, hands it the order, registers it (every later hook goes to it
    directly) and passes it that report. With ``--polygraphy-report`` the configure step
    registers the ``ReportPlugin`` itself, from the start.
    """

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.order: list[str] = []
        self.plugin: Any = None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.order.extend(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        self.order.extend(ids)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, Any, Any]:
        if self.plugin is None and any(n == COMPARE_PROPERTY for n, _ in report.user_properties):
            from pytest_polygraphy.plugin.report import ReportPlugin

            self.plugin = ReportPlugin(self.config)
            self.plugin._remember_order(self.order)
            self.config.pluginmanager.register(self.plugin, "polygraphy-report-records")
            # registered during this hook call, it is called from the next report on
            return (yield from self.plugin.pytest_runtest_logreport(report))
        return (yield)


def _parametrized_by_user(metafunc: pytest.Metafunc, argname: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if argname in names:
            return True
    return False


def _model_layers(metafunc: pytest.Metafunc) -> list[Layer]:
    """Per-model settings of the test's model (``model`` marker, else ini), if any."""
    from pytest_polygraphy.plugin import markers
    from pytest_polygraphy.plugin.options import get_options

    path = markers.model_path(metafunc.definition) or get_options(metafunc.config).model
    if path is None:
        return []
    from pytest_polygraphy.plugin.modelsettings import model_layers

    options = get_options(metafunc.config)
    return model_layers(path, options.model_settings, metafunc.config.rootpath)


def _definition_id(item: pytest.Item) -> str:
    """The node id of the function an item was generated from (its id without ``[...]``)."""
    name = getattr(item, "originalname", None) or item.name
    return f"{item.parent.nodeid}::{name}" if item.parent is not None else item.nodeid


class RunHooks:
    """Hooks with run-wide state; one instance per run."""

    def __init__(self, unavailable: str | None = None) -> None:
        #: Test functions whose markers or model settings are bad: node id -> message.
        self.setting_errors: dict[str, str] = {}
        #: The header line naming backends that skip (``--polygraphy-skip-unavailable``).
        self.unavailable = unavailable

    def pytest_report_header(self) -> str | None:
        return self.unavailable

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """A "polygraphy TensorRT precisions" section on the call report of a test whose
        TensorRT engine was asked for layer precisions (``TRT_PRECISIONS_PROPERTY``)."""
        report = yield
        if call.when == "call":
            for name, value in item.user_properties:
                if name == TRT_PRECISIONS_PROPERTY and isinstance(value, dict):
                    report.sections.append(("polygraphy TensorRT precisions", value["summary"]))
        return report

    def pytest_collect_file(
        self, file_path: Path, parent: pytest.Collector
    ) -> pytest.Collector | None:
        """Model and engine files become tests (``collect``, imported only when one is
        met); one left out for want of a backend switch is counted."""
        if file_path.suffix not in MODEL_SUFFIXES:
            return None
        from pytest_polygraphy.plugin.collect import collect_file

        collector = collect_file(file_path, parent)
        if collector is None:
            config = parent.config
            config.stash[LEFT_OUT_KEY] = config.stash.get(LEFT_OUT_KEY, 0) + 1
        return collector

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Freeze the long-lived heap before the first test runs (``heap``)."""
        if session.items:
            from pytest_polygraphy.plugin.heap import freeze_long_lived

            freeze_long_lived(session)

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """xdist worker: hand the count of left-out model files to the controller."""
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            workeroutput[WORKEROUTPUT_LEFT_OUT] = session.config.stash.get(LEFT_OUT_KEY, 0)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        """xdist controller: every worker collects alike; keep the largest count."""
        count = (getattr(node, "workeroutput", None) or {}).get(WORKEROUTPUT_LEFT_OUT, 0)
        config = node.config
        config.stash[LEFT_OUT_KEY] = max(config.stash.get(LEFT_OUT_KEY, 0), int(count))

    def pytest_terminal_summary(
        self, terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config
    ) -> None:
        """Say how to select a backend when model files were left out and no test was
        collected (with ``-v``: whenever model files were left out), instead of a bare
        "no tests ran"."""
        count = config.stash.get(LEFT_OUT_KEY, 0)
        if hasattr(config, "workerinput") or not count:
            return
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED or config.get_verbosity() >= 1:
            terminalreporter.write_line(SELECT_A_BACKEND.format(count=count), yellow=True)

    @pytest.hookimpl(trylast=True)  # after @pytest.mark.parametrize: ids stay precision-first
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``precision`` and ``input_shapes``, in that order, so ids read
        ``[fp16-x=8x3x224x224]``. Values come from the ``precisions`` / ``shapes``
        markers, else the command line, else the model's per-model settings, else the ini
        options and defaults (see ``settings``).

        A bad marker or model setting must not stop the collection of other tests: the
        test is left unparametrized and fails at setup with the message."""
        names = metafunc.fixturenames
        if "precision" not in names and "input_shapes" not in names:
            return
        from pytest_polygraphy.plugin import markers
        from pytest_polygraphy.plugin.options import get_options
        from pytest_polygraphy.plugin.settings import ordered_layers, pick
        from pytest_polygraphy.plugin.syntax import OptionValueError

        options = get_options(metafunc.config)
        try:
            ordered = ordered_layers(
                options, _model_layers(metafunc), markers.layers(metafunc.definition)
            )
        except OptionValueError as err:
            self.setting_errors[metafunc.definition.nodeid] = f"{metafunc.definition.nodeid}: {err}"
            return
        precisions = pick(ordered, "precisions")[0] or options.precisions
        shape_sets = pick(ordered, "input_shapes")[0]
        if "precision" in names and not _parametrized_by_user(metafunc, "precision"):
            metafunc.parametrize("precision", precisions, indirect=True, ids=list(precisions))
        if (
            "input_shapes" in names
            and shape_sets
            and not _parametrized_by_user(metafunc, "input_shapes")
        ):
            metafunc.parametrize(
                "input_shapes", shape_sets, indirect=True, ids=_shape_ids(shape_sets)
            )

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        """Fail (as a setup error) a test whose markers or model settings are bad."""
        message = self.setting_errors.get(_definition_id(item))
        if message is not None:
            fail(message)


def _shape_ids(shape_sets: Sequence[ShapeSet]) -> list[str]:
    from pytest_polygraphy.plugin.syntax import shape_set_id

    return [shape_set_id(shapes) for shapes in shape_sets]
