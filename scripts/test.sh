#!/usr/bin/env bash
# Installs what is missing, builds weir and runs every test: the unit tests and the end-to-end
# tests (CTest), then both again in a build with AddressSanitizer and UndefinedBehaviorSanitizer,
# then each fuzz target over its seed corpus for a short while.
#
# WEIR_FUZZ_SECONDS (default 20) sets how long each fuzz target runs.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs=$(nproc)
fuzz_seconds=${WEIR_FUZZ_SECONDS:-20}

scripts/deps.sh test
(cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error)

section() { printf '\n==== %s ====\n' "$*"; }

passed=0
# Runs ctest in a build folder and adds its test count to $passed (ctest fails the script
# through set -e when a test fails).
run_ctest() {
    local log
    log=$(mktemp)
    ctest --test-dir "$1" --output-on-failure -j "$jobs" | tee "$log"
    passed=$((passed + $(sed -n 's/.*tests passed, 0 tests failed out of \([0-9]*\).*/\1/p' "$log")))
    rm -f "$log"
}

section "build"
cmake -S . -B build -G Ninja >/dev/null
ninja -C build

section "unit and end-to-end tests"
run_ctest build

section "sanitizer build (ASan + UBSan): unit and end-to-end tests"
cmake -S . -B build-asan -G Ninja -DWEIR_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
ninja -C build-asan
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
run_ctest build-asan
unset ASAN_OPTIONS UBSAN_OPTIONS

section "fuzz targets (${fuzz_seconds}s each)"
CC=clang cmake -S . -B build-fuzz -G Ninja -DWEIR_FUZZ=ON -DWEIR_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
ninja -C build-fuzz
failed=0
for corpus in fuzz/corpus/*/; do
    name=$(basename "$corpus")
    work=$(mktemp -d)
    cp -r "$corpus". "$work"/
    if ! build-fuzz/fuzz/"$name" -max_total_time="$fuzz_seconds" -print_final_stats=0 \
        "$work" >"$work.log" 2>&1; then
        tail -n 40 "$work.log"
        echo "fuzz target $name failed"
        failed=$((failed + 1))
    else
        echo "fuzz target $name: no crash in ${fuzz_seconds}s"
        passed=$((passed + 1))
    fi
    rm -rf "$work" "$work.log"
done
echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
