"""GPU-machine checks that print a short table (run by run_gpu_checks.sh).

1. ONNX Runtime CUDA vs CPU: max abs difference to CPU fp32 for CUDA fp32 (use_tf32=0),
   CUDA tf32 and CUDA fp16, with median inference times, on a matmul-heavy model (where
   TF32 rounding shows) and on the conv/layernorm/softmax test chain.
2. TensorRT (or TensorRT-RTX) build path: parse + build + serialize + cache for a few
   models (cold build time, engine size, cached lookup time, timing cache size, mark-all
   outputs), and what activation (runtime deserialization) says on this GPU.

    PYTHONPATH=/tmp/site:$PWD python bench/gpu/gpu_checks.py --out "$OUT"
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from onnx import TensorProto, helper, numpy_helper

from pytest_polygraphy.models import convert_to_fp16
from pytest_polygraphy.runners import OnnxrtRunner
from tests.models.builders import (
    conv_chain,
    dynamic_batch_model,
    make_model,
    mixed_chain,
    random_feed,
)

LINES: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    LINES.append(line)


def matmul_heavy() -> Any:
    """x[64,1024] -> MatMul(1024x1024) -> Relu -> MatMul(1024x256) -> Softmax."""
    rng = np.random.RandomState(0)
    w1 = (rng.normal(size=(1024, 1024)) / 32).astype(np.float32)
    w2 = (rng.normal(size=(1024, 256)) / 32).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Relu", ["h"], ["hr"], name="relu"),
        helper.make_node("MatMul", ["hr", "w2"], ["logits"], name="mm2"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    return make_model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 1024])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [64, 256]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [64, 256]),
        ],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
        name="matmul_heavy",
    )


def _short(err: BaseException) -> str:
    """One line: the start and the end of a long error (ORT's reason is at its end)."""
    text = " ".join(str(err).split())
    return text if len(text) <= 500 else f"{text[:200]} ... {text[-300:]}"


def median_ms(fn: Callable[[], Any], repeats: int = 20) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def ort_section() -> None:
    emit("## ONNX Runtime: CUDA vs CPU fp32 (max abs diff to CPU fp32; median ms)")
    emit()
    emit("| model | output | variant | max abs diff | median ms |")
    emit("|---|---|---|---|---|")
    for name, model in (("matmul_heavy", matmul_heavy()), ("mixed_chain", mixed_chain())):
        feed = random_feed(model, seed=0)
        with OnnxrtRunner(model) as cpu:
            expected = cpu.infer(feed)
            cpu_ms = median_ms(lambda r=cpu, f=feed: r.infer(f))
        first = next(iter(expected))
        emit(f"| {name} | {first} | cpu fp32 | 0 | {cpu_ms:.3f} |")
        for precision in ("fp32", "tf32", "fp16"):
            label = f"cuda {precision}"
            try:
                with OnnxrtRunner(model, providers=["cuda"], precision=precision) as gpu:
                    actual = gpu.infer(feed)
                    ms = median_ms(lambda r=gpu, f=feed: r.infer(f))
                    providers = gpu.session.get_providers()
                for output in expected:
                    diff = float(np.abs(actual[output] - expected[output]).max())
                    emit(f"| {name} | {output} | {label} | {diff:.3g} | {ms:.3f} |")
                emit(f"<!-- {label}: session providers {providers} -->")
            except Exception as err:
                text = _short(err)
                emit(f"| {name} | - | {label} | FAILED: {type(err).__name__}: {text} | - |")
    emit()


def trt_section(cache_dir: Path) -> None:
    from pytest_polygraphy.cache import ArtifactCache
    from pytest_polygraphy.runners import TrtRunner, import_tensorrt, trt_build, trt_settings
    from pytest_polygraphy.runners.cuda import gpu_identity

    try:
        trt = import_tensorrt()
    except Exception as err:
        emit(f"## TensorRT: not available: {err}")
        return
    gpu = gpu_identity()
    emit(f"## {trt.describe()} build path on {gpu['name']} (cc {gpu['compute_capability']})")
    emit()
    emit("| model | settings | parse+build s | engine KiB | cached lookup ms | outputs |")
    emit("|---|---|---|---|---|---|")
    cache = ArtifactCache(cache_dir)
    timing_key = trt_settings.timing_cache_key_parts(trt, gpu)
    cases = [
        ("conv_chain", conv_chain(), trt_settings.EngineSettings()),
        ("mixed_chain", mixed_chain(), trt_settings.EngineSettings()),
        ("mixed_chain", mixed_chain(), trt_settings.EngineSettings(mark_all=True)),
        (
            "dynamic_batch",
            dynamic_batch_model(),
            trt_settings.EngineSettings(
                profiles=(trt_settings.normalize_shapes({"x": [(1, 8), (4, 8), (16, 8)]}),)
            ),
        ),
        ("matmul_heavy", matmul_heavy(), trt_settings.EngineSettings()),
        (
            "mixed_chain as fp16 model",
            convert_to_fp16(mixed_chain()),
            trt_settings.EngineSettings(strongly_typed=True),
        ),
    ]
    for name, model, settings in cases:
        label = ",".join(
            f"{k}={v}" for k, v in settings.key_parts().items() if v not in (None, False, {}, [])
        )
        try:
            logger = trt_build.make_logger(trt, echo_level="ERROR")
            source = trt_build.model_build_inputs(model, name)
            builder = trt.module.Builder(logger)
            network, _parser = trt_build.make_network(trt, builder, source, settings, logger)
            n_outputs = network.num_outputs
            key = {"model": name, **settings.key_parts(), "gpu": gpu}

            def build(source=source, settings=settings, logger=logger) -> bytes:
                return trt_build.build_serialized_engine(
                    trt,
                    source,
                    settings,
                    logger=logger,
                    timing_cache=cache.get(timing_key, namespace="trt-timing-cache"),
                    save_timing_cache=lambda merge: cache.update(
                        timing_key, merge, namespace="trt-timing-cache"
                    ),
                )

            start = time.perf_counter()
            entry = cache.get_or_create(key, build, namespace="trt-engine")
            build_s = time.perf_counter() - start
            start = time.perf_counter()
            hit = cache.get_or_create(key, build, namespace="trt-engine")
            hit_ms = (time.perf_counter() - start) * 1e3
            assert entry.built and not hit.built and hit.data == entry.data
            emit(
                f"| {name} | {label} | {build_s:.2f} | {len(entry.data) / 1024:.0f} | "
                f"{hit_ms:.2f} | {n_outputs} |"
            )
        except Exception as err:
            text = _short(err)
            emit(f"| {name} | {label} | FAILED: {type(err).__name__}: {text} | | | |")
            traceback.print_exc()
    timing = cache.get(timing_key, namespace="trt-timing-cache")
    emit()
    emit(f"timing cache kept: {len(timing) if timing else 0} bytes")
    emit()
    emit("### TrtRunner activation (runtime) on this GPU")
    for precision in ("fp32", "tf32", "fp16", "bf16", "int8"):
        runner_cache = cache_dir / f"runner-{precision}"
        try:
            runner = TrtRunner(conv_chain(), precision=precision, cache_dir=runner_cache)
            with runner:
                feed = random_feed(conv_chain())
                out = runner.infer(feed)["output"]
                with OnnxrtRunner(conv_chain()) as ort_runner:
                    ref = ort_runner.infer(feed)["output"]
                emit(
                    f"- {precision}: ran; max abs diff to ORT CPU "
                    f"{float(np.abs(out - ref).max()):.3g}"
                )
        except Exception as err:
            first = str(err).strip().splitlines()
            text = " / ".join(first[:3])
            emit(f"- {precision}: {type(err).__name__}: {text}")
        engines = runner_cache / "trt-engine"
        built = list(engines.rglob("*.bin")) if engines.exists() else []
        emit(f"  (engine files cached by the runner: {len(built)})")
    emit()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for section in (ort_section, lambda: trt_section(Path(tempfile.mkdtemp()))):
        try:
            section()
        except Exception:
            emit(f"section failed:\n```\n{traceback.format_exc()}\n```")
    (args.out / "gpu_table.md").write_text("\n".join(LINES) + "\n")


if __name__ == "__main__":
    main()
