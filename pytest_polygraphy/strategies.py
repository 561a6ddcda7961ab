"""Hypothesis strategies for property-based accuracy tests (imports hypothesis).

from hypothesis import given
from pytest_polygraphy.strategies import feeds

@given(feed=feeds(model_inputs, val_range=(-1, 1)))
def test_fp16_stays_close(feed): ...
"""

from __future__ import annotations

from pytest_polygraphy.data.strategies import feeds

__all__ = ["feeds"]
