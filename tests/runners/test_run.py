"""run() and compare(): every runner fed the same inputs, compared iteration by iteration
against a reference, streaming (outputs do not outlive their iteration)."""

from __future__ import annotations

import gc
import json
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc
from pytest_polygraphy.data import DataLoader, RunResults, load_run_results
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMetadata
from pytest_polygraphy.runners import (
    BaseRunner,
    GoldenRunner,
    OnnxrefRunner,
    OnnxrtRunner,
    Runner,
    compare,
    run,
)
from tests.models.builders import conv_chain, matmul_softmax, mixed_chain, weights


def _perturbed_matmul_softmax():
    """The same model with different weights: a backend that is really wrong."""
    model = matmul_softmax()
    model.graph.initializer[0].CopyFrom(weights("W", [16, 8], 1234))
    return model


def test_runners_satisfy_the_protocol() -> None:
    assert isinstance(OnnxrtRunner(matmul_softmax()), Runner)
    assert isinstance(OnnxrefRunner(matmul_softmax()), Runner)


def test_compare_stream_against_reference_per_iteration_runner_and_output() -> None:
    model = mixed_chain()
    runners = [
        OnnxrefRunner(model),
        OnnxrtRunner(model),
        OnnxrtRunner(model, precision="fp16"),
    ]
    comparison = compare(
        run(runners, DataLoader(iterations=3)),
        CompareFunc.simple(rtol=1e-4, atol=1e-5),
        reference="onnxref",
    )
    assert comparison.reference == "onnxref"
    assert comparison.runners == ["onnxrt", "onnxrt[fp16]"]
    assert [it.index for it in comparison.iterations] == [0, 1, 2]
    # fp32 ORT agrees with the reference evaluator; fp16 does not at these tolerances
    assert all(comparison.result("onnxrt", i)["scores"].passed for i in range(3))
    assert not comparison.result("onnxrt[fp16]", 0)["scores"].passed
    assert not comparison
    assert (0, "onnxrt[fp16]", "scores") in comparison.failures()
    assert all(runner == "onnxrt[fp16]" for _, runner, _ in comparison.failures())

    as_dict = json.loads(json.dumps(comparison.to_dict()))
    assert as_dict["passed"] is False
    assert as_dict["reference"] == "onnxref"
    first = as_dict["iterations"][0]
    assert first["iteration"] == 0
    assert set(first["runners"]) == {"onnxrt", "onnxrt[fp16]"}
    assert "iteration 0, onnxrt[fp16] vs onnxref" in comparison.report()


def test_all_agreeing_runners_pass_and_default_reference_is_the_first_runner() -> None:
    model = conv_chain()
    comparison = compare(
        run([OnnxrtRunner(model), OnnxrefRunner(model)], DataLoader(iterations=2)),
        CompareFunc.simple(rtol=1e-5, atol=1e-5),
    )
    assert comparison.reference == "onnxrt"
    assert comparison and comparison.passed
    assert comparison.failures() == []


def test_a_wrong_backend_fails_every_iteration() -> None:
    runners = [
        OnnxrefRunner(matmul_softmax()),
        OnnxrtRunner(_perturbed_matmul_softmax(), name="broken"),
    ]
    comparison = compare(run(runners, DataLoader(iterations=2)), reference="onnxref")
    assert not comparison
    assert [it.index for it in comparison.iterations if not it] == [0, 1]


def test_collected_results_compare_the_same_as_the_stream() -> None:
    model = mixed_chain()

    def runners() -> list[BaseRunner]:
        return [OnnxrefRunner(model), OnnxrtRunner(model, precision="fp16")]

    func = CompareFunc.simple(rtol=1e-3, atol=1e-3)
    streamed = compare(run(runners(), DataLoader(iterations=2)), func)
    results = run(runners(), DataLoader(iterations=2)).collect()
    assert isinstance(results, RunResults)
    assert list(results) == ["onnxref", "onnxrt[fp16]"]
    assert len(results["onnxref"]) == 2
    collected = compare(results, func)
    assert streamed.to_dict() == collected.to_dict()
    # a materialized result can be compared again with another function
    assert compare(results, CompareFunc.simple(rtol=1e-6, atol=1e-7)).passed is False


def test_a_comparison_and_a_stream_show_what_failed_in_one_line() -> None:
    """``assert compare(run(...))`` prints their reprs: the sides and the failing outputs,
    not every field of every result."""
    results = RunResults()
    results.add("ref", {"y": np.zeros(3, np.float32), "z": np.zeros(2, np.float32)})
    results.add("b", {"y": np.ones(3, np.float32), "z": np.zeros(2, np.float32)})
    failed = compare(results, CompareFunc.simple(rtol=1e-3, atol=1e-3))
    assert repr(failed) == "<RunComparison b vs ref: 1 iteration(s), failed: b 'y' (iteration 0)>"
    passed = compare(results, CompareFunc.simple(rtol=0, atol=2))
    assert repr(passed) == "<RunComparison b vs ref: 1 iteration(s), passed>"
    stream = run([OnnxrtRunner(matmul_softmax(), name="a")], DataLoader())
    assert repr(stream) == "<RunStream of a (not run yet)>"
    list(stream)
    assert repr(stream) == "<RunStream of a (consumed)>"


def test_the_stream_is_lazy_and_single_pass() -> None:
    runner = OnnxrtRunner(matmul_softmax())
    stream = run([runner], DataLoader(iterations=2))
    assert not runner.is_active  # nothing ran yet
    items = list(stream)
    assert [i.index for i in items] == [0, 1]
    assert not runner.is_active  # activated for the stream, released after it
    assert items[0].times["onnxrt"] > 0
    with pytest.raises(RuntimeError, match="already consumed"):
        list(stream)


def test_runners_active_before_the_stream_stay_active() -> None:
    runner = OnnxrtRunner(matmul_softmax())
    with runner:
        list(run([runner], DataLoader(iterations=1)))
        assert runner.is_active


class _TrackingRunner(BaseRunner):
    """Test double on top of a real ONNX Runtime runner: records, at each call, how many
    outputs it returned earlier are still alive somewhere."""

    def __init__(self, model: Any) -> None:
        super().__init__("tracking")
        self.inner = OnnxrtRunner(model)
        self.refs: list[weakref.ref] = []
        self.alive_at_call: list[int] = []

    @property
    def input_metadata(self) -> TensorMetadata:
        return self.inner.input_metadata

    @property
    def output_metadata(self) -> TensorMetadata:
        return self.inner.output_metadata

    def _activate(self) -> None:
        self.inner.activate()

    def _deactivate(self) -> None:
        self.inner.deactivate()

    def _infer(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        gc.collect()
        self.alive_at_call.append(sum(ref() is not None for ref in self.refs))
        outputs = self.inner._infer(feed)
        self.refs.extend(weakref.ref(array) for array in outputs.values())
        return outputs


def test_compare_does_not_keep_outputs_of_past_iterations() -> None:
    model = matmul_softmax()
    tracking = _TrackingRunner(model)
    comparison = compare(run([OnnxrefRunner(model), tracking], DataLoader(iterations=6)))
    assert comparison.passed is not None
    # at call k, at most the previous iteration's outputs are still referenced
    assert max(tracking.alive_at_call) <= 1
    gc.collect()
    assert all(ref() is None for ref in tracking.refs)


def test_collect_keeps_every_iteration() -> None:
    model = matmul_softmax()
    tracking = _TrackingRunner(model)
    results = run([tracking], DataLoader(iterations=4)).collect()
    assert tracking.alive_at_call == [0, 1, 2, 3]
    assert len(results["tracking"]) == 4


def test_feeds_can_be_any_iterable() -> None:
    feeds = [{"x": np.full((2, 16), v, np.float32)} for v in (0.0, 1.0)]
    items = list(run([OnnxrtRunner(matmul_softmax())], feeds))
    # constant rows give identical softmax rows
    probs = items[1].outputs["onnxrt"]["probs"]
    np.testing.assert_allclose(probs[0], probs[1])
    with pytest.raises(InputError, match="single feed dict"):
        list(run([OnnxrtRunner(matmul_softmax())], feeds[0]))


def test_duplicate_runner_names_are_refused() -> None:
    with pytest.raises(InputError, match="unique"):
        run([OnnxrtRunner(matmul_softmax()), OnnxrtRunner(matmul_softmax())], DataLoader())


def test_unknown_reference_and_lone_runner_are_input_errors() -> None:
    with pytest.raises(InputError, match="reference runner 'trt'"):
        compare(run([OnnxrtRunner(matmul_softmax())], DataLoader()), reference="trt")
    with pytest.raises(InputError, match="only runner"):
        compare(run([OnnxrtRunner(matmul_softmax())], DataLoader()))


def test_zero_iterations_compare_nothing_and_are_refused() -> None:
    # Polygraphy passes it; a deliberate difference listed in the README
    runners = [OnnxrtRunner(matmul_softmax()), OnnxrefRunner(matmul_softmax())]
    with pytest.raises(InputError, match="nothing to compare: the results hold no iterations"):
        compare(run(runners, DataLoader(iterations=0)))


def test_results_with_uneven_iterations_cannot_be_compared() -> None:
    results = RunResults()
    results.add("a", {"y": np.zeros(2)})
    results.add("a", {"y": np.zeros(2)})
    results.add("b", {"y": np.zeros(2)})
    with pytest.raises(InputError, match="different numbers of iterations"):
        compare(results)


# -- golden outputs ----------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_golden_runner_replays_saved_outputs(tmp_path: Path, suffix: str) -> None:
    model = mixed_chain()
    path = tmp_path / f"golden{suffix}"
    saved = run([OnnxrefRunner(model)], DataLoader(iterations=3)).save(path)
    assert load_run_results(path) == saved

    golden = GoldenRunner(path, model=model)
    assert golden.num_iterations == 3
    comparison = compare(
        run([golden, OnnxrtRunner(model)], DataLoader(iterations=3)),
        CompareFunc.simple(rtol=1e-5, atol=1e-6),
        reference="golden",
    )
    assert comparison.passed
    assert len(comparison.iterations) == 3
    # replayed outputs are the saved ones, iteration by iteration
    with golden:
        for k in range(3):
            replay = golden.infer({"image": np.zeros((1, 2, 6, 6), np.float32)})
            np.testing.assert_array_equal(replay["scores"], saved["onnxref"][k]["scores"])
        with pytest.raises(InputError, match="holds 3 iteration"):
            golden.infer({"image": np.zeros((1, 2, 6, 6), np.float32)})


def test_golden_runner_with_a_different_seed_fails_the_comparison(tmp_path: Path) -> None:
    model = matmul_softmax()
    path = tmp_path / "golden.npz"
    run([OnnxrefRunner(model)], DataLoader(seed=1)).save(path)
    comparison = compare(
        run([GoldenRunner(path), OnnxrtRunner(model)], DataLoader(seed=2)), reference="golden"
    )
    assert not comparison


def test_golden_runner_needs_a_runner_choice_when_the_file_has_several(tmp_path: Path) -> None:
    model = matmul_softmax()
    path = tmp_path / "two.json"
    run([OnnxrefRunner(model), OnnxrtRunner(model)], DataLoader()).save(path)
    with pytest.raises(InputError, match="holds results of 2 runners"):
        GoldenRunner(path).activate()
    with pytest.raises(InputError, match="no results for runner 'trt'"):
        GoldenRunner(path, runner="trt").activate()
    with GoldenRunner(path, runner="onnxrt") as golden:
        assert list(golden.output_metadata) == ["probs"]
        assert golden.infer({})["probs"].shape == (2, 8)


def _misfit_model():
    """matmul_softmax with ``x: [2, n]``: any n fits the declared dims, only 16 fits W."""
    model = matmul_softmax()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "n"
    return model


@pytest.mark.parametrize("runner_type", [OnnxrefRunner, OnnxrtRunner])
def test_a_backend_failure_names_runner_model_feed_and_node(runner_type: Any) -> None:
    from pytest_polygraphy.errors import InferenceError

    with runner_type(_misfit_model()) as runner, pytest.raises(InferenceError) as raised:
        runner.infer({"x": np.ones((2, 5), np.float32)})
    err = raised.value
    message = str(err)
    assert message.startswith(f"runner {runner.name!r} failed to run <in-memory ONNX model ")
    assert "on x: float32 [2, 5]" in message
    # ONNX Runtime names the node it ran: MatMul and Add fused into 'matmul/MatMulAddFusion'
    assert "failing node: 'matmul" in message and err.node is not None
    assert err.node.startswith("'matmul") and err.feed_shapes == {"x": "float32 [2, 5]"}
    assert err.__cause__ is not None  # the backend's own error, with its traceback


@pytest.mark.parametrize("runner_type", [OnnxrefRunner, OnnxrtRunner])
def test_a_model_without_outputs_or_graph_is_refused_at_activation(runner_type: Any) -> None:
    import onnx

    from pytest_polygraphy.errors import ModelError

    model = matmul_softmax()
    del model.graph.output[:]
    with pytest.raises(ModelError, match=r"'matmul_softmax'> has no outputs"):
        runner_type(model).activate()
    with pytest.raises(ModelError, match="has no graph"):
        runner_type(onnx.ModelProto(ir_version=9)).activate()


def test_an_output_without_type_information_runs_on_onnx_runtime() -> None:
    """``mark_outputs`` marks a tensor behind a custom-domain node without a dtype, as
    Polygraphy does; ONNX Runtime types it itself, so the runner activates and returns it,
    and errors raised while activating are noted as the model's (before any input)."""
    import warnings

    import onnx

    from pytest_polygraphy.errors import ModelError, raised_preparing_runner
    from pytest_polygraphy.models import mark_outputs
    from tests.debug import models

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        marked = mark_outputs(models.with_custom_op(), ["g", "y"])
    assert marked.graph.output[0].type.WhichOneof("value") is None
    feed = {"x": np.full((1, 16), 0.5, np.float32)}
    with OnnxrtRunner(marked) as runner:
        got = runner.infer(feed)
    assert list(got) == ["g", "y"] and got["g"].dtype == np.float32
    mystery = onnx.helper.make_node("Mystery", ["x"], ["y"], domain="my.domain")
    unknown = models.with_custom_op()
    del unknown.graph.node[:]
    unknown.graph.node.append(mystery)
    unknown.opset_import.append(onnx.helper.make_opsetid("my.domain", 1))
    with pytest.raises(ModelError, match="ONNX Runtime cannot load") as raised:
        OnnxrtRunner(unknown).activate()
    assert raised_preparing_runner(raised.value)
    assert not raised_preparing_runner(ValueError("elsewhere"))


def test_comparing_no_output_is_an_error_not_a_pass() -> None:
    results = RunResults()
    results.add("a", {"y": np.ones(2)})
    results.add("b", {"y": np.ones(2)})
    with pytest.raises(InputError, match=r"nothing was compared: in iteration 0, \['b'\]"):
        compare(results, outputs=[])
    empty = RunResults()
    empty.add("a", {})
    empty.add("b", {})
    with pytest.raises(InputError, match=r"nothing was compared: .*they hold no outputs"):
        compare(empty)
