"""Outputs pair by exact name; anything else is an error listing both sides."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc
from pytest_polygraphy.errors import InputError, OutputMismatchError

ONE = np.ones(3, np.float32)


@pytest.mark.parametrize(
    "func",
    [
        CompareFunc.simple(),
        CompareFunc.indices(),
        CompareFunc.distance_metrics(),
        CompareFunc.quality_metrics(),
    ],
)
def test_missing_and_extra_outputs_list_both_sides(func) -> None:
    with pytest.raises(OutputMismatchError) as raised:
        func({"logits": ONE, "extra": ONE}, {"logits": ONE, "boxes": ONE})
    message = str(raised.value)
    assert "missing from actual:   ['boxes']" in message
    assert "missing from expected: ['extra']" in message
    assert "['logits', 'extra']" in message and "['logits', 'boxes']" in message


def test_names_pair_exactly_not_by_substring() -> None:
    with pytest.raises(OutputMismatchError):
        CompareFunc.simple()({"output:0": ONE}, {"output": ONE})


def test_outputs_restricts_the_comparison() -> None:
    result = CompareFunc.simple()(
        {"logits": ONE, "extra": ONE * 2}, {"logits": ONE, "boxes": ONE}, outputs=["logits"]
    )
    assert list(result) == ["logits"] and result
    with pytest.raises(OutputMismatchError, match=r"missing from actual:   \['boxes'\]"):
        CompareFunc.simple()({"logits": ONE}, {"logits": ONE, "boxes": ONE}, outputs=["boxes"])


def test_result_order_follows_expected_or_outputs() -> None:
    actual = {"b": ONE, "a": ONE}
    expected = {"a": ONE, "b": ONE}
    assert list(CompareFunc.simple()(actual, expected)) == ["a", "b"]
    assert list(CompareFunc.simple()(actual, expected, outputs=["b", "a"])) == ["b", "a"]


def test_bad_arguments_raise_input_error() -> None:
    with pytest.raises(InputError, match="mapping"):
        CompareFunc.simple()(ONE, {"x": ONE})  # type: ignore[arg-type]
    with pytest.raises(InputError, match="sequence of names"):
        CompareFunc.simple()({"x": ONE}, {"x": ONE}, outputs="x")
    with pytest.raises(InputError, match="'x' of actual"):
        CompareFunc.simple()({"x": [object()]}, {"x": ONE})


def test_empty_mappings_compare_nothing_and_pass() -> None:
    result = CompareFunc.simple()({}, {})
    assert bool(result) and len(result) == 0 and result.failed == []


def test_mapping_interface_and_repr() -> None:
    result = CompareFunc.simple(atol=0.5)({"x": ONE, "y": ONE * 2}, {"x": ONE, "y": ONE})
    assert result.failed == ["y"] and not result
    assert result["x"].passed and not result["y"]
    assert "simple(rtol=1e-05, atol=0.5" in result.compare
    assert "failed ['y']" in repr(result)
