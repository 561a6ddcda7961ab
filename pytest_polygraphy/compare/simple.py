"""``CompareFunc.simple``: Polygraphy's tolerance rule, with the statistics it never gives."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pytest_polygraphy.compare import _histogram, _kernels
from pytest_polygraphy.compare.base import (
    CompareFunction,
    align_shapes,
    check_number,
    output_fields,
)
from pytest_polygraphy.compare.pairing import check_option
from pytest_polygraphy.compare.results import ElementDiff, NonFinite, OutputCompareResult
from pytest_polygraphy.errors import InputError
from pytest_polygraphy.per_name import value_for

CHECK_ERROR_STATS = ("elemwise", "max", "mean", "median", "quantile")
RULES = ("polygraphy", "allclose")

_DEFAULTS: dict[str, Any] = {
    "rtol": 1e-5,
    "atol": 1e-5,
    "check_error_stat": "elemwise",
    "error_quantile": 0.99,
}

PerOutput = Any  # a value, or a dict of output name -> value with "" as the default key


class SimpleCompare(CompareFunction):
    """Compares outputs element by element with a relative and an absolute tolerance.

    ``rule="polygraphy"`` (default) is Polygraphy's rule: an element fails only when it
    exceeds both tolerances::

        (absdiff > atol or isnan(absdiff)) and (reldiff > rtol or isnan(reldiff))
        absdiff = |actual - expected|
        reldiff = absdiff / |expected|   (floating zeros of expected -> 2.220446049250313e-16)

    ``rule="allclose"`` is numpy's and torch's rule: an element passes when
    ``absdiff <= atol + rtol * |expected|`` (NaN and infinite differences never pass).

    Operands are cast up first (float16 -> float32, bfloat16/float8 -> float32, 8/16-bit
    integers -> int32, uint32 -> int64) and compared in numpy's common dtype of those;
    integer pairs are compared exactly with no epsilon (so 0/0 gives a NaN reldiff, as in
    Polygraphy); bool vs bool compares by XOR. ``infinities_compare_equal`` makes equal
    infinities a difference of 0; otherwise ``inf - inf`` is NaN and fails.

    ``check_error_stat``: "elemwise" fails on any failing element; "max", "mean",
    "median" and "quantile" (the ``error_quantile`` quantile) fail when the statistic of
    absdiff exceeds atol AND that of reldiff exceeds rtol, a NaN statistic exceeding. In
    "median"/"quantile" mode that statistic is exact, which keeps absdiff and reldiff in
    memory (two arrays of the compared dtype); otherwise medians and quantiles are only
    reported, approximately (see ``OutputCompareResult.approximate``), and memory stays
    bounded. Means accumulate in float64.

    ``rtol``, ``atol``, ``check_error_stat`` and ``error_quantile`` take one value or a
    dict per output name with ``""`` as the default key. ``check_shapes=False`` lets an
    ``expected`` of another shape but the same volume be reshaped to ``actual``'s shape.
    A dtype difference is reported and fails only with ``check_dtypes=True``. Empty
    outputs pass (Polygraphy reports a NaN mean and an infinite quantile for them).
    """

    kind = "simple"
    per_output_options = ("rtol", "atol", "check_error_stat", "error_quantile")

    def __init__(
        self,
        rtol: PerOutput = 1e-5,
        atol: PerOutput = 1e-5,
        check_error_stat: PerOutput = "elemwise",
        error_quantile: PerOutput = 0.99,
        infinities_compare_equal: bool = False,
        check_shapes: bool = True,
        check_dtypes: bool = False,
        rule: str = "polygraphy",
    ) -> None:
        nonnegative = "a number >= 0 is required"
        check_option("rtol", rtol, lambda v: check_number(v, minimum=0), nonnegative)
        check_option("atol", atol, lambda v: check_number(v, minimum=0), nonnegative)
        check_option(
            "check_error_stat",
            check_error_stat,
            lambda v: v in CHECK_ERROR_STATS,
            f"expected one of {list(CHECK_ERROR_STATS)}",
        )
        check_option(
            "error_quantile",
            error_quantile,
            lambda v: check_number(v, minimum=0, maximum=1),
            "a number in [0, 1] is required",
        )
        if rule not in RULES:
            raise InputError(f"rule={rule!r} is invalid: expected one of {list(RULES)}")
        if rule == "allclose":
            stats = (
                check_error_stat.values()
                if isinstance(check_error_stat, Mapping)
                else [check_error_stat]
            )
            if any(stat != "elemwise" for stat in stats):
                raise InputError(
                    'rule="allclose" is an elementwise rule: it needs check_error_stat="elemwise"'
                )
        self.rtol = rtol
        self.atol = atol
        self.check_error_stat = check_error_stat
        self.error_quantile = error_quantile
        self.infinities_compare_equal = bool(infinities_compare_equal)
        self.check_shapes = bool(check_shapes)
        self.check_dtypes = bool(check_dtypes)
        self.rule = rule

    def parameters(self) -> dict[str, Any]:
        return {
            "rtol": self.rtol,
            "atol": self.atol,
            "check_error_stat": self.check_error_stat,
            "error_quantile": self.error_quantile,
            "infinities_compare_equal": self.infinities_compare_equal,
            "check_shapes": self.check_shapes,
            "check_dtypes": self.check_dtypes,
            "rule": self.rule,
        }

    def options_for(self, name: str) -> dict[str, Any]:
        """The tolerances and statistic that apply to output ``name``."""
        return {key: value_for(getattr(self, key), name, _DEFAULTS[key]) for key in _DEFAULTS}

    def compare_output(
        self, name: str, actual: np.ndarray, expected: np.ndarray
    ) -> OutputCompareResult:
        options = self.options_for(name)
        fields: dict[str, Any] = {
            **output_fields(name, actual, expected),
            "rule": self.rule,
            "rtol": float(options["rtol"]),
            "atol": float(options["atol"]),
            "check_error_stat": options["check_error_stat"],
            "error_quantile": float(options["error_quantile"]),
        }
        work_dtype, integer = comparison_dtype(actual.dtype, expected.dtype, name)
        aligned = align_shapes(actual, expected, self.check_shapes)
        if isinstance(aligned, str):
            return OutputCompareResult(passed=False, reason=aligned, **fields)
        actual, expected = aligned

        stat = options["check_error_stat"]
        spec = _kernels.DiffSpec(
            work_dtype=work_dtype,
            integer=integer,
            rule=self.rule,
            rtol=fields["rtol"],
            atol=fields["atol"],
            infinities_compare_equal=self.infinities_compare_equal,
            keep_diffs=stat in ("median", "quantile"),
        )
        stats = _kernels.diff_stats(actual, expected, spec)
        q = fields["error_quantile"]
        statistics = {
            f"{name_}_{side}diff": stats.statistic(side, name_, q)
            for name_ in ("max", "mean", "median", "quantile")
            for side in ("abs", "rel")
        }
        if stat == "elemwise":
            passed = stats.mismatch_count == 0
        else:
            passed = not (
                _exceeds(statistics[f"{stat}_absdiff"], spec.atol, work_dtype)
                and _exceeds(statistics[f"{stat}_reldiff"], spec.rtol, work_dtype)
            )
        reason = None
        if self.check_dtypes and actual.dtype != expected.dtype:
            passed = False
            reason = f"dtype mismatch: actual {actual.dtype} != expected {expected.dtype}"

        shape = actual.shape
        locate = _Locator(actual, expected, spec)
        approximate = () if stats.quantiles_exact or not stats.total else _APPROXIMATE
        approximation = None
        if approximate:
            approximation = f"histogram with {100 * _histogram.HIST_RELATIVE_WIDTH:.2g} % bins"
            if stats.hist_sample_stride > 1:
                approximation += f" of a 1-in-{stats.hist_sample_stride} random sample"
        required_atol, required_rtol = _required_tolerances(stats, statistics, stat, integer)
        return OutputCompareResult(
            passed=passed,
            reason=reason,
            compared_dtype=str(_common_dtype(actual.dtype, expected.dtype)),
            total=stats.total,
            mismatch_count=stats.mismatch_count,
            first_mismatch_index=_unravel(stats.first_mismatch, shape),
            approximate=approximate,
            approximation=approximation,
            nan_absdiff_count=stats.abs_nan_count,
            nan_reldiff_count=stats.rel_nan_count,
            worst_abs=locate.one(stats.abs_argmax),
            worst_rel=locate.one(stats.rel_argmax),
            worst_elements=locate.many(stats.worst_index),
            actual_nonfinite=_non_finite(stats, "actual", shape),
            expected_nonfinite=_non_finite(stats, "expected", shape),
            required_atol=required_atol,
            required_rtol=required_rtol,
            **statistics,
            **fields,
        )


_APPROXIMATE = ("median_absdiff", "median_reldiff", "quantile_absdiff", "quantile_reldiff")


def _exceeds(statistic: float, tolerance: float, dtype: np.dtype) -> bool:
    """``statistic > tolerance or NaN``, compared in the dtype of the differences as
    Polygraphy (and the elementwise check) does: a float32 statistic equal to
    float32(0.1) does not exceed a tolerance of 0.1."""
    return math.isnan(statistic) or bool(dtype.type(statistic) > dtype.type(tolerance))


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _required_tolerances(
    stats: _kernels.DiffStats, statistics: dict[str, float], stat: str, integer: bool
) -> tuple[float | None, float | None]:
    """Smallest atol alone (rtol=0) and rtol alone (atol=0) that would have passed."""
    if stats.total == 0:
        return 0.0, 0.0
    if stat != "elemwise":
        return (
            _finite_or_none(statistics[f"{stat}_absdiff"]),
            _finite_or_none(statistics[f"{stat}_reldiff"]),
        )
    if stats.abs_nan_count:
        return None, None
    atol = _finite_or_none(stats.abs_max)
    # Integer 0/0 reldiffs are NaN but have absdiff 0, which passes any tolerance; a
    # floating NaN reldiff comes from an infinite difference, which none passes.
    if stats.rel_nan_count and not integer:
        return atol, None
    rel_max = stats.rel_max if stats.rel_max > -math.inf else 0.0
    return atol, _finite_or_none(rel_max)


def comparison_dtype(actual: np.dtype, expected: np.dtype, name: str) -> tuple[np.dtype, bool]:
    """The dtype absdiff/reldiff are computed in, and whether the operands are integers."""
    up_actual, up_expected = _cast_up(actual, name), _cast_up(expected, name)
    common = np.result_type(up_actual, up_expected)
    if common.kind in "biu":
        return np.dtype(np.float64), True
    if common.kind != "f":
        raise InputError(
            f"Output {name!r}: cannot compare dtypes actual {actual} and expected {expected}"
        )
    return common, False


def _common_dtype(actual: np.dtype, expected: np.dtype) -> np.dtype:
    """What Polygraphy would compute the difference in (this module is exact for integers)."""
    if actual == np.bool_ and expected == np.bool_:
        return actual
    return np.result_type(_cast_up(actual, ""), _cast_up(expected, ""))


def _cast_up(dtype: np.dtype, name: str) -> np.dtype:
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype in (np.int8, np.uint8, np.int16, np.uint16):
        return np.dtype(np.int32)
    if dtype == np.uint32:
        return np.dtype(np.int64)
    if dtype.kind in "biuf":
        return dtype
    if dtype.kind == "V" and np.can_cast(dtype, np.float32):  # ml_dtypes bfloat16, float8
        return np.dtype(np.float32)
    raise InputError(
        f"Output {name!r}: dtype {dtype} is not supported; compare real numbers or bools"
    )


def _unravel(flat: int, shape: tuple[int, ...]) -> tuple[int, ...] | None:
    if flat < 0:
        return None
    return tuple(int(i) for i in np.unravel_index(flat, shape))


def _non_finite(stats: _kernels.DiffStats, side: str, shape: tuple[int, ...]) -> NonFinite:
    return NonFinite(
        nan_count=getattr(stats, f"{side}_nan_count"),
        first_nan_index=_unravel(getattr(stats, f"{side}_first_nan"), shape),
        inf_count=getattr(stats, f"{side}_inf_count"),
        first_inf_index=_unravel(getattr(stats, f"{side}_first_inf"), shape),
    )


class _Locator:
    """Looks up a few elements by flat index, with differences by the kernel's formulas."""

    def __init__(self, actual: np.ndarray, expected: np.ndarray, spec: _kernels.DiffSpec) -> None:
        self.actual, self.expected, self.spec = actual, expected, spec

    def one(self, flat: int) -> ElementDiff | None:
        found = self.many(np.array([flat])) if flat >= 0 else ()
        return found[0] if found else None

    def many(self, flat: np.ndarray) -> tuple[ElementDiff, ...]:
        if flat.size == 0:
            return ()
        shape = self.actual.shape
        actual, expected = (x.reshape(shape or (1,)) for x in (self.actual, self.expected))
        index = np.unravel_index(flat, actual.shape)
        a, e = actual[index], expected[index]
        absdiff, reldiff = _kernels.elementwise_diffs(a, e, self.spec)
        return tuple(
            ElementDiff(
                index=tuple(int(i[k]) for i in index) if shape else (),
                actual=_scalar(a[k]),
                expected=_scalar(e[k]),
                absdiff=float(absdiff[k]),
                reldiff=float(reldiff[k]),
            )
            for k in range(flat.size)
        )


def _scalar(value: Any) -> Any:
    item = value.item() if hasattr(value, "item") else value
    return item if isinstance(item, (bool, int, float)) else float(value)
