"""assert_outputs_close: the assertion a user's test calls, and the report pytest shows."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_polygraphy.assertions import assert_outputs_close
from pytest_polygraphy.compare import CompareFunc, CompareResult
from pytest_polygraphy.errors import OutputMismatchError

EXPECTED = {"y": np.array([1.0, 2.0, 3.0, 4.0], np.float32)}
CLOSE = {"y": np.array([1.0, 2.0, 3.0, 4.0 + 1e-6], np.float32)}
FAR = {"y": np.array([1.0, 2.5, 3.0, 4.0], np.float32)}


def test_passing_outputs_return_the_result() -> None:
    result = assert_outputs_close(CLOSE, EXPECTED)
    assert isinstance(result, CompareResult) and result


def test_failing_outputs_raise_with_the_report() -> None:
    with pytest.raises(AssertionError) as raised:
        assert_outputs_close(FAR, EXPECTED, rtol=1e-3, atol=1e-3)
    message = str(raised.value)
    assert message.startswith("Outputs are not close: 1 of 1 failed ('y')")
    assert "Mismatched elements: 1 / 4 (25%), first at index (1,)" in message
    assert "rtol=0.001, atol=0.001" in message


def test_simple_keyword_arguments_reach_the_comparison() -> None:
    assert_outputs_close(FAR, EXPECTED, atol=0.5)
    assert_outputs_close(FAR, EXPECTED, rule="allclose", rtol=0.25, atol=0)
    with pytest.raises(AssertionError):
        assert_outputs_close(FAR, EXPECTED, rule="allclose", rtol=0.2, atol=0)


def test_a_compare_function_replaces_simple() -> None:
    assert_outputs_close(FAR, EXPECTED, compare=CompareFunc.quality_metrics(psnr_tolerance=15.0))
    with pytest.raises(AssertionError, match=r"PSNR: 24.08\d* dB \(min required 30 dB\) FAILED"):
        assert_outputs_close(FAR, EXPECTED, compare=CompareFunc.quality_metrics())


def test_compare_and_simple_keywords_together_are_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"either compare= or .*\['atol'\]"):
        assert_outputs_close(CLOSE, EXPECTED, compare=CompareFunc.simple(), atol=1.0)


def test_string_message_comes_first() -> None:
    with pytest.raises(AssertionError) as raised:
        assert_outputs_close(FAR, EXPECTED, msg="fp16 engine drifted")
    message = str(raised.value)
    assert message.startswith("fp16 engine drifted\n\nOutputs are not close")


def test_callable_message_receives_the_report() -> None:
    seen: list[str] = []

    def message(report: str) -> str:
        seen.append(report)
        return "custom: " + report.splitlines()[0]

    with pytest.raises(AssertionError) as raised:
        assert_outputs_close(FAR, EXPECTED, msg=message)
    assert str(raised.value) == "custom: Outputs are not close: 1 of 1 failed ('y')"
    assert "Mismatched elements" in seen[0]


def test_bare_arrays_are_one_output() -> None:
    assert_outputs_close(np.ones(3), np.ones(3))
    with pytest.raises(AssertionError, match="Output 'output' FAILED"):
        assert_outputs_close(np.ones(3), np.zeros(3))


def test_outputs_restricts_and_missing_outputs_raise() -> None:
    assert_outputs_close(
        {**FAR, "z": np.ones(1)}, {**CLOSE, "w": np.ones(1)}, outputs=["y"], atol=1
    )
    with pytest.raises(OutputMismatchError, match="missing from actual"):
        assert_outputs_close(CLOSE, {**EXPECTED, "w": np.ones(1)})


USER_TEST = """
import numpy as np
from pytest_polygraphy.assertions import assert_outputs_close

def test_model_output():
    expected = {"logits": np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)}
    actual = {"logits": expected["logits"].copy()}
    actual["logits"][1, 2] += 0.125
    assert_outputs_close(actual, expected, rtol=1e-3, atol=1e-3)
"""


def test_pytest_shows_the_report_and_hides_the_helper_frames(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*assert_outputs_close(actual, expected, rtol=1e-3, atol=1e-3)*",
            "E * AssertionError: Outputs are not close: 1 of 1 failed ('logits')",
            "E * Output 'logits' FAILED",
            "E *   shape: (2, 3)",
            "E *   Mismatched elements: 1 / 6 (16.7%), first at index (1, 2)",
            "E *   Greatest absolute difference: 0.125 at index (1, 2) (actual 1.125, expected 1)",
            "E *   Smallest tolerance that passes alone: atol=0.125 with rtol=0, *",
            "test_user.py:*: AssertionError",
        ]
    )
    result.stdout.no_fnmatch_line("*pytest_polygraphy/assertions.py*")


def test_pytest_shows_a_passing_comparison_as_a_pass(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TEST.replace("+= 0.125", "+= 1e-7"))
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_comparing_nothing_is_a_failure() -> None:
    with pytest.raises(AssertionError, match="nothing was compared: both sides hold no outputs"):
        assert_outputs_close({}, {})
    with pytest.raises(AssertionError, match=r"nothing was compared: outputs=\[\] selects none"):
        assert_outputs_close({"y": np.ones(2)}, {"y": np.ones(2)}, outputs=[])


def test_a_failure_carries_its_comparison() -> None:
    """The ``AssertionError`` holds the ``CompareResult`` as ``result``."""
    actual = {"a": np.zeros(3, np.float32), "b": np.ones(3, np.float32)}
    expected = {"a": np.zeros(3, np.float32), "b": np.full(3, 2.0, np.float32)}
    with pytest.raises(AssertionError) as info:
        assert_outputs_close(actual, expected)
    assert type(info.value) is AssertionError and isinstance(info.value.result, CompareResult)
    assert info.value.result.failed == ["b"] and info.value.result["b"].max_absdiff == 1.0
