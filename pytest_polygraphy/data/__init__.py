"""Input data: Polygraphy-compatible random feeds, input and output files, feed validation.

Hypothesis strategies live in :mod:`pytest_polygraphy.data.strategies` (re-exported as
:mod:`pytest_polygraphy.strategies`) so that importing this package does not import hypothesis.
"""

from __future__ import annotations

from pytest_polygraphy.data.formats import load_inputs, save_inputs
from pytest_polygraphy.data.loader import BoundDataLoader, DataLoader, LoadedFeeds
from pytest_polygraphy.data.results import (
    IterationResult,
    RunResults,
    load_run_results,
    save_run_results,
)
from pytest_polygraphy.data.script import ScriptLoader, load_script_loader
from pytest_polygraphy.data.validate import validate_feed

__all__ = [
    "BoundDataLoader",
    "DataLoader",
    "IterationResult",
    "LoadedFeeds",
    "RunResults",
    "ScriptLoader",
    "load_inputs",
    "load_run_results",
    "load_script_loader",
    "save_inputs",
    "save_run_results",
    "validate_feed",
]
