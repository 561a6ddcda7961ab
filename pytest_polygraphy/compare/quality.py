"""``CompareFunc.quality_metrics``: PSNR and SNR in dB, both must pass."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pytest_polygraphy.compare._moments import moments
from pytest_polygraphy.compare.base import (
    CompareFunction,
    align_shapes,
    check_number,
    output_fields,
)
from pytest_polygraphy.compare.pairing import check_option
from pytest_polygraphy.compare.results import QualityResult
from pytest_polygraphy.compare.simple import comparison_dtype
from pytest_polygraphy.per_name import value_for


class QualityCompare(CompareFunction):
    """Passes an output when ``psnr >= psnr_tolerance`` and ``snr >= snr_tolerance`` (dB);
    a NaN never passes.

    With ``mse = mean((actual - expected)**2)``, both taken from ``expected``:
    ``psnr = 20 log10(peak) - 10 log10(mse)`` where ``peak = max(expected)`` (1.0 when that
    is <= 0), and ``snr = 10 log10(mean(expected**2) / mse)``. A perfect match (mse 0)
    gives +inf for both, an all-zero expected an SNR of -inf (Polygraphy's conventions;
    Polygraphy takes peak and signal from its first runner, here they come from
    ``expected``, the reference). Tolerances take a value or a dict per output with
    ``""`` as the default key.
    """

    kind = "quality_metrics"
    per_output_options = ("psnr_tolerance", "snr_tolerance")

    def __init__(
        self, psnr_tolerance: Any = 30.0, snr_tolerance: Any = 20.0, check_shapes: bool = True
    ) -> None:
        for option, value in (("psnr_tolerance", psnr_tolerance), ("snr_tolerance", snr_tolerance)):
            check_option(option, value, check_number, "a number (dB) is required")
        self.psnr_tolerance = psnr_tolerance
        self.snr_tolerance = snr_tolerance
        self.check_shapes = bool(check_shapes)

    def parameters(self) -> dict[str, Any]:
        return {
            "psnr_tolerance": self.psnr_tolerance,
            "snr_tolerance": self.snr_tolerance,
            "check_shapes": self.check_shapes,
        }

    def compare_output(self, name: str, actual: np.ndarray, expected: np.ndarray) -> QualityResult:
        fields: dict[str, Any] = {
            **output_fields(name, actual, expected),
            "psnr_tolerance": float(value_for(self.psnr_tolerance, name, 30.0)),
            "snr_tolerance": float(value_for(self.snr_tolerance, name, 20.0)),
        }
        comparison_dtype(actual.dtype, expected.dtype, name)  # rejects unsupported dtypes
        aligned = align_shapes(actual, expected, self.check_shapes)
        if isinstance(aligned, str):
            return QualityResult(passed=False, reason=aligned, **fields)
        sums = moments(*aligned)
        if sums.count == 0:
            psnr = snr = math.inf
        else:
            mse = sums.sum_sq_diff / sums.count
            psnr = peak_signal_to_noise(mse, sums.max_expected)
            snr = signal_to_noise(mse, sums.sum_sq_expected / sums.count)
        passed = psnr >= fields["psnr_tolerance"] and snr >= fields["snr_tolerance"]
        return QualityResult(passed=passed, psnr=psnr, snr=snr, **fields)


def peak_signal_to_noise(mse: float, peak: float) -> float:
    if mse == 0:
        return math.inf
    if math.isnan(mse) or math.isnan(peak):
        return math.nan
    if peak <= 0:
        peak = 1.0
    return 20 * math.log10(peak) - 10 * math.log10(mse) if math.isfinite(mse) else -math.inf


def signal_to_noise(mse: float, signal_power: float) -> float:
    if mse == 0:
        return math.inf
    if math.isnan(mse) or math.isnan(signal_power):
        return math.nan
    if signal_power == 0:
        return -math.inf
    with np.errstate(all="ignore"):
        return float(10 * np.log10(np.float64(signal_power) / np.float64(mse)))
