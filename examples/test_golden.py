"""Golden outputs: the first run writes them with `--polygraphy-update-golden`; every
later run compares fresh outputs with the stored `.npz` using the test's tolerances."""

from __future__ import annotations

import pytest


@pytest.mark.model("models/detector_head.onnx")
@pytest.mark.precisions("fp32")
@pytest.mark.shapes("features:[4,32]")
def test_detector_matches_golden(onnxrt_runner, data_loader, golden) -> None:
    outputs = [onnxrt_runner.infer(feed) for feed in data_loader.bind(onnxrt_runner.input_metadata)]
    golden.check(outputs, backend=onnxrt_runner.name)
