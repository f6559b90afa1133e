#!/usr/bin/env bash
# Coverage-guided fuzzing of alwaysup.h with libFuzzer.
#
#   tests/fuzz/run.sh SECONDS          # each harness for SECONDS seconds
#   JOBS=2 tests/fuzz/run.sh 300       # two harnesses at a time
#   HARNESSES="fuzz_url" tests/fuzz/run.sh 60
#
# Builds every harness into build/fuzz/ with clang (-fsanitize=fuzzer,
# address,undefined), copies its committed seed corpus to a scratch
# directory under build/fuzz/ (tests/fuzz/corpus/ is never written), runs it
# with its dictionary, and prints the executions, coverage and any crash or
# property violation. Crash inputs land in build/fuzz/artifacts/<harness>/;
# minimize one with  build/fuzz/<harness> -minimize_crash=1 -runs=20000 FILE
# and save it under tests/fuzz/regressions/<harness>/ so tests/fuzz/replay.sh
# keeps running it.
#
# Last line: "N passed, M failed", one check per harness. A missing clang
# or libFuzzer runtime is a SKIP, or a failure when CI=true.
set -u
cd "$(dirname "$0")/../.."
SECS=${1:-}
case "$SECS" in
    ''|*[!0-9]*) echo "usage: $0 SECONDS" >&2; exit 2 ;;
esac
CLANG=${CLANG:-clang}
JOBS=${JOBS:-1}
HARNESSES=${HARNESSES:-"fuzz_frames fuzz_handshake fuzz_lines_jsonrpc fuzz_url fuzz_proxy fuzz_sim"}
OUT=build/fuzz
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"

unavailable() {
    echo "!!! ============================================================== !!!"
    echo "!!! fuzzing unavailable: $1"
    echo "!!! install clang and its libFuzzer runtime (Debian: clang, libclang-rt-dev)"
    echo "!!! ============================================================== !!!"
    if [ "${CI:-}" = "true" ]; then
        echo "0 passed, 1 failed"
        exit 1
    fi
    echo "SKIP fuzz: $1 (CI=true makes this a failure)"
    echo "0 passed, 0 failed"
    exit 0
}

mkdir -p "$OUT"
[ -f build/.gitignore ] || echo "*" > build/.gitignore     # build/ ignores itself
command -v "$CLANG" >/dev/null 2>&1 || unavailable "$CLANG not found"
printf '#include <stdint.h>\n#include <stddef.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' \
    > "$OUT/probe.c"
# shellcheck disable=SC2086
$CLANG $FLAGS "$OUT/probe.c" -o "$OUT/probe" >"$OUT/probe.log" 2>&1 ||
    unavailable "$CLANG cannot link -fsanitize=fuzzer ($(head -n 1 "$OUT/probe.log"))"

PASS=0
FAIL=0
declare -A BUILT

# build everything first
for h in $HARNESSES; do
    # shellcheck disable=SC2086
    if $CLANG $FLAGS -I. "tests/fuzz/$h.c" -o "$OUT/$h" >"$OUT/$h.build.log" 2>&1; then
        BUILT[$h]=1
    else
        BUILT[$h]=0
    fi
done

run_one() {                           # run_one HARNESS: fuzz it, leave a log
    local h=$1 dict=()
    rm -rf "$OUT/corpus/$h" "$OUT/artifacts/$h"
    mkdir -p "$OUT/corpus/$h" "$OUT/artifacts/$h"
    cp -R "tests/fuzz/corpus/$h/." "$OUT/corpus/$h/" 2>/dev/null
    [ -f "tests/fuzz/$h.dict" ] && dict=("-dict=tests/fuzz/$h.dict")
    "$OUT/$h" "$OUT/corpus/$h" "${dict[@]}" -max_total_time="$SECS" -print_final_stats=1 \
        -timeout=30 -rss_limit_mb=3072 -artifact_prefix="$OUT/artifacts/$h/" >"$OUT/$h.log" 2>&1
    echo $? >"$OUT/$h.rc"
}

# run, JOBS at a time
running=0
for h in $HARNESSES; do
    [ "${BUILT[$h]}" = 1 ] || continue
    echo "fuzzing $h for ${SECS}s..."
    run_one "$h" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait -n 2>/dev/null || wait; running=$((running - 1)); fi
done
wait

# report
for h in $HARNESSES; do
    if [ "${BUILT[$h]}" != 1 ]; then
        printf '  FAIL  %-20s does not build:\n' "$h"
        tail -n 20 "$OUT/$h.build.log" | sed 's/^/        | /'
        FAIL=$((FAIL + 1))
        continue
    fi
    log="$OUT/$h.log"
    rc=$(cat "$OUT/$h.rc" 2>/dev/null || echo 1)
    execs=$(grep -a 'stat::number_of_executed_units' "$log" | tail -n 1 | awk '{print $2}')
    cov=$(grep -aoE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    corp=$(find "$OUT/corpus/$h" -type f | wc -l)
    arts=$(find "$OUT/artifacts/$h" -type f | head -n 5)
    if [ "$rc" -eq 0 ] && [ -z "$arts" ]; then
        printf '  ok    %-20s %12s execs  %-22s corpus %s\n' "$h" "${execs:-?}" "${cov:-cov: ?}" "$corp"
        PASS=$((PASS + 1))
    else
        printf '  FAIL  %-20s %12s execs  %-22s exit %s, log %s\n' "$h" "${execs:-?}" "${cov:-cov: ?}" "$rc" "$log"
        for a in $arts; do echo "        input: $a ($(wc -c <"$a") bytes)"; done
        grep -aE -A2 'PROPERTY VIOLATION|ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|ERROR: libFuzzer' \
            "$log" | head -n 12 | sed 's/^/        | /'
        FAIL=$((FAIL + 1))
    fi
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
