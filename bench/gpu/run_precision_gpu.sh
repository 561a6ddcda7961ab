#!/usr/bin/env bash
# --polygraphy-precision on a real failure: PaddleOCR's PP-OCRv4 det on ONNX Runtime's
# CUDA provider, at PRECISION (default fp16) against fp32 (both on CUDA), keeping nodes in
# TO (default float32; float16 answers with keep_fp16, for int8 or bf16). The session
# names the nodes, saves the passing model and keep_fp32.json / keep_fp16.json, and re-runs
# the test with the answer; this script then runs the test once more by hand with the
# printed command-line setting, and checks that the user's model file is byte-identical
# afterwards.
#
# On the GPU machine, from the project root, staged as for run_reduce_gpu.sh:
#     bash bench/gpu/run_precision_gpu.sh            (MAX_CHECKS=80 by default)
#     PRECISION=int8 TO=float16 bash bench/gpu/run_precision_gpu.sh
# Logs go to $OUT.
set -uo pipefail
source "$(dirname "$0")/site_env.sh"
MAX_CHECKS=${MAX_CHECKS:-80}
PRECISION=${PRECISION:-fp16}
TO=${TO:-float32}
setting=keep_fp32
[ "$TO" = float16 ] && setting=keep_fp16
model=bench/.models/det/ch_PP-OCRv4_det_infer.onnx
work=$(mktemp -d)
cp "$model" "$work/det.onnx"
sha_before=$(sha256sum "$work/det.onnx" | cut -d' ' -f1)
common=(det.onnx --onnxrt --polygraphy-providers cuda --polygraphy-precisions "$PRECISION"
        --polygraphy-input-shapes 'x:[1,3,640,640]' -p no:cacheprovider -p no:hypothesispytest)
log="$OUT/precision_det_${PRECISION}_${TO}.log"
( cd "$work" && time $PY -m pytest "${common[@]}" --polygraphy-precision \
    --polygraphy-precision-to "$TO" --polygraphy-max-checks "$MAX_CHECKS" \
    --polygraphy-debug-dir debug -rA ) > "$log" 2>&1
echo "model unchanged: $([ "$sha_before" = "$(sha256sum "$work/det.onnx" | cut -d' ' -f1)" ] && echo yes || echo NO)" >> "$log"
grep -E "^precision |keep_fp|confirmed|not a precision|checks|^real|unchanged|note" "$log" | tail -40
folder=$(ls -d "$work"/debug/*/precision 2>/dev/null | head -1)
if [ -n "$folder" ] && [ -f "$folder/$setting.json" ]; then
  cp "$folder/$setting.json" "$OUT/${setting}_${PRECISION}.json"
  mapfile -t nodes < <($PY -c "import json,sys; print('\n'.join(json.load(open(sys.argv[1]))[sys.argv[2]]))" "$folder/$setting.json" "$setting")
  echo "=== applying $setting (${#nodes[@]} nodes) by hand"
  ( cd "$work" && $PY -m pytest "${common[@]}" "--polygraphy-${setting//_/-}" "${nodes[@]}" -q ) > "$OUT/precision_det_${PRECISION}_applied.log" 2>&1
  tail -3 "$OUT/precision_det_${PRECISION}_applied.log"
fi
if [ -z "${SKIP_TESTS:-}" ]; then
  $PY -m pytest tests/plugin/test_precision.py tests/plugin/test_precision_to.py \
    tests/plugin/test_keep_fp16.py tests/debug -q -p no:cacheprovider -n 4 > "$OUT/precision_tests.log" 2>&1
  tail -3 "$OUT/precision_tests.log"
fi
