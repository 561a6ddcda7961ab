"""The plugin's surface: documentation in --help, --fixtures and --markers; which files
are collected; skips for absent backends; a light ``pytest --co`` for unrelated projects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_polygraphy.plugin.markers import MARKERS
from pytest_polygraphy.plugin.options import BACKENDS, INI_ONLY, OPTION_SPECS
from pytest_polygraphy.runners import cuda_available
from tests.plugin import harness

FIXTURES = (
    "model",
    "precision",
    "input_shapes",
    "polygraphy_settings",
    "data_loader",
    "compare_func",
    "onnxrt_runner",
    "onnxref_runner",
    "trt_runner",
    "runners",
    "reference_runner",
    "accuracy",
    "golden",
)


def test_help_documents_every_option_and_ini_twin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    text = result.stdout.str()
    group = text.split("pytest-polygraphy: model accuracy testing")[1].split("\n\n")[0]
    for backend in BACKENDS:
        assert f"--{backend} " in group
    for spec in OPTION_SPECS:
        assert spec.flag in group
        assert f"  {spec.dest} " in text  # the ini twin, in pytest's ini section
    for name, _, _ in INI_ONLY:
        assert f"  {name} " in text


def test_fixtures_are_documented_with_examples(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--fixtures", "-v").stdout.str()
    for name in FIXTURES:
        assert f"\n{name} -- " in text, name
    assert "@pytest.mark.model(" in text and "accuracy.check()" in text
    assert "golden.check(" in text


def test_markers_are_registered_with_their_signatures(pytester: pytest.Pytester) -> None:
    text = pytester.runpytest("--markers").stdout.str()
    for signature, _ in MARKERS:
        assert f"@pytest.mark.{signature}:" in text
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tolerance(rtol=1e-3)
        @pytest.mark.model("m.onnx")
        def test_marked():
            pass
        """
    )
    pytester.runpytest("--strict-markers").assert_outcomes(passed=1)


LIGHTNESS_CONFTEST = """
import json
import os
import sys


def pytest_sessionfinish(session):
    name = getattr(session.config, "workerinput", {}).get("workerid", "controller")
    with open(os.path.join(os.environ["MODULES_DIR"], name + ".json"), "w") as handle:
        json.dump(sorted(sys.modules), handle)
"""


@pytest.mark.parametrize("mode", list(harness.MODES))
def test_collecting_an_unrelated_project_imports_nothing_heavy(tmp_path: Path, mode: str) -> None:
    (tmp_path / "conftest.py").write_text(LIGHTNESS_CONFTEST)
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    assert True\n")
    harness.save(harness.scale_model(), tmp_path / "data" / "model.onnx")
    modules = tmp_path / "modules"
    modules.mkdir()
    # Only this plugin (and xdist) load: other installed plugins may import numpy themselves.
    only_ours = ["-p", "pytest_polygraphy.plugin", "-p", "xdist.plugin"]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", *only_ours]
        + harness.MODES[mode],
        cwd=tmp_path,
        env={
            **harness.clean_environ(),
            "MODULES_DIR": str(modules),
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        },
        capture_output=True,
        text=True,
        check=True,
    )
    assert "test_plain.py::test_plain" in result.stdout
    assert "model.onnx" not in result.stdout  # no backend switch: .onnx files are left alone
    dumps = list(modules.glob("*.json"))
    assert dumps
    for dump in dumps:
        loaded = {name.split(".")[0] for name in json.loads(dump.read_text())}
        assert "pytest_polygraphy" in loaded
        heavy = loaded & {"numpy", "onnx", "onnxruntime", "tensorrt", "tensorrt_rtx", "cuda"}
        assert not heavy, (dump.name, heavy)
        # what only a model test needs waits for one (start-up cost, bench/startup.py)
        lazy_names = ["accuracy", "backends", "checks", "golden", "modelsettings", "settings"]
        lazy_names += ["report"] if mode == "xdist" else ["report", "xdist", "gpus"]
        lazy = set(json.loads(dump.read_text())) & {
            f"pytest_polygraphy.plugin.{name}" for name in lazy_names
        }
        assert not lazy, (dump.name, lazy)


@pytest.fixture
def model_project(pytester: pytest.Pytester) -> pytest.Pytester:
    harness.save(harness.scale_model(), pytester.path / "models" / "m.onnx")
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    return pytester


def collected(pytester: pytest.Pytester, *args: str) -> list[str]:
    result = pytester.runpytest("--co", "-q", *args)
    return [line for line in result.stdout.lines if "::" in line]


def test_model_files_are_collected_only_when_asked(model_project: pytest.Pytester) -> None:
    assert collected(model_project) == ["test_plain.py::test_plain"]
    item = "models/m.onnx::accuracy[fp32]"
    assert item in collected(model_project, "--onnxref")
    assert collected(model_project, "models/m.onnx") == [item]  # named on the command line
    model_project.makeini("[pytest]\npolygraphy_collect_models = true\n")
    assert item in collected(model_project)
    model_project.makeini("[pytest]\npolygraphy_backends = onnxrt\n")
    assert item not in collected(model_project)


def test_a_named_model_without_backend_skips_saying_how_to_select_one(
    model_project: pytest.Pytester,
) -> None:
    result = model_project.runpytest("models/m.onnx", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]1[]] models/m.onnx:1: no backend selected: pass --onnxrt, --onnxref*"]
    )


def test_absent_backends_skip_with_the_reason_when_asked_to(
    model_project: pytest.Pytester,
) -> None:
    model_project.makepyfile(
        test_backends="""
        import pytest

        pytestmark = pytest.mark.model("models/m.onnx")

        def test_trt(trt_runner):
            pass

        @pytest.mark.precisions("int8")
        def test_onnxref_int8(onnxref_runner):
            pass

        def test_cuda(onnxrt_runner):
            pass
        """
    )
    result = model_project.runpytest(
        "models", "test_backends.py", "--trt", "--onnxrt", "--onnxref",
        "--polygraphy-providers", "cuda", "-rs", "--polygraphy-skip-unavailable",
    )  # fmt: skip
    if cuda_available():  # the CUDA provider really runs: only TensorRT and int8 skip
        result.assert_outcomes(passed=1, skipped=3)
        result.stdout.fnmatch_lines(
            [
                "SKIPPED*m.onnx:1: *TensorRT*",
                "SKIPPED*TensorRT*",
                "SKIPPED*reference evaluator runs fp32 and fp16 only, not int8*",
            ],
            consecutive=False,
        )
        return
    result.assert_outcomes(skipped=4)
    import onnxruntime as ort

    # onnxruntime-gpu offers CUDA and cannot start it; the CPU-only wheel does not offer it
    no_cuda = (
        "*could not start*cuda*"
        if "CUDAExecutionProvider" in ort.get_available_providers()
        else "*not ?'CUDAExecutionProvider'?*pytest-polygraphy?gpu?*"
    )
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED*m.onnx:1: {no_cuda}",
            "SKIPPED*TensorRT*",
            "SKIPPED*reference evaluator runs fp32 and fp16 only, not int8*",
            f"SKIPPED{no_cuda}",
        ],
        consecutive=False,
    )


def test_without_onnx_runtime_onnxrt_skips_saying_what_to_install(
    model_project: pytest.Pytester,
) -> None:
    """Neither ONNX Runtime flavour is a requirement; where none is installed the onnxrt
    tests skip with the command that installs one, and the reference evaluator still runs."""
    model_project.makeconftest(
        """
        import sys

        sys.modules["onnxruntime"] = None  # as if neither flavour were installed
        """
    )
    model_project.makepyfile(
        test_ort="""
        import pytest

        @pytest.mark.model("models/m.onnx")
        def test_runner(onnxrt_runner):
            pass
        """
    )
    args = ["models", "test_ort.py", "--onnxrt", "--onnxref", "-rs", "-p", "no:cacheprovider"]
    asked = model_project.runpytest_subprocess(*args)
    assert asked.ret == pytest.ExitCode.USAGE_ERROR  # asked for on the command line
    assert 'pip install "pytest-polygraphy[cpu]"' in asked.stderr.str()
    result = model_project.runpytest_subprocess(*args, "--polygraphy-skip-unavailable")
    result.assert_outcomes(skipped=2)
    hint = (
        'ONNX Runtime is not installed: pip install "pytest-polygraphy[cpu]" (or onnxruntime) '
        'for the CPU provider, or pip install "pytest-polygraphy[gpu]" (or onnxruntime-gpu)'
    )
    skips = [line for line in result.stdout.lines if line.startswith("SKIPPED")]
    assert len(skips) == 2 and all(hint in line for line in skips), skips
    evaluator_only = model_project.runpytest_subprocess(
        "models", "--onnxref", "--polygraphy-precisions", "fp16"
    )
    evaluator_only.assert_outcomes(passed=1)


def test_hand_written_tests_skip_without_backends(pytester: pytest.Pytester) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.model("m.onnx")

        def test_runners(runners):
            pass

        def test_accuracy(accuracy):
            accuracy.check()

        def test_explicit(onnxrt_runner):
            assert onnxrt_runner.name == "onnxrt"
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2, passed=1)
    result.stdout.fnmatch_lines(["*no backend selected*"])


def test_misused_markers_and_conflicting_settings_fail_clearly(pytester: pytest.Pytester) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    pytester.makepyfile(
        """
        import pytest

        pytestmark = pytest.mark.model("m.onnx")

        @pytest.mark.tolerance(1e-3)
        def test_positional(compare_func):
            pass

        @pytest.mark.tolerance(rtol={"y": -1})
        def test_negative(compare_func):
            pass

        @pytest.mark.tolerance(rtol=1e-3)
        def test_conflict(compare_func):
            pass

        @pytest.mark.tolerance(index_tolerance=2)
        def test_indices(compare_func):
            assert compare_func.index_tolerance == 2
        """
    )
    result = pytester.runpytest(
        "test_misused_markers_and_conflicting_settings_fail_clearly.py",
        "--polygraphy-compare-func",
        "indices",
        "--onnxrt",
    )
    result.assert_outcomes(errors=3, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*@pytest.mark.tolerance: takes keyword arguments only, e.g. rtol=1e-3*",
            "*@pytest.mark.tolerance: rtol of 'y' must be a non-negative number*",
            "*rtol apply to compare function 'simple' only, but 'indices' is selected*",
        ],
        consecutive=False,
    )
    assert "During handling" not in result.stdout.str()


def docstring_examples() -> dict[str, str]:
    """The example test in each fixture's docstring (the block after ``::``)."""
    import textwrap

    from pytest_polygraphy.plugin import fixtures

    examples = {}
    for name in FIXTURES:
        doc = getattr(fixtures, name).__doc__ or ""
        lines = []
        for line in doc.split("::\n", 1)[1].splitlines():
            if line.strip() and not line.startswith(" " * 8):
                break  # prose after the example
            lines.append(line)
        examples[name] = textwrap.dedent("\n".join(lines))
    return examples


def test_fixture_docstring_examples_run(pytester: pytest.Pytester) -> None:
    harness.save(harness.exp_sigmoid_model(), pytester.path / "models" / "net.onnx")
    for name, code in docstring_examples().items():
        pytester.makepyfile(**{f"test_doc_{name}": "import pytest\n\n" + code})
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--onnxrt", "--onnxref", "--polygraphy-update-golden", "-rs",
        "-W", "ignore::UserWarning",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) == 0 and outcomes.get("errors", 0) == 0, result.stdout.str()
    assert outcomes["skipped"] == 1  # the TensorRT example, with the reason:
    result.stdout.fnmatch_lines(["SKIPPED*trt is not selected (pass --trt)*"])
    assert outcomes["passed"] >= len(FIXTURES) - 1
