"""One GPU per xdist worker, set before the worker starts; nothing changes without xdist
unless ``--polygraphy-gpus`` is given. No CUDA involved: the tests read the environment."""

from __future__ import annotations

import json
import os

import pytest

import pytest_polygraphy.plugin as entry_point
from pytest_polygraphy.plugin.xdist import pin_gpu_before_conftests
from tests.plugin.test_report import PYTESTER_CONFTEST

# The conftest notes what the variable was when it was imported; the test module notes it at
# import too, and each test checks all three against the GPU its worker should have.
SEEING_CONFTEST = (
    PYTESTER_CONFTEST
    + """
import os
os.environ["SEEN_AT_CONFTEST_IMPORT"] = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")
"""
)

SEEING_TESTS = """
import json
import os
import pathlib

import pytest

AT_MODULE_IMPORT = os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>")


@pytest.mark.parametrize("case", range(6))
def test_sees(case):
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    seen = {
        "conftest": os.environ["SEEN_AT_CONFTEST_IMPORT"],
        "module": AT_MODULE_IMPORT,
        "test": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
    }
    pathlib.Path(f"seen-{worker}-{case}.json").write_text(json.dumps(seen))
"""


def _seen(pytester: pytest.Pytester) -> dict[str, list[dict[str, str]]]:
    """Worker id ("main" without xdist) -> what each of its tests saw."""
    seen: dict[str, list[dict[str, str]]] = {}
    for path in sorted(pytester.path.glob("seen-*.json")):
        seen.setdefault(path.name.split("-")[1], []).append(json.loads(path.read_text()))
    return seen


def _everywhere(value: str) -> dict[str, str]:
    return {"conftest": value, "module": value, "test": value}


@pytest.fixture
def gpu_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Restore CUDA_VISIBLE_DEVICES after in-process runs that may set it; hide an outer
    xdist worker's id (when this suite itself runs under xdist) from the runs inside."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    monkeypatch.delenv("SEEN_AT_CONFTEST_IMPORT", raising=False)
    return monkeypatch


def test_each_worker_gets_one_of_the_outer_gpus(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    gpu_env.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.makeconftest(SEEING_CONFTEST)
    pytester.makepyfile(test_gpu=SEEING_TESTS)
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["polygraphy GPUs: 3,5 (from CUDA_VISIBLE_DEVICES)*"])
    seen = _seen(pytester)
    assert set(seen) == {"gw0", "gw1"}
    assert all(views == _everywhere("3") for views in seen["gw0"])
    assert all(views == _everywhere("5") for views in seen["gw1"])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5"  # the controller's own is untouched


def test_gpu_option_overrides_the_outer_variable(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    gpu_env.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.makeconftest(SEEING_CONFTEST)
    pytester.makepyfile(test_gpu=SEEING_TESTS)
    result = pytester.runpytest("-n", "2", "--polygraphy-gpus", "7,2")
    result.assert_outcomes(passed=6)
    seen = _seen(pytester)
    assert all(views == _everywhere("7") for views in seen["gw0"])
    assert all(views == _everywhere("2") for views in seen["gw1"])


def test_without_xdist_the_option_sets_the_first_gpu(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(SEEING_CONFTEST)
    pytester.makepyfile(test_gpu=SEEING_TESTS)
    result = pytester.runpytest("-p", "no:xdist", "--polygraphy-gpus", "4,6")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["polygraphy GPU: 4 (--polygraphy-gpus)"])
    # pytest_configure sets it before test modules are imported; conftests see it only where
    # the entry point applies it early (pytest_load_initial_conftests, next test).
    at_conftest = "4" if hasattr(entry_point, "pytest_load_initial_conftests") else "<unset>"
    assert _seen(pytester) == {"main": [{"conftest": at_conftest, "module": "4", "test": "4"}] * 6}


class _EarlyPin:
    """What the entry point's pytest_load_initial_conftests does."""

    def pytest_load_initial_conftests(self, early_config: pytest.Config) -> None:
        pin_gpu_before_conftests(early_config)


def test_early_pin_reaches_conftests(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(SEEING_CONFTEST)
    pytester.makepyfile(test_gpu=SEEING_TESTS)
    result = pytester.runpytest("-p", "no:xdist", "--polygraphy-gpus", "6", plugins=[_EarlyPin()])
    result.assert_outcomes(passed=6)
    assert _seen(pytester) == {"main": [_everywhere("6")] * 6}


def test_early_pin_leaves_xdist_runs_to_the_controller(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    pin_gpu_before_conftests(pytester.parseconfig("-n", "2", "--polygraphy-gpus", "6"))
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
    pin_gpu_before_conftests(pytester.parseconfig("--polygraphy-gpus", "6"))
    assert os.environ.pop("CUDA_VISIBLE_DEVICES") == "6"
    gpu_env.setenv("PYTEST_XDIST_WORKER", "gw1")
    pin_gpu_before_conftests(pytester.parseconfig("--polygraphy-gpus", "6"))
    assert "CUDA_VISIBLE_DEVICES" not in os.environ


def test_without_xdist_or_option_nothing_changes(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch
) -> None:
    gpu_env.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    pytester.makeconftest(SEEING_CONFTEST)
    pytester.makepyfile(test_gpu=SEEING_TESTS)
    result = pytester.runpytest("-p", "no:xdist")
    result.assert_outcomes(passed=6)
    assert _seen(pytester) == {"main": [_everywhere("3,5")] * 6}
    assert "polygraphy GPU" not in result.stdout.str()


@pytest.mark.parametrize("mode", [["-p", "no:xdist"], ["-n", "2"]], ids=["serial", "xdist"])
def test_bad_gpu_option_is_a_usage_error(
    pytester: pytest.Pytester, gpu_env: pytest.MonkeyPatch, mode: list[str]
) -> None:
    pytester.makeconftest(PYTESTER_CONFTEST)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest(*mode, "--polygraphy-gpus", "0,0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--polygraphy-gpus got '0,0': 0 listed twice*"])
