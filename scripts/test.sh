#!/usr/bin/env bash
# Every test: set up if needed, build, then the C++ and C ABI tests (CTest), and the Python and Java
# tests once those packages exist. Exit status is non-zero if anything failed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "${CELLCOUNT_TEST_JOBS:-2}"
