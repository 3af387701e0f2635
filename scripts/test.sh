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
exit $status
