#!/usr/bin/env bash
# Every test: set up if needed, build, then the C++ and C ABI tests (CTest), and the Python and Java
# tests once those packages exist. Exit status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}
status=0
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${CELLCOUNT_TEST_JOBS:-2}" || status=1
# Front-end tests (pytest with a headless napari viewer; real ImageJ under xvfb-run), when present.
for part in python java; do
  if [ -f "scripts/test-$part.sh" ]; then
    echo "== $part tests"
    bash "scripts/test-$part.sh" || status=1
  fi
done
# Fuzzing and sanitizers (README "Fuzzing and sanitizers"): each fuzz target for 60 s, then the ASan+UBSan build
# and its tests, then the ThreadSanitizer job (CELLCOUNT_CI_ASAN=0 / CELLCOUNT_CI_TSAN=0 skip them). Each prints its
# wall time.
if [ "${CELLCOUNT_CI_FUZZ:-1}" = 1 ]; then
  echo "== fuzz (60 s per target)"
  t0=$(date +%s)
  CELLCOUNT_BUILD_DIR=$BUILD_DIR bash scripts/fuzz.sh all "${CELLCOUNT_FUZZ_SECONDS:-60}" || status=1
  echo "== fuzz took $(( $(date +%s) - t0 )) s"
fi
for kind in asan tsan; do
  var=CELLCOUNT_CI_${kind^^}
  if [ "${!var:-1}" = 1 ]; then
    echo "== $kind"
    t0=$(date +%s)
    bash scripts/sanitize.sh "$kind" || status=1
    echo "== $kind took $(( $(date +%s) - t0 )) s"
  fi
done
# The CUDA build against the PyPI torch wheels (README "CUDA"): opt-in with CELLCOUNT_CI_CUDA=1, because it downloads
# ~3 GB of wheels and compiles the library and tests once more (tens of minutes on 2 cores). Without a GPU its gpu
# tests skip; the capi tests check that the CUDA-linked library works on the CPU.
if [ "${CELLCOUNT_CI_CUDA:-0}" = 1 ]; then
  echo "== CUDA build (scripts/build-cuda.sh)"
  t0=$(date +%s)
  if CELLCOUNT_CUDA_JOBS=${CELLCOUNT_JOBS:-2} bash scripts/build-cuda.sh; then
    ctest --test-dir build-cuda/build -L "capi|gpu" --output-on-failure -j "${CELLCOUNT_TEST_JOBS:-2}" || status=1
  else
    status=1
  fi
  echo "== CUDA build took $(( $(date +%s) - t0 )) s"
fi
exit $status
