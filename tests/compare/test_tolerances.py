"""The per-precision default tolerances."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_polygraphy.compare import (
    PRECISION_TOLERANCES,
    CompareFunc,
    Tolerance,
    default_tolerances,
)
from pytest_polygraphy.errors import InputError


def test_one_entry_per_precision_name() -> None:
    assert list(PRECISION_TOLERANCES) == ["fp32", "tf32", "fp16", "bf16", "int8", "fp8"]
    assert all(isinstance(t, Tolerance) for t in PRECISION_TOLERANCES.values())
    assert default_tolerances("fp16") == PRECISION_TOLERANCES["fp16"]._asdict()
    with pytest.raises(TypeError):
        PRECISION_TOLERANCES["fp64"] = Tolerance(0, 0)  # type: ignore[index]


def test_lower_precisions_are_never_stricter() -> None:
    order = ["fp32", "tf32", "fp16", "bf16", "fp8"]
    rtols = [PRECISION_TOLERANCES[p].rtol for p in order]
    assert rtols == sorted(rtols)


def test_unknown_precision_names_the_valid_ones() -> None:
    with pytest.raises(InputError, match="fp16"):
        default_tolerances("half")


def _rounded_run(dtype) -> tuple[dict, dict]:
    """A float32 reference and the same values rounded through a lower precision."""
    rng = np.random.default_rng(0)
    expected = rng.standard_normal(10_000).astype(np.float32) * 4
    actual = expected.astype(dtype).astype(np.float32)
    return {"y": actual}, {"y": expected}


def test_fp16_rounding_passes_fp16_defaults_and_fails_polygraphy_defaults() -> None:
    actual, expected = _rounded_run(np.float16)
    assert CompareFunc.simple(**default_tolerances("fp16"))(actual, expected)
    assert not CompareFunc.simple(**default_tolerances("fp32"))(actual, expected)


def test_bf16_rounding_passes_bf16_defaults_and_fails_fp16_defaults() -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes provides bfloat16")
    actual, expected = _rounded_run(ml_dtypes.bfloat16)
    assert CompareFunc.simple(**default_tolerances("bf16"))(actual, expected)
    assert not CompareFunc.simple(**default_tolerances("fp16"))(actual, expected)


def test_int8_quantization_passes_int8_defaults() -> None:
    rng = np.random.default_rng(1)
    expected = rng.uniform(-1, 1, 10_000).astype(np.float32)
    scale = np.float32(2 / 255)
    actual = np.clip(np.round(expected / scale), -128, 127).astype(np.float32) * scale
    assert CompareFunc.simple(**default_tolerances("int8"))({"y": actual}, {"y": expected})
    assert not CompareFunc.simple(**default_tolerances("fp16"))({"y": actual}, {"y": expected})
