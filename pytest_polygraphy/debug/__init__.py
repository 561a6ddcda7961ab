"""Debug sessions: bisect a failing model down to its cause, with a check callable.

Pure: knows ONNX and numpy, never pytest. The plugin (``plugin/debug.py``) hands a session
a check that re-runs the failing test with a model variant in place of its model.
"""

from __future__ import annotations

from pytest_polygraphy.debug.reduce import (
    CheckOutcome,
    ReduceOptions,
    ReduceResult,
    ReduceSession,
)
from pytest_polygraphy.debug.search import SearchResult, Verdict, reduce_block

__all__ = [
    "CheckOutcome",
    "ReduceOptions",
    "ReduceResult",
    "ReduceSession",
    "SearchResult",
    "Verdict",
    "reduce_block",
]
