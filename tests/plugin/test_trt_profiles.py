"""TensorRT optimization profiles of a test (``plugin.profiles``): the default profile that
covers every shape set, explicit --polygraphy-trt-min/opt/max-shapes profiles and their
checks, and the runner cache key that follows the profiles, not the shape set. Pure
orchestration: no TensorRT is needed (or claimed) here."""

from __future__ import annotations

import pytest

from pytest_polygraphy.errors import InputError
from pytest_polygraphy.metadata import TensorMetadata
from pytest_polygraphy.plugin.backends import RunnerCache
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.plugin.profiles import covering_profile, explicit_profiles, trt_profiles
from pytest_polygraphy.plugin.settings import AccuracySettings, resolve

INPUTS = (
    TensorMetadata()
    .add("x", "float32", ("batch", 3, None))
    .add("mask", "float32", ("batch", 1))
    .add("k", "int64", (2,))
)


def test_one_profile_covers_every_shape_set_elementwise_with_the_first_as_opt() -> None:
    sets = ({"x": (2, 3, 16)}, {"x": (8, 3, 4)}, {"x": (1, 3, 8)})
    profile = covering_profile(sets, INPUTS)
    # min and max elementwise (not one of the sets), opt the first set; "mask" shares the
    # named dim "batch" with x, as the data loader sizes it; the static "k" needs none
    assert profile == {
        "x": ((1, 3, 4), (2, 3, 16), (8, 3, 16)),
        "mask": ((1, 1), (2, 1), (8, 1)),
    }


def test_without_shape_sets_or_explicit_profiles_there_is_no_profile() -> None:
    assert trt_profiles(AccuracySettings(), INPUTS) == ()


def test_explicit_profiles_come_one_per_occurrence_of_the_options() -> None:
    profiles = explicit_profiles(
        [{"x": (1, 3, 4)}, {"x": (9, 3, 4)}],
        [{"x": (4, 3, 4)}, {"x": (12, 3, 4)}],
        [{"x": (8, 3, 4)}, {"x": (16, 3, 8)}],
        INPUTS,
    )
    assert profiles == (
        {"x": ((1, 3, 4), (4, 3, 4), (8, 3, 4))},
        {"x": ((9, 3, 4), (12, 3, 4), (16, 3, 8))},
    )


@pytest.mark.parametrize(
    ("mins", "opts", "maxs", "message"),
    [
        (
            [{"x": (1, 3, 4)}, {"x": (2, 3, 4)}],
            [{"x": (1, 3, 4)}],
            [{"x": (1, 3, 4)}],
            "got 2 trt_min_shapes, 1 trt_opt_shapes, 1 trt_max_shapes",
        ),
        (
            [{"x": (4, 3, 4)}],
            [{"x": (2, 3, 4)}],
            [{"x": (8, 3, 4)}],
            "profile 0, input 'x': min <= opt <= max must hold in every dim, but not in dim 0",
        ),
        (
            [{"x": (1, 3, 4)}],
            [{"x": (1, 3, 4, 1)}],
            [{"x": (1, 3, 4)}],
            "have different ranks",
        ),
        (
            [{"xx": (1, 3, 4)}],
            [{"xx": (1, 3, 4)}],
            [{"xx": (1, 3, 4)}],
            "names 'xx', which is not an input of the model .*did you mean 'x'",
        ),
        (
            [{"x": (1, 3, 4)}],
            [{"x": (1, 3, 4), "mask": (1, 1)}],
            [{"x": (1, 3, 4)}],
            "min, opt and max must name the same inputs",
        ),
        (
            [{"x": (1, 2, 4)}],
            [{"x": (1, 2, 4)}],
            [{"x": (1, 2, 4)}],
            r"shape \[1, 2, 4\] does not fit the model's dims \[\?,3,\?\]",
        ),
    ],
)
def test_bad_explicit_profiles_say_what_is_wrong(
    mins: list, opts: list, maxs: list, message: str
) -> None:
    with pytest.raises(InputError, match=message):
        explicit_profiles(mins, opts, maxs, INPUTS)


def _settings(shape: tuple[int, ...], **options: object) -> AccuracySettings:
    sets = ({"x": (1, 3, 4)}, {"x": (8, 3, 4)})
    return resolve(
        PolygraphyOptions(backends=("trt", "onnxref"), input_shapes=sets, **options),  # type: ignore[arg-type]
        precision="fp32",
        input_shapes={"x": shape},
    )


def test_the_trt_runner_key_is_the_profile_set_so_one_engine_serves_every_shape_set() -> None:
    cache = RunnerCache(PolygraphyOptions(backends=("trt", "onnxref")))
    small, large = _settings((1, 3, 4)), _settings((8, 3, 4))
    assert (
        small.parametrized_shapes
        == large.parametrized_shapes
        == (
            {"x": (1, 3, 4)},
            {"x": (8, 3, 4)},
        )
    )
    assert cache._key("trt", "fp32", small) == cache._key("trt", "fp32", large)
    # int8 calibrates with the test's inputs: its runners stay per shape set
    assert cache._key("trt", "int8", small) != cache._key("trt", "int8", large)
    explicit = _settings(
        (1, 3, 4),
        trt_min_shapes=({"x": (1, 3, 4)},),
        trt_opt_shapes=({"x": (4, 3, 4)},),
        trt_max_shapes=({"x": (8, 3, 4)},),
    )
    assert cache._key("trt", "fp32", explicit) != cache._key("trt", "fp32", small)
    wider = _settings(
        (1, 3, 4),
        trt_min_shapes=({"x": (1, 3, 4)},),
        trt_opt_shapes=({"x": (4, 3, 4)},),
        trt_max_shapes=({"x": (16, 3, 4)},),
    )
    assert cache._key("trt", "fp32", explicit) != cache._key("trt", "fp32", wider)
