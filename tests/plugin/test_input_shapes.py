"""Input shapes end to end: a name that is no input fails that model's tests (from the
command line, a sidecar or a marker), wildcards and quoted sets, dims the way exporters
write them (``?``, ``-1``, ``unk__N``) and named dims shared between inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from onnx import TensorProto, helper

from tests.models.builders import float_input, make_model
from tests.plugin import harness


def cls_like(path: Path) -> Path:
    """PaddleOCR cls's input as paddle2onnx writes it, ``x: [-1,3,?,?]`` -> Relu."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [-1, 3, "?", "?"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [-1, 3, "?", "?"])
    return harness.save(
        make_model([helper.make_node("Relu", ["x"], ["y"], name="relu")], [x], [y]), path
    )


def silero_like(path: Path) -> Path:
    """silero VAD's inputs ``input: [batch,samples]``, ``state: [2,batch,128]``:
    ``output[batch] = sum(input, 1) + sum(state, (0, 2))``."""
    axes_1 = helper.make_tensor("axes_1", TensorProto.INT64, [1], [1])
    axes_02 = helper.make_tensor("axes_02", TensorProto.INT64, [2], [0, 2])
    nodes = [
        helper.make_node("ReduceSum", ["input", "axes_1"], ["a"], name="sum_in", keepdims=0),
        helper.make_node("ReduceSum", ["state", "axes_02"], ["b"], name="sum_st", keepdims=0),
        helper.make_node("Add", ["a", "b"], ["output"], name="add"),
    ]
    inputs = [float_input("input", ["batch", "samples"]), float_input("state", [2, "batch", 128])]
    model = make_model(
        nodes, inputs, [float_input("output", ["batch"])], initializers=[axes_1, axes_02]
    )
    return harness.save(model, path)


def test_an_input_name_that_is_not_the_models_fails_its_tests(pytester: pytest.Pytester) -> None:
    harness.save(harness.exp_sigmoid_model(), pytester.path / "net.onnx")
    harness.save(harness.exp_sigmoid_model(), pytester.path / "side.onnx")
    (pytester.path / "side.polygraphy.json").write_text(
        json.dumps({"input_shapes": ["image:[2,4]"]})
    )
    pytester.makepyfile(
        test_marker="""
        import pytest

        @pytest.mark.model("net.onnx")
        @pytest.mark.shapes({"imgae": [2, 4]})
        def test_marked(accuracy):
            accuracy.check()
        """
    )
    result = pytester.runpytest("net.onnx", "--onnxref", "--polygraphy-input-shapes", "image:[2,4]")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*InputError: input_shapes names 'image', which is not an input of the model "
            "(did you mean 'x'?); the model's inputs are {x [[]dtype=float32, shape=[[]batch,4]]}*"
        ]
    )
    result = pytester.runpytest("side.onnx", "test_marker.py", "--onnxref")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*input_shapes names 'image', which is not an input*"])
    result.stdout.fnmatch_lines(["*input_shapes names 'imgae', which is not an input*"])


def test_a_wildcard_pattern_names_inputs(pytester: pytest.Pytester) -> None:
    silero_like(pytester.path / "vad.onnx")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.model("vad.onnx")
        def test_fed(data_loader, onnxref_runner):
            assert data_loader.bind(onnxref_runner.input_metadata).shapes == {
                "input": (3, 16), "state": (2, 3, 128)
            }
        """
    )
    result = pytester.runpytest(
        "--onnxref", "--onnxrt", "--polygraphy-input-shapes", "in*:[3,16]", "-v"
    )
    result.assert_outcomes(passed=2)  # vad.onnx itself too
    result.stdout.fnmatch_lines(["*test_fed[[]fp32-in[*]=3x16[]] PASSED*"])
    result = pytester.runpytest("vad.onnx", "--onnxref", "--polygraphy-input-shapes", "out*:[3,16]")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*names 'out[*]', which is a pattern that matches no input*"])


def test_a_quoted_shape_set_is_its_entries(pytester: pytest.Pytester) -> None:
    silero_like(pytester.path / "vad.onnx")
    result = pytester.runpytest(
        "vad.onnx", "--onnxref", "--onnxrt", "-v",
        "--polygraphy-input-shapes", "input:[2,512] state:[2,2,128]",
    )  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*accuracy[[]fp32-input=2x512,state=2x2x128[]] PASSED*"])


def test_question_mark_and_minus_one_dims_are_each_their_own(pytester: pytest.Pytester) -> None:
    cls_like(pytester.path / "cls.onnx")
    result = pytester.runpytest(
        "cls.onnx", "--onnxref", "--onnxrt", "--polygraphy-input-shapes", "x:[1,3,48,192]"
    )
    result.assert_outcomes(passed=1)


def test_a_given_dim_sizes_the_inputs_sharing_its_name(pytester: pytest.Pytester) -> None:
    silero_like(pytester.path / "vad.onnx")
    pytester.makepyfile(
        test_fed="""
        import pytest

        @pytest.mark.model("vad.onnx")
        @pytest.mark.shapes("input:[2,512]")
        def test_fed(data_loader, onnxref_runner):
            feed = data_loader.bind(onnxref_runner.input_metadata)[0]
            assert feed["state"].shape == (2, 2, 128)
        """
    )
    result = pytester.runpytest(
        "vad.onnx", "test_fed.py", "--onnxref", "--onnxrt", "--polygraphy-input-shapes",
        "input:[2,512]",
    )  # fmt: skip
    result.assert_outcomes(passed=2)


def test_loaded_inputs_must_have_the_shapes_the_id_names(pytester: pytest.Pytester) -> None:
    import numpy as np

    from pytest_polygraphy.data import save_inputs

    harness.save(harness.exp_sigmoid_model(), pytester.path / "net.onnx")
    save_inputs(pytester.path / "in.npz", [{"x": np.ones((2, 4), np.float32)}])
    args = ["net.onnx", "--onnxref", "--onnxrt", "--polygraphy-load-inputs", "in.npz"]
    result = pytester.runpytest(*args, "--polygraphy-input-shapes", "x:[2,4]")
    result.assert_outcomes(passed=1)
    result = pytester.runpytest(*args, "--polygraphy-input-shapes", "x:[3,4]")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*iteration 0: input 'x' has shape [[]2, 4[]], but the test's shape set x=3x4 gives*"]
    )
    result = pytester.runpytest(*args, "--polygraphy-input-shapes", "image:[2,4]")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*names [[]'image'[]], which the inputs loaded from * not hold*"])
