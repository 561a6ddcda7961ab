"""Property tests: the comparison functions agree with plain numpy formulas."""

from __future__ import annotations

import math

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_polygraphy.compare import CompareFunc, _kernels
from tests.compare import reference

FAST = settings(max_examples=60, deadline=None)
TOLERANCES = st.sampled_from([0.0, 1e-5, 1e-3, 0.1, 1.0])
DTYPES = st.sampled_from([np.float32, np.float16, np.float64, np.int32, np.int8, np.bool_])


@st.composite
def output_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of one shape and dtype: unrelated, or one a perturbation of the other."""
    dtype = np.dtype(draw(DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6))
    if dtype.kind == "f":
        elements = st.floats(width=min(dtype.itemsize * 8, 64), allow_subnormal=False)
        elements = st.one_of(elements, st.sampled_from([0.0, 1.0, -1.0, math.nan, math.inf]))
    elif dtype.kind == "i":
        elements = st.integers(-100, 100)
    else:
        elements = st.booleans()
    expected = draw(hnp.arrays(dtype, shape, elements=elements))
    if draw(st.booleans()):
        actual = draw(hnp.arrays(dtype, shape, elements=elements))
    else:
        actual = expected.copy()
        if dtype.kind == "f" and actual.size:
            noise = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e-2, 1e-2)))
            with np.errstate(all="ignore"):
                actual = np.asarray(actual + noise).astype(dtype)
    return actual, expected


def compare(actual: np.ndarray, expected: np.ndarray, **kwargs):
    return CompareFunc.simple(**kwargs)({"x": actual}, {"x": expected})["x"]


@FAST
@given(output_pairs(), TOLERANCES, TOLERANCES, st.booleans())
def test_elementwise_verdict_and_counts_match_numpy(pair, rtol, atol, infinities_equal) -> None:
    actual, expected = pair
    output = compare(
        actual, expected, rtol=rtol, atol=atol, infinities_compare_equal=infinities_equal
    )
    mask = reference.mismatches(actual, expected, rtol, atol, infinities_equal)
    assert output.mismatch_count == int(mask.sum())
    assert output.passed == (not mask.any())
    if mask.any():
        first = tuple(int(i) for i in np.unravel_index(int(np.argmax(mask)), mask.shape))
        assert output.first_mismatch_index == first
    absdiff, reldiff = reference.diffs(actual, expected, infinities_equal)
    if absdiff.size:
        assert _same(output.max_absdiff, float(np.max(absdiff)))
        assert _same(output.max_reldiff, float(np.max(reldiff)))


@FAST
@given(output_pairs(), TOLERANCES, TOLERANCES)
def test_allclose_rule_matches_numpy(pair, rtol, atol) -> None:
    actual, expected = pair
    output = compare(actual, expected, rtol=rtol, atol=atol, rule="allclose")
    mask = reference.allclose_mismatches(actual, expected, rtol, atol)
    assert output.mismatch_count == int(mask.sum())


@FAST
@given(
    output_pairs(),
    TOLERANCES,
    TOLERANCES,
    st.sampled_from(["max", "mean", "median", "quantile"]),
    st.floats(0, 1),
)
def test_statistic_verdicts_match_numpy(pair, rtol, atol, stat, quantile) -> None:
    actual, expected = pair
    output = compare(
        actual, expected, rtol=rtol, atol=atol, check_error_stat=stat, error_quantile=quantile
    )
    absdiff, reldiff = reference.diffs(actual, expected)
    if absdiff.size == 0:
        assert output.passed
        return
    with np.errstate(all="ignore"):
        functions = {
            "max": np.max,
            "mean": lambda x: x.dtype.type(np.mean(x, dtype=np.float64)),
            "median": np.median,
            "quantile": lambda x: np.quantile(x, quantile),
        }
        # numpy scalars of the differences' dtype, compared with Python tolerances as
        # Polygraphy compares them (NumPy 2: in that dtype)
        absolute, relative = (functions[stat](x) for x in (absdiff, reldiff))
    if stat in ("median", "quantile", "max"):
        assert _same(getattr(output, f"{stat}_absdiff"), float(absolute))
        assert _same(getattr(output, f"{stat}_reldiff"), float(relative))
    assert output.passed == (not reference.statistic_fails(absolute, relative, atol, rtol))


@FAST
@given(output_pairs(), TOLERANCES)
def test_chunking_and_threads_do_not_change_results(pair, tolerance) -> None:
    actual, expected = pair
    whole = compare(actual, expected, rtol=tolerance, atol=tolerance)
    knobs = (_kernels.CHUNK_SIZE, _kernels.PARALLEL_MIN_SIZE, _kernels.MAX_THREADS)
    _kernels.CHUNK_SIZE, _kernels.PARALLEL_MIN_SIZE, _kernels.MAX_THREADS = 3, 0, 2
    try:
        chunked = compare(actual, expected, rtol=tolerance, atol=tolerance)
    finally:
        _kernels.CHUNK_SIZE, _kernels.PARALLEL_MIN_SIZE, _kernels.MAX_THREADS = knobs
    assert chunked.mismatch_count == whole.mismatch_count
    assert chunked.first_mismatch_index == whole.first_mismatch_index
    assert _same(chunked.max_absdiff, whole.max_absdiff)
    assert chunked.worst_elements == whole.worst_elements or _same_elements(chunked, whole)
    assert chunked.actual_nonfinite == whole.actual_nonfinite
    assert chunked.expected_nonfinite == whole.expected_nonfinite


@st.composite
def index_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    batch = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    width = draw(st.integers(1, 6))
    shape = (*batch, width)
    values = st.integers(0, 7)
    expected = draw(hnp.arrays(np.int64, shape, elements=values))
    if draw(st.booleans()):
        actual = draw(hnp.arrays(np.int64, shape, elements=values))
    else:  # a permutation of each batch: values that moved
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        actual = rng.permuted(expected, axis=-1)
    return actual, expected


@FAST
@given(index_pairs(), st.integers(0, 4))
def test_indices_match_polygraphy_loops(pair, tolerance) -> None:
    actual, expected = pair
    result = CompareFunc.indices(tolerance)({"i": actual}, {"i": expected})
    assert bool(result) == reference.indices_pass(actual, expected, tolerance)


@FAST
@given(output_pairs())
def test_distance_metrics_match_numpy(pair) -> None:
    actual, expected = pair
    output = CompareFunc.distance_metrics()({"x": actual}, {"x": expected})["x"]
    a, e = actual.astype(np.float64).ravel(), expected.astype(np.float64).ravel()
    with np.errstate(all="ignore"):
        l2 = float(np.sqrt(np.sum((a - e) ** 2)))
    if math.isfinite(l2):
        assert math.isclose(output.l2_norm, l2, rel_tol=1e-9, abs_tol=1e-300)
    else:
        assert _same(output.l2_norm, l2)
    assert output.passed == (l2 <= 1e-5 and output.cosine_similarity >= 0.997)


def _same(a: float | None, b: float) -> bool:
    return a is not None and ((math.isnan(a) and math.isnan(b)) or a == b)


def _same_elements(a, b) -> bool:
    return [e.index for e in a.worst_elements] == [e.index for e in b.worst_elements]
