"""The long-lived heap is frozen once the tests are collected (``plugin.heap``): after a
collection of the young generations, with the collected tests' backend modules imported,
once per process, and only in a session that runs one of the plugin's tests.

Each scenario runs pytest in a subprocess (the freeze happens once per process). Its
conftest stops automatic collections (by threshold, the collector left enabled) and makes
a reference cycle of garbage just before the plugin's ``pytest_collection_finish`` (which
runs last), so that only the plugin's own collection can free it before the freeze.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.plugin import harness

CONFTEST = """
import gc, json, os, sys, weakref

class Cycle:
    pass

state = {"baseline": gc.get_freeze_count()}  # an environment may freeze at start-up

def pytest_collection_finish(session):
    state["threshold"] = gc.get_threshold()
    gc.set_threshold(1_000_000_000)  # no automatic collection, the collector left enabled
    cycle = Cycle()
    cycle.me = cycle
    state["garbage"] = weakref.ref(cycle)
    del cycle

def pytest_runtest_setup(item):
    state.setdefault("enabled", gc.isenabled())
    gc.set_threshold(*state["threshold"])
    state.setdefault(
        "modules", [m for m in ("numpy", "onnx.reference", "onnxruntime") if m in sys.modules]
    )
    state.setdefault("frozen", gc.get_freeze_count() - state["baseline"])

def pytest_sessionfinish(session):
    after = Cycle()
    after.me = after
    after_ref = weakref.ref(after)
    del after
    gc.collect()
    record = {
        "frozen": state.get("frozen", gc.get_freeze_count() - state["baseline"]),
        "modules": state.get("modules"),
        "enabled": state.get("enabled"),
        "garbage_frozen": state["garbage"]() is not None if "garbage" in state else None,
        "later_garbage_collected": after_ref() is None,
    }
    with open(f"heap-{os.getpid()}.json", "w") as f:
        json.dump(record, f)
"""


def _project(pytester: pytest.Pytester) -> pytest.Pytester:
    harness.save(harness.scale_model(), pytester.path / "models" / "m.onnx")
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_plain="def test_plain():\n    assert True\n")
    return pytester


def _records(path: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(path.glob("heap-*.json"))]


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_model_tests_run_on_a_frozen_heap_without_frozen_garbage(
    pytester: pytest.Pytester, mode: str
) -> None:
    project = _project(pytester)
    args = ["models", "--onnxref", "--polygraphy-precisions", "fp16", "-p", "no:cacheprovider"]
    args += harness.MODES[mode]
    project.runpytest_subprocess(*args).assert_outcomes(passed=1)
    records = [r for r in _records(project.path) if r["modules"] is not None]
    assert len(records) == 1, records  # the worker (or process) that ran the test
    record = records[0]
    assert record["frozen"] > 10_000, record
    assert record["modules"] == ["numpy", "onnx.reference"], record  # imported before the test
    assert record["enabled"], record  # the collector runs again for the tests
    assert not record["garbage_frozen"], record
    assert record["later_garbage_collected"], record


def test_a_hand_written_test_using_the_model_fixture_freezes_too(pytester: pytest.Pytester) -> None:
    project = _project(pytester)
    project.makepyfile(
        test_hand="""
        import pytest

        @pytest.mark.model("models/m.onnx")
        def test_model(model):
            assert model.name == "m.onnx"
        """
    )
    project.runpytest_subprocess("test_hand.py", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    (record,) = _records(project.path)
    assert record["frozen"] > 10_000 and not record["garbage_frozen"], record


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["test_plain.py", "--onnxref"], id="no-plugin-test"),
        pytest.param(["models", "--onnxref", "--collect-only"], id="collect-only"),
    ],
)
def test_nothing_is_frozen_or_imported_without_a_plugin_test_to_run(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    project = _project(pytester)
    project.runpytest_subprocess(*args, "-p", "no:cacheprovider")
    (record,) = _records(project.path)
    assert record["frozen"] == 0, record
    assert record["modules"] is None or "onnx.reference" not in record["modules"], record
    assert record["garbage_frozen"] is False, record


def test_a_backend_module_that_fails_to_import_is_named_and_left_to_the_test(
    pytester: pytest.Pytester,
) -> None:
    """A broken install is not hidden: the session warns with the import's own error,
    and the test that needs the module still fails, saying so too."""
    project = _project(pytester)
    (project.path / "onnxruntime").mkdir()
    (project.path / "onnxruntime" / "__init__.py").write_text(
        "raise RuntimeError('broken install: libonnxruntime.so.1 is missing')\n"
    )
    result = project.runpytest_subprocess(
        "models", "--onnxrt", "--onnxref", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert (
        "polygraphy: importing onnxruntime before the tests failed, RuntimeError: broken "
        "install: libonnxruntime.so.1 is missing"
    ) in output
    assert output.count("libonnxruntime.so.1 is missing") >= 2, output  # the test's own too
    (record,) = _records(project.path)
    assert record["frozen"] > 10_000, record  # the rest was still imported and frozen
