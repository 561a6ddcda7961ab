"""CompareFunc.simple: Polygraphy's rule and its edge cases, checked against plain numpy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc, OutputCompareResult
from pytest_polygraphy.errors import InputError
from tests.compare import reference


def compare_one(actual, expected, **kwargs) -> OutputCompareResult:
    result = CompareFunc.simple(**kwargs)(
        {"out": np.asarray(actual)}, {"out": np.asarray(expected)}
    )
    output = result["out"]
    assert isinstance(output, OutputCompareResult)
    assert bool(result) == output.passed == bool(output)
    return output


# -- the elementwise rule ---------------------------------------------------------------


def test_element_fails_only_when_it_exceeds_both_tolerances() -> None:
    expected = np.array([1.0, 100.0, 1e-6, 1.0], np.float32)
    actual = np.array([1.5, 100.5, 2e-6, 1.0], np.float32)
    # absdiff: 0.5, 0.5, 1e-6, 0; reldiff: 0.5, 0.005, 1.0, 0
    output = compare_one(actual, expected, rtol=0.01, atol=0.1)
    assert output.mismatch_count == 1  # only [0]: abs 0.5 > 0.1 and rel 0.5 > 0.01
    assert output.first_mismatch_index == (0,)
    assert not output.passed
    assert compare_one(actual, expected, rtol=0.6, atol=0.1).passed
    assert compare_one(actual, expected, rtol=0.01, atol=0.6).passed


def test_mismatch_count_and_stats_match_the_numpy_formulas() -> None:
    rng = np.random.default_rng(3)
    expected = rng.standard_normal((7, 11)).astype(np.float32)
    actual = expected + rng.standard_normal((7, 11)).astype(np.float32) * 1e-3
    output = compare_one(actual, expected, rtol=1e-3, atol=1e-3)
    absdiff, reldiff = reference.diffs(actual, expected)
    mask = reference.mismatches(actual, expected, 1e-3, 1e-3)
    assert output.mismatch_count == int(mask.sum())
    assert output.total == 77
    assert output.max_absdiff == float(absdiff.max())
    assert output.max_reldiff == float(reldiff.max())
    assert output.mean_absdiff == pytest.approx(float(absdiff.astype(np.float64).mean()), rel=1e-6)
    assert output.mean_reldiff == pytest.approx(float(reldiff.astype(np.float64).mean()), rel=1e-6)
    assert output.worst_abs is not None
    assert output.worst_abs.index == np.unravel_index(int(absdiff.argmax()), (7, 11))
    assert output.worst_abs.actual == float(actual[output.worst_abs.index])
    assert output.worst_abs.expected == float(expected[output.worst_abs.index])
    assert output.worst_rel is not None
    assert output.worst_rel.index == np.unravel_index(int(reldiff.argmax()), (7, 11))


def test_zero_in_expected_gets_the_epsilon_for_floats_only() -> None:
    output = compare_one(np.array([1e-20], np.float32), np.array([0.0], np.float32), atol=0)
    assert output.max_reldiff == pytest.approx(np.float32(1e-20) / reference.EPSILON, rel=1e-6)
    assert not output.passed  # abs 1e-20 > 0 and rel 4.5e-5 > 1e-5
    assert compare_one(np.array([1e-20], np.float32), np.array([0.0], np.float32)).passed

    integers = compare_one(np.array([0, 1]), np.array([0, 0]), atol=0.5)
    assert math.isnan(integers.max_reldiff)  # 0/0: Polygraphy adds no epsilon to integers
    assert integers.nan_reldiff_count == 1
    assert integers.worst_rel is not None and integers.worst_rel.reldiff == math.inf
    assert integers.mismatch_count == 1  # 1 vs 0: abs 1 > 0.5 and rel inf


def test_nan_fails_everywhere_even_nan_against_nan() -> None:
    for actual, expected in ([math.nan], [1.0]), ([1.0], [math.nan]), ([math.nan], [math.nan]):
        output = compare_one(np.array(actual, np.float32), np.array(expected, np.float32), atol=1e9)
        assert not output.passed
        assert output.mismatch_count == 1
        assert math.isnan(output.max_absdiff) and math.isnan(output.mean_absdiff)
        assert output.required_atol is None and output.required_rtol is None


@pytest.mark.parametrize("stat", ["max", "mean", "median", "quantile"])
def test_nan_fails_every_statistic(stat: str) -> None:
    actual = np.array([1.0, 2.0, math.nan, 4.0], np.float32)
    expected = np.array([1.0, 2.0, 3.0, 4.0], np.float32)
    output = compare_one(actual, expected, check_error_stat=stat, atol=1e9, rtol=1e9)
    assert not output.passed
    assert math.isnan(getattr(output, f"{stat}_absdiff"))


def test_equal_infinities_fail_unless_asked_to_compare_equal() -> None:
    actual = np.array([np.inf, -np.inf, 1.0], np.float32)
    expected = np.array([np.inf, -np.inf, 1.0], np.float32)
    strict = compare_one(actual, expected)
    assert not strict.passed and strict.mismatch_count == 2
    assert strict.actual_nonfinite.inf_count == 2
    assert strict.actual_nonfinite.first_inf_index == (0,)
    assert strict.expected_nonfinite.inf_count == 2
    lenient = compare_one(actual, expected, infinities_compare_equal=True)
    assert lenient.passed and lenient.max_absdiff == 0.0


@pytest.mark.parametrize(
    ("actual", "expected"), [(np.inf, -np.inf), (np.inf, 1.0), (1.0, np.inf), (-np.inf, 3.0)]
)
def test_unequal_infinities_always_fail(actual: float, expected: float) -> None:
    output = compare_one(
        np.array([actual]), np.array([expected]), infinities_compare_equal=True, atol=1e30
    )
    assert not output.passed


def test_nan_and_inf_counts_with_first_index_on_each_side() -> None:
    actual = np.zeros((3, 4), np.float32)
    expected = np.zeros((3, 4), np.float32)
    actual[1, 2] = actual[2, 0] = np.nan
    actual[2, 3] = np.inf
    expected[0, 1] = -np.inf
    output = compare_one(actual, expected)
    assert output.actual_nonfinite.nan_count == 2
    assert output.actual_nonfinite.first_nan_index == (1, 2)
    assert output.actual_nonfinite.inf_count == 1
    assert output.actual_nonfinite.first_inf_index == (2, 3)
    assert output.expected_nonfinite.nan_count == 0
    assert output.expected_nonfinite.first_nan_index is None
    assert output.expected_nonfinite.first_inf_index == (0, 1)
    assert output.mismatch_count == 4


# -- error statistics -----------------------------------------------------------------


def test_statistic_modes_fail_when_both_statistics_exceed() -> None:
    expected = np.array([1.0, 1.0, 1.0, 1.0])
    actual = np.array([1.0, 1.0, 1.0, 2.0])  # absdiff = reldiff = [0, 0, 0, 1]
    assert not compare_one(actual, expected, check_error_stat="elemwise", atol=0.3).passed
    assert not compare_one(actual, expected, check_error_stat="max", atol=0.3).passed
    assert compare_one(actual, expected, check_error_stat="mean", atol=0.3).passed  # 0.25
    assert not compare_one(actual, expected, check_error_stat="mean", atol=0.2).passed
    assert compare_one(actual, expected, check_error_stat="mean", rtol=0.3).passed
    assert compare_one(actual, expected, check_error_stat="median", atol=0).passed  # 0
    quantile = compare_one(actual, expected, check_error_stat="quantile", error_quantile=0.9)
    assert quantile.quantile_absdiff == pytest.approx(np.quantile([0, 0, 0, 1], 0.9))
    assert not quantile.passed
    assert compare_one(
        actual, expected, check_error_stat="quantile", error_quantile=0.5, atol=0
    ).passed


def test_tolerances_meet_float32_differences_in_float32() -> None:
    # float32(0.1) is above 0.1; NumPy 2 compares a float32 difference with the float32
    # of a Python tolerance, so the difference 0.1f is within atol=0.1 in every mode.
    actual, expected = np.array([0.1], np.float32), np.array([0.0], np.float32)
    for stat in ("elemwise", "max", "mean", "median", "quantile"):
        assert compare_one(actual, expected, atol=0.1, check_error_stat=stat).passed, stat
    assert not compare_one(actual, expected, atol=0.0999999, check_error_stat="max").passed


@pytest.mark.parametrize("stat", ["median", "quantile"])
def test_deciding_median_and_quantile_are_exact(stat: str) -> None:
    rng = np.random.default_rng(5)
    expected = rng.standard_normal(1001).astype(np.float32)
    actual = expected + rng.standard_normal(1001).astype(np.float32) * 1e-2
    output = compare_one(actual, expected, check_error_stat=stat, error_quantile=0.9)
    absdiff, reldiff = reference.diffs(actual, expected)
    assert output.approximate == ()
    assert output.median_absdiff == float(np.median(absdiff))
    assert output.median_reldiff == float(np.median(reldiff))
    assert output.quantile_absdiff == float(np.quantile(absdiff, 0.9))
    assert output.quantile_reldiff == float(np.quantile(reldiff, 0.9))


def test_reported_median_and_quantile_are_approximate_within_the_stated_bound() -> None:
    rng = np.random.default_rng(6)
    expected = rng.standard_normal(20_000).astype(np.float32)
    actual = expected + rng.standard_normal(20_000).astype(np.float32) * 1e-3
    output = compare_one(actual, expected, error_quantile=0.95)
    absdiff, reldiff = reference.diffs(actual, expected)
    assert set(output.approximate) == {
        "median_absdiff",
        "median_reldiff",
        "quantile_absdiff",
        "quantile_reldiff",
    }
    bound = 2.0**-8 * (1 + 1e-6)
    assert output.median_absdiff == pytest.approx(float(np.median(absdiff)), rel=bound)
    assert output.median_reldiff == pytest.approx(float(np.median(reldiff)), rel=bound)
    assert output.quantile_absdiff == pytest.approx(float(np.quantile(absdiff, 0.95)), rel=bound)
    assert output.quantile_reldiff == pytest.approx(float(np.quantile(reldiff, 0.95)), rel=bound)


@pytest.mark.parametrize("stat", ["elemwise", "median"])  # approximate, then exact
@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (np.array([1], np.uint8), np.array([0], np.uint8)),  # reldiff [inf]
        (np.array([1, 1], np.int32), np.array([0, 0], np.int32)),  # [inf, inf]
        (np.array([1, 2, 1], np.int64), np.array([2, 0, 0], np.int64)),  # [.5, inf, inf]
        (np.array([1, 1], np.int8), np.array([2, 0], np.int8)),  # [.5, inf]
    ],
)
def test_an_infinite_middle_difference_has_numpys_median(
    actual: np.ndarray, expected: np.ndarray, stat: str
) -> None:
    # Polygraphy takes np.median, which averages the middle elements: inf, never NaN.
    # (Integers have no epsilon in the relative difference, so x / 0 is inf.)
    output = compare_one(actual, expected, check_error_stat=stat)
    absdiff, reldiff = reference.diffs(actual, expected)
    assert output.median_reldiff == float(np.median(reldiff)) == math.inf
    assert output.median_absdiff == pytest.approx(float(np.median(absdiff)), rel=2.0**-8)


# -- per-output options ----------------------------------------------------------------


def test_per_output_dicts_with_a_default_key() -> None:
    expected = {"a": np.array([1.0]), "b": np.array([1.0]), "c": np.array([1.0])}
    actual = {"a": np.array([1.1]), "b": np.array([1.1]), "c": np.array([1.1])}
    func = CompareFunc.simple(atol={"a": 0.2, "": 0.01}, rtol={"b": 0.2, "": 0.01})
    result = func(actual, expected)
    assert result.failed == ["c"]
    assert result["a"].atol == 0.2 and result["c"].atol == 0.01
    stat = CompareFunc.simple(check_error_stat={"a": "mean", "": "elemwise"}, atol=0.2)
    assert stat(actual, expected)["a"].check_error_stat == "mean"
    assert stat(actual, expected)["b"].check_error_stat == "elemwise"


def test_per_output_dict_without_default_uses_the_function_default() -> None:
    output = CompareFunc.simple(atol={"other": 1.0})(
        {"x": np.array([1.0]), "other": np.array([1.0])},
        {"x": np.array([1.0]), "other": np.array([1.0])},
    )["x"]
    assert output.atol == 1e-5


def test_unknown_per_output_keys_warn() -> None:
    with pytest.warns(UserWarning, match="typo"):
        CompareFunc.simple(atol={"typo": 1.0, "": 0.1})({"x": np.ones(2)}, {"x": np.ones(2)})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rtol": -1.0},
        {"atol": math.nan},
        {"atol": {"x": "big"}},
        {"check_error_stat": "mode"},
        {"error_quantile": 1.5},
        {"rule": "close"},
        {"rule": "allclose", "check_error_stat": "mean"},
    ],
)
def test_invalid_options_raise_input_error(kwargs: dict) -> None:
    with pytest.raises(InputError):
        CompareFunc.simple(**kwargs)


# -- the allclose rule ---------------------------------------------------------------


def test_allclose_rule_is_absdiff_within_atol_plus_rtol_times_expected() -> None:
    expected = np.array([1.0, 1.0, 0.0])
    actual = np.array([2.5, 3.5, 1.0])  # absdiff 1.5, 2.5, 1.0; limit 2, 2, 1
    polygraphy = compare_one(actual, expected, rtol=1.0, atol=1.0)
    allclose = compare_one(actual, expected, rtol=1.0, atol=1.0, rule="allclose")
    assert polygraphy.mismatch_count == 2
    assert allclose.mismatch_count == 1 and allclose.first_mismatch_index == (1,)
    mask = reference.allclose_mismatches(actual, expected, 1.0, 1.0)
    assert allclose.mismatch_count == int(mask.sum())
    assert np.isclose(actual, expected, rtol=1.0, atol=1.0).tolist() == [True, False, True]


def test_allclose_rule_never_passes_nan_or_infinite_differences() -> None:
    output = compare_one(
        np.array([np.nan, 1.0, np.inf]), np.array([np.nan, np.inf, np.inf]), rule="allclose"
    )
    assert output.mismatch_count == 3
    equal = compare_one(
        np.array([np.inf]), np.array([np.inf]), rule="allclose", infinities_compare_equal=True
    )
    assert equal.passed


# -- dtypes --------------------------------------------------------------------------


def test_float16_is_compared_in_float32() -> None:
    # In float16, 2048 - 0.5 rounds back to 2048; cast up first it is 2047.5.
    output = compare_one(np.array([2048], np.float16), np.array([0.5], np.float16))
    assert output.max_absdiff == 2047.5
    assert output.compared_dtype == "float32"


def test_small_integers_are_cast_up_and_64_bit_integers_never_wrap() -> None:
    assert compare_one(np.array([127], np.int8), np.array([-128], np.int8)).max_absdiff == 255
    assert compare_one(np.array([0], np.uint8), np.array([255], np.uint8)).max_absdiff == 255
    assert compare_one(np.array([0], np.uint32), np.array([2**32 - 1], np.uint32)).max_absdiff == (
        2**32 - 1
    )
    info = np.iinfo(np.int64)
    wide = compare_one(np.array([info.max]), np.array([info.min]), atol=0)
    assert wide.max_absdiff == float(2**64 - 1)
    assert wide.mismatch_count == 1
    near = compare_one(np.array([info.max]), np.array([info.max - 1]), atol=0, rtol=0)
    assert near.mismatch_count == 1 and near.max_absdiff == 1.0


def test_integers_against_floats_follow_numpy_promotion() -> None:
    output = compare_one(np.array([1, 2, 3], np.int32), np.array([1.0, 2.0, 3.5], np.float32))
    assert output.compared_dtype == "float64"
    assert output.max_absdiff == 0.5
    assert output.mismatch_count == 1


def test_bool_outputs_compare_by_xor() -> None:
    output = compare_one(np.array([True, False, True, False]), np.array([True, True, False, False]))
    assert output.mismatch_count == 2
    assert output.max_absdiff == 1.0
    assert output.worst_elements[0].index == (1,)
    assert output.worst_elements[0].actual is False and output.worst_elements[0].expected is True
    assert compare_one(np.array([True]), np.array([False]), atol=1.0).passed


def test_bfloat16_outputs_are_compared_in_float32() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes provides bfloat16")
    expected = np.array([1.0, 2.0, 3.0], np.float32)
    actual = expected.astype(ml_dtypes.bfloat16)
    output = compare_one(actual, expected)
    assert output.passed and output.compared_dtype == "float32"
    noisy = compare_one((expected + 0.1).astype(ml_dtypes.bfloat16), expected)
    assert noisy.max_absdiff == pytest.approx(0.1, rel=0.1)


def test_unsupported_dtypes_raise_input_error_naming_the_output() -> None:
    with pytest.raises(InputError, match="'out'"):
        compare_one(np.array([1 + 1j]), np.array([1 + 1j]))
    with pytest.raises(InputError, match="'out'"):
        compare_one(np.array(["a"]), np.array(["a"]))


def test_dtype_difference_is_shown_and_fails_only_when_checked() -> None:
    actual, expected = np.array([1.0], np.float32), np.array([1.0], np.float64)
    shown = compare_one(actual, expected)
    assert shown.passed
    assert (shown.actual_dtype, shown.expected_dtype) == ("float32", "float64")
    checked = compare_one(actual, expected, check_dtypes=True)
    assert not checked.passed
    assert "float32" in checked.reason and "float64" in checked.reason
    assert checked.max_absdiff == 0.0  # still compared and reported


# -- shapes ----------------------------------------------------------------------------


def test_shape_mismatch_fails_with_both_shapes() -> None:
    output = compare_one(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not output.passed
    assert "(2, 3)" in output.reason and "(3, 2)" in output.reason
    assert output.max_absdiff is None and not output.compared


def test_unchecked_shapes_reshape_equal_volumes_only() -> None:
    actual = np.arange(6.0).reshape(2, 3)
    assert compare_one(actual, np.arange(6.0).reshape(3, 2), check_shapes=False).passed
    different = compare_one(actual, np.arange(6.0).reshape(6, 1)[::-1], check_shapes=False)
    assert different.mismatch_count == 6  # reshaped in C order, never permuted
    volume = compare_one(actual, np.zeros(5), check_shapes=False)
    assert not volume.passed and "volumes differ" in volume.reason


def test_empty_outputs_pass() -> None:
    output = compare_one(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
    assert output.passed and output.total == 0 and output.mismatch_count == 0
    assert output.max_absdiff == 0.0 and output.mean_absdiff == 0.0
    for stat in ("max", "mean", "median", "quantile"):
        assert compare_one(np.zeros(0), np.zeros(0), check_error_stat=stat).passed


def test_zero_dimensional_outputs() -> None:
    output = compare_one(np.float32(2.0), np.float32(1.0))
    assert output.mismatch_count == 1
    assert output.first_mismatch_index == ()
    assert output.worst_abs is not None and output.worst_abs.index == ()
    assert output.worst_abs.actual == 2.0 and output.worst_abs.expected == 1.0


def test_non_contiguous_and_broadcast_inputs_match_contiguous_copies() -> None:
    rng = np.random.default_rng(9)
    base = rng.standard_normal((40, 30)).astype(np.float32)
    actual = base.T[::2]  # strided
    expected = np.broadcast_to(rng.standard_normal((1, 40)).astype(np.float32), actual.shape)
    strided = compare_one(actual, expected, rtol=0.5, atol=0.5)
    dense = compare_one(
        np.ascontiguousarray(actual), np.ascontiguousarray(expected), rtol=0.5, atol=0.5
    )
    assert strided == dense


# -- results --------------------------------------------------------------------------


def test_required_tolerances_are_the_smallest_that_pass_alone() -> None:
    rng = np.random.default_rng(11)
    expected = rng.standard_normal(200).astype(np.float32)
    actual = expected + rng.standard_normal(200).astype(np.float32) * 1e-2
    output = compare_one(actual, expected)
    atol, rtol = output.required_atol, output.required_rtol
    assert atol is not None and rtol is not None
    assert compare_one(actual, expected, atol=atol, rtol=0).passed
    # Tolerances meet float32 differences in float32 (NumPy 2 casts Python floats to the
    # array's dtype), so the next smaller tolerance is the next smaller float32.
    below = float(np.nextafter(np.float32(atol), np.float32(0)))
    assert not compare_one(actual, expected, atol=below, rtol=0).passed
    assert compare_one(actual, expected, rtol=rtol, atol=0).passed
    assert not compare_one(actual, expected, rtol=rtol * (1 - 1e-6), atol=0).passed


def test_worst_elements_are_the_largest_mismatches() -> None:
    expected = np.zeros(100, np.float32)
    actual = np.zeros(100, np.float32)
    actual[[5, 50, 7, 90, 3, 60, 61]] = [1, 7, 3, 2, 6, 5, 4]
    output = compare_one(actual, expected)
    assert [e.index for e in output.worst_elements] == [(50,), (3,), (60,), (61,), (7,)]
    assert [e.absdiff for e in output.worst_elements] == [7, 6, 5, 4, 3]


def test_to_dict_is_json_serializable() -> None:
    result = CompareFunc.simple()(
        {"x": np.array([1.0, np.nan], np.float32)}, {"x": np.array([1.0, 2.0], np.float32)}
    )
    data = json.loads(json.dumps(result.to_dict()))
    assert data["passed"] is False
    assert data["outputs"]["x"]["mismatch_count"] == 1
    assert data["outputs"]["x"]["actual_nonfinite"]["first_nan_index"] == [1]
    assert data["outputs"]["x"]["kind"] == "simple"
