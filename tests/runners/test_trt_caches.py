"""The named timing cache file and int8 calibration inside TensorRT: orchestration only.

TensorRT cannot be installed here, so ``TrtRunner`` runs on
``FakeTensorRTForOrchestration`` (tests/runners/fake_trt.py), which builds nothing: these
tests check what our code hands TensorRT (seed bytes, calibrator, batches, flags,
calibration profile) and where it keeps what TensorRT hands back (timing and calibration
caches, engine cache keys). None of them is a TensorRT verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.runners import TrtRunner, trt_settings
from tests.models.builders import conv_chain, dynamic_batch_model, matmul_softmax, random_feed
from tests.runners import fake_trt
from tests.runners.fake_trt import (
    TIMING_MAGIC,
    FakeBuilderForOrchestration,
    FakeFeedUploaderForOrchestration,
)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Any:
    trt = fake_trt.fake_tensorrt_for_orchestration()
    fake_trt.install(monkeypatch, trt)
    return trt


def _feeds(model: Any, count: int = 3) -> list[dict[str, np.ndarray]]:
    return [random_feed(model, seed=seed) for seed in range(count)]


def _timing_entries(path: Path) -> list[str]:
    data = path.read_bytes()
    assert data.startswith(TIMING_MAGIC)
    return data[len(TIMING_MAGIC) :].decode().splitlines()


# -- the named timing cache file -------------------------------------------------------------
def test_a_named_timing_cache_file_seeds_builds_and_collects_their_timings(
    fake: Any, tmp_path: Path
) -> None:
    timing = tmp_path / "shared" / "timing.cache"
    conv, mm = conv_chain(), matmul_softmax()
    conv.graph.name, mm.graph.name = "conv", "mm"
    runner = TrtRunner(conv, cache_dir=tmp_path / "cache", timing_cache=timing)
    fake_trt.load_engine_for_orchestration(runner)
    assert runner.engine_was_built
    assert _timing_entries(timing) == ["tactics of conv"]
    runner = TrtRunner(mm, cache_dir=tmp_path / "cache", timing_cache=timing)
    fake_trt.load_engine_for_orchestration(runner)
    seeded = FakeBuilderForOrchestration.configs[-1].timing_cache
    assert "tactics of conv" in seeded.entries  # the second build started from the file
    assert _timing_entries(timing) == ["tactics of conv", "tactics of mm"]
    # the artifact cache's timing cache was not used while a file was named
    assert not (tmp_path / "cache" / "trt-timing-cache").exists()
    # without a file, the artifact cache keeps it, as before
    fake_trt.load_engine_for_orchestration(TrtRunner(mm, cache_dir=tmp_path / "other"))
    assert (tmp_path / "other" / "trt-timing-cache").is_dir()


def test_a_failed_build_leaves_the_timing_cache_file_as_it_was(fake: Any, tmp_path: Path) -> None:
    timing = tmp_path / "timing.cache"
    model = conv_chain()
    model.graph.name = "conv"
    fake_trt.load_engine_for_orchestration(TrtRunner(model, use_cache=False, timing_cache=timing))
    before = timing.read_bytes()
    FakeBuilderForOrchestration.fail = True
    with pytest.raises(ModelError, match="could not build an engine"):
        fake_trt.load_engine_for_orchestration(
            TrtRunner(matmul_softmax(), use_cache=False, timing_cache=timing)
        )
    assert timing.read_bytes() == before


def test_a_timing_cache_file_tensorrt_cannot_read_is_named(fake: Any, tmp_path: Path) -> None:
    timing = tmp_path / "notes.txt"
    timing.write_bytes(b"my notes")
    runner = TrtRunner(conv_chain(), use_cache=False, timing_cache=timing)
    with pytest.raises(InputError, match=r"timing cache file .*notes\.txt is not a timing cache"):
        fake_trt.load_engine_for_orchestration(runner)
    assert timing.read_bytes() == b"my notes"


def test_the_timing_cache_file_is_part_of_the_engine_key_by_path_not_content() -> None:
    settings = trt_settings.EngineSettings
    base = settings().key_parts()
    named = settings(timing_cache_file="/ci/timing.cache").key_parts()
    assert named != base and named["timing_cache_file"] == "/ci/timing.cache"
    assert settings(timing_cache_file="/ci/other.cache").key_parts() != named


def test_tensorrt_rtx_refuses_a_timing_cache_file_and_a_calibrator(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    rtx = fake_trt.fake_tensorrt_for_orchestration("tensorrt_rtx")
    fake_trt.install(monkeypatch, rtx)
    runner = TrtRunner(conv_chain(), use_cache=False, timing_cache=tmp_path / "t.cache")
    with pytest.raises(BackendUnavailableError, match=r"has no timing cache .*t\.cache"):
        fake_trt.load_engine_for_orchestration(runner)
    runner = TrtRunner(
        conv_chain(), precision="int8", calibrator="minmax", calibration_data=_feeds(conv_chain())
    )
    with pytest.raises(BackendUnavailableError, match="has no int8 calibration"):
        fake_trt.load_engine_for_orchestration(runner)
    assert not (tmp_path / "t.cache").exists()


# -- int8 calibration inside TensorRT --------------------------------------------------------
def test_a_calibrator_feeds_tensorrt_the_test_data_and_keeps_its_cache(
    fake: Any, tmp_path: Path
) -> None:
    model = conv_chain()
    feeds = _feeds(model)
    named = tmp_path / "calib.cache"
    runner = TrtRunner(
        model,
        precision="int8",
        calibrator="entropy2",
        calibration_data=feeds,
        calibration_cache=named,
        cache_dir=tmp_path / "cache",
    )
    engine = fake_trt.load_engine_for_orchestration(runner)
    config = FakeBuilderForOrchestration.configs[-1]
    assert "INT8" in config.flags
    assert type(config.int8_calibrator).__mro__[1].__name__ == "IInt8EntropyCalibrator2"
    assert runner.calibrator.batches == 3 and not runner.calibrator.cache_hit
    expected = [float(feed["input"].astype(np.float64).sum()) for feed in feeds]
    assert named.read_text() == f"entropy2 scales from 3 batches {expected}"
    assert named.read_text() in engine.data.decode()  # the engine used those scales
    assert FakeFeedUploaderForOrchestration.freed == 1  # device buffers released
    # the float model was built: no Q/DQ quantization on the way
    assert len(fake_trt.FakeBuilderForOrchestration.configs) == 1

    # another worker or run with a fresh engine cache reads the named file: no calibration
    again = TrtRunner(
        model,
        precision="int8",
        calibrator="entropy2",
        calibration_data=feeds,
        calibration_cache=named,
        cache_dir=tmp_path / "cache2",
    )
    fake_trt.load_engine_for_orchestration(again)
    assert again.calibrator.cache_hit and again.calibrator.batches == 0

    # without the file, the artifact cache's entry (same model, feeds, calibrator, TensorRT)
    named.unlink()
    shared_store_runner = TrtRunner(
        model,
        precision="int8",
        calibrator="entropy2",
        calibration_data=feeds,
        cache_dir=tmp_path / "cache",
        optimization_level=1,  # another engine of the same model: only the engine key misses
    )
    fake_trt.load_engine_for_orchestration(shared_store_runner)
    assert shared_store_runner.engine_was_built
    assert shared_store_runner.calibrator.cache_hit
    assert not named.exists()  # the file is written only after calibrating


def test_the_calibrator_data_and_cache_are_part_of_the_engine_key(
    fake: Any, tmp_path: Path
) -> None:
    model = conv_chain()
    feeds = _feeds(model)

    def key(**kwargs: Any) -> Any:
        data = kwargs.pop("data", feeds)
        runner = TrtRunner(model, precision="int8", calibration_data=data, **kwargs)
        _source, extra, _feeds_given = runner._build_inputs_and_extra_key()
        return trt_settings.engine_key_parts("h", runner.settings, fake, {"gpu": "g"}, extra)

    named = tmp_path / "calib.cache"
    keys = {
        "qdq": key(),
        "entropy2": key(calibrator="entropy2"),
        "minmax": key(calibrator="minmax"),
        "other data": key(calibrator="minmax", data=_feeds(model, 2)),
        "absent file": key(calibrator="minmax", calibration_cache=named),
    }
    named.write_bytes(b"scales")
    keys["file content"] = key(calibrator="minmax", calibration_cache=named)
    named.write_bytes(b"other scales")
    keys["other content"] = key(calibrator="minmax", calibration_cache=named)
    unique = {repr(value) for value in keys.values()}
    assert len(unique) == len(keys) - 1  # an absent file keys like no file
    assert keys["absent file"] == keys["minmax"]
    # the calibrator does not apply to other precisions: their engines are unchanged
    fp32 = TrtRunner(model, calibrator="minmax").settings
    assert fp32 == trt_settings.EngineSettings()
    with pytest.raises(InputError, match="unknown calibrator 'legacy'; expected one of"):
        TrtRunner(model, precision="int8", calibrator="legacy")


def test_dynamic_inputs_calibrate_at_the_feeds_shapes(fake: Any) -> None:
    model = dynamic_batch_model()
    feeds = [random_feed(model, seed=s, batch=4) for s in range(2)]
    runner = TrtRunner(
        model,
        precision="int8",
        calibrator="minmax",
        calibration_data=feeds,
        use_cache=False,
        shapes={"x": [(1, 8), (4, 8), (16, 8)]},
    )
    fake_trt.load_engine_for_orchestration(runner)
    config = FakeBuilderForOrchestration.configs[-1]
    (name,) = config.calibration_profile.shapes
    assert config.calibration_profile.shapes[name] == ((4, 8), (4, 8), (4, 8))
    mixed = [random_feed(model, seed=0, batch=4), random_feed(model, seed=1, batch=2)]
    runner = TrtRunner(
        model, precision="int8", calibrator="minmax", calibration_data=mixed, use_cache=False
    )
    with pytest.raises(InputError, match="calibration feed #1 has input shapes"):
        fake_trt.load_engine_for_orchestration(runner)


def test_a_feed_missing_an_input_fails_the_build_naming_it(fake: Any) -> None:
    model = conv_chain()
    runner = TrtRunner(
        model,
        precision="int8",
        calibrator="minmax",
        calibration_data=[{"other": np.zeros((1, 3, 8, 8), np.float32)}],
        use_cache=False,
    )
    with pytest.raises(InputError, match=r"calibration feed #0 has no inputs \['input'\]"):
        fake_trt.load_engine_for_orchestration(runner)
