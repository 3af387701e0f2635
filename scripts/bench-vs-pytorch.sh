#!/usr/bin/env bash
# Side-by-side speed of the library and the same dcl networks in plain PyTorch (issue 25), interleaved in one
# run; writes one Markdown table (build/bench-vs-pytorch.md). Needs the library built (build/lib) and makes
# its own venv with a pinned PyPI torch under build/bench-venv (once; about 3 GB with torch's CUDA wheels,
# which stay unused: the benchmark runs on the CPU).
#   bash scripts/bench-vs-pytorch.sh            sizes 256,1024,2048, threads 1,2, fp32 and auto, 3 repeats
#   bash scripts/bench-vs-pytorch.sh --quick    sizes 256,1024 only (busy machines)
#   bash scripts/bench-vs-pytorch.sh --int8     scripts/bench_int8.py instead: PyTorch fp32 against int8 (static
#                                               quantisation) of the model's network with its weights, real images
# Other options go to scripts/bench_vs_pytorch.py (--model, --sizes, --threads, --precisions, --repeats).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${CELLCOUNT_BUILD_DIR:-build}
TORCH_VERSION=2.7.1
VENV=$BUILD/bench-venv
[ -f "$BUILD/lib/libcellcount.so" ] || { echo "build the library first (cmake --build $BUILD)" >&2; exit 2; }
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import torch, numpy, PIL; assert torch.__version__.startswith('$TORCH_VERSION')" 2>/dev/null; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" "numpy==2.4.6" "pillow==11.3.0"
fi
export OMP_WAIT_POLICY=PASSIVE
if [ "${1:-}" = "--int8" ]; then shift; exec "$VENV/bin/python" scripts/bench_int8.py "$@"; fi
args=()
for a in "$@"; do
  if [ "$a" = "--quick" ]; then args+=(--sizes 256,1024); else args+=("$a"); fi
done
export OMP_WAIT_POLICY=PASSIVE CELLCOUNT_LIBRARY="$PWD/$BUILD/lib" PYTHONPATH="$PWD/bindings/python${PYTHONPATH:+:$PYTHONPATH}"
exec "$VENV/bin/python" scripts/bench_vs_pytorch.py --out "$BUILD/bench-vs-pytorch.md" "${args[@]}"
