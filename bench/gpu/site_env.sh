# Sourced by the GPU scripts, from the project root: set OUT, SITE, STAGE and PY where
# unset (and make $OUT), unpack the site staged in $STAGE into $SITE once, put it first on
# PYTHONPATH (with the checkout), add the folders of the CUDA libraries ONNX Runtime's
# CUDA provider dlopens to LD_LIBRARY_PATH, and install the project (editable, offline,
# no dependencies) so that pytest finds the plugin's pytest11 entry point.
OUT=${OUT:-$PWD/gpu-out}
SITE=${SITE:-/tmp/site}
STAGE=${STAGE:-/tmp/stage}
PY=${PY:-${PYTHON:-python3}}
mkdir -p "$OUT"
if [ ! -e "$SITE/.unpacked" ]; then
  mkdir -p "$SITE"
  if ls "$STAGE"/chunk_* >/dev/null 2>&1; then
    if command -v xz >/dev/null; then
      cat "$STAGE"/chunk_* | xz -dc | tar -x -C "$SITE" || echo "unpack FAILED"
    else
      cat "$STAGE"/chunk_* | $PY -c "import sys, tarfile; tarfile.open(fileobj=sys.stdin.buffer, mode='r|xz').extractall(sys.argv[1])" "$SITE" || echo "unpack FAILED"
    fi
  fi
  # wheels staged by ../shared/device/stage_wheels.sh instead
  if ls "$STAGE"/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$STAGE"/*.whl
  fi
  touch "$SITE/.unpacked"
fi
ls "$SITE" | head -20
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"

# ONNX Runtime's CUDA provider dlopens cuBLAS/cuDNN: add the folders where they live
# (system CUDA, or the nvidia-* wheels PyTorch brings) to the loader path.
extra_libs=$($PY - <<'EOF'
import glob, os, site
roots = site.getsitepackages() + ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"]
found = set()
for root in roots:
    for pattern in ("nvidia/*/lib", "nvidia/cu13/lib", ""):
        for lib in ("libcublasLt.so*", "libcudnn.so*", "libcufft.so*", "libcurand.so*", "libcudart.so*"):
            for path in glob.glob(os.path.join(root, pattern, lib)):
                found.add(os.path.dirname(path))
print(":".join(sorted(found)))
EOF
)
export LD_LIBRARY_PATH="${extra_libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
$PY -m pip install -q --no-deps --no-index --no-build-isolation -e . 2>&1 | tail -3
