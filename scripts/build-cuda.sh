#!/usr/bin/env bash
# Configures and compiles cellcount (library, CLI, tests) against a CUDA LibTorch 2.x from the PyPI wheels.
# Needs no GPU and no nvcc: the torch wheel and its nvidia-* dependency wheels are installed into a venv, and
# cmake/TorchCudaWheels.cmake declares torch::cudart from them (README, "CUDA"). Run scripts/setup.sh first on a
# fresh machine (compilers, OpenCV, ITK, GoogleTest, python3-venv).
#   CELLCOUNT_CUDA_DIR     cache folder: venv/, build/, configure.log, compile.log (default: build-cuda)
#   CELLCOUNT_CUDA_TORCH   torch version from PyPI (default 2.7.1: CUDA 12.6 wheels, new C++ ABI like Debian's
#                          OpenCV and ITK; >= 2.7 required)
#   CELLCOUNT_CUDA_PYTHON  use this python's torch instead of making the venv (e.g. a machine with torch installed)
#   CELLCOUNT_CUDA_JOBS    compile jobs (default 1: each LibTorch translation unit takes ~1 GB and 12-40 s)
#   CELLCOUNT_CMAKE_ARGS   extra CMake arguments (default adds -DCELLCOUNT_BUILD_JNI=OFF)
# Exit status: non-zero when the venv, the configure or the compile failed (the logs say which).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${CELLCOUNT_CUDA_DIR:-build-cuda}
TORCH=${CELLCOUNT_CUDA_TORCH:-2.7.1}
JOBS=${CELLCOUNT_CUDA_JOBS:-1}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

if [ -n "${CELLCOUNT_CUDA_PYTHON:-}" ]; then
  PY=$CELLCOUNT_CUDA_PYTHON
else
  PY=$DIR/venv/bin/python
  if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH' else 1)" 2>/dev/null; then
    echo "== venv $DIR/venv: pip install torch==$TORCH (CUDA wheels, ~3 GB with the nvidia-* dependencies)"
    [ -x "$PY" ] || python3 -m venv "$DIR/venv"
    "$DIR/venv/bin/pip" install --disable-pip-version-check "torch==$TORCH"
  fi
fi
read -r TV CUDA_V SP < <("$PY" - <<'EOF' 2>/dev/null
import os, sysconfig, torch
print(torch.__version__, torch.version.cuda, os.path.dirname(os.path.dirname(torch.__file__)))
EOF
)
if [ "$CUDA_V" = None ] || [ -z "$CUDA_V" ]; then
  echo "build-cuda: torch $TV from $PY has no CUDA (torch.version.cuda is None); use a CUDA wheel" >&2
  exit 1
fi
case "$TV" in 1.*|2.[0-6].*|2.[0-6]) echo "build-cuda: torch $TV is older than 2.7 (old C++ ABI wheels); set CELLCOUNT_CUDA_TORCH" >&2; exit 1;; esac
echo "== torch $TV, CUDA $CUDA_V, site-packages $SP"

launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
t0=$(date +%s)
# shellcheck disable=SC2086
if ! cmake -S . -B "$DIR/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc \
    "${launcher[@]}" -DCMAKE_PREFIX_PATH="$SP/torch/share/cmake" -DCELLCOUNT_CUDA_WHEELS="$SP/nvidia" \
    -DCELLCOUNT_CUDA=ON -DCELLCOUNT_PCH=ON ${CELLCOUNT_CMAKE_ARGS:--DCELLCOUNT_BUILD_JNI=OFF} > "$DIR/configure.log" 2>&1; then
  tail -30 "$DIR/configure.log"
  echo "build-cuda: configure failed; log: $DIR/configure.log" >&2
  exit 1
fi
grep -E "cellcount:|Found Torch" "$DIR/configure.log"
t1=$(date +%s)
echo "== configure took $((t1 - t0)) s; compiling with -j$JOBS (log: $DIR/compile.log)"
if ! nice -n 10 cmake --build "$DIR/build" -j "$JOBS" > "$DIR/compile.log" 2>&1; then
  grep -E "error|Error" "$DIR/compile.log" | head -40
  tail -5 "$DIR/compile.log"
  echo "build-cuda: compile failed; log: $DIR/compile.log" >&2
  exit 1
fi
tail -3 "$DIR/compile.log"
echo "== compile took $(($(date +%s) - t1)) s; warnings: $(grep -c 'warning:' "$DIR/compile.log" || true)"
"$DIR/build/bin/cellcount" info
