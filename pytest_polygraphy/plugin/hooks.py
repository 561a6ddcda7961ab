"""Run-wide hooks: configuration (markers, options, the plugin's other modules) and test
parametrization by precision and shape set. (The per-worker runner cache is
``backends.runner_cache``.)

Stdlib and pytest only at import, like every module the entry point loads; per-model
settings are imported when a test first needs them. The modules this one registers
(``collect``, ``fixtures``) do not import it back.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin import markers, syntax
from pytest_polygraphy.plugin.options import PolygraphyOptions, get_options, needs_gpu_hooks
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.records import COMPARE_PROPERTY, TRT_PRECISIONS_PROPERTY
from pytest_polygraphy.plugin.syntax import OptionValueError

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.modelsettings import Layer


def configure(config: pytest.Config) -> None:
    """Register markers, parse the options (a bad one is a UsageError now, not later) and
    register the plugin's hook modules and the reporting plugins."""
    markers.register(config)
    options = get_options(config)
    from pytest_polygraphy.plugin.availability import check_backends

    unavailable = check_backends(config, options)
    check_output_paths(config, options)
    from pytest_polygraphy.plugin import collect, fixtures

    if _report_file_asked(config):
        from pytest_polygraphy.plugin.report import ReportPlugin

        report: object = ReportPlugin(config)
    else:
        report = LazyReport(config)
    plugins: list[tuple[str, object]] = [
        ("polygraphy-hooks", RunHooks(unavailable)),
        ("polygraphy-fixtures", fixtures),
        ("polygraphy-collect", collect),
        ("polygraphy-report", report),
    ]
    if needs_gpu_hooks(config):
        from pytest_polygraphy.plugin.xdist import XdistPlugin

        plugins.append(("polygraphy-xdist", XdistPlugin(config)))
    manager = config.pluginmanager
    debugging = options.reduce or options.precision or options.repeat or options.build
    if debugging and not manager.has_plugin("polygraphy-debug"):
        from pytest_polygraphy.plugin.debug import DebugPlugin

        manager.register(DebugPlugin(config), "polygraphy-debug")
    for name, plugin in plugins:
        if not manager.has_plugin(name):
            manager.register(plugin, name)


def check_output_paths(config: pytest.Config, options: PolygraphyOptions) -> None:
    """Raise UsageError, naming the path and the reason, for an output folder this run
    would write and cannot: the report and its artifacts, the golden folder under
    ``--polygraphy-update-golden``, TensorRT's engine cache. Checked once at start (not on
    xdist workers, nor under ``--collect-only``, which writes nothing), so that a long run
    does not end in a traceback instead of its summary."""
    if hasattr(config, "workerinput") or config.getoption("collectonly", default=False):
        return
    from pytest_polygraphy.files import folder_write_problem

    problems: list[str] = []
    if _report_file_asked(config):
        from pytest_polygraphy.plugin.report import output_path_problems

        problems = output_path_problems(config)
    folders = []
    if options.update_golden and options.golden_dir is not None:
        folders.append(("--polygraphy-golden-dir", options.golden_dir))
    if "trt" in options.backends and options.cache_dir is not None:
        folders.append(("--polygraphy-cache-dir", options.cache_dir))
    for option, folder in folders:
        problem = folder_write_problem(folder)
        if problem is not None:
            problems.append(f"{option} {folder}: cannot write there: {problem}")
    problems += _results_folder_problems(options)
    if problems:
        raise pytest.UsageError(
            "\n".join(problems) + "\nPick a path this user can write, or create it first."
        )


def _results_folder_problems(options: PolygraphyOptions) -> list[str]:
    """The save-inputs / save-outputs folders that cannot be written (or hold files this
    plugin did not write); those that can are claimed now (see ``runresults``)."""
    asked = [
        ("--polygraphy-save-inputs", options.save_inputs),
        ("--polygraphy-save-outputs", options.save_outputs),
    ]
    if not any(folder for _, folder in asked):
        return []
    from pytest_polygraphy.plugin.runresults import folder_problem

    problems = []
    for option, folder in asked:
        problem = None if folder is None else folder_problem(folder)
        if problem is not None:
            problems.append(f"{option} {folder}: cannot write there: {problem}")
    return problems


def _report_file_asked(config: pytest.Config) -> bool:
    """Whether ``--polygraphy-report`` (or its ini twin) is given."""
    if config.getoption("polygraphy_report", default=None) not in (None, ""):
        return True
    try:
        return config.getini("polygraphy_report") not in (None, "", [])
    except ValueError:  # ini not registered
        return False


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
        from pytest_polygraphy.plugin.settings import ordered_layers, pick

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


def _shape_ids(shape_sets: Sequence[syntax.ShapeSet]) -> list[str]:
    return [syntax.shape_set_id(shapes) for shapes in shape_sets]
