#!/usr/bin/env bash
# Runs one fuzz target for S seconds and prints its number of executions (tests/fuzz/fuzz_main.cpp):
#   bash scripts/fuzz.sh predict|model|dataset|request SECONDS [--seed N] [--timeout T] [--save DIR]
#   bash scripts/fuzz.sh all SECONDS     each of the four in turn
# Uses build/ (CELLCOUNT_BUILD_DIR) and its fixture model (made by the CTest make_fixture_model when absent).
# Exit 0 when nothing failed; 70 = broken contract, 71 = hang, other = crash (the input is named on stderr, or
# lies in the work folder as <target>.current).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz.sh TARGET|all SECONDS [options]}
seconds=${2:?usage: fuzz.sh TARGET|all SECONDS [options]}
shift 2
BUILD_DIR=${CELLCOUNT_BUILD_DIR:-build}
export OMP_WAIT_POLICY=PASSIVE
fixture=$BUILD_DIR/tests/fixture
[ -f "$fixture/model/model.json" ] || ctest --test-dir "$BUILD_DIR" -R '^make_fixture_model$' --output-on-failure >/dev/null
targets=("$target")
[ "$target" = all ] && targets=(predict model dataset request)
status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d "${TMPDIR:-/tmp}/cellcount-fuzz-$t-XXXXXX")
  rc=0
  "$BUILD_DIR/bin/cellcount_fuzz" "$t" --corpus "tests/fuzz/corpus/$t" --model "$fixture/model" \
    --data "$fixture/data" --seconds "$seconds" --work "$work" "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then
    rm -rf "$work"
  else
    echo "fuzz $t: FAILED (exit $rc); the input that failed: $work/$t.current" >&2
    status=1
  fi
done
exit $status
