#!/usr/bin/env bash
# Builds every fuzz harness with the plain replay driver (no libFuzzer,
# gcc + ASan/UBSan by default) and runs it over its seed corpus and its saved
# regression inputs. Works without clang. Ends with "N passed, M failed"
# (one check per input file, plus one per harness that fails to build).
#   CC=clang tests/fuzz/replay.sh      # another compiler
#   SAN= tests/fuzz/replay.sh          # no sanitizers
set -u
cd "$(dirname "$0")/../.."
CC=${CC:-gcc}
SAN=${SAN--fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer}
OUT=build/fuzz-replay
HARNESSES="fuzz_frames fuzz_handshake fuzz_lines_jsonrpc fuzz_url fuzz_proxy fuzz_sim"
mkdir -p "$OUT"
[ -f build/.gitignore ] || echo "*" > build/.gitignore     # build/ ignores itself
PASS=0
FAIL=0
for h in $HARNESSES; do
    echo "== $h"
    # shellcheck disable=SC2086
    if ! $CC -std=c99 -Wall -Wextra -O1 -g $SAN -DFUZZ_REPLAY -I. \
            tests/fuzz/replay.c "tests/fuzz/$h.c" -o "$OUT/$h" >"$OUT/$h.build.log" 2>&1; then
        echo "FAIL  $h does not build with $CC:"
        sed 's/^/    /' "$OUT/$h.build.log" | tail -n 20
        FAIL=$((FAIL + 1))
        continue
    fi
    "$OUT/$h" "tests/fuzz/corpus/$h" "tests/fuzz/regressions/$h" >"$OUT/$h.log" 2>&1
    grep -E '^(FAIL|skip) ' "$OUT/$h.log" | sed 's/^/  /'
    grep -aE -A1 'PROPERTY VIOLATION|ERROR: AddressSanitizer|runtime error|ERROR: LeakSanitizer' "$OUT/$h.log" |
        head -n 12 | sed 's/^/    | /'
    last=$(grep -aE '^[0-9]+ passed, [0-9]+ failed$' "$OUT/$h.log" | tail -n 1)
    if [ -z "$last" ]; then
        echo "  FAIL  $h replay did not finish (log $OUT/$h.log)"
        FAIL=$((FAIL + 1))
        continue
    fi
    p=${last%% passed*}
    f=${last#*, }; f=${f%% failed}
    echo "  $last"
    PASS=$((PASS + p))
    FAIL=$((FAIL + f))
done
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
