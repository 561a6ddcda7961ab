"""CompareFunc.indices: Polygraphy's Top-K index semantics."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc, IndicesResult
from pytest_polygraphy.errors import InputError


def indices(actual, expected, tolerance=0) -> IndicesResult:
    result = CompareFunc.indices(tolerance)({"i": np.asarray(actual)}, {"i": np.asarray(expected)})
    output = result["i"]
    assert isinstance(output, IndicesResult)
    return output


def test_swapped_neighbours_need_a_tolerance_of_one() -> None:
    assert not indices([0, 1, 2], [1, 0, 2]).passed
    assert indices([0, 1, 2], [1, 0, 2], tolerance=1).passed


def test_a_value_two_places_away_needs_a_tolerance_of_two() -> None:
    # With tolerance 1 the last position is not checked, but 0 moved two places.
    failed = indices([0, 1, 2], [1, 2, 0], tolerance=1)
    assert not failed.passed
    assert failed.first_mismatch is not None
    assert failed.first_mismatch.value == 0 and failed.first_mismatch.expected_position == 2
    assert indices([0, 1, 2], [1, 2, 0], tolerance=2).passed


def test_the_last_tolerance_positions_are_not_checked() -> None:
    output = indices([0, 1, 9], [0, 1, 2], tolerance=1)
    assert output.passed and output.total == 2


def test_value_missing_from_expected_fails() -> None:
    output = indices([[5, 1, 2]], [[0, 1, 2]], tolerance=2)
    assert not output.passed
    assert output.first_mismatch is not None
    assert output.first_mismatch.batch == (0,) and output.first_mismatch.position == 0
    assert output.first_mismatch.expected_position is None


def test_leading_dimensions_are_batches() -> None:
    actual = np.array([[[0, 1, 2], [3, 4, 5]], [[6, 7, 8], [9, 10, 11]]])
    expected = actual.copy()
    expected[1, 0] = [7, 6, 8]
    expected[1, 1] = [9, 10, 11]
    output = indices(actual, expected)
    assert output.mismatch_count == 2 and output.failed_batches == 1
    assert output.first_mismatch is not None and output.first_mismatch.batch == (1, 0)
    assert output.total == 12
    assert indices(actual, expected, tolerance=1).passed


def test_shapes_must_match() -> None:
    output = indices([0, 1, 2], [[0, 1, 2]])
    assert not output.passed and "shape" in output.reason


def test_empty_and_zero_dimensional_outputs() -> None:
    assert indices(np.zeros((2, 0), int), np.zeros((2, 0), int)).passed
    assert indices(np.array(3), np.array(3)).passed
    assert not indices(np.array(3), np.array(4)).passed


def test_per_output_tolerance() -> None:
    func = CompareFunc.indices({"a": 1, "": 0})
    actual = {"a": np.array([0, 1, 2]), "b": np.array([0, 1, 2])}
    expected = {"a": np.array([1, 0, 2]), "b": np.array([1, 0, 2])}
    assert func(actual, expected).failed == ["b"]


@pytest.mark.parametrize("tolerance", [-1, 0.5, "1"])
def test_invalid_tolerance(tolerance) -> None:
    with pytest.raises(InputError):
        CompareFunc.indices(tolerance)
