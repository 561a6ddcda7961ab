"""``CompareFunc.indices``: Polygraphy's comparison of index outputs such as Top-K's."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_polygraphy.compare.base import CompareFunction, check_number, output_fields
from pytest_polygraphy.compare.pairing import check_option
from pytest_polygraphy.compare.results import IndexMismatch, IndicesResult
from pytest_polygraphy.per_name import value_for


class IndicesCompare(CompareFunction):
    """Compares outputs that hold indices, batch by batch, allowing values to move.

    All dimensions but the last are batches: shape (3, 4, 10) is 12 batches of 10 values.
    In each batch, the value at position ``i`` of ``actual`` passes when ``expected`` holds
    the same value at ``i``, or holds it first at a position ``j`` with
    ``|i - j| <= index_tolerance``. The last ``index_tolerance`` positions of each batch are
    not checked (their partners may have moved past the end; compare a Top-(K + tolerance)
    to cover them). With the default tolerance 0 the outputs must be equal. Shapes must
    match. ``index_tolerance`` takes an int or a dict per output with ``""`` as the
    default key.
    """

    kind = "indices"
    per_output_options = ("index_tolerance",)

    def __init__(self, index_tolerance: Any = 0) -> None:
        check_option(
            "index_tolerance",
            index_tolerance,
            lambda v: check_number(v, minimum=0) and int(v) == v,
            "an integer >= 0 is required",
        )
        self.index_tolerance = index_tolerance

    def parameters(self) -> dict[str, Any]:
        return {"index_tolerance": self.index_tolerance}

    def compare_output(self, name: str, actual: np.ndarray, expected: np.ndarray) -> IndicesResult:
        tolerance = int(value_for(self.index_tolerance, name, 0))
        fields: dict[str, Any] = {
            **output_fields(name, actual, expected),
            "index_tolerance": tolerance,
        }
        if actual.shape != expected.shape:
            reason = (
                f"shape mismatch: actual shape {tuple(actual.shape)} "
                f"!= expected shape {tuple(expected.shape)}"
            )
            return IndicesResult(passed=False, reason=reason, **fields)
        batch_shape = actual.shape[:-1]
        width = actual.shape[-1] if actual.ndim else 1
        checked = max(width - tolerance, 0)
        if actual.size == 0 or checked == 0:
            return IndicesResult(passed=True, **fields)
        a = actual.reshape(-1, width)
        e = expected.reshape(-1, width)
        failing = _failing_positions(a, e, checked, tolerance)
        mismatch_count = int(np.count_nonzero(failing))
        first = None
        if mismatch_count:
            row, position = (int(i) for i in np.argwhere(failing)[0])
            where = np.flatnonzero(e[row] == a[row, position])
            first = IndexMismatch(
                batch=tuple(int(i) for i in np.unravel_index(row, batch_shape)),
                position=position,
                value=a[row, position].item(),
                expected_position=int(where[0]) if where.size else None,
            )
        return IndicesResult(
            passed=mismatch_count == 0,
            total=a.shape[0] * checked,
            mismatch_count=mismatch_count,
            failed_batches=int(np.count_nonzero(failing.any(axis=1))),
            first_mismatch=first,
            **fields,
        )


def _failing_positions(a: np.ndarray, e: np.ndarray, checked: int, tolerance: int) -> np.ndarray:
    """Mask of failing (batch, position) pairs among the first ``checked`` positions."""
    failing = a[:, :checked] != e[:, :checked]
    if tolerance == 0:
        return failing  # a differing value is found elsewhere or nowhere: both fail
    for row in np.flatnonzero(failing.any(axis=1)):
        positions = np.flatnonzero(failing[row])
        matches = e[row][None, :] == a[row, positions][:, None]
        first = matches.argmax(axis=1)
        ok = matches.any(axis=1) & (np.abs(first - positions) <= tolerance)
        failing[row, positions[ok]] = False
    return failing
