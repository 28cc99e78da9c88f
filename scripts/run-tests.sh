#!/usr/bin/env bash
# run-tests.sh -- Kelp's one test command (`make test`; .ci/run calls it).
#
# Installs missing Debian packages, builds everything (PostgreSQL is cached),
# then runs these suites and adds up their counts:
#   lint         clang-format check, file-size limits
#   unit         C unit tests (build/out/bin/kelp-unit)
#   unit-san     the same built with ASan+UBSan (build/san)
#   unit-vg      the same under valgrind; a leak fails the test
#   integration  pytest (tests/), real processes on 127.0.0.1
# The last line is "N passed, N failed". Exit status 0 only when nothing failed.
#
# KELP_TEST_QUICK=1 skips unit-vg (for quick local runs; CI runs everything).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
LOGDIR=$ROOT/build/test-logs
mkdir -p "$LOGDIR"
JOBS=$(nproc)
total_pass=0
total_fail=0
summary=()

note() { printf '\n=== %s ===\n' "$*"; }

# record SUITE PASSED FAILED
record() {
    total_pass=$((total_pass + $2))
    total_fail=$((total_fail + $3))
    summary+=("$(printf '%-12s %4d passed, %d failed' "$1" "$2" "$3")")
}

finish() {
    note "summary"
    printf '%s\n' "${summary[@]}"
    echo "logs: $LOGDIR"
    echo "$total_pass passed, $total_fail failed"
    [ "$total_fail" = 0 ] && exit 0 || exit 1
}

# count_line FILE: read the runner's "N passed, N failed" line from a log.
count_line() {
    grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -1
}

# run_counted SUITE CMD...: run a command that ends with "N passed, N failed".
run_counted() {
    local suite=$1 log=$LOGDIR/$1.log line
    shift
    note "$suite: $*"
    "$@" 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    line=$(count_line "$log")
    if [ -z "$line" ]; then
        echo "$suite: no result line (exit $rc)"
        record "$suite" 0 1
        return
    fi
    local p f
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\1/')
    f=$(echo "$line" | sed -E 's/^([0-9]+) passed, ([0-9]+) failed.*/\2/')
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        echo "$suite: exit status $rc with no failed test; counting it as a failure"
        f=1
    fi
    record "$suite" "$p" "$f"
}

note "dependencies"
if ! scripts/install-deps.sh; then
    record deps 0 1
    finish
fi

note "build"
if make -j"$JOBS" all >"$LOGDIR/build.log" 2>&1; then
    grep -E '^\[build-postgres\]' "$LOGDIR/build.log" || true
    record build 1 0
else
    tail -40 "$LOGDIR/build.log"
    echo "build failed: see $LOGDIR/build.log"
    record build 0 1
    finish
fi

note "lint"
lint_pass=0 lint_fail=0
if make -s format-check >"$LOGDIR/format.log" 2>&1; then lint_pass=$((lint_pass + 1)); else
    lint_fail=$((lint_fail + 1)); echo "format-check failed:"; head -20 "$LOGDIR/format.log"; fi
if scripts/check-sizes.sh >"$LOGDIR/sizes.log" 2>&1; then lint_pass=$((lint_pass + 1)); else
    lint_fail=$((lint_fail + 1)); echo "size limits exceeded:"; cat "$LOGDIR/sizes.log"; fi
record lint $lint_pass $lint_fail

run_counted unit build/out/bin/kelp-unit

note "build (sanitizers)"
if make -j"$JOBS" SAN=1 kelp >"$LOGDIR/build-san.log" 2>&1; then
    run_counted unit-san build/san/bin/kelp-unit
else
    tail -20 "$LOGDIR/build-san.log"
    record unit-san 0 1
fi

if [ "${KELP_TEST_QUICK:-0}" != 1 ]; then
    run_counted unit-vg env KELP_UNIT_TIMEOUT=300 valgrind -q --leak-check=full \
        --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
        --error-exitcode=97 build/out/bin/kelp-unit
fi

run_counted integration /usr/bin/python3 -m pytest -v -p no:cacheprovider tests

finish
