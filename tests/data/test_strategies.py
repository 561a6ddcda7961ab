"""Hypothesis strategies: drawn feeds fit the model and the ranges, and shrink to simple ones."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, find, given, settings
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from pytest_polygraphy.data import validate_feed
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata
from pytest_polygraphy.strategies import feeds

META = TensorMetadata.of(
    [
        TensorMeta("x", np.dtype(np.float32), ("batch", 3, None)),
        TensorMeta("mask", np.dtype(np.bool_), ("batch", "seq")),
        TensorMeta("ids", np.dtype(np.int64), ("seq",)),
        TensorMeta("h", np.dtype(np.float16), (2,)),
        TensorMeta("u", np.dtype(np.uint8), (None,), ((3,), (5,), (40,))),
        TensorMeta("bf", np.dtype(ml_dtypes.bfloat16), (4,)),
    ]
)
RANGES = {"x": (-2.5, 0.1), "ids": (-(2**62), 2**62), "u": (250, 255), "": (-1.0, 1.0)}
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(feed=feeds(META, val_range=RANGES, max_dim=5))
def test_drawn_feeds_fit_the_model_and_the_ranges(feed: dict[str, np.ndarray]) -> None:
    validated = validate_feed(feed, META, source="hypothesis")
    for name, array in feed.items():
        assert validated[name] is array  # already the model's dtype: nothing to cast
        low, high = RANGES.get(name, RANGES[""])
        if array.dtype == np.bool_:
            low, high = bool(low), bool(high)
        lo, hi = np.asarray(low).astype(array.dtype), np.asarray(high).astype(array.dtype)
        assert np.all(array >= lo) and np.all(array <= hi), name
    assert 1 <= feed["x"].shape[0] <= 5 and 1 <= feed["x"].shape[2] <= 5
    assert feed["mask"].shape == (feed["x"].shape[0], feed["ids"].shape[0])
    assert 3 <= feed["u"].shape[0] <= 5


def test_shrinks_to_the_smallest_shapes_and_the_range_minimum() -> None:
    smallest = find(feeds(META, val_range=RANGES), lambda feed: True)
    assert smallest["x"].shape == (1, 3, 1)
    assert smallest["u"].shape == (3,)
    assert np.all(smallest["x"] == np.float32(-2.5))
    assert np.all(smallest["ids"] == -(2**62))
    assert np.all(smallest["u"] == 250)


def test_finds_the_range_maximum() -> None:
    found = find(
        feeds(META, val_range=RANGES),
        lambda feed: bool(np.any(feed["ids"] == 2**62)),
        settings=settings(max_examples=500, database=None),
    )
    assert np.any(found["ids"] == 2**62)


def test_input_shapes_fix_the_shape() -> None:
    strategy = feeds(META, input_shapes={"x": (2, 3, 8), "mask": (2, 6), "ids": (6,), "u": (4,)})
    feed = find(strategy, lambda feed: True)
    assert {name: a.shape for name, a in feed.items()} == {
        "x": (2, 3, 8),
        "mask": (2, 6),
        "ids": (6,),
        "h": (2,),
        "u": (4,),
        "bf": (4,),
    }


def test_a_fixed_shape_sizes_the_named_dims_of_the_other_inputs() -> None:
    feed = find(feeds(META, input_shapes={"x": (3, 3, 2)}), lambda feed: True)
    assert feed["mask"].shape[0] == 3


def test_unknown_dims_are_drawn_each_alone() -> None:
    meta = TensorMetadata().add("x", np.float32, ("?", "?", "unk__0", "unk__0", -1, ""))

    def all_differ(feed: dict[str, np.ndarray]) -> bool:
        shape = feed["x"].shape
        return shape[0] != shape[1] and shape[2] != shape[3] and shape[4] != shape[5]

    assert all_differ(find(feeds(meta), all_differ))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_shapes": {"mask": (2, 6), "x": (3, 3, 1)}}, "'mask'.*'batch', which is 3 in x"),
        ({"input_shapes": {"mak": (2, 6)}}, "did you mean 'mask'"),
        ({"val_range": {"u": (0, 256)}}, "does not fit its dtype uint8"),
        ({"val_range": (0, float("inf"))}, "finite bounds"),
        ({"input_shapes": {"h": (3,)}}, "dim 0 must be 2"),
        ({"max_dim": 0}, "max_dim"),
    ],
)
def test_bad_options_fail_when_the_strategy_is_made(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        feeds(META, **kwargs)


def test_unknown_rank_needs_a_shape() -> None:
    meta = TensorMetadata().add("x", np.float32, None)
    with pytest.raises(InputError, match="unknown rank"):
        feeds(meta)
    assert find(feeds(meta, input_shapes=(2, 2)), lambda feed: True)["x"].shape == (2, 2)


# The use the strategies are for: a property over every input in range. Here fp16 arithmetic
# in onnx's reference evaluator stays within fp16 tolerance of a float64 numpy formula.
def _fp16_model() -> onnx.ModelProto:
    two = helper.make_tensor("two", TensorProto.FLOAT16, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["t"]), helper.make_node("Tanh", ["t"], ["y"])],
        "fp16",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["n", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, ["n", 4])],
        [two],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


EVALUATOR = ReferenceEvaluator(_fp16_model())


@settings(max_examples=25, deadline=None)
@given(feed=feeds(TensorMetadata().add("x", np.float16, ("n", 4)), val_range=(-3, 3)))
def test_fp16_model_stays_within_tolerance_for_every_input_in_range(
    feed: dict[str, np.ndarray],
) -> None:
    (y,) = EVALUATOR.run(None, feed)
    expected = np.tanh(2.0 * feed["x"].astype(np.float64))
    np.testing.assert_allclose(y.astype(np.float64), expected, rtol=2e-3, atol=2e-3)
