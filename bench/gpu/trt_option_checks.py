"""Every TensorRT build option, profiles, the engine save/load round trip and the
calibration path, through whatever TensorRT flavour is installed (TensorRT-RTX on the GPU
machine). Run by run_gpu_checks.sh; prints one table row per check:

    | check | what ran | result |

where result is "ran", "refused by TensorRT-RTX: <message>", "failed: <message>", or
"skipped: no TensorRT" (where TensorRT does not import: a dry run on a CPU machine).

    PYTHONPATH=/tmp/site:$PWD python bench/gpu/trt_option_checks.py --out "$OUT"
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pytest_polygraphy.models import convert_to_fp16
from tests.models.builders import conv_chain, dynamic_batch_model, random_feed

ROWS: list[str] = []


def row(check: str, what: str, result: str) -> None:
    line = f"| {check} | {what} | {result} |"
    print(line, flush=True)
    ROWS.append(line)


def _one_line(err: BaseException) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= 400 else f"{text[:150]} ... {text[-250:]}"


def check(trt: Any, name: str, what: str, action: Callable[[], str | None]) -> None:
    """Run ``action``; its return value (if any) is appended to "ran"."""
    if trt is None:
        row(name, what, "skipped: no TensorRT")
        return
    try:
        detail = action()
        row(name, what, "ran" + (f" ({detail})" if detail else ""))
    except Exception as err:
        from pytest_polygraphy.errors import BackendUnavailableError, ModelError

        text = _one_line(err)
        refused = trt.is_rtx and isinstance(err, BackendUnavailableError | ModelError)
        prefix = "refused by TensorRT-RTX" if refused else "failed"
        row(name, what, f"{prefix}: {text}")
        traceback.print_exc()


def build(trt: Any, model: Any, settings: Any, **kwargs: Any) -> bytes:
    """Parse and build one engine through trt_build (no runtime needed)."""
    from pytest_polygraphy.runners import trt_build

    logger = trt_build.make_logger(trt, echo_level="ERROR")
    source = trt_build.model_build_inputs(model, "model")
    return trt_build.build_serialized_engine(trt, source, settings, logger=logger, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="trt-option-checks-"))

    from pytest_polygraphy.runners import TrtEngineRunner, TrtRunner, trt_settings
    from pytest_polygraphy.runners.trt_module import import_tensorrt

    try:
        trt = import_tensorrt()
        flavour = trt.describe()
    except Exception as err:
        trt, flavour = None, f"no TensorRT ({_one_line(err)})"
    ROWS.append(f"## TensorRT build options, profiles, engine round trip: {flavour}")
    ROWS.append("")
    ROWS.append("| check | what ran | result |")
    ROWS.append("|---|---|---|")
    print("\n".join(ROWS), flush=True)
    settings = trt_settings.EngineSettings
    plugin_lib = next(iter(sorted(Path("/tmp/site").rglob("*plugin*.so*"))), None)

    builds: list[tuple[str, str, Any, Any]] = [
        ("pool limits", "workspace 256M, tactic_shared_memory 48K", conv_chain(),
         settings(memory_pool_limits={"workspace": 256 << 20, "tactic_shared_memory": 48 << 10})),
        ("optimization level", "builder_optimization_level 0", conv_chain(),
         settings(optimization_level=0)),
        ("optimization level 5", "builder_optimization_level 5", conv_chain(),
         settings(optimization_level=5)),
        ("tactic sources", "set_tactic_sources(cublas, cublas_lt)", conv_chain(),
         settings(tactic_sources=("cublas", "cublas_lt"))),
        ("tactic sources none", "set_tactic_sources(none)", conv_chain(),
         settings(tactic_sources=())),
        ("strongly typed", "fp16 model, STRONGLY_TYPED network", convert_to_fp16(conv_chain()),
         settings(strongly_typed=True)),
        ("precision constraints obey", "OBEY_PRECISION_CONSTRAINTS + layer fp32", conv_chain(),
         settings(keep_fp32=("conv1",))),
        ("precision constraints prefer", "PREFER_PRECISION_CONSTRAINTS", conv_chain(),
         settings(precision_constraints="prefer")),
        ("sparse weights", "BuilderFlag.SPARSE_WEIGHTS", conv_chain(),
         settings(sparse_weights=True)),
        ("several profiles", "2 IOptimizationProfiles on x[batch,8]", dynamic_batch_model(),
         settings(profiles=trt_settings.normalize_profiles(profiles=[
             {"x": [(1, 8), (2, 8), (4, 8)]}, {"x": [(5, 8), (8, 8), (16, 8)]}]))),
        ("default covering profile", "1 profile min (1,8) max (16,8) opt (2,8)",
         dynamic_batch_model(),
         settings(profiles=trt_settings.normalize_profiles({"x": [(1, 8), (2, 8), (16, 8)]}))),
    ]  # fmt: skip
    for name, what, model, engine_settings in builds:

        def action(model: Any = model, engine_settings: Any = engine_settings) -> str:
            data = build(trt, model, engine_settings)
            return f"engine {len(data) / 1024:.0f} KiB"

        check(trt, name, what, action)

    if plugin_lib is None and trt is not None:
        row("plugin libraries", "get_plugin_registry().load_library", "skipped: no plugin library")
    else:

        def load_plugin() -> str:
            engine_settings = settings(plugins=trt_settings.plugin_entries([str(plugin_lib)]))
            build(trt, conv_chain(), engine_settings)
            return f"{plugin_lib.name}"

        where = plugin_lib.name if plugin_lib is not None else "a plugin library"
        check(trt, "plugin libraries", f"load_library({where}) then build", load_plugin)

    timing_file = work / "timing.cache"

    def timing_cache() -> str:
        from pytest_polygraphy.runners.trt_build import make_logger

        runner = TrtRunner(conv_chain(), cache_dir=work / "c1", timing_cache=timing_file)
        runner._logger = make_logger(trt, echo_level="ERROR")
        runner._load_engine()
        return f"file {timing_file.stat().st_size} bytes"

    check(trt, "timing cache file", "TrtRunner(timing_cache=FILE) build", timing_cache)

    saved = work / "saved" / "conv_chain.engine"

    def save_engine() -> str:
        runner = TrtRunner(conv_chain(), cache_dir=work / "c2")
        with runner:
            runner.save_engine(work / "saved" / "by_runner.engine")
        return "TrtRunner activated and saved its engine"

    check(trt, "save engine", "TrtRunner activate + save_engine (--polygraphy-save-engine)",
          save_engine)  # fmt: skip

    def serialize() -> str:
        from pytest_polygraphy.files import write_bytes_atomically

        write_bytes_atomically(saved, build(trt, conv_chain(), settings()))
        return f"{saved.stat().st_size} bytes written"

    check(trt, "serialize engine file", "build + write the .engine file", serialize)

    def load_engine() -> str:
        with TrtEngineRunner(saved) as engine_runner:
            out = engine_runner.infer(random_feed(conv_chain()))
        return f"outputs {sorted(out)}"

    check(trt, "load saved engine", "TrtEngineRunner(saved file).activate + infer", load_engine)

    calibration_file = work / "calib.cache"

    def calibrate() -> str:
        feeds = [random_feed(conv_chain(), seed=s) for s in range(4)]
        runner = TrtRunner(
            conv_chain(),
            precision="int8",
            calibrator="entropy2",
            calibration_data=feeds,
            calibration_cache=calibration_file,
            cache_dir=work / "c3",
        )
        with runner:
            pass
        return f"{runner.calibrator.batches} batches, cache {calibration_file.stat().st_size} B"

    check(trt, "calibration cache", "int8 entropy2 calibrator + calibration cache file",
          calibrate)  # fmt: skip

    (args.out / "trt_option_checks.md").write_text("\n".join(ROWS) + "\n")


if __name__ == "__main__":
    main()
