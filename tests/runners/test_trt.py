"""TrtRunner: the missing-TensorRT error here; engine cache orchestration and build
settings with fakes (clearly named); and, where TensorRT (or TensorRT-RTX) and a GPU are
present, the real parse/build/cache path and inference against ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper

from pytest_polygraphy.cache import ArtifactCache, cache_key
from pytest_polygraphy.errors import BackendUnavailableError, InputError, ModelError
from pytest_polygraphy.runners import (
    OnnxrtRunner,
    TrtEngineRunner,
    TrtRunner,
    cuda_unavailable_reason,
    import_tensorrt,
    tensorrt_unavailable_reason,
    trt_build,
    trt_settings,
)
from pytest_polygraphy.runners.trt import read_engine_file
from pytest_polygraphy.runners.trt_module import FLAVOUR_ENV, TensorRT
from tests.models.builders import (
    conv_chain,
    dynamic_batch_model,
    int64_bool_model,
    make_model,
    matmul_softmax,
    mixed_chain,
    random_feed,
)

TRT_REASON = tensorrt_unavailable_reason()
GPU_REASON = TRT_REASON or cuda_unavailable_reason()
needs_trt_gpu = pytest.mark.skipif(GPU_REASON is not None, reason=str(GPU_REASON))


# -- without TensorRT --------------------------------------------------------------------
@pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is installed here")
def test_constructing_without_tensorrt_says_how_to_install_it() -> None:
    with pytest.raises(BackendUnavailableError, match=r"pip install 'pytest-polygraphy\[trt\]'"):
        TrtRunner(conv_chain())


def test_forcing_an_unknown_flavour_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import_tensorrt.cache_clear()
    monkeypatch.setenv(FLAVOUR_ENV, "tensorflow")
    try:
        with pytest.raises(BackendUnavailableError, match="not a TensorRT flavour"):
            import_tensorrt()
    finally:
        import_tensorrt.cache_clear()


# -- build settings and cache keys (no TensorRT needed) ----------------------------------
FAKE_TRT_10 = TensorRT(module=None, flavour="tensorrt", version="10.9.0.34")
GPU_H100 = {"name": "NVIDIA H100", "compute_capability": "9.0"}


def test_shapes_normalize_to_min_opt_max() -> None:
    shapes = trt_settings.normalize_shapes({"x": (4, 8), "y": [(1, 8), (4, 8), (16, 8)]})
    assert shapes == {"x": ((4, 8), (4, 8), (4, 8)), "y": ((1, 8), (4, 8), (16, 8))}
    with pytest.raises(InputError, match="min <= opt <= max"):
        trt_settings.normalize_shapes({"x": [(4, 8), (2, 8), (16, 8)]})
    with pytest.raises(InputError, match="different ranks"):
        trt_settings.normalize_shapes({"x": [(4, 8), (4, 8, 1), (16, 8)]})
    with pytest.raises(InputError, match=r"shapes\['x'\]"):
        trt_settings.normalize_shapes({"x": "4x8"})


def test_profiles_name_the_same_inputs_and_inference_picks_the_one_that_holds_a_feed() -> None:
    profiles = trt_settings.normalize_profiles(
        profiles=[{"x": [(1, 8), (2, 8), (4, 8)]}, {"x": [(5, 8), (8, 8), (16, 8)]}]
    )
    assert trt_settings.EngineSettings(profiles=profiles).shapes == profiles[0]
    assert trt_settings.pick_profile({"x": (3, 8)}, profiles) == 0
    assert trt_settings.pick_profile({"x": (16, 8)}, profiles) == 1
    assert trt_settings.pick_profile({"x": (17, 8)}, profiles) is None
    assert trt_settings.pick_profile({"x": (3, 8, 1)}, profiles) is None  # another rank
    with pytest.raises(InputError, match="profile 1 names inputs \\['y'\\]"):
        trt_settings.EngineSettings(
            profiles=trt_settings.normalize_profiles(profiles=[{"x": (1, 8)}, {"y": (1, 8)}])
        )
    with pytest.raises(InputError, match="not both"):
        trt_settings.normalize_profiles({"x": (1, 8)}, [{"x": (1, 8)}])


def test_engine_settings_refuse_contradictions() -> None:
    with pytest.raises(InputError, match="unknown precision 'fp64'"):
        trt_settings.EngineSettings(precision="fp64")
    with pytest.raises(InputError, match="strongly typed"):
        trt_settings.EngineSettings(precision="fp16", strongly_typed=True)
    with pytest.raises(InputError, match="precision_constraints"):
        trt_settings.EngineSettings(precision_constraints="always")
    with pytest.raises(InputError, match="unknown precisions"):
        trt_settings.EngineSettings(layer_precisions={"conv1": "fp64"})
    # layer precisions alone would be ignored by TensorRT: constraints default to obey
    settings = trt_settings.EngineSettings(layer_precisions={"conv1": "fp32"})
    assert settings.effective_constraints() == "obey"
    assert trt_settings.EngineSettings().effective_constraints() is None


def _key(**overrides: Any) -> str:
    parts = {"model": "hash-a", "settings": trt_settings.EngineSettings(), "trt": FAKE_TRT_10}
    parts["gpu"] = GPU_H100
    parts.update(overrides)
    return cache_key(
        trt_settings.engine_key_parts(parts["model"], parts["settings"], parts["trt"], parts["gpu"])
    )


def test_engine_cache_key_covers_model_settings_tensorrt_and_gpu() -> None:
    base = _key()
    assert base == _key()  # stable
    variants = {
        "model": _key(model="hash-b"),
        "precision": _key(settings=trt_settings.EngineSettings(precision="fp16")),
        "shapes": _key(
            settings=trt_settings.EngineSettings(
                profiles=trt_settings.normalize_profiles({"x": (2, 8)})
            )
        ),
        "two profiles": _key(
            settings=trt_settings.EngineSettings(
                profiles=trt_settings.normalize_profiles(profiles=[{"x": (2, 8)}, {"x": (4, 8)}])
            )
        ),
        "mark_all": _key(settings=trt_settings.EngineSettings(mark_all=True)),
        "workspace": _key(settings=trt_settings.EngineSettings(workspace=1 << 20)),
        "version": _key(trt=TensorRT(None, "tensorrt", "10.10.0.31")),
        "flavour": _key(trt=TensorRT(None, "tensorrt_rtx", "10.9.0.34")),
        "gpu": _key(gpu={"name": "NVIDIA H200", "compute_capability": "9.0"}),
        "cc": _key(gpu={"name": "NVIDIA H100", "compute_capability": "8.9"}),
    }
    assert len({base, *variants.values()}) == len(variants) + 1
    parts = trt_settings.engine_key_parts("h", trt_settings.EngineSettings(), FAKE_TRT_10, GPU_H100)
    json.dumps(parts)  # key parts are stored as JSON metadata


class FakeEngineBackendForOrchestration:
    """Stands in for TensorRT's builder and runtime to test the cache orchestration only:
    'engines' are bytes, and ``load`` accepts only bytes it built this session."""

    def __init__(self) -> None:
        self.builds = 0
        self.accepted: set[bytes] = set()

    def build(self) -> bytes:
        self.builds += 1
        engine = f"engine #{self.builds}".encode()
        self.accepted.add(engine)
        return engine

    def load(self, data: bytes) -> Any:
        return SimpleNamespace(data=data) if data in self.accepted else None


def test_engine_is_built_once_then_loaded_from_the_cache(tmp_path: Path) -> None:
    cache, fake = ArtifactCache(tmp_path), FakeEngineBackendForOrchestration()
    key = trt_settings.engine_key_parts("h", trt_settings.EngineSettings(), FAKE_TRT_10, GPU_H100)
    engine, built = trt_settings.obtain_engine(cache, key, fake.build, fake.load)
    assert built and engine.data == b"engine #1"
    engine, built = trt_settings.obtain_engine(cache, key, fake.build, fake.load)
    assert not built and engine.data == b"engine #1" and fake.builds == 1


def test_a_cached_engine_the_runtime_rejects_is_rebuilt(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    key = trt_settings.engine_key_parts("h", trt_settings.EngineSettings(), FAKE_TRT_10, GPU_H100)
    # an entry with a valid checksum that the runtime does not accept (e.g. another build)
    cache.get_or_create(key, lambda: b"stale engine", namespace="trt-engine")
    fake = FakeEngineBackendForOrchestration()
    engine, built = trt_settings.obtain_engine(cache, key, fake.build, fake.load)
    assert built and engine.data == b"engine #1"
    assert cache.get(key, namespace="trt-engine") == b"engine #1"


def test_an_engine_the_runtime_rejects_right_after_building_is_an_error(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    key = trt_settings.engine_key_parts("h", trt_settings.EngineSettings(), FAKE_TRT_10, GPU_H100)
    with pytest.raises(BackendUnavailableError, match="just built"):
        trt_settings.obtain_engine(cache, key, lambda: b"engine", lambda data: None)


def _fake_layer(type_name: str, *outputs: Any) -> Any:
    return SimpleNamespace(
        type=SimpleNamespace(name=type_name),
        num_outputs=len(outputs),
        get_output=lambda i: outputs[i],
    )


def _fake_tensor(name: str, *, shape_tensor: bool = False, execution: bool = True) -> Any:
    return SimpleNamespace(name=name, is_shape_tensor=shape_tensor, is_execution_tensor=execution)


def test_mark_all_follows_polygraphy_layer_rules_on_a_fake_network() -> None:
    """Fake TensorRT layers, to test only the selection rules."""
    layers = [
        _fake_layer("CONVOLUTION", _fake_tensor("conv")),
        _fake_layer("CONSTANT", _fake_tensor("weights")),
        _fake_layer("SHAPE", _fake_tensor("shape_of_conv", shape_tensor=True)),
        _fake_layer("GATHER", _fake_tensor("dims", shape_tensor=True)),
        _fake_layer("ELEMENTWISE", _fake_tensor("cond_flag", execution=False)),
        _fake_layer("TRIP_LIMIT"),
        _fake_layer("ELEMENTWISE", _fake_tensor("in_loop_body")),
        _fake_layer("LOOP_OUTPUT", _fake_tensor("loop_out")),
        _fake_layer("ACTIVATION", _fake_tensor("relu"), None),
        _fake_layer("SOFTMAX", _fake_tensor("probs")),
    ]
    assert trt_build.layerwise_output_names(layers) == ["conv", "relu", "probs"]


def test_default_names_are_stable_test_ids() -> None:
    assert trt_settings.default_name("fp32", False) == "trt"
    assert trt_settings.default_name("fp16", False) == "trt[fp16]"
    assert trt_settings.default_name("int8", True) == "trt[int8,mark-all]"


# -- with TensorRT (or TensorRT-RTX) and a GPU -------------------------------------------
def _activate_or_skip(runner: TrtRunner) -> TrtRunner:
    """Inference needs the TensorRT runtime on this GPU; TensorRT-RTX refuses some
    compute capabilities (9.0 among them): then the test is skipped with its message."""
    try:
        runner.activate()
    except BackendUnavailableError as err:
        pytest.skip(f"TensorRT runtime unavailable here: {err}")
    return runner


@needs_trt_gpu
def test_build_path_parses_builds_serializes_and_caches(tmp_path: Path) -> None:
    trt = import_tensorrt()
    logger = trt_build.make_logger(trt, echo_level="ERROR")
    source = trt_build.model_build_inputs(mixed_chain(), "mixed_chain")
    settings = trt_settings.EngineSettings()
    cache = ArtifactCache(tmp_path)
    timing_key = trt_settings.timing_cache_key_parts(trt, {"name": "test-gpu"})

    def build() -> bytes:
        return trt_build.build_serialized_engine(
            trt,
            source,
            settings,
            logger=logger,
            save_timing_cache=lambda merge: cache.update(timing_key, merge, namespace="timing"),
        )

    key = {"model": "mixed_chain", **settings.key_parts()}
    first = cache.get_or_create(key, build, namespace="trt-engine")
    assert first.built and len(first.data) > 1000
    again = cache.get_or_create(key, build, namespace="trt-engine")
    assert not again.built and again.data == first.data
    stored = cache.get(timing_key, namespace="timing")
    if trt_settings.supports_timing_cache(trt):
        assert stored  # the timing cache was kept
    else:
        assert stored is None  # TensorRT-RTX: no timing cache to keep


@needs_trt_gpu
def test_mark_all_marks_layer_outputs_in_the_network() -> None:
    trt = import_tensorrt()
    logger = trt_build.make_logger(trt, echo_level="ERROR")
    builder = trt.module.Builder(logger)
    source = trt_build.model_build_inputs(mixed_chain(), "mixed_chain")
    network, _parser = trt_build.make_network(
        trt, builder, source, trt_settings.EngineSettings(mark_all=True), logger
    )
    outputs = {network.get_output(i).name for i in range(network.num_outputs)}
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    assert "scores" in outputs
    assert set(trt_build.layerwise_output_names(layers)) <= outputs
    assert len(outputs) > 1


@needs_trt_gpu
def test_parse_errors_name_the_node() -> None:
    model = make_model(
        [helper.make_node("FancyOp", ["x"], ["y"], name="fancy_node", domain="custom.ops")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        check=False,
    )
    model.opset_import.append(helper.make_opsetid("custom.ops", 1))
    with pytest.raises(ModelError, match="ONNX parser") as info:
        TrtRunner(model, use_cache=False).activate()
    assert "FancyOp" in str(info.value) or "fancy_node" in str(info.value)


@needs_trt_gpu
def test_dynamic_inputs_build_with_a_profile(tmp_path: Path) -> None:
    runner = TrtRunner(
        dynamic_batch_model(), shapes={"x": [(1, 8), (4, 8), (16, 8)]}, cache_dir=tmp_path
    )
    assert runner.input_metadata["x"].shape_range == ((1, 8), (4, 8), (16, 8))
    trt = runner.trt
    logger = trt_build.make_logger(trt, echo_level="ERROR")
    source = trt_build.model_build_inputs(dynamic_batch_model(), "dynamic_batch")
    engine = trt_build.build_serialized_engine(trt, source, runner.settings, logger=logger)
    assert len(engine) > 1000
    with pytest.raises(InputError, match="unknown inputs"):
        bad = trt_settings.EngineSettings(
            profiles=(trt_settings.normalize_shapes({"nope": (1, 8)}),)
        )
        trt_build.build_serialized_engine(trt, source, bad, logger=logger)


@needs_trt_gpu
@pytest.mark.skipif(TRT_REASON is None and not import_tensorrt().is_rtx, reason="TensorRT-RTX only")
def test_rtx_refuses_weakly_typed_precisions_with_a_reason(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailableError, match="strongly typed"):
        TrtRunner(conv_chain(), precision="fp16", cache_dir=tmp_path).activate()


@needs_trt_gpu
def test_activation_runs_or_refuses_with_tensorrts_reason(tmp_path: Path) -> None:
    runner = TrtRunner(conv_chain(), cache_dir=tmp_path)
    try:
        runner.activate()
    except BackendUnavailableError as err:
        # TensorRT-RTX on an unsupported GPU: the engine was still built and cached
        assert "deserialize" in str(err)
        assert list((tmp_path / "trt-engine").rglob("*.bin"))
    else:
        assert runner.engine_was_built
        runner.deactivate()


@needs_trt_gpu
@pytest.mark.parametrize("builder", [conv_chain, mixed_chain, matmul_softmax, int64_bool_model])
def test_tensorrt_matches_onnxruntime(builder: Any, tmp_path: Path) -> None:
    model = builder()
    feed = random_feed(model, seed=11)
    with _activate_or_skip(TrtRunner(model, cache_dir=tmp_path)) as trt_runner:
        actual = trt_runner.infer(feed)
        again = trt_runner.infer(feed)  # buffers reused
    with OnnxrtRunner(model) as ort_runner:
        expected = ort_runner.infer(feed)
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype
        np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(again[name], actual[name])


@needs_trt_gpu
def test_dynamic_batch_inference_and_engine_cache_hit(tmp_path: Path) -> None:
    model = dynamic_batch_model()
    shapes = {"x": [(1, 8), (4, 8), (16, 8)]}
    with _activate_or_skip(TrtRunner(model, shapes=shapes, cache_dir=tmp_path)) as runner:
        assert runner.engine_was_built
        for batch in (1, 16, 3):
            feed = random_feed(model, seed=batch, batch=batch)
            with OnnxrtRunner(model) as ort_runner:
                expected = ort_runner.infer(feed)["y"]
            np.testing.assert_allclose(runner.infer(feed)["y"], expected, rtol=1e-4, atol=1e-4)
        with pytest.raises(InputError, match="refused shape"):
            runner.infer(random_feed(model, batch=17), check_feed=False)
    second = TrtRunner(model, shapes=shapes, cache_dir=tmp_path)
    with second:
        assert second.engine_was_built is False


@needs_trt_gpu
def test_data_dependent_output_shape_uses_the_output_allocator(tmp_path: Path) -> None:
    model = make_model(
        [helper.make_node("NonZero", ["x"], ["idx"], name="nonzero")],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 5])],
        [helper.make_tensor_value_info("idx", TensorProto.INT64, [2, None])],
    )
    x = np.zeros((4, 5), np.float32)
    x[1, 2] = x[3, 0] = x[3, 4] = 1.0
    try:
        runner = _activate_or_skip(TrtRunner(model, cache_dir=tmp_path))
    except ModelError as err:
        if "plugin" not in str(err):
            raise
        pytest.skip(f"this TensorRT parses NonZero through a plugin it lacks: {err}")
    with runner:
        idx = runner.infer({"x": x})["idx"]
    np.testing.assert_array_equal(idx, np.array(np.nonzero(x)))


@needs_trt_gpu
def test_mark_all_outputs_match_onnxruntime_intermediates(tmp_path: Path) -> None:
    from pytest_polygraphy.models import MARK_ALL, mark_outputs

    model = mixed_chain()
    feed = random_feed(model, seed=2)
    with _activate_or_skip(TrtRunner(model, mark_all=True, cache_dir=tmp_path)) as runner:
        actual = runner.infer(feed)
    with OnnxrtRunner(mark_outputs(model, MARK_ALL)) as ort_runner:
        expected = ort_runner.infer(feed)
    common = set(actual) & set(expected)
    assert "scores" in common and len(common) > 1
    for name in common:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-3, atol=1e-3)


@needs_trt_gpu
def test_a_corrupt_cached_engine_is_rebuilt(tmp_path: Path) -> None:
    model = conv_chain()
    with _activate_or_skip(TrtRunner(model, cache_dir=tmp_path)):
        pass
    (engine_file,) = (tmp_path / "trt-engine").rglob("*.bin")
    engine_file.write_bytes(b"garbage" + engine_file.read_bytes()[7:])
    runner = TrtRunner(model, cache_dir=tmp_path)
    with runner:
        assert runner.engine_was_built
        feed = random_feed(model)
        with OnnxrtRunner(model) as ort_runner:
            expected = ort_runner.infer(feed)["output"]
        np.testing.assert_allclose(runner.infer(feed)["output"], expected, rtol=1e-4, atol=1e-4)


class FakeNetworkForKeepFp32:
    """A fake TensorRT network: only what keep_fp32's layer selection reads and sets."""

    def __init__(self, layers: list[Any]) -> None:
        self.layers = layers

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def get_layer(self, index: int) -> Any:
        return self.layers[index]


class FakeLayerForKeepFp32:
    def __init__(self, name: str, metadata: str = "", outputs: int = 1) -> None:
        self.name, self.metadata, self.num_outputs = name, metadata, outputs
        self.precision: Any = None
        self.types = ["half"] * outputs
        #: What each output tensor holds as the parser typed it.
        self.dtypes = ["float"] * outputs

    def get_output(self, index: int) -> Any:
        return SimpleNamespace(dtype=self.dtypes[index])

    def get_output_type(self, index: int) -> Any:
        return self.types[index]

    def set_output_type(self, index: int, dtype: Any) -> None:
        self.types[index] = dtype


def test_keep_fp32_constrains_the_layers_of_each_node_on_a_fake_network() -> None:
    """Only the selection and what is set: no TensorRT here."""
    fake_trt = SimpleNamespace(module=SimpleNamespace(float32="float", float16="half"))
    conv = FakeLayerForKeepFp32("conv1", "[ONNX Layer: conv1]")
    split = [FakeLayerForKeepFp32(f"norm_{i}", "[ONNX Layer: norm]") for i in range(2)]
    other = FakeLayerForKeepFp32("relu", "[ONNX Layer: relu]")
    network = FakeNetworkForKeepFp32([conv, *split, other])
    assert trt_build.layers_of_nodes(network, ["norm"]) == {"norm": split}
    trt_build._keep_fp32(fake_trt, network, ["conv1", "norm"])
    assert [layer.precision for layer in (conv, *split, other)] == ["float"] * 3 + [None]
    assert conv.types == ["float"] and other.types == ["half"]
    with pytest.raises(InputError, match=r"keep_fp32 names ONNX nodes .* \['gone'\]"):
        trt_build._keep_fp32(fake_trt, network, ["gone"])
    unnamed = [FakeLayerForKeepFp32("conv"), FakeLayerForKeepFp32("conv_1x1")]
    assert trt_build.layers_of_nodes(FakeNetworkForKeepFp32(unnamed), ["conv"]) == {
        "conv": unnamed[:1]
    }  # without metadata: exact names only
    assert trt_settings.EngineSettings(keep_fp32=("conv1",)).effective_constraints() == "obey"
    keyed = trt_settings.EngineSettings(keep_fp32=("conv1",)).key_parts()
    assert keyed["keep_fp32"] == ["conv1"]


def test_keep_fp16_constrains_the_layers_of_each_node_on_a_fake_network() -> None:
    """Only the selection and what is set: no TensorRT here."""
    fake_trt = SimpleNamespace(
        module=SimpleNamespace(float32="float", float16="half", bfloat16="bf16")
    )
    conv = FakeLayerForKeepFp32("conv1", "[ONNX Layer: conv1]")
    conv.types = ["float"]
    shape = FakeLayerForKeepFp32("shape", "[ONNX Layer: shape]", outputs=2)
    shape.dtypes = ["int64", "bf16"]
    shape.types = ["int64", "bf16"]
    other = FakeLayerForKeepFp32("relu", "[ONNX Layer: relu]")
    other.types = ["float"]
    network = FakeNetworkForKeepFp32([conv, shape, other])
    trt_build._keep_fp16(fake_trt, network, ["conv1", "shape"])
    assert [layer.precision for layer in (conv, shape, other)] == ["half", "half", None]
    assert conv.types == ["half"] and shape.types == ["int64", "half"]
    assert other.types == ["float"]
    with pytest.raises(InputError, match=r"keep_fp16 names ONNX nodes .* \['gone'\]"):
        trt_build._keep_fp16(fake_trt, network, ["gone"])
    settings = trt_settings.EngineSettings(precision="int8", keep_fp16=("conv1",))
    assert settings.effective_constraints() == "obey"
    assert settings.key_parts()["keep_fp16"] == ["conv1"]
    assert settings.key_parts() != trt_settings.EngineSettings(precision="int8").key_parts()
    with pytest.raises(InputError, match=r"\['conv1'\] are in both keep_fp32 and keep_fp16"):
        trt_settings.EngineSettings(keep_fp32=("conv1",), keep_fp16=("conv1",))


class FakeStronglyTypedLayerForOrchestration:
    """A layer as TensorRT-RTX's bindings make it: no ``precision`` to set."""

    name, metadata, num_outputs = "conv1", "[ONNX Layer: conv1]", 1


def test_per_layer_precisions_on_a_strongly_typed_only_tensorrt_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seen on the GPU machine: TensorRT-RTX's layers have no ``precision``; keep_fp32 there
    was an AttributeError from deep in the build. It is a BackendUnavailableError saying
    what cannot be applied and why (a fake network; no TensorRT here)."""
    network = FakeNetworkForKeepFp32([FakeStronglyTypedLayerForOrchestration()])
    monkeypatch.setattr(trt_build, "_parse", lambda *args: (network, None))
    fake = SimpleNamespace(describe=lambda: "TensorRT-RTX 1.7 (fake)")
    for settings, named in (
        (trt_settings.EngineSettings(keep_fp32=("conv1",)), "keep_fp32"),
        (trt_settings.EngineSettings(layer_precisions={"conv1": "fp32"}), "layer_precisions"),
    ):
        with pytest.raises(BackendUnavailableError, match=rf"no per-layer precision.*{named}"):
            trt_build.make_network(fake, None, None, settings, None)  # type: ignore[arg-type]
    plain, _ = trt_build.make_network(
        fake,  # type: ignore[arg-type]
        None,
        None,
        trt_settings.EngineSettings(),
        None,
    )
    assert plain is network


# -- build options: cache key and IBuilderConfig calls (fakes; no TensorRT here) ------------
def test_every_build_option_is_part_of_the_engine_cache_key(tmp_path: Path) -> None:
    plugin = tmp_path / "libplugin.so"
    plugin.write_bytes(b"v1")
    settings = trt_settings.EngineSettings
    variants = {
        "pool": settings(memory_pool_limits={"workspace": 1 << 30}),
        "pool size": settings(memory_pool_limits={"workspace": 1 << 29}),
        "tactic_dram": settings(memory_pool_limits={"tactic_dram": 1 << 29}),
        "level": settings(optimization_level=5),
        "tactics": settings(tactic_sources=("cublas",)),
        "no tactics": settings(tactic_sources=()),
        "strongly typed": settings(strongly_typed=True),
        "obey": settings(precision_constraints="obey"),
        "prefer": settings(precision_constraints="prefer"),
        "sparse": settings(sparse_weights=True),
        "plugin": settings(plugins=trt_settings.plugin_entries([str(plugin)])),
        "dla": settings(use_dla=True),
        "dla core": settings(use_dla=True, dla_core=1),
        "fallback": settings(use_dla=True, allow_gpu_fallback=True),
        "outputs": settings(outputs=("m",)),
        "exclude": settings(exclude_outputs=("z",)),
    }
    keys = {name: _key(settings=value) for name, value in variants.items()}
    assert len({_key(), *keys.values()}) == len(variants) + 1
    plugin.write_bytes(b"v2")  # a rebuilt plugin library is another engine
    rebuilt = settings(plugins=trt_settings.plugin_entries([str(plugin)]))
    assert _key(settings=rebuilt) != keys["plugin"]
    with pytest.raises(InputError, match=r"plugin library .*missing\.so: cannot read it"):
        trt_settings.plugin_entries([str(tmp_path / "missing.so")])
    with pytest.raises(InputError, match="unknown memory pools \\['scratch'\\]"):
        settings(memory_pool_limits={"scratch": 1})
    with pytest.raises(InputError, match="allow_gpu_fallback applies to DLA builds"):
        settings(allow_gpu_fallback=True)


class FakeBuilderConfigForOrchestration:
    """Records what ``configure_builder`` asks of an ``IBuilderConfig``; no TensorRT."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def set_memory_pool_limit(self, pool: Any, size: int) -> None:
        self.calls.append(("pool", (pool, size)))

    def set_tactic_sources(self, mask: int) -> None:
        self.calls.append(("tactic_sources", mask))

    def set_flag(self, flag: Any) -> None:
        self.calls.append(("flag", flag))

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "calls":
            self.calls.append((name, value))
        object.__setattr__(self, name, value)


def _fake_tensorrt_enums_for_orchestration() -> TensorRT:
    """TensorRT 10's documented enum members as plain values (a fake module)."""
    module = SimpleNamespace(
        MemoryPoolType=SimpleNamespace(WORKSPACE="WORKSPACE", TACTIC_DRAM="TACTIC_DRAM"),
        TacticSource=SimpleNamespace(CUBLAS=0, CUBLAS_LT=1, CUDNN=2),
        BuilderFlag=SimpleNamespace(SPARSE_WEIGHTS="SPARSE_WEIGHTS", GPU_FALLBACK="GPU_FALLBACK"),
        DeviceType=SimpleNamespace(DLA="DLA", GPU="GPU"),
    )
    return TensorRT(module, "tensorrt", "10.x (fake)")


def test_build_options_map_to_the_documented_builder_config_calls() -> None:
    trt = _fake_tensorrt_enums_for_orchestration()
    config = FakeBuilderConfigForOrchestration()
    trt_build.configure_builder(
        trt,
        config,
        trt_settings.EngineSettings(
            memory_pool_limits={"tactic_dram": 1 << 20},
            workspace=1 << 30,
            optimization_level=4,
            tactic_sources=("cublas", "cudnn"),
            sparse_weights=True,
            use_dla=True,
            dla_core=1,
            allow_gpu_fallback=True,
        ),
    )
    assert config.calls == [
        ("pool", ("TACTIC_DRAM", 1 << 20)),
        ("pool", ("WORKSPACE", 1 << 30)),
        ("builder_optimization_level", 4),
        ("tactic_sources", 0b101),  # 1 << CUBLAS | 1 << CUDNN
        ("flag", "SPARSE_WEIGHTS"),
        ("default_device_type", "DLA"),
        ("DLA_core", 1),
        ("flag", "GPU_FALLBACK"),
    ]
    config = FakeBuilderConfigForOrchestration()
    with pytest.raises(BackendUnavailableError, match="has no memory pool 'dla_local_dram'"):
        trt_build.configure_builder(
            trt, config, trt_settings.EngineSettings(memory_pool_limits={"dla_local_dram": 1})
        )


# -- engine files and saved engines (no TensorRT needed for these parts) ---------------------
@pytest.mark.skipif(TRT_REASON is None, reason="TensorRT is installed here")
def test_an_engine_runner_without_tensorrt_says_how_to_install_it(tmp_path: Path) -> None:
    engine = tmp_path / "det.plan"
    engine.write_bytes(b"serialized")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'pytest-polygraphy\[trt\]'"):
        TrtEngineRunner(engine)


def test_an_unreadable_or_empty_engine_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"engine file .*missing\.plan: cannot read it"):
        read_engine_file(tmp_path / "missing.plan")
    (tmp_path / "empty.engine").write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.engine is empty"):
        read_engine_file(tmp_path / "empty.engine")


def _runner_holding_an_engine_for_orchestration(engine_file: Path | None) -> TrtRunner:
    """A TrtRunner as activation leaves it (engine in the engine cache), made without
    TensorRT: only ``save_engine``'s copying is tested on it."""
    runner = TrtRunner.__new__(TrtRunner)
    runner.name = "trt"
    runner.engine_file, runner._built_engine = engine_file, None
    return runner


def test_save_engine_copies_the_cache_entry_atomically(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path / "cache")
    key = trt_settings.engine_key_parts("h", trt_settings.EngineSettings(), FAKE_TRT_10, GPU_H100)
    cache.get_or_create(key, lambda: b"engine bytes", namespace="trt-engine")
    entry = cache.paths(key, namespace="trt-engine")[0]
    runner = _runner_holding_an_engine_for_orchestration(entry)
    saved = runner.save_engine(tmp_path / "out" / "net.onnx.accuracy[fp32].engine")
    assert saved.read_bytes() == b"engine bytes"
    assert sorted(p.name for p in saved.parent.iterdir()) == [saved.name]  # no temp file left
    entry.unlink()
    with pytest.raises(InputError, match="no longer in the engine cache"):
        runner.save_engine(tmp_path / "out" / "again.engine")
    with pytest.raises(InputError, match="has no engine to save"):
        _runner_holding_an_engine_for_orchestration(None).save_engine(tmp_path / "x.engine")


# -- precision readback, layers of nodes and timing caches (fakes; no TensorRT here) ------
def test_precision_constraints_build_with_detailed_profiling_for_the_inspector() -> None:
    module = SimpleNamespace(ProfilingVerbosity=SimpleNamespace(DETAILED="DETAILED"))
    config = FakeBuilderConfigForOrchestration()
    trt_build.set_detailed_profiling(TensorRT(module, "tensorrt", "10.x (fake)"), config)
    assert config.calls == [("profiling_verbosity", "DETAILED")]


class FakeInspectorForOrchestration:
    """Answers ``get_layer_information`` with TensorRT's own JSON (the ResNet fp16 sample
    of tests/runners/test_trt_precisions.py) and records what it was asked."""

    def __init__(self, layers: list[str]) -> None:
        self.layers = layers
        self.asked: list[tuple[int, Any]] = []
        self.execution_context: Any = None

    def get_layer_information(self, index: int, layer_format: Any) -> str:
        self.asked.append((index, layer_format))
        return self.layers[index]


def _runner_for_orchestration(**settings: Any) -> TrtRunner:
    """A TrtRunner made without TensorRT, its settings as given: only the orchestration
    around TensorRT's calls is tested on it."""
    runner = TrtRunner.__new__(TrtRunner)
    runner.name = "trt[fp16]"
    runner.trt = TensorRT(
        SimpleNamespace(LayerInformationFormat=SimpleNamespace(JSON="JSON")),
        "tensorrt",
        "10.x (fake)",
    )
    runner.settings = trt_settings.EngineSettings(precision="fp16", **settings)
    runner._network_layers = {}
    runner._reset_state()
    return runner


def test_requested_precisions_are_read_back_from_the_engine_inspector() -> None:
    from tests.runners.test_trt_precisions import RESNET_FP16

    layers = [json.dumps(layer) for layer in json.loads(RESNET_FP16)["Layers"]]
    inspector = FakeInspectorForOrchestration(layers)
    shapes_set: list[tuple[str, Any]] = []
    runner = _runner_for_orchestration(keep_fp32=("Relu_1",))
    runner.engine = SimpleNamespace(
        num_layers=len(layers), create_engine_inspector=lambda: inspector
    )
    runner.context = SimpleNamespace(set_input_shape=lambda n, s: shapes_set.append((n, s)))
    runner._profiles = [{"x": ((1, 3), (2, 3), (4, 3))}]
    readback = runner._read_back_precisions()
    assert inspector.asked == [(0, "JSON"), (1, "JSON"), (2, "JSON")]
    assert inspector.execution_context is runner.context and shapes_set == [("x", (2, 3))]
    assert readback is not None and [i.layer.name for i in readback.ignored] == ["Conv_0 + Relu_1"]
    assert _runner_for_orchestration()._read_back_precisions() is None  # nothing requested
    broken = _runner_for_orchestration(layer_precisions={"conv": "fp32"})
    broken.engine = SimpleNamespace(num_layers=1, create_engine_inspector=lambda: None)
    failed = broken._read_back_precisions()
    assert failed is not None and "engine inspector failed" in failed.unverified[0]


def test_network_layers_parse_without_precision_requests_and_are_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from onnx import save

    model = tmp_path / "m.onnx"
    save(conv_chain(), str(model))
    parsed: list[Any] = []
    network = FakeNetworkForKeepFp32(
        [
            FakeLayerForKeepFp32("conv1", "[ONNX Layer: conv1]"),
            FakeLayerForKeepFp32("norm", "[ONNX Layer: norm]"),
            FakeLayerForKeepFp32("norm_shuffle", "[ONNX Layer: norm]"),
        ]
    )

    def make_network(trt: Any, builder: Any, source: Any, settings: Any, logger: Any) -> Any:
        parsed.append(settings)
        return network, None

    monkeypatch.setattr(trt_build, "make_network", make_network)
    monkeypatch.setattr(trt_build, "make_logger", lambda trt, echo_level: None)
    runner = _runner_for_orchestration(keep_fp32=("conv1",))
    runner.model = str(model)
    runner.trt.module.Builder = lambda logger: "builder"
    layers = runner.network_layers(["norm", "folded"])
    assert layers == {"norm": ["norm", "norm_shuffle"], "folded": []}
    assert parsed[0].keep_fp32 == () and parsed[0].precision == "fp16"
    assert runner.network_layers(["folded", "norm"]) == {
        "folded": [],
        "norm": ["norm", "norm_shuffle"],
    }
    assert len(parsed) == 1  # remembered


def test_a_build_without_the_engine_cache_keeps_its_own_timing_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from onnx import save

    model = tmp_path / "m.onnx"
    save(conv_chain(), str(model))
    seeds: list[Any] = []

    def build(trt: Any, source: Any, settings: Any, *, logger: Any, **kwargs: Any) -> bytes:
        seeds.append(kwargs.get("timing_cache"))
        kwargs["save_timing_cache"](lambda current: b"timing of this build" + (current or b""))
        return b"engine"

    monkeypatch.setattr(trt_build, "build_serialized_engine", build)
    runner = _runner_for_orchestration()
    runner.model, runner.use_cache, runner.calibration_data = str(model), False, None
    runner._deserialize = lambda data: SimpleNamespace(data=data)  # type: ignore[method-assign]
    assert runner._load_engine().data == b"engine"
    assert seeds == [None]  # no shared timing cache seeds it
    assert runner.timing_cache == b"timing of this build"
    saved = runner.save_timing_cache(tmp_path / "out" / "trt.timing.cache")
    assert saved is not None and saved.read_bytes() == b"timing of this build"
    runner.timing_cache = None
    assert runner.save_timing_cache(tmp_path / "none.cache") is None
    assert not (tmp_path / "none.cache").exists()
