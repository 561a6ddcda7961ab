#!/usr/bin/env bash
# Stage what the GPU machine lacks (onnxruntime-gpu, TensorRT-RTX, filelock) as ONE
# pre-installed site folder, xz-compressed and split into parts that fit the 64 MiB a
# `run` command may carry. Compared with shipping the wheels themselves (~350 MB, zip
# deflate) this is ~275 MB, i.e. 5 parts instead of 7.
#
# usage (from the project root, on the dev machine):  bench/gpu/stage_gpu_bundle.sh
# result: .whl/part_NN/ (git-ignored) and the printed command plan; the last command runs
#         bench/gpu/run_gpu_checks.sh, which unpacks /tmp/stage into /tmp/site first.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
PART_MB=${PART_MB:-60}
SPECS=(
  "onnxruntime-gpu==1.31.1"
  "tensorrt-rtx-cu13-libs==1.7.1.116"
  "tensorrt-rtx-cu13-bindings==1.7.1.116"
  "filelock"
)
# STAGE_SPECS="onnxruntime-gpu==1.31.1 filelock" stages only those (fewer parts).
if [ -n "${STAGE_SPECS:-}" ]; then read -r -a SPECS <<< "$STAGE_SPECS"; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$work/dl" "${SPECS[@]}"
mkdir -p "$work/site"
for wheel in "$work"/dl/*.whl; do
  python3 -m zipfile -e "$wheel" "$work/site"   # a wheel install is an unzip (no scripts needed)
done
tar -C "$work/site" -cf - . | xz -6 -T0 > "$work/site.tar.xz"
git check-ignore -q .whl/x || { echo "add /.whl/ to .gitignore first" >&2; exit 1; }
rm -rf .whl && mkdir -p .whl
split -b "${PART_MB}M" -d "$work/site.tar.xz" .whl/chunk_
n=0
for c in .whl/chunk_*; do d=.whl/part_$(printf %02d $n); mkdir -p "$d"; mv "$c" "$d/"; n=$((n+1)); done
ls -l .whl/part_*/*
echo
echo "Command plan (send back to back; the machine is released ~30 s after a command ends):"
last=$((n-1))
for i in $(seq 0 $last); do
  p=$(printf %02d "$i")
  if [ "$i" -lt "$last" ]; then
    echo "  run carry=[\".whl/part_$p\"]  command: mkdir -p /tmp/stage && cp .whl/part_$p/* /tmp/stage/"
  else
    echo "  run carry=[\".whl/part_$p\"]  command: mkdir -p /tmp/stage && cp .whl/part_$p/* /tmp/stage/ && bash bench/gpu/run_gpu_checks.sh"
  fi
done
