"""validate_feed: names, ranks, dims, symbolic dims, shape ranges and the casting policy."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from pytest_polygraphy.data import validate_feed
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata

META = (
    TensorMetadata()
    .add("x", np.float32, ("batch", 3, None))
    .add("mask", np.bool_, ("batch", -1))
    .add("ids", np.int32, (2,))
)


def _feed(**overrides: object) -> dict[str, object]:
    feed: dict[str, object] = {
        "x": np.zeros((4, 3, 7), np.float32),
        "mask": np.ones((4, 9), bool),
        "ids": np.array([1, 2], np.int32),
    }
    feed.update(overrides)
    return feed


def test_valid_feed_comes_back_in_model_order_without_copies() -> None:
    feed = _feed()
    out = validate_feed(dict(reversed(list(feed.items()))), META, source="feeds.npz")
    assert list(out) == ["x", "mask", "ids"]
    assert all(out[name] is feed[name] for name in feed)


@pytest.mark.parametrize(
    ("feed", "match"),
    [
        ({**_feed(), "extra": np.zeros(1)}, r"unknown input\(s\) \['extra'\]"),
        ({k: v for k, v in _feed().items() if k != "ids"}, r"missing input\(s\) \['ids'\]"),
        (_feed(x=np.zeros((4, 3), np.float32)), "'x'.*rank 3 expected, got rank 2"),
        (_feed(x=np.zeros((4, 2, 7), np.float32)), "'x'.*dim 1 must be 3, got 2"),
        (_feed(mask=np.ones((5, 9), bool)), r"'mask'.*'batch', which is 4 in x\[0\], got 5"),
        (_feed(ids=np.array([1, 2, 3], np.int32)), "'ids'.*expected shape \\[2\\], got \\[3\\]"),
        (_feed(ids=np.array([1.0, 2.0])), "'ids'.*expected dtype int32, got float64"),
        (_feed(mask=np.ones((4, 9), np.int8)), "'mask'.*expected dtype bool, got int8"),
        (_feed(ids=np.array(["a", "b"])), "'ids'.*expected dtype int32"),
        (_feed(ids=np.array([1, 2**40])), r"'ids'.*value 1099511627776 at index \[1\]"),
        (_feed(x=np.full((4, 3, 7), 1e300)), "'x'.*overflows"),
        ("not a dict", "expected a feed dict"),
    ],
)
def test_bad_feeds_are_errors_naming_source_input_expected_and_actual(
    feed: object, match: str
) -> None:
    with pytest.raises(InputError, match=match) as err:
        validate_feed(feed, META, source="feeds.npz iteration 0")  # type: ignore[arg-type]
    assert str(err.value).startswith("feeds.npz iteration 0: ")


def test_safe_and_value_preserving_casts_are_applied() -> None:
    out = validate_feed(
        _feed(x=np.full((4, 3, 7), 0.1), ids=[7, -3], mask=np.ones((4, 9), bool)),
        META,
        source="s",
    )
    assert out["x"].dtype == np.float32 and np.all(out["x"] == np.float32(0.1))
    assert out["ids"].dtype == np.int32 and out["ids"].tolist() == [7, -3]


@pytest.mark.parametrize(
    ("dtype", "data", "ok"),
    [
        (np.float32, np.float16([1.5]), True),
        (np.float32, np.array([True]), True),
        (np.float32, np.int64([2**24 + 1]), False),  # not exactly representable
        (np.float32, np.int64([2**24]), True),
        (np.float16, np.float32([70000.0]), False),
        (np.float16, np.float32([np.inf, np.nan]), True),  # no finite value overflows
        (np.uint8, np.int64([-1]), False),
        (np.uint8, np.int64([255]), True),
        (np.int64, np.uint64([2**63]), False),
        (ml_dtypes.bfloat16, np.float32([1.0, 3e38]), True),
        (ml_dtypes.float8_e4m3fn, np.float32([500.0]), False),
        (np.int32, np.float32([1.0]), False),
    ],
)
def test_casting_policy(dtype: type, data: np.ndarray, ok: bool) -> None:
    meta = TensorMetadata().add("t", dtype, (len(data),))
    if ok:
        out = validate_feed({"t": data}, meta, source="s")["t"]
        assert out.dtype == np.dtype(dtype)
        assert np.array_equal(
            out.astype(np.float64), data.astype(dtype).astype(np.float64), equal_nan=True
        )
    else:
        with pytest.raises(InputError, match="'t'"):
            validate_feed({"t": data}, meta, source="s")


def test_shape_range_bounds_are_checked() -> None:
    meta = TensorMetadata.of(
        [TensorMeta("x", np.dtype(np.float32), (None, 2), ((1, 2), (4, 2), (8, 2)))]
    )
    validate_feed({"x": np.zeros((8, 2), np.float32)}, meta, source="s")
    with pytest.raises(InputError, match=r"outside the shape range min \[1, 2\] .. max \[8, 2\]"):
        validate_feed({"x": np.zeros((9, 2), np.float32)}, meta, source="s")


def test_unknown_rank_accepts_any_shape() -> None:
    meta = TensorMetadata().add("x", np.float32, None)
    assert validate_feed({"x": np.zeros((1, 2, 3), np.float32)}, meta, source="s")["x"].shape == (
        1,
        2,
        3,
    )


@pytest.mark.parametrize("unknown", [-1, None, "?", "", "unk__3"])
def test_each_unknown_dim_stands_alone(unknown: object) -> None:
    meta = TensorMetadata().add("x", np.float32, (unknown, 3, unknown, unknown))
    feed = {"x": np.zeros((1, 3, 48, 192), np.float32)}
    assert validate_feed(feed, meta, source="s")["x"].shape == (1, 3, 48, 192)
