"""Run-wide hooks: configuration (markers, options, the plugin's other modules), test
parametrization by precision and shape set, and the per-worker runner cache.

Stdlib and pytest only at import, like every module the entry point loads; the runner
cache and per-model settings are imported when a test first needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

from pytest_polygraphy.plugin import markers, syntax
from pytest_polygraphy.plugin.options import get_options
from pytest_polygraphy.plugin.outcomes import fail
from pytest_polygraphy.plugin.syntax import OptionValueError

if TYPE_CHECKING:
    from pytest_polygraphy.plugin.backends import RunnerCache

RUNNER_CACHE_KEY = pytest.StashKey["RunnerCache"]()


def configure(config: pytest.Config) -> None:
    """Register markers, parse the options (a bad one is a UsageError now, not later) and
    register the plugin's hook modules and the reporting plugins."""
    markers.register(config)
    get_options(config)
    from pytest_polygraphy.plugin import collect, fixtures
    from pytest_polygraphy.plugin.report import ReportPlugin
    from pytest_polygraphy.plugin.xdist import XdistPlugin

    manager = config.pluginmanager
    for name, plugin in (
        ("polygraphy-hooks", RunHooks()),
        ("polygraphy-fixtures", fixtures),
        ("polygraphy-collect", collect),
        ("polygraphy-report", ReportPlugin(config)),
        ("polygraphy-xdist", XdistPlugin(config)),
    ):
        if not manager.has_plugin(name):
            manager.register(plugin, name)


def runner_cache(config: pytest.Config) -> RunnerCache:
    """This process's runner cache (created on first use, closed at session end)."""
    cache = config.stash.get(RUNNER_CACHE_KEY, None)
    if cache is None:
        from pytest_polygraphy.plugin.backends import RunnerCache

        cache = RunnerCache(get_options(config))
        config.stash[RUNNER_CACHE_KEY] = cache
    return cache


def _parametrized_by_user(metafunc: pytest.Metafunc, argname: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if argname in names:
            return True
    return False


def _model_settings(metafunc: pytest.Metafunc) -> dict[str, Any]:
    """Per-model settings of the test's model (``model`` marker, else ini), if any."""
    path = markers.model_path(metafunc.definition) or get_options(metafunc.config).model
    if path is None:
        return {}
    from pytest_polygraphy.plugin.modelsettings import settings_for_model

    options = get_options(metafunc.config)
    return settings_for_model(path, options.model_settings, metafunc.config.rootpath)


class RunHooks:
    """Hooks with run-wide state; one instance per run."""

    @pytest.hookimpl(trylast=True)  # after @pytest.mark.parametrize: ids stay precision-first
    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        """Parametrize ``precision`` and ``input_shapes``, in that order, so ids read
        ``[fp16-x=8x3x224x224]``. Values come from the ``precisions`` / ``shapes``
        markers, else the model's per-model settings, else the options."""
        names = metafunc.fixturenames
        if "precision" not in names and "input_shapes" not in names:
            return
        options = get_options(metafunc.config)
        try:
            precisions = markers.precisions(metafunc.definition)
            shape_sets = markers.shape_sets(metafunc.definition)
            model = _model_settings(metafunc) if not (precisions and shape_sets) else {}
        except OptionValueError as err:
            fail(f"{metafunc.definition.nodeid}: {err}")
        precisions = precisions or model.get("precisions") or options.precisions
        shape_sets = shape_sets or model.get("input_shapes") or options.input_shapes
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

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        cache = session.config.stash.get(RUNNER_CACHE_KEY, None)
        if cache is not None:
            cache.close()


def _shape_ids(shape_sets: Sequence[syntax.ShapeSet]) -> list[str]:
    return [syntax.shape_set_id(shapes) for shapes in shape_sets]
