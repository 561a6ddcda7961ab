"""Markers parametrize one test over precisions and input shapes; the `accuracy` fixture
runs the model on every selected backend and compares every output with the reference
(fp32), using each precision's default tolerances unless `tolerance` says otherwise."""

from __future__ import annotations

import pytest


@pytest.mark.model("models/tiny_cnn.onnx")
@pytest.mark.precisions("fp32", "fp16")
@pytest.mark.shapes({"image": [1, 3, 16, 16]}, "image:[8,3,16,16]")
def test_tiny_cnn(accuracy) -> None:
    accuracy.check()


@pytest.mark.model("models/layernorm_mlp.onnx")
@pytest.mark.precisions("fp16")
@pytest.mark.shapes("tokens:[2,8,32]")
@pytest.mark.tolerance(rtol=1e-2, atol=5e-3)
def test_layernorm_fp16_within_loosened_tolerance(accuracy, precision) -> None:
    assert precision == "fp16"
    accuracy.check()


@pytest.mark.model("models/detector_head.onnx")
@pytest.mark.shapes("features:[4,32]")
def test_runners_by_hand(runners, data_loader, compare_func) -> None:
    """The same, spelled out: every selected runner on the same feeds, compared pairwise."""
    first, *others = runners
    for feed in data_loader.bind(first.input_metadata):
        expected = first.infer(feed)
        for runner in others:
            assert compare_func(runner.infer(feed), expected), runner.name
