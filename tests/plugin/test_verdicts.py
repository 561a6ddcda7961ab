"""Verdicts that can be trusted: a test that compared nothing fails, a model without a
graph or outputs is a clear ModelError, and a backend that fails on a feed gives a short
failure naming the model, the runner, the feed and the node (the traceback only when
asked for)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.plugin import harness


def weights_model() -> onnx.ModelProto:
    """``x[batch, n] @ W[4, 3]``: any n fits the declared dims, only n = 4 fits W."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    weights = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="matmul")], "g", [x], [y], [weights]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    return model


def no_output_model() -> onnx.ModelProto:
    model = harness.scale_model()
    del model.graph.output[:]
    return model


def failure(result: pytest.RunResult) -> str:
    """The FAILURES section of a run's output."""
    text = result.stdout.str()
    return text.split("= FAILURES =")[1].split("short test summary")[0]


# ----------------------------------------------------------------------------- nothing compared


def test_an_inputs_file_without_iterations_fails_as_nothing_compared(
    pytester: pytest.Pytester,
) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    (pytester.path / "empty.json").write_text("[]")
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--onnxref", "--polygraphy-load-inputs", "empty.json"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nothing was compared: the inputs loaded from *empty.json "
                                 "hold 0 iterations*"])  # fmt: skip


def test_the_accuracy_fixture_fails_when_nothing_was_compared(pytester: pytest.Pytester) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    (pytester.path / "empty.json").write_text("[]")
    pytester.makepyfile(
        test_acc="""
        import pytest

        @pytest.mark.model("m.onnx")
        def test_acc(accuracy):
            accuracy.check()
        """
    )
    result = pytester.runpytest(
        "test_acc.py", "--onnxrt", "--onnxref", "--polygraphy-load-inputs", "empty.json"
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nothing was compared: the inputs loaded from*0 iterations*"])


def test_one_backend_at_fp32_compares_nothing_and_fails_saying_what_to_add(
    pytester: pytest.Pytester,
) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    result = pytester.runpytest("m.onnx", "--onnxrt")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*nothing was compared: onnxrt is the only backend selected*--onnxref*"]
    )
    # Checking the outputs for NaN/Inf is a check: that test can pass.
    pytester.runpytest("m.onnx", "--onnxrt", "--polygraphy-validate").assert_outcomes(passed=1)


def test_golden_check_of_nothing_fails_and_writes_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_empty_list(golden):
            golden.check([])

        def test_empty_outputs(golden):
            golden.check({})
        """
    )
    for args in ((), ("--polygraphy-update-golden",)):
        result = pytester.runpytest(*args)
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(
            [
                "*nothing was compared: golden.check() got 0 iterations (an empty list)*",
                "*nothing was compared: golden.check() got an empty {}*",
            ]
        )
    assert not list(pytester.path.rglob("*.npz"))


def test_update_golden_never_writes_a_file_of_nothing(pytester: pytest.Pytester) -> None:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    (pytester.path / "empty.json").write_text("[]")
    result = pytester.runpytest(
        "m.onnx", "--onnxrt", "--polygraphy-reference", "golden", "--polygraphy-update-golden",
        "--polygraphy-load-inputs", "empty.json",
    )  # fmt: skip
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*nothing was compared*0 iterations*"])
    assert not list(pytester.path.rglob("*.npz"))


# ----------------------------------------------------------------------------- broken models


@pytest.mark.parametrize(
    "args",
    [
        ("--onnxref", "--polygraphy-precisions", "fp16"),
        ("--onnxref",),
        ("--onnxrt", "--onnxref"),
        ("--onnxrt", "--polygraphy-precisions", "fp16", "int8"),
        ("--onnxrt", "--polygraphy-reference", "golden", "--polygraphy-update-golden"),
    ],
    ids=lambda args: " ".join(args),
)
def test_a_truncated_model_is_a_model_error_under_every_backend(
    pytester: pytest.Pytester, args: tuple[str, ...]
) -> None:
    whole = harness.scale_model().SerializeToString()
    cut = whole[:2]  # ir_version only: parses as a ModelProto without a graph
    assert not onnx.load_from_string(cut).HasField("graph")
    (pytester.path / "cut.onnx").write_bytes(cut)
    result = pytester.runpytest("cut.onnx", *args)
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1 and "passed" not in outcomes, outcomes
    result.stdout.fnmatch_lines(["ModelError: model file *cut.onnx* has no graph*"])
    assert "Traceback" not in result.stdout.str()
    assert not list(pytester.path.rglob("*.npz"))


def test_a_model_without_outputs_is_a_model_error(pytester: pytest.Pytester) -> None:
    harness.save(no_output_model(), pytester.path / "none.onnx")
    result = pytester.runpytest("none.onnx", "--onnxrt", "--onnxref")
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "ModelError: model " in text and "none.onnx has no outputs" in text
    assert "At least one output" not in text and "Traceback" not in text


# ----------------------------------------------------------------------------- backend failures


@pytest.mark.parametrize("backend", ["onnxref", "onnxrt"])
def test_a_shape_that_misfits_the_weights_is_a_short_failure(
    pytester: pytest.Pytester, backend: str
) -> None:
    harness.save(weights_model(), pytester.path / "w.onnx")
    other = "--onnxrt" if backend == "onnxref" else "--onnxref"
    args = ["w.onnx", f"--{backend}", "--polygraphy-input-shapes", "x:[2,5]"]
    if backend == "onnxrt":  # the reference evaluator would fail first: onnxrt alone, fp16
        args += ["--polygraphy-precisions", "fp16"]
    else:
        args.append(other)
    result = pytester.runpytest(*args)
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "w.onnx::accuracy[" in text  # the headline names the model
    assert f"InferenceError: runner '{backend}' failed to run " in text
    assert "w.onnx on x: float32 [2, 5]" in text
    assert "failing node: 'matmul' (MatMul)" in text
    assert "inputs: generated (shapes x=2x5, seed 1, 1 iteration(s))" in text
    assert "--polygraphy-input-shapes" in text and "-v or --tb=long" in text
    assert "Traceback" not in text and len(text.splitlines()) < 25

    long = failure(pytester.runpytest(*args, "--tb=long"))
    assert "InferenceError: runner" in long and "Traceback (most recent call last)" in long


def test_a_backend_crash_on_loaded_inputs_says_they_were_loaded(pytester: pytest.Pytester) -> None:
    from pytest_polygraphy.data import save_inputs

    harness.save(weights_model(), pytester.path / "w.onnx")
    save_inputs(pytester.path / "feeds.npz", [{"x": np.ones((1, 2), np.float32)}])
    result = pytester.runpytest(
        "w.onnx", "--onnxref", "--onnxrt", "--polygraphy-load-inputs", "feeds.npz", "-v"
    )
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "w.onnx on x: float32 [1, 2]" in text
    assert "inputs: loaded from " in text and "feeds.npz\n" in text
    assert "Traceback (most recent call last)" in text  # -v shows it
    assert "pluggy" not in text


def test_the_accuracy_fixture_reports_a_backend_crash_briefly(pytester: pytest.Pytester) -> None:
    harness.save(weights_model(), pytester.path / "w.onnx")
    pytester.makepyfile(
        test_acc="""
        import pytest

        @pytest.mark.model("w.onnx")
        @pytest.mark.shapes("x:[1,7]")
        def test_acc(accuracy):
            accuracy.check()
        """
    )
    result = pytester.runpytest("test_acc.py", "--onnxrt", "--onnxref")
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "runner 'onnxref' failed to run " in text and "x: float32 [1, 7]" in text
    assert "inputs: generated (shapes x=1x7" in text
    assert "Traceback" not in text


# ----------------------------------------------------------------------------- golden files


def _update_then_damage(pytester: pytest.Pytester, damage: object) -> pytest.RunResult:
    harness.save(harness.scale_model(), pytester.path / "m.onnx")
    args = ("m.onnx", "--onnxrt", "--polygraphy-reference", "golden")
    pytester.runpytest(*args, "--polygraphy-update-golden").assert_outcomes(passed=1)
    [path] = list(pytester.path.rglob("*.npz"))
    damage(path)  # type: ignore[operator]
    return pytester.runpytest(*args)


def test_a_golden_file_with_a_flipped_bit_is_corrupt_with_the_update_command(
    pytester: pytest.Pytester,
) -> None:
    def flip(path: Path) -> None:
        data = bytearray(path.read_bytes())
        # The encryption bit of the first central directory entry: zipfile raises
        # RuntimeError "File '0/0/y.npy' is encrypted". Without the sidecar, whose hash
        # would catch it first, the archive's own error must still read clearly.
        data[data.find(b"PK\x01\x02") + 8] ^= 1
        path.write_bytes(bytes(data))
        path.with_suffix(".json").unlink()

    result = _update_then_damage(pytester, flip)
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "is corrupt" in text and "is encrypted" in text and "recreate it with:" in text
    assert "--polygraphy-update-golden" in text and "Traceback" not in text


def test_a_golden_file_newer_than_its_sidecar_is_refused(pytester: pytest.Pytester) -> None:
    def replace_outputs_only(path: Path) -> None:
        # An update killed between its two writes: new outputs, old sidecar.
        from pytest_polygraphy.data import RunResults, save_run_results

        results = RunResults()
        results.add("onnxrt", {"y": np.zeros((2, 3), np.float32)})
        save_run_results(path, results)

    result = _update_then_damage(pytester, replace_outputs_only)
    result.assert_outcomes(failed=1)
    text = failure(result)
    assert "is corrupt or does not match its sidecar" in text and "recreate it with:" in text


def test_test_ids_that_differ_only_in_unportable_characters_get_their_own_files(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        import pytest

        @pytest.mark.parametrize("value", [1.0, 2.0], ids=["net a", "net_a"])
        def test_net(golden, value):
            golden.check({"y": np.full(3, value)})
        """
    )
    pytester.runpytest("--polygraphy-update-golden").assert_outcomes(passed=2)
    files = sorted(p.name for p in pytester.path.rglob("*.npz"))
    assert len(files) == 2 and "test_net[net_a].npz" in files, files
    pytester.runpytest().assert_outcomes(passed=2)
    for path in pytester.path.rglob("*.json"):
        assert "npz_sha256" in json.loads(path.read_text())


def test_a_golden_file_of_an_older_version_is_still_read(pytester: pytest.Pytester) -> None:
    """Written before names were made unique: kept at its path, read by its own test, and
    refused (naming both tests) by the test that now owns that path."""
    from pytest_polygraphy.plugin.golden import GoldenFile

    pytester.makepyfile(
        test_net="""
        import numpy as np
        import pytest

        @pytest.mark.parametrize("value", [1.0, 2.0], ids=["net a", "net_a"])
        def test_net(golden, value):
            golden.check({"y": np.full(3, value)})
        """
    )
    old = GoldenFile(pytester.path / "golden" / "test_net" / "test_net[net_a].npz")
    old.write([{"y": np.full(3, 1.0)}], {"test": "test_net.py::test_net[net a]"})
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    text = failure(result)
    assert "_ test_net[net_a] _" in text
    assert "belongs to test 'test_net.py::test_net[net a]'" in text
    assert "test 'test_net.py::test_net[net_a]' maps to the same file" in text
