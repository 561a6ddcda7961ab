"""Debug sessions: bisect a failing model down to its cause, with a check callable.

Pure: knows ONNX and numpy, never pytest. The plugin (``plugin/debug.py``) hands a session
a check that re-runs the failing test with a model variant in place of its model.
"""

from __future__ import annotations

from pytest_polygraphy.debug.reduce import ReduceOptions, ReduceSession
from pytest_polygraphy.debug.search import SearchResult, Verdict, reduce_block
from pytest_polygraphy.debug.session import CheckOutcome, SessionResult, Variant

__all__ = [
    "CheckOutcome",
    "ReduceOptions",
    "ReduceSession",
    "SearchResult",
    "SessionResult",
    "Variant",
    "Verdict",
    "reduce_block",
]
