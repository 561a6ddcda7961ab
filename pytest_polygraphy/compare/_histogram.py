"""Histograms of non-negative differences, for approximate medians and quantiles.

A bin is the top 16 bits of a float32: sign (always 0 here), 8 exponent bits and the top
``HIST_MANTISSA_BITS`` (7) mantissa bits, so bins are logarithmic, cover the whole float32
range in 32768 bins, and each spans a relative width of ``HIST_RELATIVE_WIDTH``
(2**-7, under 0.8 %). A value read back is the middle of its bin, within 0.4 % of the
element of that rank. Counting is one shift and one ``np.bincount`` per element.
"""

from __future__ import annotations

import functools
import math

import numpy as np

HIST_MANTISSA_BITS = 7
HIST_RELATIVE_WIDTH = 2.0**-HIST_MANTISSA_BITS
HIST_SAMPLE_STRIDE = 16
_HIST_SHIFT = 23 - HIST_MANTISSA_BITS
_HIST_BINS = 1 << (31 - _HIST_SHIFT)


def bin_counts(x: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Bin counts of the non-negative float32 values ``x``, using ``bins`` as scratch."""
    np.right_shift(x.view(np.int32), _HIST_SHIFT, out=bins)
    return np.bincount(bins, minlength=_HIST_BINS)


@functools.lru_cache(maxsize=4)
def sample_positions(chunk: int) -> np.ndarray:
    """Sorted random positions, one in ``HIST_SAMPLE_STRIDE`` of a chunk, fixed per size."""
    count = max(1, chunk // HIST_SAMPLE_STRIDE)
    positions = np.random.default_rng(20240601).choice(chunk, count, replace=False)
    positions.sort()
    positions.flags.writeable = False
    return positions


def histogram_quantile(cumulative: np.ndarray, q: float, exact_max: float) -> float:
    """Quantile with NumPy's linear interpolation, each element replaced by its bin's middle
    (so, as ``np.quantile``, NaN where it interpolates between two infinities).
    ``cumulative`` is the histogram's ``np.cumsum``, computed once for every statistic."""
    low, high, fraction = _neighbours(cumulative, q, exact_max)
    return low + (high - low) * fraction


def histogram_median(cumulative: np.ndarray, exact_max: float) -> float:
    """Median as ``np.median`` takes it (what Polygraphy calls): the mean of the two middle
    elements, so an infinite middle element gives inf, not the NaN of interpolation."""
    low, high, _ = _neighbours(cumulative, 0.5, exact_max)
    return (low + high) / 2


def _neighbours(cumulative: np.ndarray, q: float, exact_max: float) -> tuple[float, float, float]:
    """The elements just below and above quantile ``q``'s position, and how far between."""
    position = (int(cumulative[-1]) - 1) * q
    below, above = math.floor(position), math.ceil(position)
    low = _bin_value(int(np.searchsorted(cumulative, below, side="right")), exact_max)
    high = _bin_value(int(np.searchsorted(cumulative, above, side="right")), exact_max)
    return low, high, position - below


def _bin_value(bin_index: int, exact_max: float) -> float:
    """The middle of a histogram bin, clipped to the exact maximum."""
    if bin_index == 0:
        return 0.0  # the bin of zero and denormals below 2**-133
    bits = np.array([bin_index << _HIST_SHIFT, (bin_index + 1) << _HIST_SHIFT], np.uint32)
    with np.errstate(invalid="ignore"):  # the bin above inf starts with a signaling NaN
        low, high = (float(x) for x in bits.view(np.float32))
    if math.isinf(low):
        return math.inf
    middle = (low + high) / 2
    return middle if middle < exact_max else exact_max
