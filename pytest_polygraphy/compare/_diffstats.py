"""The statistics one pass over two arrays gathers, and how partial ones combine.

``DiffStats`` is filled chunk by chunk (see ``_kernels``), one per thread, then merged;
``statistic()`` turns it into Polygraphy's max/mean/median/quantile, where a NaN
difference anywhere makes the statistic NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pytest_polygraphy.compare._histogram import histogram_median, histogram_quantile

TOP_K = 5
"""How many of the worst mismatched elements are kept for the report."""


@dataclass(frozen=True)
class DiffSpec:
    """How to compare two operands, decided once per output by the caller."""

    work_dtype: np.dtype  # dtype of absdiff/reldiff: float32, float64 (also for integers), ...
    integer: bool  # both operands are integers/bools: exact difference, no epsilon
    rule: str  # "polygraphy" or "allclose"
    rtol: float
    atol: float
    infinities_compare_equal: bool = False
    keep_diffs: bool = False  # keep full absdiff/reldiff arrays for exact median/quantile


@dataclass
class DiffStats:
    """What one pass over two arrays found; indices are flat, C order, -1 when absent."""

    total: int = 0
    mismatch_count: int = 0
    first_mismatch: int = -1
    abs_nan_count: int = 0
    abs_sum: float = 0.0
    abs_max: float = -math.inf  # ignoring NaN
    abs_argmax: int = -1
    rel_nan_count: int = 0
    rel_sum: float = 0.0
    rel_max: float = -math.inf  # ignoring NaN
    rel_argmax: int = -1
    actual_nan_count: int = 0
    actual_first_nan: int = -1
    actual_inf_count: int = 0
    actual_first_inf: int = -1
    expected_nan_count: int = 0
    expected_first_nan: int = -1
    expected_inf_count: int = 0
    expected_first_inf: int = -1
    worst_index: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    worst_absdiff: np.ndarray = field(default_factory=lambda: np.empty(0, np.float64))
    abs_hist: np.ndarray | None = None
    rel_hist: np.ndarray | None = None
    hist_sample_stride: int = 1  # 1: every element is in the histograms
    abs_full: np.ndarray | None = None
    rel_full: np.ndarray | None = None
    #: Each histogram's cumulative counts, made on the first median or quantile asked.
    _cumulative: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def merge(self, other: DiffStats) -> None:
        """Folds the statistics of another (disjoint) set of chunks into this one."""
        self.total += other.total
        self.mismatch_count += other.mismatch_count
        self.first_mismatch = _first(self.first_mismatch, other.first_mismatch)
        for side in ("abs", "rel"):
            for name in ("nan_count", "sum"):
                key = f"{side}_{name}"
                setattr(self, key, getattr(self, key) + getattr(other, key))
            mine, theirs = getattr(self, f"{side}_max"), getattr(other, f"{side}_max")
            mine_at, theirs_at = getattr(self, f"{side}_argmax"), getattr(other, f"{side}_argmax")
            if theirs > mine or (theirs == mine and 0 <= theirs_at < mine_at):
                setattr(self, f"{side}_max", theirs)
                setattr(self, f"{side}_argmax", theirs_at)
        for side in ("actual", "expected"):
            for kind in ("nan", "inf"):
                key = f"{side}_{kind}_count"
                setattr(self, key, getattr(self, key) + getattr(other, key))
                key = f"{side}_first_{kind}"
                setattr(self, key, _first(getattr(self, key), getattr(other, key)))
        self.worst_index, self.worst_absdiff = top_k(
            np.concatenate([self.worst_index, other.worst_index]),
            np.concatenate([self.worst_absdiff, other.worst_absdiff]),
        )
        self._cumulative.clear()
        for key in ("abs_hist", "rel_hist"):
            mine, theirs = getattr(self, key), getattr(other, key)
            if mine is None:
                setattr(self, key, theirs)
            elif theirs is not None:
                mine += theirs

    # -- results in Polygraphy's terms: a NaN anywhere makes the statistic NaN ------------

    def statistic(self, side: str, name: str, quantile: float) -> float:
        """``max``/``mean``/``median``/``quantile`` of ``side`` ("abs" or "rel")."""
        with np.errstate(all="ignore"):  # inf - inf while interpolating is NumPy's NaN too
            return self._statistic(side, name, quantile)

    def _statistic(self, side: str, name: str, quantile: float) -> float:
        if self.total == 0:
            return 0.0
        if getattr(self, f"{side}_nan_count"):
            return math.nan
        if name == "max":
            return float(getattr(self, f"{side}_max"))
        if name == "mean":
            return float(getattr(self, f"{side}_sum")) / self.total
        q = 0.5 if name == "median" else quantile
        full = getattr(self, f"{side}_full")
        if full is not None:
            # Same calls as Polygraphy on the same arrays, so the same values.
            if name == "median":
                value = np.median(full, overwrite_input=True)
            else:
                value = np.quantile(full, q, overwrite_input=True)
            return float(value)
        cumulative = self._cumulative.get(side)
        if cumulative is None:
            cumulative = self._cumulative[side] = np.cumsum(getattr(self, f"{side}_hist"))
        exact_max = float(getattr(self, f"{side}_max"))
        if name == "median":
            return histogram_median(cumulative, exact_max)
        return histogram_quantile(cumulative, q, exact_max)

    @property
    def quantiles_exact(self) -> bool:
        return self.abs_full is not None


def _first(a: int, b: int) -> int:
    if a < 0:
        return b
    if b < 0:
        return a
    return min(a, b)


def top_k(index: np.ndarray, value: np.ndarray) -> tuple[Any, Any]:
    """The ``TOP_K`` largest values, NaN first, ties broken by the smaller index."""
    if index.size < 2:
        return index, value
    nan = np.isnan(value)
    # NaN ranks first by its own key; infinity above every finite value (nan_to_num would
    # make it the largest finite float, a tie that the index would break)
    order = np.lexsort((index, -np.where(nan, 0.0, value), ~nan))[:TOP_K]
    return index[order], value[order]
