"""A comparison failure says which side is which and ends with the commands that re-run
just that test to find the cause (``plugin/nextstep.py``)."""

from __future__ import annotations

import shlex

import pytest

from pytest_polygraphy.plugin import nextstep
from tests.plugin import harness


def failure(result: pytest.RunResult) -> str:
    text = result.stdout.str()
    return text.split("= FAILURES =")[1].split("short test summary")[0]


def commands(text: str) -> list[list[str]]:
    """The commands of the "Next steps" list, split as the shell would."""
    steps = text.split("Next steps:")[1]
    return [shlex.split(line.strip()) for line in steps.splitlines() if "pytest " in line]


def test_a_reduced_precision_failure_names_its_sides_and_ends_with_commands(
    pytester: pytest.Pytester,
) -> None:
    harness.save(harness.exp_sigmoid_model(2), pytester.path / "models" / "net a.onnx")
    args = ["--onnxref", "--polygraphy-precisions", "fp16", "--polygraphy-rtol", "1e-6"]
    result = pytester.runpytest("models/net a.onnx", *args, "--polygraphy-atol", "1e-6")
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "(expected = onnxref at fp32, actual = onnxref[fp16])" in text
    assert text.rstrip().splitlines()[-2].lstrip().startswith("3. only when the error is")
    mark_all, reduce = commands(text)
    nodeid = "models/net a.onnx::accuracy[fp16]"
    same = ["pytest", nodeid, "--onnxref", "--polygraphy-precisions", "fp16",
            "--polygraphy-rtol", "1e-06", "--polygraphy-atol", "1e-06"]  # fmt: skip
    assert mark_all == [*same, "--polygraphy-mark-all", "--polygraphy-report",
                        "polygraphy-report.html"]  # fmt: skip
    expected_flag = (
        nextstep.PRECISION_FLAG
        if nextstep.has_option(nextstep.PRECISION_FLAG)
        else nextstep.REDUCE_FLAG
    )
    assert reduce == [*same, expected_flag]
    # The printed command runs: it re-runs that one test, which fails the same way.
    again = pytester.runpytest(*mark_all[1:])
    again.assert_outcomes(failed=1)


def test_the_precision_session_is_offered_for_reduced_precisions_only(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = pytester.parseconfigure("--onnxref")
    monkeypatch.setattr(nextstep, "has_option", lambda flag: True)
    fp16 = nextstep.next_steps(config, "m.onnx::accuracy[fp16]", "fp16")
    assert "--polygraphy-precision" in fp16
    assert "--polygraphy-reduce" not in fp16
    fp32 = nextstep.next_steps(config, "m.onnx::accuracy[fp32]", "fp32")
    assert "--polygraphy-reduce" in fp32
    assert "--polygraphy-precision\n" not in fp32 and "--polygraphy-precision " not in fp32
    assert "--polygraphy-mark-all" in fp32
    done = nextstep.next_steps(config, "m.onnx::accuracy[fp32]", "fp32", mark_all=True)
    assert "--polygraphy-mark-all" not in done
    fixed = nextstep.next_steps(config, "t.py::test_x", "fp32", reducible=False)
    assert "--polygraphy-reduce" not in fixed
    # Never a looser tolerance alone: it always comes after a command that finds the cause.
    for text in (fp16, fp32, done, fixed):
        assert text.index("pytest ") < text.index("loosen")


def test_a_golden_failure_says_which_side_is_the_golden_file(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np

        def test_golden(golden):
            golden.check({"y": np.ones(3, np.float32)}, backend="mine")
        """
    )
    pytester.runpytest("--polygraphy-update-golden").assert_outcomes(passed=1)
    pytester.makepyfile(
        """
        import numpy as np

        def test_golden(golden):
            golden.check({"y": np.full(3, 2, np.float32)}, backend="mine")
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "(expected = golden file " in text
    assert "actual = mine)" in text
    assert "--polygraphy-reduce" not in text  # its outputs come from the test itself


def test_a_failure_on_generated_inputs_with_unsized_dims_says_so(
    pytester: pytest.Pytester,
) -> None:
    """A dynamic dim nothing sizes is generated as 1 (as Polygraphy does); a failure on such
    inputs says which input got which shape and how to give real ones. With the shape
    given, the note is gone: it only ever names a shape that was guessed."""
    harness.save(harness.exp_sigmoid_model("?"), pytester.path / "net.onnx")
    args = ["--onnxref", "--polygraphy-precisions", "fp16", "--polygraphy-rtol", "1e-6"]
    args += ["--polygraphy-atol", "1e-6", "-W", "ignore::UserWarning"]
    result = pytester.runpytest("net.onnx", *args)
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "unsized dynamic dims set to 1: 'x' [1, 4]" in text
    assert "--polygraphy-input-shapes 'x:[...]'" in text
    assert text.index("unsized dynamic dims") < text.index("Next steps:")
    sized = pytester.runpytest("net.onnx", *args, "--polygraphy-input-shapes", "x:[3,4]")
    sized.assert_outcomes(failed=1)
    assert "unsized dynamic dims" not in failure(sized)
