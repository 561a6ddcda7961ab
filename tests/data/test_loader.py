"""DataLoader: Polygraphy's values bit for bit, shapes, ranges and clear errors."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from pytest_polygraphy.data import DataLoader
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMeta, TensorMetadata

FIXTURES = Path(__file__).parent / "fixtures"
CASES = json.loads((FIXTURES / "data_loader_cases.json").read_text())


def _metadata(case: dict) -> TensorMetadata:
    metas = []
    for inp in case["inputs"]:
        shape_range = None
        if "min_shape" in inp:
            # an opt shape unlike min proves which one is used
            opt = [
                (lo + hi) // 2 for lo, hi in zip(inp["min_shape"], inp["max_shape"], strict=True)
            ]
            shape_range = (tuple(inp["min_shape"]), tuple(opt), tuple(inp["max_shape"]))
        metas.append(
            TensorMeta(inp["name"], np.dtype(inp["dtype"]), tuple(inp["shape"]), shape_range)
        )
    return TensorMetadata.of(metas)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reproduces_polygraphy_data_loader_bit_for_bit(case: dict) -> None:
    expected = np.load(FIXTURES / "data_loader_expected.npz")
    loader = DataLoader(
        seed=case["seed"],
        iterations=case["iterations"],
        val_range=case["val_range"],
        input_shapes=case["input_shapes"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feeds = loader.bind(_metadata(case))
    assert len(feeds) == case["iterations"]
    for k, feed in enumerate(feeds):
        assert list(feed) == [inp["name"] for inp in case["inputs"]]
        for name, array in feed.items():
            want = expected[f"{case['name']}/{k}/{name}"]
            assert array.dtype == want.dtype, name
            assert array.shape == want.shape, name
            assert array.tobytes() == want.tobytes(), f"{case['name']} iteration {k} input {name}"


def test_feeds_are_reproducible_and_indexable() -> None:
    meta = TensorMetadata().add("x", np.float32, (3, 4)).add("n", np.int64, (2,))
    feeds = DataLoader(seed=5, iterations=3).bind(meta)
    first = list(feeds)
    again = list(feeds)
    assert len(first) == 3
    for a, b in zip(first, again, strict=True):
        assert all(np.array_equal(a[name], b[name]) for name in a)
    assert np.array_equal(feeds[-1]["x"], first[2]["x"])
    assert np.array_equal(feeds[1:][0]["x"], first[1]["x"])
    assert not np.array_equal(first[0]["x"], first[1]["x"])
    with pytest.raises(IndexError):
        feeds[3]


def test_iteration_k_is_randomstate_of_seed_plus_k() -> None:
    meta = TensorMetadata().add("x", np.float64, (4,)).add("b", np.bool_, (5,))
    feeds = DataLoader(seed=10, iterations=2, val_range=(-3, 3)).bind(meta)
    rng = np.random.RandomState(11)
    x = rng.random_sample(4) * 6.0 - 3.0
    b = rng.randint(True, 2, size=5, dtype=np.bool_)  # bool(-3) and bool(3) are both True
    assert np.array_equal(feeds[1]["x"], x)
    assert np.array_equal(feeds[1]["b"], b) and b.all()


def test_default_range_is_zero_to_one_inclusive_for_every_dtype() -> None:
    meta = TensorMetadata()
    for dtype in (np.float16, np.float32, np.int8, np.uint8, np.int32, np.int64, np.bool_):
        meta.add(np.dtype(dtype).name, dtype, (400,))
    feed = DataLoader().bind(meta)[0]
    for name, array in feed.items():
        assert array.dtype == np.dtype(name)
        assert array.min() >= 0 and array.max() <= 1
        if array.dtype.kind in "iub":
            assert set(np.unique(array.astype(int))) == {0, 1}, name


def test_val_range_per_input_with_default_key() -> None:
    meta = TensorMetadata().add("a", np.int32, (300,)).add("b", np.float32, (300,))
    feed = DataLoader(val_range={"a": (-5, 5), "": (10.0, 11.0)}).bind(meta)[0]
    assert set(np.unique(feed["a"])) == set(range(-5, 6))
    assert feed["b"].min() >= 10.0 and feed["b"].max() <= 11.0


def test_none_bound_takes_the_default() -> None:
    meta = TensorMetadata().add("x", np.float32, (200,))
    feed = DataLoader(val_range=(None, 4.0)).bind(meta)[0]
    assert feed["x"].min() >= 0.0 and feed["x"].max() > 1.0


def test_input_shapes_one_value_or_per_input() -> None:
    meta = TensorMetadata().add("x", np.float32, ("batch", 3)).add("y", np.float32, (None, 2))
    feeds = DataLoader(input_shapes={"x": (5, 3), "": (7, 2)}).bind(meta)
    assert feeds.shapes == {"x": (5, 3), "y": (7, 2)}
    assert feeds[0]["x"].shape == (5, 3) and feeds[0]["y"].shape == (7, 2)


def test_dynamic_dim_without_shape_is_one_with_a_warning_naming_the_input() -> None:
    meta = TensorMetadata().add("images", np.float32, ("batch", 3, -1))
    with pytest.warns(UserWarning, match="'images'"):
        feeds = DataLoader().bind(meta)
    assert feeds[0]["images"].shape == (1, 3, 1)


def test_shape_range_gives_the_min_shape_without_warning() -> None:
    meta = TensorMetadata.of(
        [TensorMeta("x", np.dtype(np.float32), (None, 4), ((2, 4), (6, 4), (9, 4)))]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feeds = DataLoader().bind(meta)
    assert feeds[0]["x"].shape == (2, 4)


@pytest.mark.parametrize(
    ("shape", "given", "match"),
    [
        ((1, 3), (1, 4), "dim 1 must be 3"),
        (("n", 3), (2, 3, 1), "rank 2 expected"),
        (("n", 3), (2, -1), "non-negative int"),
    ],
)
def test_input_shape_that_does_not_fit_is_an_error(shape: tuple, given: tuple, match: str) -> None:
    meta = TensorMetadata().add("x", np.float32, shape)
    with pytest.raises(InputError, match=match) as err:
        DataLoader(input_shapes={"x": given}).bind(meta)
    assert "'x'" in str(err.value)


@pytest.mark.parametrize(
    ("dtype", "val_range", "match"),
    [
        (np.uint8, (-1, 3), "does not fit its dtype uint8"),
        (np.int8, (0, 300), "does not fit its dtype int8"),
        (np.float16, (0, 1e6), "does not fit its dtype float16"),
        (np.float32, (2, 1), "min must not exceed max"),
        (np.int32, (0, float("inf")), "finite for an integer"),
        (np.float32, (0, float("nan")), "NaN"),
        (np.float32, (0, 1, 2), "expected \\(min, max\\)"),
    ],
)
def test_bad_value_range_is_an_error_naming_the_input(
    dtype: type, val_range: tuple, match: str
) -> None:
    meta = TensorMetadata().add("x", dtype, (2,))
    with pytest.raises(InputError, match=match) as err:
        DataLoader(val_range={"x": val_range}).bind(meta)
    assert "'x'" in str(err.value)


@pytest.mark.parametrize("option", ["val_range", "input_shapes"])
def test_an_entry_naming_no_input_is_an_error_suggesting_the_closest(option: str) -> None:
    meta = TensorMetadata().add("image", np.float32, ("n", 3)).add("mask", np.float32, (2,))
    value = {"imgae": (0, 2) if option == "val_range" else (1, 3)}
    with pytest.raises(InputError) as err:
        DataLoader(**{option: value}).bind(meta)
    message = str(err.value)
    assert message.startswith(f"{option} names 'imgae', which is not an input of the model")
    assert "did you mean 'image'?" in message
    assert "image [dtype=float32, shape=[n,3]]" in message and "mask [" in message


def test_wildcard_patterns_name_inputs_and_a_pattern_matching_none_is_an_error() -> None:
    meta = (
        TensorMetadata()
        .add("inp_a", np.float32, ("n", 2))
        .add("inp_b", np.float32, ("m", 2))
        .add("c", np.float32, ("k", 2))
    )
    feeds = DataLoader(input_shapes={"inp_*": (3, 2), "[c]": (5, 2)}).bind(meta)
    assert feeds.shapes == {"inp_a": (3, 2), "inp_b": (3, 2), "c": (5, 2)}
    # the input's own name wins over a pattern; the first matching pattern over later ones
    feeds = DataLoader(input_shapes={"inp_?": (3, 2), "inp_b": (4, 2), "*": (6, 2)}).bind(meta)
    assert feeds.shapes == {"inp_a": (3, 2), "inp_b": (4, 2), "c": (6, 2)}
    with pytest.raises(InputError, match=r"names 'out_\*', which is a pattern that matches no"):
        DataLoader(val_range={"out_*": (0, 2)}).bind(meta)


def test_unknown_dims_are_independent_and_only_names_are_shared() -> None:
    # PaddleOCR cls writes x: [-1,3,?,?]; tf2onnx writes unk__N; an empty dim_param too
    for dims in ((-1, 3, "?", "?"), (None, 3, "unk__1", "unk__1"), (-1, 3, "", "")):
        meta = TensorMetadata().add("x", np.float32, dims)
        feeds = DataLoader(input_shapes={"x": (1, 3, 48, 192)}).bind(meta)
        assert feeds[0]["x"].shape == (1, 3, 48, 192)
    meta = TensorMetadata().add("x", np.float32, ("h", "h"))
    with pytest.raises(InputError, match=r"dim 1 is 'h', which is 48 in x\[0\], got 192"):
        DataLoader(input_shapes={"x": (48, 192)}).bind(meta)


def test_named_dims_of_a_given_shape_reach_the_other_inputs() -> None:
    silero = (
        TensorMetadata()
        .add("input", np.float32, ("batch", "samples"))
        .add("state", np.float32, (2, "batch", 128))
        .add("sr", np.int64, ())
    )
    feeds = DataLoader(input_shapes={"input": (2, 512)}).bind(silero)
    assert feeds.shapes == {"input": (2, 512), "state": (2, 2, 128), "sr": ()}
    with pytest.warns(UserWarning, match=r"'input'.*\[3, 1\]"):  # samples: unknown
        feeds = DataLoader(input_shapes={"state": (2, 3, 128)}).bind(silero)  # either way
    assert feeds.shapes["input"] == (3, 1)
    bert = (
        TensorMetadata()
        .add("input_ids", np.int64, ("batch", "sequence"))
        .add("attention_mask", np.int64, ("batch", "sequence"))
        .add("token_type_ids", np.int64, ("batch", "unk__0"))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every dim is known: nothing to warn about
        feeds = DataLoader(input_shapes={"input_ids": (2, 7), "token_type_ids": (2, 5)}).bind(bert)
    assert feeds.shapes["attention_mask"] == (2, 7)
    with pytest.raises(InputError, match=r"'state'.*'batch', which is 2 in input\[0\], got 3"):
        DataLoader(input_shapes={"input": (2, 512), "state": (2, 3, 128)}).bind(silero)


def test_unknown_rank_and_ungeneratable_dtypes_are_errors() -> None:
    with pytest.raises(InputError, match="unknown rank"):
        DataLoader().bind(TensorMetadata().add("x", np.float32, None))
    with pytest.raises(InputError, match="cannot generate data of dtype"):
        DataLoader().bind(TensorMetadata().add("s", object, (2,)))


@pytest.mark.parametrize(
    ("seed", "iterations"), [(-1, 1), (1.5, 1), (1, -1), (2**32 - 1, 2), (True, 1)]
)
def test_bad_seed_or_iterations(seed: object, iterations: int) -> None:
    with pytest.raises(InputError):
        DataLoader(seed=seed, iterations=iterations)  # type: ignore[arg-type]


def test_zero_iterations_yield_nothing() -> None:
    assert list(DataLoader(iterations=0).bind(TensorMetadata().add("x", np.float32, (1,)))) == []


def test_ml_dtypes_follow_the_same_recipe() -> None:
    meta = (
        TensorMetadata()
        .add("bf", ml_dtypes.bfloat16, (50,))
        .add("f8", ml_dtypes.float8_e4m3fn, (50,))
        .add("i4", ml_dtypes.int4, (50,))
    )
    feed = DataLoader(seed=3, val_range={"": (-4, 4)}).bind(meta)[0]
    rng = np.random.RandomState(3)
    bf = (rng.random_sample(50) * 8.0 - 4.0).astype(ml_dtypes.bfloat16)
    f8 = (rng.random_sample(50) * 8.0 - 4.0).astype(ml_dtypes.float8_e4m3fn)
    i4 = rng.randint(-4, 5, size=50, dtype=np.int64).astype(ml_dtypes.int4)
    for name, want in (("bf", bf), ("f8", f8), ("i4", i4)):
        assert feed[name].dtype == want.dtype
        assert feed[name].tobytes() == want.tobytes(), name
