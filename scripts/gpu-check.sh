#!/usr/bin/env bash
# The GPU check, for a machine with an NVIDIA GPU (sized for one H200 with 16 cores: under 15 minutes).
#   1. fails at once, with a clear message, when no NVIDIA GPU is visible (nvidia-smi);
#   2. builds the CUDA build with scripts/build-cuda.sh (PyPI torch wheels in build-cuda/venv, -j$(nproc));
#   3. runs the gpu-labelled tests: CPU fp32 against CUDA per method (dcl, exemplar, llp, twinvae; tests/gpu/),
#      none of which may skip when a GPU is there;
#   4. runs `cellcount bench` per method on CUDA (fp32, and fp16 where the method honours it) and on the CPU
#      at 1024x1024, and writes the table.
# Output, under $OUT (default gpu-check-out/): gpu-check.md (the table and the test summary), bench.jsonl,
# ctest-gpu.log, configure.log, compile.log, nvidia-smi.txt. Exit status non-zero when any step failed.
#   CELLCOUNT_CUDA_PYTHON   use this python's CUDA torch instead of pip-installing the wheels (offline machines)
#   CELLCOUNT_GPU_SIZES     bench sizes (default "1024 2048")
#   CELLCOUNT_GPU_BUDGET_S  overall budget in seconds (default 840); each step gets what is left
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
mkdir -p "$OUT"
BUDGET=${CELLCOUNT_GPU_BUDGET_S:-840}
T0=$(date +%s)
left() { local s=$((BUDGET - ($(date +%s) - T0))); echo $((s > 1 ? s : 1)); }
say() { echo "== [$(($(date +%s) - T0)) s] $*" | tee -a "$OUT/gpu-check.md"; }
die() {
  echo "gpu-check: $*" >&2
  echo "FAILED: $*" >>"$OUT/gpu-check.md"
  exit 1
}
: >"$OUT/gpu-check.md"

# 1. A GPU, or stop now.
if ! command -v nvidia-smi >/dev/null 2>&1; then
  echo "gpu-check: no NVIDIA GPU here (nvidia-smi not found); this script needs a machine with one" >&2
  echo "FAILED: no nvidia-smi" >>"$OUT/gpu-check.md"
  exit 2
fi
if ! nvidia-smi -L >"$OUT/nvidia-smi.txt" 2>&1 || ! grep -q "^GPU " "$OUT/nvidia-smi.txt"; then
  cat "$OUT/nvidia-smi.txt" >&2
  echo "gpu-check: nvidia-smi lists no GPU (driver not loaded, or none visible to this process)" >&2
  echo "FAILED: nvidia-smi lists no GPU" >>"$OUT/gpu-check.md"
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$OUT/nvidia-smi.txt" 2>&1
say "GPU: $(grep '^GPU ' "$OUT/nvidia-smi.txt" | head -1); $(nproc) cores"

# Build tools and libraries (Debian), only those missing.
if command -v dpkg-query >/dev/null 2>&1; then
  . scripts/lib-apt.sh
  apt_install_missing "gpu-check" g++ cmake ninja-build pkg-config nlohmann-json3-dev libgtest-dev googletest \
    libopencv-dev libinsighttoolkit5-dev python3-venv ccache || die "could not install the build packages"
fi

# 2. Build (pip install of the wheels when needed, configure, compile with every core).
say "build (scripts/build-cuda.sh, -j$(nproc))"
CELLCOUNT_CUDA_JOBS=$(nproc) timeout "$(left)" bash scripts/build-cuda.sh 2>&1 | tail -15
build_rc=${PIPESTATUS[0]}
cp -f build-cuda/configure.log build-cuda/compile.log "$OUT/" 2>/dev/null
[ "$build_rc" = 0 ] || die "the CUDA build failed (status $build_rc; configure.log, compile.log)"
B=$ROOT/build-cuda/build
CLI=$B/bin/cellcount
"$CLI" info | tee -a "$OUT/gpu-check.md"
"$CLI" info | grep -q "CUDA yes" ||
  die "the build's LibTorch sees no GPU although nvidia-smi does (driver older than the wheels' CUDA?)"

# 3. The gpu-labelled tests. With a GPU none may skip.
say "ctest -L gpu"
timeout "$(left)" ctest --test-dir "$B" -L gpu --output-on-failure -j 4 >"$OUT/ctest-gpu.log" 2>&1
test_rc=$?
grep -E "Test +#|tests passed|Total Test" "$OUT/ctest-gpu.log" | tee -a "$OUT/gpu-check.md"
skipped=$(grep -c "Skipped" "$OUT/ctest-gpu.log")
[ "$skipped" = 0 ] || { echo "FAILED: $skipped gpu test(s) skipped with a GPU present" | tee -a "$OUT/gpu-check.md"; test_rc=1; }

# 4. Benchmarks: the CLI's own bench (one synthetic image of the size, one warm-up, median of the repeats).
say "bench"
: >"$OUT/bench.jsonl"
bench() {  # bench MODEL DEVICE PRECISION SIZE
  local s
  s=$(left)
  if [ "$s" -lt 30 ]; then
    echo "skipped bench $*: budget spent" | tee -a "$OUT/gpu-check.md"
    return
  fi
  if timeout "$s" "$CLI" bench --model "models/$1" --device "$2" --precision "$3" --size "$4" --repeat 5 \
      >"$OUT/bench.tmp" 2>"$OUT/bench.err"; then
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))))' "$OUT/bench.tmp" >>"$OUT/bench.jsonl"
  else
    echo "bench $* failed: $(tail -2 "$OUT/bench.err")" | tee -a "$OUT/gpu-check.md"
    bench_rc=1
  fi
}
bench_rc=0
for size in ${CELLCOUNT_GPU_SIZES:-1024 2048}; do
  for m in dcl-vgg exemplar-cells llp-wbc twinvae-bf; do
    [ -f "models/$m/model.json" ] || continue
    bench "$m" cuda fp32 "$size"
    [ "$m" = dcl-vgg ] && bench "$m" cuda fp16 "$size"
  done
done
for m in dcl-vgg exemplar-cells llp-wbc twinvae-bf; do
  [ -f "models/$m/model.json" ] && bench "$m" cpu fp32 1024
done
python3 - "$OUT/bench.jsonl" <<'EOF' | tee -a "$OUT/gpu-check.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print("\n| model | size | device | precision | threads | ms (median of repeats) | ms per megapixel | peak RSS MiB |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['model'].split('/')[-1]} | {r['size']} | {r['device']} | {r['precision']} | {r['threads']} | "
          f"{r['ms_median']:.1f} | {r['ms_per_megapixel']:.1f} | {r['peak_rss_mib']:.0f} |")
EOF
rm -f "$OUT/bench.tmp" "$OUT/bench.err"
say "done: gpu tests status $test_rc, bench status $bench_rc, $(($(date +%s) - T0)) s"
[ "$test_rc" = 0 ] && [ "$bench_rc" = 0 ]
