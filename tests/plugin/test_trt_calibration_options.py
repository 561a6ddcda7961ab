"""``--polygraphy-trt-calibrator``, ``--polygraphy-calibration-cache`` and
``--polygraphy-trt-timing-cache`` from options and sidecars to the runners.

The TensorRT side is orchestration only: ``TrtRunner`` is built on
``FakeTensorRTForOrchestration`` (tests/runners/fake_trt.py) to read what the plugin asked
of it; no TensorRT verdict comes out of these tests. The ONNX Runtime side is real: the
calibrator picks the ranges of the int8 model ONNX Runtime runs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.plugin import backends
from pytest_polygraphy.plugin.backends import RunnerCache
from pytest_polygraphy.plugin.modelsettings import Layer, validate_settings
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.plugin.settings import AccuracySettings, resolve
from pytest_polygraphy.plugin.syntax import OptionValueError
from tests.models import builders
from tests.models.helpers import activation_scales
from tests.runners import fake_trt


def test_sidecar_keys_reach_the_tensorrt_runner_and_key_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sidecar = validate_settings(
        {
            "trt_calibrator": "minmax",
            "trt_timing_cache": "caches/timing.cache",
            "calibration_cache": "caches/calib.cache",
        },
        tmp_path,
    )
    settings = resolve(
        PolygraphyOptions(),
        precision="int8",
        input_shapes=None,
        layers=[Layer("net.polygraphy.json", sidecar)],
    )
    fake_trt.install(monkeypatch, fake_trt.fake_tensorrt_for_orchestration())
    runner = backends.build_runner(
        "trt", builders.conv_chain(), "int8", settings, PolygraphyOptions()
    )
    assert runner.settings.calibrator == "minmax"
    assert runner.settings.timing_cache_file == str(tmp_path / "caches" / "timing.cache")
    assert runner.calibration_cache == tmp_path / "caches" / "calib.cache"
    fp32 = resolve(
        PolygraphyOptions(),
        precision="fp32",
        input_shapes=None,
        layers=[Layer("net.polygraphy.json", sidecar)],
    )
    runner = backends.build_runner("trt", builders.conv_chain(), "fp32", fp32, PolygraphyOptions())
    assert runner.settings.calibrator is None and runner.calibration_cache is None
    assert runner.settings.timing_cache_file is not None  # the timing cache applies to all
    # --polygraphy-build: every iteration builds from scratch, timing its own tactics
    fresh = backends.build_runner(
        "trt", builders.conv_chain(), "fp32", fp32, PolygraphyOptions(build=2)
    )
    assert fresh.settings.timing_cache_file is None and fresh.use_cache is False

    cache = RunnerCache(PolygraphyOptions())
    base = AccuracySettings()
    for attr, value in (
        ("trt_calibrator", "entropy2"),
        ("trt_timing_cache", Path("t.cache")),
        ("calibration_cache", Path("c.cache")),
    ):
        changed = AccuracySettings(**{attr: value})
        assert cache._key("trt", "int8", changed) != cache._key("trt", "int8", base), attr
    calibrated = AccuracySettings(trt_calibrator="entropy2")
    assert cache._key("onnxrt", "int8", calibrated) != cache._key("onnxrt", "int8", base)
    with pytest.raises(OptionValueError, match="expected one of entropy2, minmax, got 'legacy'"):
        validate_settings({"trt_calibrator": "legacy"}, tmp_path)


def test_the_calibrator_picks_onnx_runtimes_int8_ranges() -> None:
    """On the Q/DQ path (ONNX Runtime int8) entropy2 means entropy ranges, minmax and no
    calibrator MinMax ranges; each is a separate variant of the model."""
    model = builders.mixed_chain()
    cache = RunnerCache(PolygraphyOptions())

    def scales(calibrator: str | None) -> dict[str, float]:
        settings = AccuracySettings(precision="int8", iterations=8, trt_calibrator=calibrator)
        return activation_scales(cache.int8_model(model, "mixed", settings))

    default, minmax, entropy = scales(None), scales("minmax"), scales("entropy2")
    assert default == minmax
    assert any(not np.isclose(entropy[name], minmax[name]) for name in minmax)
    assert len(cache._int8_models) == 3
