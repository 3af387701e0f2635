#!/usr/bin/env bash
# Sanitizer builds and runs (CI runs them from scripts/test.sh). Each has its own build folder (ccache if present).
#   bash scripts/sanitize.sh asan   ASan+UBSan: the library, the CLI (it makes the fixture model), the C ABI
#                                   tests and the fuzz harness, in build-asan/; runs the C ABI tests and every
#                                   fuzz corpus file under the sanitizers. CELLCOUNT_ASAN_UNIT=1 also builds and
#                                   runs the C++ core unit tests (label unit without method_*: ~20 more LibTorch
#                                   files, too slow for CI's 2 cores).
#   bash scripts/sanitize.sh tsan   ThreadSanitizer: the library, the CLI and tests/abi/test_concurrency.c (several
#                                   threads predicting with distinct handles of one model + one training thread),
#                                   in build-tsan/.
# LibTorch, OpenBLAS and libgomp are Debian's uninstrumented builds: ASan sees our code's accesses to memory they
# allocate but not their own accesses; TSan sees the synchronisation of our code only (tests/fuzz/tsan.supp
# silences races reported inside their frames).
# Choice: -O1 -g (less compile time than -O2, readable stacks); no JNI, no method or unit tests by default (each
# LibTorch file takes minutes under ASan on 2 busy cores), so the build stays within CI's time.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: sanitize.sh asan|tsan}
jobs=${CELLCOUNT_JOBS:-2}
export OMP_WAIT_POLICY=PASSIVE
case $kind in
  asan) flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
        targets=(cellcount cellcount_cli cellcount_test_capi cellcount_test_header cellcount_test_concurrency cellcount_test_measure cellcount_fuzz)
        [ "${CELLCOUNT_ASAN_UNIT:-0}" = 1 ] && targets+=(cellcount_unit_tests) ;;
  tsan) flags="-fsanitize=thread -fno-omit-frame-pointer"
        targets=(cellcount cellcount_cli cellcount_test_concurrency) ;;
  *) echo "sanitize.sh: unknown kind '$kind' (asan or tsan)" >&2; exit 2 ;;
esac
dir=${CELLCOUNT_SANITIZE_DIR:-build-$kind}
start=$(date +%s)
# ccache when the machine has it (a developer's rebuilds take seconds); a fresh CI machine builds without it.
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=g++ -DCMAKE_C_COMPILER=gcc \
  "${launcher[@]}" \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g" \
  "-DCMAKE_CXX_FLAGS=$flags" "-DCMAKE_C_FLAGS=$flags" \
  "-DCMAKE_EXE_LINKER_FLAGS=$flags" "-DCMAKE_SHARED_LINKER_FLAGS=$flags" \
  -DCELLCOUNT_BUILD_JNI=OFF >/dev/null
cmake --build "$dir" -j "$jobs" --target "${targets[@]}"
built=$(date +%s)
echo "== $kind: build took $((built - start)) s"
supp=$PWD/tests/fuzz
status=0
case $kind in
  asan)
    # detect_leaks=0: LibTorch's and OpenMP's static allocations are reported as leaks at exit.
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp
    # The C ABI tests (label capi: the fixture model, capi_*, cli_checks, fuzz_corpus_*) and, when built, the core
    # unit tests (not method_*: those train models). install_consumer is left out: its consumer programs are not
    # linked with the ASan runtime first, which ASan refuses.
    labels=capi
    [ "${CELLCOUNT_ASAN_UNIT:-0}" = 1 ] && labels='unit|capi'
    ctest --test-dir "$dir" -L "$labels" -E '^(method_|gpu_|install_consumer)' --output-on-failure -j "$jobs" || status=1 ;;
  tsan)
    export TSAN_OPTIONS="suppressions=$supp/tsan.supp halt_on_error=1 second_deadlock_stack=1"
    ctest --test-dir "$dir" -R '^(make_fixture_model|capi_concurrency)$' --output-on-failure || status=1 ;;
esac
echo "== $kind: tests took $(( $(date +%s) - built )) s, status $status"
exit $status
