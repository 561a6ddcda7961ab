"""The chunked, threaded kernel gives the whole-array answers, chunk boundaries included."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc, _kernels
from tests.compare import reference


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 7 elements, two threads from the first element on."""
    monkeypatch.setattr(_kernels, "CHUNK_SIZE", 7)
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(_kernels, "MAX_THREADS", 2)


def messy_pair(dtype: type, size: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random outputs with zeros, NaN and Inf scattered over many chunks."""
    rng = np.random.default_rng(seed)
    expected = rng.standard_normal(size).astype(dtype)
    actual = (expected + rng.standard_normal(size) * 1e-3).astype(dtype)
    expected[rng.choice(size, 20, replace=False)] = 0
    if np.issubdtype(np.dtype(dtype), np.floating):
        actual[rng.choice(size, 5, replace=False)] = np.nan
        expected[rng.choice(size, 5, replace=False)] = np.nan
        actual[rng.choice(size, 5, replace=False)] = np.inf
        expected[rng.choice(size, 3, replace=False)] = -np.inf
    return actual, expected


def results_of(actual: np.ndarray, expected: np.ndarray, **kwargs) -> dict:
    output = CompareFunc.simple(**kwargs)({"x": actual}, {"x": expected})["x"]
    return dataclasses.asdict(output)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
@pytest.mark.parametrize(
    ("stat", "rule"),
    [("elemwise", "polygraphy"), ("quantile", "polygraphy"), ("elemwise", "allclose")],
)
@pytest.mark.parametrize("infinities_compare_equal", [False, True])
def test_tiny_chunks_and_threads_change_nothing(
    monkeypatch: pytest.MonkeyPatch,
    dtype: type,
    stat: str,
    rule: str,
    infinities_compare_equal: bool,
) -> None:
    actual, expected = messy_pair(dtype)
    actual[::50] = expected[::50]  # equal infinities too
    kwargs = {
        "rtol": 1e-3,
        "atol": 1e-4,
        "check_error_stat": stat,
        "rule": rule,
        "infinities_compare_equal": infinities_compare_equal,
    }
    whole = results_of(actual, expected, **kwargs)
    monkeypatch.setattr(_kernels, "CHUNK_SIZE", 7)
    monkeypatch.setattr(_kernels, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(_kernels, "MAX_THREADS", 2)
    chunked = results_of(actual, expected, **kwargs)
    for key in ("median_absdiff", "median_reldiff", "quantile_absdiff", "quantile_reldiff"):
        if stat == "elemwise":  # approximate: same bins, but float32 chunk sums may differ
            assert chunked.pop(key) == pytest.approx(whole.pop(key), rel=1e-6, nan_ok=True)
    for key in ("mean_absdiff", "mean_reldiff"):
        assert chunked.pop(key) == pytest.approx(whole.pop(key), rel=1e-5, nan_ok=True)
    assert _nan_equal(chunked, whole)


def _nan_equal(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_nan_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_nan_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.usefixtures("tiny_chunks")
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int32, np.int8, np.uint64, bool])
def test_chunked_results_match_the_whole_array_formulas(dtype: type) -> None:
    if dtype is bool:
        rng = np.random.default_rng(1)
        actual, expected = rng.random(500) < 0.5, rng.random(500) < 0.9
    elif np.issubdtype(np.dtype(dtype), np.integer):
        rng = np.random.default_rng(2)
        info = np.iinfo(dtype)
        low, high = max(info.min, -100), min(info.max, 100)
        expected = rng.integers(low, high, 500).astype(dtype)
        actual = expected.copy()
        actual[rng.choice(500, 40, replace=False)] = rng.integers(low, high, 40).astype(dtype)
        expected[:10] = 0
    else:
        actual, expected = messy_pair(dtype, size=500)
    output = CompareFunc.simple(rtol=1e-2, atol=1e-3)({"x": actual}, {"x": expected})["x"]
    absdiff, reldiff = reference.diffs(actual, expected)
    mask = reference.mismatches(actual, expected, 1e-2, 1e-3)
    assert output.mismatch_count == int(mask.sum())
    first = int(np.argmax(mask)) if mask.any() else None
    assert output.first_mismatch_index == (None if first is None else (first,))
    assert _nan_equal(output.max_absdiff, float(np.max(absdiff)))
    assert _nan_equal(output.max_reldiff, float(np.max(reldiff)))
    assert output.mean_absdiff == pytest.approx(
        float(np.mean(absdiff, dtype=np.float64)), nan_ok=True
    )
    assert output.nan_absdiff_count == int(np.isnan(absdiff).sum())
    assert output.nan_reldiff_count == int(np.isnan(reldiff).sum())
    if output.worst_abs is not None:
        assert output.worst_abs.index == (int(np.nanargmax(absdiff)),)
    for side, values in (("actual", actual), ("expected", expected)):
        nonfinite = getattr(output, f"{side}_nonfinite")
        if values.dtype.kind == "f":
            assert nonfinite.nan_count == int(np.isnan(values).sum())
            assert nonfinite.inf_count == int(np.isinf(values).sum())
            if nonfinite.nan_count:
                assert nonfinite.first_nan_index == (int(np.argmax(np.isnan(values))),)


@pytest.mark.usefixtures("tiny_chunks")
def test_worst_elements_across_chunks_and_threads() -> None:
    rng = np.random.default_rng(4)
    expected = rng.standard_normal(300).astype(np.float32)
    actual = expected.copy()
    spots = rng.choice(300, 40, replace=False)
    actual[spots] += rng.uniform(1, 2, 40).astype(np.float32)
    output = CompareFunc.simple()({"x": actual}, {"x": expected})["x"]
    absdiff, _ = reference.diffs(actual, expected)
    top = np.argsort(-absdiff, kind="stable")[: _kernels.TOP_K]
    assert [e.index for e in output.worst_elements] == [(int(i),) for i in top]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_differences_rank_alike_whatever_their_payload(dtype) -> None:
    """Every NaN difference ranks first and ties go to the earlier element, whatever the
    NaN's bits: inf - inf gives the default NaN, a NaN input carries its own payload, and
    a ranking by bits used to drop the default one when more than TOP_K elements fail."""
    bits = {np.float32: (np.uint32, 0x7FFFFFFF), np.float64: (np.uint64, 0x7FFFFFFFFFFFFFFF)}
    unsigned, pattern = bits[dtype]
    payload = np.array([pattern], unsigned).view(dtype)[0]
    values = np.full(2 * _kernels.TOP_K, payload, dtype)
    values[0] = np.inf
    output = CompareFunc.simple(rtol=0, atol=0)({"x": values}, {"x": values.copy()})["x"]
    assert [e.index for e in output.worst_elements] == [(i,) for i in range(_kernels.TOP_K)]


@pytest.mark.usefixtures("tiny_chunks")
def test_strided_inputs_are_chunked_in_c_order() -> None:
    rng = np.random.default_rng(8)
    actual = rng.standard_normal((20, 30)).astype(np.float32).T
    expected = np.broadcast_to(rng.standard_normal(20).astype(np.float32), (30, 20))
    strided = results_of(actual, expected)
    dense = results_of(np.ascontiguousarray(actual), np.ascontiguousarray(expected))
    for key in ("mean_absdiff", "mean_reldiff"):
        assert strided.pop(key) == pytest.approx(dense.pop(key), rel=1e-6)
    assert strided == dense


def test_memory_stays_bounded_when_statistics_are_only_reported() -> None:
    import tracemalloc

    size = 1 << 23  # 32 MB of float32 per input
    rng = np.random.default_rng(0)
    expected = rng.standard_normal(size, dtype=np.float32)
    actual = expected + np.float32(1e-4)
    tracemalloc.start()
    try:
        CompareFunc.simple()({"x": actual}, {"x": expected})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.25 * expected.nbytes  # bounded by chunk scratch, not by the input size


def test_large_outputs_histogram_a_random_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_kernels, "HIST_SAMPLE_FROM", 1000)
    monkeypatch.setattr(_kernels, "CHUNK_SIZE", 4096)  # a partial last chunk too
    rng = np.random.default_rng(12)
    expected = rng.standard_normal(200_000).astype(np.float32)
    actual = expected + rng.standard_normal(200_000).astype(np.float32) * 1e-3
    output = CompareFunc.simple(error_quantile=0.9)({"x": actual}, {"x": expected})["x"]
    assert output.approximation is not None and "1-in-16 random sample" in output.approximation
    absdiff, reldiff = reference.diffs(actual, expected)
    # 12,500 sampled elements: the rank error is a fraction of a percent.
    assert output.median_absdiff == pytest.approx(float(np.median(absdiff)), rel=0.03)
    assert output.quantile_absdiff == pytest.approx(float(np.quantile(absdiff, 0.9)), rel=0.03)
    assert output.median_reldiff == pytest.approx(float(np.median(reldiff)), rel=0.03)
    # Everything else still covers every element.
    assert output.max_absdiff == float(absdiff.max())
    assert output.mismatch_count == int(reference.mismatches(actual, expected, 1e-5, 1e-5).sum())


def test_an_infinite_difference_outranks_the_largest_finite_one_across_chunks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worst elements are the infinite differences, whether the array is one chunk or
    several merged (found by hypothesis: the merge ranked +inf equal to the largest finite
    float, and the earlier index won)."""
    actual = np.array([[0.0, np.inf, np.inf], [np.inf, np.inf, np.inf]])
    expected = np.full((2, 3), np.finfo(np.float64).max)
    infinite = [(0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    for chunk in (64, 3, 1):
        monkeypatch.setattr(_kernels, "CHUNK_SIZE", chunk)
        monkeypatch.setattr(_kernels, "PARALLEL_MIN_SIZE", 0)
        output = CompareFunc.simple(rtol=0.0, atol=0.0)({"x": actual}, {"x": expected})["x"]
        assert [element.index for element in output.worst_elements] == infinite, chunk
