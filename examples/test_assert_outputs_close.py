"""A hand-written test with no fixtures: run a model on two backends through the library
API and compare with per-output tolerances."""

from __future__ import annotations

from pathlib import Path

from pytest_polygraphy import DataLoader, assert_outputs_close
from pytest_polygraphy.runners import OnnxrefRunner, OnnxrtRunner

MODEL = Path(__file__).parent / "models" / "detector_head.onnx"


def test_onnxruntime_matches_the_reference_evaluator() -> None:
    with OnnxrtRunner(MODEL) as onnxrt, OnnxrefRunner(MODEL) as onnxref:
        loader = DataLoader(seed=7, iterations=3, input_shapes={"features": (16, 32)})
        for feed in loader.bind(onnxrt.input_metadata):
            # boxes are in pixels (0..100): a looser absolute tolerance there
            assert_outputs_close(
                onnxrt.infer(feed),
                onnxref.infer(feed),
                rtol={"": 1e-5, "boxes": 1e-4},
                atol={"": 1e-5, "boxes": 1e-3},
            )
