#!/usr/bin/env bash
# bench/reduce.py on the GPU machine: both sides run fp16 against fp32 on ONNX Runtime's
# CUDA provider, whose fp16 is real (the planted Exp overflows there; on the CPU provider
# it runs in fp32, which is why the CPU bench uses onnx's reference evaluator).
#
# On the GPU machine, from the project root, after the onnxruntime-gpu parts staged by
# `../shared/device/stage_wheels.sh onnxruntime-gpu==1.31.1` were copied to /tmp/stage,
# with bench/.models/rapidocr_onnxruntime and bench/.models/pgwheels carried
# (`pip download --no-deps polygraphy==0.53.6 onnx-graphsurgeon==0.6.1 -d bench/.models/pgwheels`:
# the machine reaches no registry, so Polygraphy goes into a site folder, never the project):
#     CASES="chain real" REPEATS=3 bash bench/gpu/run_reduce_bench_gpu.sh
# The table goes to $OUT/reduce_bench_cuda_<cases>.txt, each side's logs to $OUT/logs/.
set -uo pipefail
source "$(dirname "$0")/site_env.sh"
PGSITE=${PGSITE:-/tmp/pgsite}
if [ ! -d "$PGSITE/polygraphy" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --target "$PGSITE" bench/.models/pgwheels/*.whl
fi
cases=${CASES:-chain real}
name=${cases// /_}
work=$(mktemp -d)
# shellcheck disable=SC2086
$PY bench/reduce.py --cases $cases --backend onnxrt --providers cuda \
  --polygraphy-site "$PGSITE" --repeats "${REPEATS:-3}" --work "$work" \
  > "$OUT/reduce_bench_cuda_$name.txt" 2>&1
echo "exit status $?" >> "$OUT/reduce_bench_cuda_$name.txt"
mkdir -p "$OUT/logs"
(cd "$work" && find . -name '*.log' -size -2M | tar -cf - -T - | tar -xf - -C "$OUT/logs")
sed -n '/^fp16 vs fp32/,$p' "$OUT/reduce_bench_cuda_$name.txt"
tail -5 "$OUT/reduce_bench_cuda_$name.txt"
