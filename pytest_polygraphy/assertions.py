"""Assertion helpers for test suites, built on the comparison functions."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pytest_polygraphy.compare import CompareFunc, CompareFunction
from pytest_polygraphy.compare.results import CompareResult

DEFAULT_NAME = "output"
"""The output name used when two bare arrays are compared."""


def assert_outputs_close(
    actual: Any,
    expected: Any,
    *,
    compare: Callable[..., CompareResult] | None = None,
    msg: str | Callable[[str], str] | None = None,
    outputs: Sequence[str] | None = None,
    **simple_kwargs: Any,
) -> CompareResult:
    """Asserts that two sets of outputs match, with a readable report when they do not.

    ``actual`` and ``expected`` are mappings of output name -> array (or two arrays, named
    "output"). The comparison is ``compare`` (any ``CompareFunc`` function), or
    ``CompareFunc.simple(**simple_kwargs)`` when ``compare`` is None: passing both is a
    TypeError. ``outputs`` restricts the comparison to the named outputs.

    On failure raises ``AssertionError`` whose message is the comparison report (each
    failing output: dtypes, shapes, tolerances, mismatch count, worst elements, ...) and
    whose ``result`` attribute is the ``CompareResult`` (what ``--polygraphy-reduce``
    reads the failing outputs from). A
    string ``msg`` is put first, above the report; a callable ``msg`` receives the report
    and returns the whole message. Returns the ``CompareResult`` when the outputs match.
    """
    __tracebackhide__ = True
    if compare is not None and simple_kwargs:
        raise TypeError(
            "assert_outputs_close() takes either compare= or keyword arguments for "
            f"CompareFunc.simple(), not both (got compare= and {sorted(simple_kwargs)})"
        )
    func = compare if compare is not None else CompareFunc.simple(**simple_kwargs)
    if not isinstance(func, CompareFunction) and not callable(func):
        raise TypeError(f"compare= must be a comparison function, got {type(func).__name__}")
    if not isinstance(actual, Mapping) and not isinstance(expected, Mapping):
        actual, expected = {DEFAULT_NAME: actual}, {DEFAULT_NAME: expected}
    result = func(actual, expected, outputs=outputs)
    if len(result) == 0:
        why = "outputs=[] selects none" if outputs is not None else "both sides hold no outputs"
        raise AssertionError(f"nothing was compared: {why}")
    if not result:
        report = result.report()
        if callable(msg):
            message = msg(report)
        elif msg is not None:
            message = f"{msg}\n\n{report}"
        else:
            message = report
        error = AssertionError(message)
        error.result = result  # type: ignore[attr-defined]
        raise error
    return result
