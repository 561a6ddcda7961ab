#!/usr/bin/env bash
# --polygraphy-reduce on a real fp16 failure: PaddleOCR's PP-OCRv4 det on ONNX Runtime's
# CUDA provider, fp16 against fp32 (both on CUDA), then the reduce and debug tests.
#
# On the GPU machine, from the project root, after the onnxruntime-gpu parts staged by
# `STAGE_SPECS="onnxruntime-gpu==1.31.1 filelock" bench/gpu/stage_gpu_bundle.sh` were
# copied to /tmp/stage, with the model carried in bench/.models/det/ (gitignored):
#     bash bench/gpu/run_reduce_gpu.sh
# Logs go to $OUT.
set -uo pipefail
source "$(dirname "$0")/site_env.sh"
$PY -c "import onnxruntime as o; print(o.__version__, o.get_available_providers())" 2>&1 | tee "$OUT/env.txt"
model=bench/.models/det/ch_PP-OCRv4_det_infer.onnx
work=$(mktemp -d)
cp "$model" "$work/det.onnx"
sha_before=$(sha256sum "$work/det.onnx" | cut -d' ' -f1)
for variant in default loose; do
  extra=()
  [ "$variant" = loose ] && extra=(--polygraphy-atol 0.1 --polygraphy-rtol 0.1)
  ( cd "$work" && time $PY -m pytest det.onnx --onnxrt --polygraphy-providers cuda \
      --polygraphy-precisions fp16 --polygraphy-input-shapes 'x:[1,3,640,640]' \
      --polygraphy-reduce --polygraphy-debug-dir "debug-$variant" "${extra[@]}" \
      -p no:cacheprovider -p no:hypothesispytest -rA ) > "$OUT/reduce_det_$variant.log" 2>&1
  echo "model unchanged: $([ "$sha_before" = "$(sha256sum "$work/det.onnx" | cut -d' ' -f1)" ] && echo yes || echo NO)" >> "$OUT/reduce_det_$variant.log"
  echo "=== $variant"
  grep -E "^reduce |minimal failing|^    [^ ]+ \(|failing outputs|note:|reproduces|unchanged|^real" "$OUT/reduce_det_$variant.log" | tail -30
done
$PY -m pytest tests/debug tests/plugin/test_reduce.py -q -p no:cacheprovider -n 4 > "$OUT/tests.log" 2>&1
tail -3 "$OUT/tests.log"
