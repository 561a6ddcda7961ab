"""Debug sessions: bisect a failing model down to its cause, with a check callable.

Pure: knows ONNX and numpy, never pytest. The plugin (``plugin/debug.py``) hands a session
a check that re-runs the failing test with a variant in place of its model, inputs or
precision settings. Names are imported on first use, so that importing one light module
(``search``, ``repeat``, ``journal``) does not import onnx and numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_polygraphy.lazy import lazy_getattr

if TYPE_CHECKING:
    from pytest_polygraphy.debug.precision import PrecisionOptions, PrecisionSession
    from pytest_polygraphy.debug.reduce import ReduceOptions, ReduceSession
    from pytest_polygraphy.debug.repeat import RepeatSession
    from pytest_polygraphy.debug.search import SearchResult, Verdict, peel, reduce_block
    from pytest_polygraphy.debug.session import CheckOutcome, SessionResult, Variant

_EXPORTS = {
    "CheckOutcome": ".session",
    "SessionResult": ".session",
    "Variant": ".session",
    "Verdict": ".search",
    "SearchResult": ".search",
    "reduce_block": ".search",
    "peel": ".search",
    "ReduceOptions": ".reduce",
    "ReduceSession": ".reduce",
    "PrecisionOptions": ".precision",
    "PrecisionSession": ".precision",
    "RepeatSession": ".repeat",
}

__all__ = [
    "CheckOutcome",
    "PrecisionOptions",
    "PrecisionSession",
    "ReduceOptions",
    "ReduceSession",
    "RepeatSession",
    "SearchResult",
    "SessionResult",
    "Variant",
    "Verdict",
    "peel",
    "reduce_block",
]


__getattr__ = lazy_getattr(__name__, _EXPORTS)
