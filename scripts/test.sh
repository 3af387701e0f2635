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
exit $status
