"""One-pass, chunked difference statistics for ``CompareFunc.simple``.

Polygraphy materializes ``absdiff``, ``reldiff`` and several temporaries at full size and
sorts them for medians: about five times the output size and 15 s for 50M floats. This
kernel walks the two arrays in cache-sized chunks (``CHUNK_SIZE`` elements) with scratch
buffers allocated once per thread, and gathers every statistic in the same pass: the
mismatch count and first mismatch, max and argmax, sums for the means, NaN/Inf counts and
first indices on both sides, the worst mismatched elements, and a histogram for the
approximate median and quantile (see ``_histogram``). NumPy releases the GIL inside its
loops, so a couple of threads (``MAX_THREADS``) share the chunks of large arrays.

Medians and quantiles are exact only when the caller asks for them (``keep_diffs``, used
when ``check_error_stat`` is "median" or "quantile" and the statistic decides the
verdict): then the full ``absdiff`` and ``reldiff`` arrays are kept, exactly as Polygraphy
does, at the cost of two arrays of the compared dtype. Otherwise they come from a
logarithmic histogram with bins 0.8 % wide, within 0.4 % of the element of that rank.
Arrays of more than ``HIST_SAMPLE_FROM`` elements histogram a fixed random sample of one
element in ``HIST_SAMPLE_STRIDE`` (16) of every chunk (binning every element would cost
twice the rest of the pass); their median and quantile are those of the sample.

Chunks that hold no NaN or Inf take a short path (about ten ufunc calls); a chunk whose
maximum difference is not finite is redone by a careful path that counts NaN/Inf on each
side and applies ``infinities_compare_equal``. Integer operands are compared exactly (the
absolute difference is formed in 64-bit unsigned arithmetic, never wrapping) and get no
epsilon, as in Polygraphy.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from pytest_polygraphy.compare._diffstats import TOP_K, DiffSpec, DiffStats, top_k
from pytest_polygraphy.compare._histogram import HIST_SAMPLE_STRIDE, bin_counts, sample_positions

__all__ = ["TOP_K", "DiffSpec", "DiffStats", "diff_stats", "elementwise_diffs", "iter_chunks"]

# Knobs, module-level so that tests can shrink them to exercise chunk boundaries.
CHUNK_SIZE = 1 << 16  # elements per chunk: its scratch buffers stay in a core's L2 cache
MAX_THREADS = 2
PARALLEL_MIN_SIZE = 1 << 20  # smaller arrays run on the calling thread
HIST_SAMPLE_FROM = 1 << 18  # larger arrays histogram a 1-in-HIST_SAMPLE_STRIDE sample

EPSILON = 2.220446049250313e-16
"""Replaces floating zeros of ``expected`` in the relative difference (Polygraphy's value)."""


class _Scratch:
    """Per-thread buffers of ``size`` elements, created on first use by (name, dtype)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._buffers: dict[tuple[str, np.dtype], np.ndarray] = {}

    def get(self, name: str, dtype: Any, n: int) -> np.ndarray:
        key = (name, np.dtype(dtype))
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = np.empty(self.size, key[1])
        return buffer[:n]


def elementwise_diffs(
    actual: np.ndarray, expected: np.ndarray, spec: DiffSpec
) -> tuple[np.ndarray, np.ndarray]:
    """Absolute and relative differences of two small 1-D arrays, by the kernel's formulas.

    Used for the few elements a report shows, so that they agree with the statistics.
    """
    scratch = _Scratch(actual.size)
    with np.errstate(all="ignore"):
        d, r, *_ = _diffs(actual, expected, spec, scratch, DiffStats(), 0, careful=True)
    return d.copy(), r.copy()


def diff_stats(actual: np.ndarray, expected: np.ndarray, spec: DiffSpec) -> DiffStats:
    """Statistics of ``|actual - expected|`` and ``|actual - expected| / |expected|``.

    Both arrays must have the same shape (any strides, broadcast views included).
    """
    if actual.shape != expected.shape:
        raise ValueError(f"shapes differ: {actual.shape} vs {expected.shape}")
    total = actual.size
    full: tuple[np.ndarray, np.ndarray] | None = None
    if spec.keep_diffs and total:
        full = (np.empty(total, spec.work_dtype), np.empty(total, spec.work_dtype))
    chunk = max(1, min(CHUNK_SIZE, total))

    contiguous = actual.flags.c_contiguous and expected.flags.c_contiguous
    threads = 1
    if contiguous and total >= PARALLEL_MIN_SIZE:  # os.cpu_count() reads /proc: ask it here
        threads = max(1, min(MAX_THREADS, os.cpu_count() or 1))

    sample = sample_positions(chunk) if total > HIST_SAMPLE_FROM else None

    def worker(worker_id: int, chunks: Iterator[tuple[int, np.ndarray, np.ndarray]]) -> DiffStats:
        stats = DiffStats()
        scratch = _Scratch(chunk)
        with np.errstate(all="ignore"):
            for start, a, e in chunks:
                _chunk(start, a, e, spec, scratch, stats, full, sample)
        return stats

    if contiguous:
        a_flat, e_flat = actual.reshape(-1), expected.reshape(-1)

        def slices(worker_id: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
            for start in range(worker_id * chunk, total, chunk * threads):
                stop = min(start + chunk, total)
                yield start, a_flat[start:stop], e_flat[start:stop]

        parts: list[DiffStats]
        if threads == 1:
            parts = [worker(0, slices(0))]
        else:
            with ThreadPoolExecutor(threads) as pool:
                parts = list(pool.map(lambda w: worker(w, slices(w)), range(threads)))
    else:
        parts = [worker(0, _strided_chunks(actual, expected, chunk))]

    stats = parts[0]
    for part in parts[1:]:
        stats.merge(part)
    stats.total = total
    stats.hist_sample_stride = HIST_SAMPLE_STRIDE if sample is not None else 1
    if full is not None:
        stats.abs_full, stats.rel_full = full
    return stats


def iter_chunks(
    actual: np.ndarray, expected: np.ndarray, chunk: int | None = None
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(start, actual_chunk, expected_chunk)`` in C order over two same-shape arrays;
    views for contiguous arrays, bounded copies otherwise."""
    chunk = chunk or CHUNK_SIZE
    if actual.flags.c_contiguous and expected.flags.c_contiguous:
        a_flat, e_flat = actual.reshape(-1), expected.reshape(-1)
        for start in range(0, actual.size, chunk):
            yield start, a_flat[start : start + chunk], e_flat[start : start + chunk]
    else:
        yield from _strided_chunks(actual, expected, chunk)


def _strided_chunks(
    actual: np.ndarray, expected: np.ndarray, chunk: int
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """C-order chunks of arrays of any layout, copied through nditer's bounded buffers."""
    if actual.size == 0:
        return
    iterator = np.nditer(
        [actual, expected],
        flags=["external_loop", "buffered", "zerosize_ok"],
        op_flags=[["readonly"], ["readonly"]],
        order="C",
        buffersize=chunk,
    )
    start = 0
    with iterator:
        for a, e in iterator:
            yield start, a, e
            start += a.size


def _chunk(
    start: int,
    a: np.ndarray,
    e: np.ndarray,
    spec: DiffSpec,
    scratch: _Scratch,
    stats: DiffStats,
    full: tuple[np.ndarray, np.ndarray] | None,
    sample: np.ndarray | None,
) -> None:
    n = a.size
    out = None if full is None else (full[0][start : start + n], full[1][start : start + n])
    d, r, d_max, r_max, careful = _diffs(a, e, spec, scratch, stats, start, careful=False, out=out)
    # The maxima propagate NaN: a NaN maximum makes every comparison below False.
    d_valid_max, r_valid_max = d_max, r_max
    d_nan, r_nan = np.isnan(d_max), np.isnan(r_max)
    if d_nan:
        stats.abs_nan_count += int(np.count_nonzero(np.isnan(d, out=scratch.get("b2", bool, n))))
        d_valid_max = np.fmax.reduce(d)
    if r_nan:
        stats.rel_nan_count += int(np.count_nonzero(np.isnan(r, out=scratch.get("b2", bool, n))))
        r_valid_max = np.fmax.reduce(r)
    stats.abs_sum += float(d.sum())
    stats.rel_sum += float(r.sum())
    if d_valid_max > stats.abs_max:
        stats.abs_max = float(d_valid_max)
        stats.abs_argmax = start + int(np.flatnonzero(d == d_valid_max)[0])
    if r_valid_max > stats.rel_max:
        stats.rel_max = float(r_valid_max)
        stats.rel_argmax = start + int(np.flatnonzero(r == r_valid_max)[0])

    passing = _passing(d, r, d_max, r_max, spec, scratch, careful)
    if passing is not None:
        mismatches = n - int(np.count_nonzero(passing))
        if mismatches:
            stats.mismatch_count += mismatches
            if stats.first_mismatch < 0:
                stats.first_mismatch = start + int(np.argmin(passing))
            _collect_worst(d, d_max, passing, start, stats)

    # A NaN makes the median and quantile NaN, so such chunks need no histogram.
    if out is None and not (d_nan and r_nan):
        if sample is not None:
            positions = sample if n == scratch.size else sample[: np.searchsorted(sample, n)]
            d = np.take(d, positions, out=scratch.get("sample_d", d.dtype, positions.size))
            r = np.take(r, positions, out=scratch.get("sample_r", r.dtype, positions.size))
        if not d_nan:
            _histogram(d, scratch, "abs", stats)
        if not r_nan:
            _histogram(r, scratch, "rel", stats)


def _diffs(
    a: np.ndarray,
    e: np.ndarray,
    spec: DiffSpec,
    scratch: _Scratch,
    stats: DiffStats,
    start: int,
    *,
    careful: bool,
    out: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, Any, Any, bool]:
    """Fills absdiff ``d`` and reldiff ``r`` for one chunk and returns them with their
    (NaN-propagating) maxima and whether it took the careful path (a non-finite
    difference), which also counts the NaN/Inf values of both sides."""
    n = a.size
    wd = spec.work_dtype
    d = scratch.get("d", wd, n) if out is None else out[0]
    r = scratch.get("r", wd, n) if out is None else out[1]
    m = scratch.get("m", wd, n)

    if spec.integer:
        _integer_absdiff(a, e, d, scratch)
        np.copyto(m, e, casting="unsafe")
        np.abs(m, out=m)
        _allclose_threshold(m, spec, scratch)
        np.divide(d, m, out=r)  # no epsilon: 0/0 is NaN and x/0 is inf, as in Polygraphy
        return d, r, d.max(), r.max(), False

    if a.dtype != wd:
        a = _cast(a, wd, scratch.get("a", wd, n))
    if e.dtype != wd:
        e = _cast(e, wd, scratch.get("e", wd, n))
    np.subtract(a, e, out=d)
    np.abs(d, out=d)
    d_max = d.max()
    careful = careful or not np.isfinite(d_max)
    if careful:
        _count_non_finite(a, e, scratch, stats, start)
        if spec.infinities_compare_equal:
            both_inf = np.isinf(a, out=scratch.get("b1", bool, n))
            np.logical_and(both_inf, np.equal(a, e, out=scratch.get("b2", bool, n)), out=both_inf)
            if both_inf.any():
                np.copyto(d, 0, where=both_inf)
                d_max = d.max()
    np.abs(e, out=m)
    _allclose_threshold(m, spec, scratch)
    np.divide(d, m, out=r)
    r_max = r.max()
    # A zero in expected gives inf or NaN here: only then look for zeros to fix up.
    if not np.isfinite(r_max):
        zeros = np.equal(m, 0, out=scratch.get("b1", bool, n))
        if zeros.any():
            np.copyto(m, wd.type(EPSILON), where=zeros)
            np.divide(d, m, out=r)
            r_max = r.max()
    return d, r, d_max, r_max, careful


def _allclose_threshold(magnitude: np.ndarray, spec: DiffSpec, scratch: _Scratch) -> None:
    """``atol + rtol * |expected|`` into scratch "t", before zeros get the epsilon."""
    if spec.rule == "allclose":
        threshold = scratch.get("t", spec.work_dtype, magnitude.size)
        np.multiply(magnitude, spec.rtol, out=threshold)
        np.add(threshold, spec.atol, out=threshold)


def _cast(x: np.ndarray, dtype: np.dtype, buffer: np.ndarray) -> np.ndarray:
    np.copyto(buffer, x, casting="unsafe")
    return buffer


def _integer_absdiff(a: np.ndarray, e: np.ndarray, d: np.ndarray, scratch: _Scratch) -> None:
    """``|a - e|`` of integers (or bools) without overflow, written into float ``d``."""
    n = a.size
    unsigned = a.dtype.kind in "ub" and e.dtype.kind in "ub"
    wide = np.dtype(np.uint64 if unsigned else np.int64)
    ai = _cast(a, wide, scratch.get("ai", wide, n)) if a.dtype != wide else a
    ei = _cast(e, wide, scratch.get("ei", wide, n)) if e.dtype != wide else e
    high = np.maximum(ai, ei, out=scratch.get("hi", wide, n))
    low = np.minimum(ai, ei, out=scratch.get("lo", wide, n))
    # high - low fits in uint64 whatever the signs; modular subtraction gives it exactly.
    diff = np.subtract(high.view(np.uint64), low.view(np.uint64), out=high.view(np.uint64))
    np.copyto(d, diff, casting="unsafe")


def _count_non_finite(
    a: np.ndarray, e: np.ndarray, scratch: _Scratch, stats: DiffStats, start: int
) -> None:
    mask = scratch.get("b1", bool, a.size)
    for side, x in (("actual", a), ("expected", e)):
        for kind, test in (("nan", np.isnan), ("inf", np.isinf)):
            test(x, out=mask)
            count = int(np.count_nonzero(mask))
            if count:
                key = f"{side}_{kind}_count"
                setattr(stats, key, getattr(stats, key) + count)
                key = f"{side}_first_{kind}"
                if getattr(stats, key) < 0:
                    setattr(stats, key, start + int(np.argmax(mask)))


def _passing(
    d: np.ndarray,
    r: np.ndarray,
    d_max: Any,
    r_max: Any,
    spec: DiffSpec,
    scratch: _Scratch,
    careful: bool,
) -> np.ndarray | None:
    """Boolean mask of elements within tolerance, or None when all of them are."""
    n = d.size
    # A NaN maximum compares False, so these shortcuts never hide a NaN.
    if d_max <= spec.atol:
        return None
    ok = scratch.get("b1", bool, n)
    extra = scratch.get("b2", bool, n)
    if spec.rule == "allclose":
        np.less_equal(d, scratch.get("t", spec.work_dtype, n), out=ok)
        if careful:
            # inf*0 in the threshold is NaN: d <= atol still passes; an infinite d never does.
            np.logical_or(ok, np.less_equal(d, spec.atol, out=extra), out=ok)
            np.logical_and(ok, np.isfinite(d, out=extra), out=ok)
        return ok
    if r_max <= spec.rtol:
        return None
    # Polygraphy fails (d > atol or NaN) and (r > rtol or NaN): the complement of this.
    np.less_equal(d, spec.atol, out=ok)
    np.logical_or(ok, np.less_equal(r, spec.rtol, out=extra), out=ok)
    return ok


def _collect_worst(
    d: np.ndarray, d_max: Any, passing: np.ndarray, start: int, stats: DiffStats
) -> None:
    """Keeps the ``TOP_K`` mismatched elements with the largest absdiff seen so far (NaN
    first; on ties the earlier element stays)."""
    if stats.worst_absdiff.size >= TOP_K:
        threshold = stats.worst_absdiff[-1]
        if np.isnan(threshold) or not (d_max > threshold or np.isnan(d_max)):
            return
        candidates = np.flatnonzero(~(d <= threshold))
        candidates = candidates[~passing[candidates]]
    else:
        candidates = np.flatnonzero(~passing)
    if candidates.size > TOP_K:
        candidates = _preselect(candidates, d[candidates])
    stats.worst_index, stats.worst_absdiff = top_k(
        np.concatenate([stats.worst_index, candidates + start]),
        np.concatenate([stats.worst_absdiff, d[candidates].astype(np.float64)]),
    )


def _preselect(candidates: np.ndarray, values: np.ndarray) -> np.ndarray:
    """At most ``TOP_K`` of the (ascending) candidates that ``_top_k`` would keep, in linear
    time: those ranking above the k-th value, then the earliest of those equal to it."""
    if values.dtype.itemsize in (4, 8):
        # absdiff is never negative (and its NaN positive), so the bits order it, NaN
        # last; every NaN ranks the same (their payloads differ: top_k ties them by index)
        rank = values.view(f"u{values.dtype.itemsize}")
        nan = np.isnan(values)
        if nan.any():
            rank = np.where(nan, np.iinfo(rank.dtype).max, rank)
    else:
        rank = np.where(np.isnan(values), np.inf, values)
    kth = np.partition(rank, -TOP_K)[-TOP_K]
    above = candidates[rank > kth]
    tied = candidates[rank == kth][: TOP_K - above.size]
    return np.concatenate([above, tied])


def _histogram(x: np.ndarray, scratch: _Scratch, side: str, stats: DiffStats) -> None:
    """Adds the chunk to the ``side`` histogram of ``stats``."""
    n = x.size
    if x.dtype != np.float32:
        x = _cast(x, np.dtype(np.float32), scratch.get("h32", np.float32, n))
    counts = bin_counts(x, scratch.get("bins", np.intp, n))
    key = f"{side}_hist"
    hist = getattr(stats, key)
    if hist is None:
        setattr(stats, key, counts)
    else:
        hist += counts
