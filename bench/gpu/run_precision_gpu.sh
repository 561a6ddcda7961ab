#!/usr/bin/env bash
# --polygraphy-precision on a real fp16 failure: PaddleOCR's PP-OCRv4 det on ONNX Runtime's
# CUDA provider, fp16 against fp32 (both on CUDA). The session names the nodes to keep in
# fp32, saves passing_fp16.onnx and keep_fp32.json, and re-runs the test with the answer;
# this script then runs the test once more by hand with the printed command-line setting,
# and checks that the user's model file is byte-identical afterwards.
#
# On the GPU machine, from the project root, staged as for run_reduce_gpu.sh:
#     bash bench/gpu/run_precision_gpu.sh            (MAX_CHECKS=80 by default)
# Logs go to $OUT.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
SITE=${SITE:-/tmp/site}
STAGE=${STAGE:-/tmp/stage}
MAX_CHECKS=${MAX_CHECKS:-80}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -z "${SITE_READY:-}" ]; then
  source "$(dirname "$0")/site_env.sh"
  $PY -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tail -3
fi
model=bench/.models/det/ch_PP-OCRv4_det_infer.onnx
work=$(mktemp -d)
cp "$model" "$work/det.onnx"
sha_before=$(sha256sum "$work/det.onnx" | cut -d' ' -f1)
common=(det.onnx --onnxrt --polygraphy-providers cuda --polygraphy-precisions fp16
        --polygraphy-input-shapes 'x:[1,3,640,640]' -p no:cacheprovider -p no:hypothesispytest)
log="$OUT/precision_det.log"
( cd "$work" && time $PY -m pytest "${common[@]}" --polygraphy-precision \
    --polygraphy-max-checks "$MAX_CHECKS" --polygraphy-debug-dir debug -rA ) > "$log" 2>&1
echo "model unchanged: $([ "$sha_before" = "$(sha256sum "$work/det.onnx" | cut -d' ' -f1)" ] && echo yes || echo NO)" >> "$log"
grep -E "^precision |keep_fp32|confirmed|not a precision|checks|^real|unchanged" "$log" | tail -40
folder=$(ls -d "$work"/debug/*/precision 2>/dev/null | head -1)
if [ -n "$folder" ] && [ -f "$folder/keep_fp32.json" ]; then
  cp "$folder/keep_fp32.json" "$OUT/keep_fp32.json"
  mapfile -t nodes < <($PY -c "import json,sys; d=json.load(open(sys.argv[1])); print('\n'.join(d['keep_fp32'] if isinstance(d, dict) else d))" "$folder/keep_fp32.json")
  echo "=== applying keep_fp32 (${#nodes[@]} nodes) by hand"
  ( cd "$work" && $PY -m pytest "${common[@]}" --polygraphy-keep-fp32 "${nodes[@]}" -q ) > "$OUT/precision_det_applied.log" 2>&1
  tail -3 "$OUT/precision_det_applied.log"
fi
$PY -m pytest tests/plugin/test_precision.py tests/debug -q -p no:cacheprovider -n 4 > "$OUT/precision_tests.log" 2>&1
tail -3 "$OUT/precision_tests.log"
