"""A property test: fp16 stays within the fp16 tolerances for every input in range.
hypothesis draws feeds within the model's dims and shrinks a failure to a small input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings

from pytest_polygraphy import (
    assert_outputs_close,
    convert_to_fp16,
    default_tolerances,
    input_metadata,
    load_model,
)
from pytest_polygraphy.runners import OnnxrtRunner
from pytest_polygraphy.strategies import feeds

MODEL = load_model(Path(__file__).parent / "models" / "tiny_cnn.onnx")


@pytest.fixture(scope="module")
def fp32_and_fp16() -> Iterator[tuple[OnnxrtRunner, OnnxrtRunner]]:
    with (
        OnnxrtRunner(MODEL, name="fp32") as fp32,
        OnnxrtRunner(convert_to_fp16(MODEL), name="fp16") as fp16,
    ):
        yield fp32, fp16


@settings(max_examples=25, deadline=None)
@given(feed=feeds(input_metadata(MODEL), val_range=(-1.0, 1.0), max_dim=4))
def test_fp16_stays_close_for_every_input_in_range(fp32_and_fp16, feed) -> None:
    fp32, fp16 = fp32_and_fp16
    assert_outputs_close(fp16.infer(feed), fp32.infer(feed), **default_tolerances("fp16"))
