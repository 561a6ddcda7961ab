#!/usr/bin/env bash
# Everything the GPU machine should check for the runners, in one command.
#
# Run from the project root on the GPU machine, after the parts staged by
# bench/gpu/stage_gpu_bundle.sh were copied to /tmp/stage (see its command plan):
#     bash bench/gpu/run_gpu_checks.sh
# It unpacks the staged site (onnxruntime-gpu, TensorRT-RTX, filelock) into /tmp/site,
# puts it first on PYTHONPATH, then:
#   1. records the environment (GPU, driver, library versions, ORT providers);
#   2. runs the runner and cache tests (CUDA EP vs CPU, tf32, cuda-python buffers,
#      TensorRT parse/build/cache; inference tests skip where TensorRT-RTX refuses the GPU);
#   3. runs bench/gpu/gpu_checks.py, which prints a short table, and
#      bench/gpu/trt_option_checks.py: one row per TensorRT build option, profiles, the
#      engine save/load round trip, the timing cache file and int8 calibration ("ran",
#      "refused by TensorRT-RTX: ...", "failed: ...");
#   4. runs bench/runner_overhead.py (a quieter CPU than the dev machines);
#   5. runs the whole test suite (-n 4) with the CUDA provider available;
#   6. runs the plugin end to end on the example models with --polygraphy-providers cuda
#      (fp32 and fp16 on CUDA against onnx's reference evaluator), writing an HTML report.
# Logs and the table go to $OUT (or ./gpu-out when $OUT is unset). Steps do not stop
# each other: a failure in one is logged and the next step still runs.
set -uo pipefail
start=$(date +%s)
step() { echo; echo "=== $* ($(( $(date +%s) - start )) s)"; }

step "unpack staged site, install the project (registers the pytest11 entry point)"
source "$(dirname "$0")/site_env.sh"

step "environment"
{
  nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>&1
  echo "LD_LIBRARY_PATH additions: $extra_libs"
  $PY - <<'EOF'
import sys, importlib
print("python", sys.version.split()[0])
for name in ("numpy", "onnx", "onnxruntime", "filelock", "cuda.bindings", "tensorrt_rtx_bindings", "tensorrt"):
    try:
        module = importlib.import_module(name)
        print(f"{name:24} {getattr(module, '__version__', '?'):12} {getattr(module, '__file__', '')}")
    except Exception as err:
        print(f"{name:24} unavailable: {type(err).__name__}: {err}")
import onnxruntime as ort
print("ORT available providers:", ort.get_available_providers())
from pytest_polygraphy.runners import cuda_unavailable_reason, tensorrt_unavailable_reason
from pytest_polygraphy.runners.cuda import gpu_identity
print("cuda:", cuda_unavailable_reason() or gpu_identity())
print("tensorrt:", tensorrt_unavailable_reason() or "available")
EOF
} 2>&1 | tee "$OUT/env.txt"

step "runner and cache tests"
export PYTEST_POLYGRAPHY_CACHE_DIR=/tmp/pp-cache
$PY -m pytest tests/runners tests/test_cache.py -q -rs -p no:cacheprovider \
  --junitxml="$OUT/junit.xml" 2>&1 | tee "$OUT/pytest.log" | tail -60

step "GPU table"
$PY bench/gpu/gpu_checks.py --out "$OUT" > "$OUT/gpu_checks.log" 2>&1
cat "$OUT/gpu_table.md" 2>/dev/null || tail -40 "$OUT/gpu_checks.log"

step "TensorRT option checks"
$PY bench/gpu/trt_option_checks.py --out "$OUT" > "$OUT/trt_option_checks.log" 2>&1
cat "$OUT/trt_option_checks.md" 2>/dev/null || tail -40 "$OUT/trt_option_checks.log"

step "runner overhead benchmark (CPU)"
$PY bench/runner_overhead.py --calls 200 2>&1 | tee "$OUT/runner_overhead.txt"

step "whole test suite"
$PY -m pytest -n 4 -q -rs -p no:cacheprovider 2>&1 | tee "$OUT/suite.log" | tail -40

step "plugin on the CUDA provider"
$PY -m pytest examples/models --onnxrt --onnxref --polygraphy-providers cuda -n 2 \
  -p no:cacheprovider --polygraphy-report "$OUT/accuracy.html" 2>&1 | tee "$OUT/plugin_cuda.log" | tail -25

step "done"
