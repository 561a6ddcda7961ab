"""Unit level: comparison records, settings precedence, the runner cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from pytest_polygraphy.compare import CompareFunc
from pytest_polygraphy.errors import BackendUnavailableError
from pytest_polygraphy.plugin.backends import RunnerCache, model_key
from pytest_polygraphy.plugin.options import PolygraphyOptions
from pytest_polygraphy.plugin.records import compare_record
from pytest_polygraphy.plugin.settings import AccuracySettings, nonfinite_report, resolve
from pytest_polygraphy.plugin.syntax import OptionValueError
from tests.plugin import harness

RECORD_KEYS = {
    "test", "output", "actual", "reference", "iteration", "precision", "max_absdiff",
    "max_reldiff", "mismatch_count", "total", "rtol", "atol", "rule", "passed",
}  # fmt: skip


def test_a_record_holds_the_metrics_of_one_output() -> None:
    expected = np.array([1.0, 2.0, 4.0], np.float32)
    actual = np.array([1.0, 2.5, 4.0], np.float32)
    result = CompareFunc.simple(rtol=0.1, atol=0.1)({"y": actual}, {"y": expected})
    record = compare_record(
        "t.py::test[fp16]", result["y"], actual="onnxrt[fp16]", reference="onnxref",
        iteration=3, precision="fp16", rtol=0.1, atol=0.1, rule="polygraphy",
    )  # fmt: skip
    assert set(record) == RECORD_KEYS
    assert record["max_absdiff"] == pytest.approx(0.5)
    assert record["max_reldiff"] == pytest.approx(0.25)
    assert (record["mismatch_count"], record["total"], record["passed"]) == (1, 3, False)
    assert (record["output"], record["iteration"], record["actual"]) == ("y", 3, "onnxrt[fp16]")
    assert json.loads(json.dumps(record)) == record


def test_records_of_compare_functions_without_tolerances() -> None:
    result = CompareFunc.indices()({"i": np.array([1, 2])}, {"i": np.array([1, 2])})
    record = compare_record(
        "t", result["i"], actual="a", reference="b", iteration=0, precision="fp32",
        rtol=None, atol=None, rule="indices",
    )  # fmt: skip
    assert record["passed"] is True and record["rtol"] is None
    json.dumps(record)


OPTIONS = PolygraphyOptions(
    backends=("onnxrt",), rtol={"": 1e-2, "boxes": 0.2}, seed=4, val_range={"": (-1, 1)}
)


def test_settings_layer_over_the_precision_defaults() -> None:
    plain = resolve(PolygraphyOptions(), precision="int8", input_shapes=None)
    assert plain.tolerance("y") == (5e-2, 5e-2) and plain.reference is None
    settings = resolve(
        OPTIONS,
        precision="fp16",
        input_shapes={"x": (1, 3)},
        layers=[{"rtol": {"boxes": 0.3}, "seed": 9}, {"atol": {"": 0.5}}],
    )
    assert settings.tolerance("boxes") == (0.3, 0.5)
    assert settings.tolerance("y") == (1e-2, 0.5)
    assert (settings.seed, settings.val_range, settings.reference) == (9, {"": (-1, 1)}, "onnxrt")
    assert settings.rule == "polygraphy"
    assert resolve(OPTIONS, precision="fp32", input_shapes=None, layers=[{"reference": "golden"}])


def test_each_resolved_setting_knows_its_source() -> None:
    from pytest_polygraphy.plugin.modelsettings import Layer

    options = PolygraphyOptions(
        rtol={"": 0.3}, seed=4, precisions=("fp32",), command_line=frozenset({"rtol"})
    )
    sidecar = Layer("net.polygraphy.json", {"rtol": {"": 0.1, "y": 0.2}, "seed": 9})
    marker = Layer("@pytest.mark.tolerance", {"atol": {"z": 0.5}})
    settings = resolve(
        options, precision="fp16", input_shapes=None, layers=[sidecar], markers=[marker]
    )
    assert (settings.tolerance("y"), settings.tolerance("z")) == ((0.2, 2e-3), (0.3, 0.5))
    assert settings.seed == 9  # options built in code rank as ini: below the sidecar
    assert settings.sources == {
        "atol[z]": "@pytest.mark.tolerance",
        "rtol": "command line",
        "rtol[y]": "net.polygraphy.json",
        "seed": "net.polygraphy.json",
        "precision": "default",  # fp32 is the default value
        "reference": "default",
        "iterations": "default",
        "load_inputs": "default",
        "compare_func": "default",
        "mark_all": "default",
        "validate": "default",
        "keep_fp32": "default",
        "keep_fp16": "default",
        "atol": "default (fp16)",
    }
    assert list(settings.sources)[:2] == ["atol[z]", "rtol"]  # highest source first


def test_compare_functions_other_than_simple_take_their_own_arguments() -> None:
    indices = resolve(
        PolygraphyOptions(compare_func="indices"),
        precision="fp16",
        input_shapes=None,
        layers=[{"compare_args": {"index_tolerance": 1}}],
    )
    assert indices.tolerance("y") == (None, None) and indices.rule == "indices"
    assert indices.make_compare_func().index_tolerance == 1
    with pytest.raises(OptionValueError, match="rtol apply to compare function 'simple' only"):
        resolve(PolygraphyOptions(compare_func="indices", rtol={"": 1.0}), precision="fp32",
                input_shapes=None)  # fmt: skip
    bad = AccuracySettings(compare_func="indices", compare_args={"rtol": 1})
    with pytest.raises(OptionValueError, match="'indices' does not accept"):
        bad.make_compare_func()


def test_the_compare_function_uses_the_resolved_tolerances() -> None:
    settings = resolve(OPTIONS, precision="fp32", input_shapes=None)
    func = settings.make_compare_func()
    expected = {"y": np.ones(4), "boxes": np.ones(4)}
    assert func({"y": np.full(4, 1.009), "boxes": np.full(4, 1.15)}, expected)
    assert not func({"y": np.full(4, 1.02), "boxes": np.ones(4)}, expected)


def test_nonfinite_report_locates_the_first_nan_or_inf() -> None:
    outputs = {"ok": np.ones(3), "ids": np.arange(3), "bad": np.array([[1.0, np.inf], [np.nan, 2]])}
    [line] = nonfinite_report(outputs, "onnxrt", 2)
    assert line == (
        "output 'bad' of onnxrt (iteration 2) holds 1 NaN and 1 Inf of 4 values; the first "
        "(Inf) is at index [0, 1]"
    )


def test_the_runner_cache_builds_once_and_bounds_active_models(tmp_path: Path) -> None:
    first = harness.save(harness.scale_model(), tmp_path / "a.onnx")
    second = harness.save(harness.exp_sigmoid_model(2), tmp_path / "b.onnx")
    cache = RunnerCache(PolygraphyOptions(), max_models=1)
    settings = AccuracySettings()
    runner = cache.get("onnxref", first, "fp32", settings)
    assert runner.is_active and cache.get("onnxref", first, "fp32", settings) is runner
    same_model = cache.get("onnxrt", first, "fp32", settings)
    assert same_model.is_active and runner.is_active  # the limit counts models, not runners
    other = cache.get("onnxref", second, "fp32", settings)
    assert other.is_active and not runner.is_active and not same_model.is_active
    assert cache.active_models == 1
    rebuilt = cache.get("onnxref", first, "fp32", settings)
    assert rebuilt is not runner and rebuilt.is_active and not other.is_active
    x = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]], np.float32)
    np.testing.assert_allclose(rebuilt.infer({"x": x})["y"], x * np.float32(1.1))
    rebuilt.deactivate()  # a test leaving `with runner:` must not break the next one
    assert cache.get("onnxref", first, "fp32", settings) is rebuilt and rebuilt.is_active
    cache.close()
    assert not rebuilt.is_active


def test_sessions_and_engines_serve_every_shape_set_and_int8_keys_do_not(tmp_path: Path) -> None:
    """ONNX Runtime sessions and reference evaluators do not depend on the input shapes:
    one per (model, backend, precision) serves every shape set. A TensorRT engine depends
    on its profile, which covers every shape set of the test: one key for all of them.
    int8's calibration data does depend on the shape set: its keys keep the shapes."""
    model = harness.save(harness.exp_sigmoid_model(), tmp_path / "a.onnx")
    cache = RunnerCache(PolygraphyOptions())
    shape_sets = [{"x": (n, 4)} for n in (1, 2, 3, 5, 8)]
    for precision in ("fp32", "fp16"):
        for shapes in shape_sets:
            settings = AccuracySettings(precision=precision, input_shapes=shapes)
            runner = cache.get("onnxrt", model, precision, settings)
            reference = cache.get("onnxref", model, "fp32", settings)
            x = np.full(shapes["x"], 0.5, np.float32)  # the shared session runs every shape
            assert runner.infer({"x": x})["y"].shape == shapes["x"]
            assert reference.infer({"x": x})["z"].shape == shapes["x"]
    assert cache.built == {("onnxrt", "fp32"): 1, ("onnxrt", "fp16"): 1, ("onnxref", "fp32"): 1}

    def key(backend: str, precision: str, shapes: dict) -> object:
        settings = AccuracySettings(
            precision=precision, input_shapes=shapes, parametrized_shapes=tuple(shape_sets)
        )
        return cache._key(backend, precision, settings)

    assert len({key("trt", "fp16", s) for s in shape_sets}) == 1
    assert len({key("onnxrt", "int8", s) for s in shape_sets}) == len(shape_sets)
    cache.close()


def test_the_plugins_sessions_do_not_spin_while_idle(tmp_path: Path) -> None:
    """Sessions kept for later tests must not take CPU from the running one (ONNX Runtime's
    thread pools spin after each run by default), nor stall when released."""
    model = harness.save(harness.scale_model(), tmp_path / "a.onnx")
    cache = RunnerCache(PolygraphyOptions())
    options = cache.get("onnxrt", model, "fp32", AccuracySettings())._make_session_options()
    for pool in ("intra_op", "inter_op"):
        assert options.get_session_config_entry(f"session.{pool}.allow_spinning") == "0"
    cache.close()


def test_unavailable_backends_are_asked_once(tmp_path: Path) -> None:
    model = harness.save(harness.scale_model(), tmp_path / "a.onnx")
    cache = RunnerCache(PolygraphyOptions())
    with pytest.raises(BackendUnavailableError, match="fp32 and fp16 only") as first:
        cache.get("onnxref", model, "int8", AccuracySettings(precision="int8"))
    with pytest.raises(BackendUnavailableError) as again:
        cache.get("onnxref", model, "int8", AccuracySettings(precision="int8"))
    assert again.value is first.value


def test_model_keys_change_when_the_file_is_rewritten(tmp_path: Path) -> None:
    path = harness.save(harness.scale_model(), tmp_path / "a.onnx")
    key = model_key(path)
    assert model_key(str(path)) == key
    harness.save(harness.exp_sigmoid_model(2), path)
    assert model_key(path) != key
    assert model_key(harness.scale_model()) == model_key(harness.scale_model())


def test_model_keys_change_when_another_file_of_the_same_size_and_time_replaces_it(
    tmp_path: Path,
) -> None:
    """An atomic replace that keeps the size and the modification time (a copy made with
    its times preserved) is still another model: its runners are not the old file's."""
    import os

    from onnx import numpy_helper

    path = harness.save(harness.scale_model(), tmp_path / "a.onnx")
    key = model_key(path)
    other = harness.scale_model()
    other.graph.initializer[0].CopyFrom(
        numpy_helper.from_array(np.full([1], 1.2, np.float32), "factor")
    )
    replacement = harness.save(other, tmp_path / "b.onnx")
    assert replacement.stat().st_size == path.stat().st_size
    before = path.stat()
    os.utime(replacement, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.replace(replacement, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert model_key(path) != key


def test_onnx_runtime_int8_quantizes_once_per_model_and_calibration_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Quantizing is the slow part of an int8 runner: re-activating a runner, another
    provider set, or a runner rebuilt after its model was evicted reuses the variant; only
    other calibration data (here another seed) quantizes again."""
    import pytest_polygraphy.models as models

    calls: list[str] = []
    original = models.quantize_int8

    def counting(model: object, *args: object, **kwargs: object) -> object:
        calls.append(model.graph.name)  # type: ignore[attr-defined]
        return original(model, *args, **kwargs)

    monkeypatch.setattr(models, "quantize_int8", counting)
    first = harness.save(harness.exp_sigmoid_model(2), tmp_path / "a.onnx")
    second = harness.save(harness.scale_model(), tmp_path / "b.onnx")
    cache = RunnerCache(PolygraphyOptions(), max_models=1)
    settings = AccuracySettings(precision="int8")
    x = np.full((2, 4), 0.5, np.float32)
    runner = cache.get("onnxrt", first, "int8", settings)
    quantized_y = runner.infer({"x": x})["y"]
    runner.deactivate()
    assert cache.get("onnxrt", first, "int8", settings) is runner  # re-activated
    cache.get("onnxrt", second, "int8", settings)  # evicts the first model's runners
    rebuilt = cache.get("onnxrt", first, "int8", settings)
    assert rebuilt is not runner
    np.testing.assert_array_equal(rebuilt.infer({"x": x})["y"], quantized_y)
    # int8 really ran: the outputs are quantized, not the float model's.
    assert not np.array_equal(quantized_y, harness.exp_sigmoid(x)["y"].astype(np.float32))
    assert calls == ["g", "g"]  # one per model
    assert cache.built[("onnxrt", "int8")] == 3
    cache.get("onnxrt", first, "int8", AccuracySettings(precision="int8", seed=5))
    assert len(calls) == 3
    cache.close()


def test_tensorrt_build_options_come_from_sidecars_and_key_the_runner() -> None:
    """Each build option reaches TrtRunner's keyword arguments and the runner cache key
    (a sidecar asking for another pool limit must not reuse another model's engine)."""
    from pytest_polygraphy.plugin.modelsettings import Layer, validate_settings

    sidecar = validate_settings(
        {
            "trt_pool_limit": {"workspace": "1G"},
            "trt_builder_optimization_level": 1,
            "trt_tactic_sources": ["CUDNN"],
            "trt_precision_constraints": "prefer",
            "trt_sparse_weights": True,
            "trt_use_dla": True,
            "trt_allow_gpu_fallback": True,
        },
        Path("."),
    )
    options = PolygraphyOptions(trt_builder_optimization_level=5, trt_strongly_typed=True)
    settings = resolve(
        options, precision="fp32", input_shapes=None, layers=[Layer("net.polygraphy.json", sidecar)]
    )
    assert settings.trt_build_kwargs() == {
        "memory_pool_limits": {"workspace": 1 << 30},
        "optimization_level": 1,  # the sidecar ranks above options built in code (ini)
        "tactic_sources": ("cudnn",),
        "strongly_typed": True,
        "precision_constraints": "prefer",
        "sparse_weights": True,
        "plugins": (),
        "use_dla": True,
        "allow_gpu_fallback": True,
    }
    cache = RunnerCache(PolygraphyOptions())
    base = cache._key("trt", "fp32", AccuracySettings())
    for change in settings.trt_build_kwargs():
        attr = {
            "memory_pool_limits": ("trt_pool_limit", {"workspace": 1}),
            "optimization_level": ("trt_builder_optimization_level", 0),
            "tactic_sources": ("trt_tactic_sources", ("cublas",)),
            "strongly_typed": ("trt_strongly_typed", True),
            "precision_constraints": ("trt_precision_constraints", "obey"),
            "sparse_weights": ("trt_sparse_weights", True),
            "plugins": ("trt_plugins", (Path("lib.so"),)),
            "use_dla": ("trt_use_dla", True),
            "allow_gpu_fallback": ("trt_allow_gpu_fallback", True),
        }[change]
        changed = AccuracySettings(**{attr[0]: attr[1]})
        assert cache._key("trt", "fp32", changed) != base, change
    with pytest.raises(OptionValueError, match="trt_pool_limit: size of pool 'workspace'"):
        validate_settings({"trt_pool_limit": {"workspace": "lots"}}, Path("."))


def test_a_variant_writes_nothing_of_the_users() -> None:
    """A debug variant's settings save no inputs, outputs or engines under the test's
    name, and keep a TensorRT calibration cache only to read one that exists."""
    from pytest_polygraphy.plugin.debug import VARIANT_KEY, ActiveVariant, variant_settings

    class Node:
        stash = pytest.Stash()

    node = Node()
    here = Path(__file__)
    settings = AccuracySettings(
        save_inputs=Path("in"), save_outputs=Path("out"), save_engine=Path("engines"),
        calibration_cache=here.with_name("no-such.cache"),
    )  # fmt: skip
    options = PolygraphyOptions()
    assert variant_settings(node, settings, options) is settings  # not a debug re-run
    node.stash[VARIANT_KEY] = ActiveVariant(keep_fp32=("n1",))
    varied = variant_settings(node, settings, options)
    assert (varied.save_inputs, varied.save_outputs, varied.save_engine) == (None, None, None)
    assert varied.calibration_cache is None and varied.keep_fp32 == ("n1",)
    existing = dataclasses.replace(settings, calibration_cache=here)
    assert variant_settings(node, existing, options).calibration_cache == here


def test_a_cuts_tensorrt_profile_covers_its_own_inputs() -> None:
    """The test's explicit and default profiles name the whole model's inputs; a cut's
    settings drop them for one covering its own samples, which builds for its inputs."""
    from pytest_polygraphy.metadata import TensorMetadata
    from pytest_polygraphy.plugin.debug import (
        VARIANT_KEY,
        ActiveVariant,
        VariantFeeds,
        variant_settings,
    )
    from pytest_polygraphy.plugin.profiles import trt_profiles

    class Node:
        stash = pytest.Stash()

    node = Node()
    whole = {"x": (1, 3, 8, 8)}
    settings = AccuracySettings(
        trt_min_shapes=(whole,), trt_opt_shapes=(whole,), trt_max_shapes=(whole,),
        parametrized_shapes=(whole,), input_shapes=whole,
    )  # fmt: skip
    feeds = [{"t": np.zeros((1, 4, 2, 2), np.float32)}, {"t": np.zeros((2, 4, 2, 2), np.float32)}]
    node.stash[VARIANT_KEY] = ActiveVariant(Path("cut.onnx"), VariantFeeds(feeds))
    varied = variant_settings(node, settings, PolygraphyOptions())
    assert (varied.trt_min_shapes, varied.trt_opt_shapes, varied.trt_max_shapes) == ((), (), ())
    assert varied.parametrized_shapes == ({"t": (1, 4, 2, 2)}, {"t": (2, 4, 2, 2)})
    cut = TensorMetadata().add("t", np.float32, ("batch", 4, 2, 2))
    assert trt_profiles(varied, cut) == ({"t": ((1, 4, 2, 2), (1, 4, 2, 2), (2, 4, 2, 2))},)
