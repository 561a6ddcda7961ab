"""CompareFunc.distance_metrics and CompareFunc.quality_metrics against their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc, DistanceResult, QualityResult, _kernels


def distance(actual, expected, **kwargs) -> DistanceResult:
    result = CompareFunc.distance_metrics(**kwargs)(
        {"x": np.asarray(actual)}, {"x": np.asarray(expected)}
    )
    assert isinstance(result["x"], DistanceResult)
    return result["x"]


def quality(actual, expected, **kwargs) -> QualityResult:
    result = CompareFunc.quality_metrics(**kwargs)(
        {"x": np.asarray(actual)}, {"x": np.asarray(expected)}
    )
    assert isinstance(result["x"], QualityResult)
    return result["x"]


def test_l2_norm_is_the_unnormalized_euclidean_distance() -> None:
    rng = np.random.default_rng(0)
    expected = rng.standard_normal((4, 50)).astype(np.float32)
    actual = expected + np.float32(1e-3)
    output = distance(actual, expected, l2_tolerance=1.0)
    diff = actual.astype(np.float64) - expected.astype(np.float64)
    assert output.l2_norm == pytest.approx(float(np.linalg.norm(diff)), rel=1e-12)
    a, e = actual.ravel().astype(np.float64), expected.ravel().astype(np.float64)
    cosine = a @ e / (np.linalg.norm(a) * np.linalg.norm(e))
    assert output.cosine_similarity == pytest.approx(float(cosine), rel=1e-12)
    assert output.passed


def test_both_distance_metrics_must_pass() -> None:
    expected = np.array([1.0, 0.0])
    scaled = distance(expected * 3, expected, l2_tolerance=0.1)
    assert scaled.cosine_similarity == pytest.approx(1.0) and scaled.l2_norm == pytest.approx(2.0)
    assert not scaled.passed
    assert distance(expected * 3, expected, l2_tolerance=2.5).passed
    rotated = distance([0.99, 0.14], expected, l2_tolerance=10)
    assert not rotated.passed  # cosine 0.990 < 0.997


def test_zero_vectors_follow_polygraphy_conventions() -> None:
    assert distance([0.0, 0.0], [0.0, 0.0]).cosine_similarity == 1.0
    assert distance([0.0, 0.0], [1.0, 0.0], l2_tolerance=2).cosine_similarity == 0.0


def test_nan_never_passes_distance() -> None:
    output = distance(
        [math.nan, 1.0], [1.0, 1.0], l2_tolerance=1e30, cosine_similarity_threshold=-1
    )
    assert math.isnan(output.l2_norm) and not output.passed


def test_distance_is_the_same_in_many_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    expected = rng.standard_normal(1000)
    actual = expected + rng.standard_normal(1000) * 1e-2
    whole = distance(actual, expected)
    monkeypatch.setattr(_kernels, "CHUNK_SIZE", 7)
    chunked = distance(actual[::-1][::-1], expected)
    assert chunked.l2_norm == pytest.approx(whole.l2_norm, rel=1e-12)
    strided = distance(np.stack([actual, actual])[:, ::1].T[:, 0], expected)
    assert strided.l2_norm == pytest.approx(whole.l2_norm, rel=1e-12)


def test_psnr_and_snr_formulas_take_peak_and_signal_from_expected() -> None:
    expected = np.array([0.0, 1.0, 2.0, 1.0])
    actual = np.array([0.1, 1.0, 2.0, 10.0])
    mse = np.mean((actual - expected) ** 2)
    output = quality(actual, expected)
    assert output.psnr == pytest.approx(20 * math.log10(2.0) - 10 * math.log10(mse))
    assert output.snr == pytest.approx(10 * math.log10(np.mean(expected**2) / mse))
    assert not output.passed


def test_both_quality_metrics_must_pass() -> None:
    expected = np.linspace(1, 2, 100)
    actual = expected + 1e-3
    output = quality(actual, expected)
    assert output.psnr == pytest.approx(20 * math.log10(2.0) + 60)
    assert output.passed
    assert not quality(actual, expected, snr_tolerance=200.0).passed
    assert not quality(actual, expected, psnr_tolerance=200.0).passed


def test_quality_edge_cases() -> None:
    perfect = quality([1.0, 2.0], [1.0, 2.0])
    assert perfect.psnr == math.inf and perfect.snr == math.inf and perfect.passed
    negative = quality([-1.0, -2.5], [-1.0, -2.0])  # peak <= 0 counts as 1.0
    assert negative.psnr == pytest.approx(-10 * math.log10(0.125))
    silent = quality([1.0, 0.0], [0.0, 0.0])
    assert silent.snr == -math.inf and not silent.passed
    assert not quality([math.nan], [1.0], psnr_tolerance=-1e9, snr_tolerance=-1e9).passed
    assert quality(np.zeros(0), np.zeros(0)).passed


def test_per_output_thresholds_and_shape_checks() -> None:
    func = CompareFunc.distance_metrics(
        l2_tolerance={"a": 1.0, "": 1e-9}, cosine_similarity_threshold={"": 0.9}
    )
    actual = {"a": np.array([1.0, 1.5]), "b": np.array([1.0, 1.5])}
    expected = {"a": np.array([1.0, 1.0]), "b": np.array([1.0, 1.0])}
    assert func(actual, expected).failed == ["b"]
    mismatch = distance(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not mismatch.passed and "(2, 3)" in mismatch.reason
    assert distance(np.zeros((2, 3)), np.zeros((3, 2)), check_shapes=False).passed
